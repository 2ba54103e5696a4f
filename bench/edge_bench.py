#!/usr/bin/env python3
"""Benchmark of the generated nginx edge against stock nginx, same machine, same files, same TLS.

Prints three tables:
1. requests per second for the content-hashed JS bundle, measured with h2load (nghttp2-client,
   HTTP/1.1 keep-alive and HTTP/2, 2 threads, 16 connections), from stock nginx (the same base image
   with its default configuration plus one TLS server: the edge's own certificate and its
   snippets/tls.conf, serving the same build directory from disk, within the edge container's own
   CPU and memory limits) and through the generated edge (every header and limit on, proxied to the
   frontend container); TLS and resources being the same, the edge/stock ratio per protocol is what
   the edge's configuration and proxy hop cost. Full mode fails below MIN_EDGE_RATIO;
2. bytes on the wire for the JS bundle with and without gzip;
3. the TLS session resumption rate (TLS 1.2 and 1.3) and full vs resumed handshake times.

Every load is bounded in seconds and goes to 127.0.0.1 only (h2load's --connect-to; the URL keeps
the site's name for SNI and :authority). Light mode (the default under CI=true, or --light)
measures each target once for 3 s; full mode takes the median of --runs 10 s rounds. Run it
directly (`.venv/bin/python bench/edge_bench.py`) or through the test suite
(tests/live/test_edge_bench.py).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "live"), str(ROOT / "bench")]

from sample_app import build_backend_jar, build_frontend  # noqa: E402
from stack import Stack, base_image_answers, free_port, render  # noqa: E402
from report import cli, table  # noqa: E402

DOMAIN = "staging.petory.example.com"
ANSWERS = {"environments": ["staging"], "tls_mode_staging": "self-signed", "server_size": "medium"}
H2LOAD_THREADS, H2LOAD_CONNECTIONS = 2, 16  # h2load -t and -c: one thread per core here
PROTOCOLS = {"HTTP/1.1": ["--h1"], "HTTP/2": []}  # h2load's --h1 is ALPN http/1.1; the default is h2


def _context(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the benchmark stack uses the self-signed certificate
    if version:
        context.minimum_version = context.maximum_version = version
    return context


def _connect(scheme: str, port: int, host: str, context=None, session=None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), 10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if scheme == "https":
        sock = (context or _context()).wrap_socket(sock, server_hostname=host, session=session)
    return sock


def h2load(port: int, host: str, path: str, protocol: str, seconds: float) -> dict:
    """One timed h2load round: {"rate": req/s, "done": 2xx responses, "failed": the rest,
    "mean_ms": mean time per request}."""
    if not shutil.which("h2load"):
        raise RuntimeError("h2load is not installed: apt-get install nghttp2-client (tests/run.sh installs it)")
    cmd = ["h2load", *PROTOCOLS[protocol], f"--connect-to=127.0.0.1:{port}", "-t", str(H2LOAD_THREADS),
           "-c", str(H2LOAD_CONNECTIONS), "--warm-up-time=1s", f"--duration={seconds:g}s",
           f"https://{host}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        if not match:
            raise RuntimeError(f"h2load printed no {pattern!r}: {out[-800:]}")
        return float(match.group(1).replace(",", ""))

    # Failed: any status but 2xx, and h2load's own failed, errored and timed-out requests. Its "done"
    # and "2xx" counts can differ by one at the end of a timed round, so responses are the 2xx.
    ok = number(r"status codes: (\d+) 2xx")
    failed = sum(number(rf"(\d+) {kind}") for kind in ("3xx", "4xx", "5xx", "failed", "errored", "timeout"))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b", out)
    return {"rate": number(r"finished in [\d.]+\w*, ([\d.]+) req/s"), "done": int(ok),
            "failed": int(failed), "mean_ms": float(mean.group(1)) * scale[mean.group(2)] if mean else float("nan")}


def wire_bytes(port: int, host: str, path: str, gzip: bool) -> tuple[int, str]:
    """All bytes of one response (status line, headers, body with any chunk framing), TLS aside."""
    accept = "Accept-Encoding: gzip\r\n" if gzip else ""
    sock = _connect("https", port, host)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{accept}Connection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    encoding = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                     if line.startswith("content-encoding:")), "identity")
    return len(data), encoding


def resumption(port: int, host: str, version: ssl.TLSVersion, connections: int) -> tuple[int, float, float]:
    """New connections, each offering the previous one's session: (resumed, full ms, resumed ms)."""
    context = _context(version)
    session, resumed, full_ms, resumed_ms = None, 0, [], []
    for _ in range(connections):
        began = time.perf_counter()
        sock = _connect("https", port, host, context, session)
        took = (time.perf_counter() - began) * 1000
        # TLS 1.3 sends its session ticket after the handshake: finish one request to receive it.
        sock.sendall(f"HEAD / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        while sock.recv(65536):
            pass
        (resumed_ms if sock.session_reused else full_ms).append(took)
        resumed += sock.session_reused
        session = sock.session
        sock.close()
    return resumed, statistics.median(full_ms), statistics.median(resumed_ms) if resumed_ms else float("nan")


class StockNginx:
    """The base image as shipped (its default.conf) plus one TLS server with the edge's certificate
    and snippets/tls.conf, serving the same build directory on 127.0.0.1 within the edge's own CPU
    and memory limits (`limits`: docker run options)."""

    def __init__(self, image: str, html: Path, tls: Path, snippet: Path, limits: list[str]):
        self.image, self.html, self.tls, self.snippet, self.limits = image, html, tls, snippet, limits
        self.name = f"petory-edge-bench-stock-{uuid.uuid4().hex[:8]}"
        self.port = free_port()

    def __enter__(self) -> "StockNginx":
        server = self.tls / "stock-tls.conf"
        server.write_text("server {\n    listen 443 ssl;\n    http2 on;\n    server_name _;\n"
                          "    ssl_certificate /etc/nginx/tls/fullchain.pem;\n"
                          "    ssl_certificate_key /etc/nginx/tls/privkey.pem;\n"
                          "    include /etc/nginx/snippets/tls.conf;\n    root /usr/share/nginx/html;\n}\n")
        subprocess.run(["docker", "run", "-d", "--rm", "--name", self.name, *self.limits, "-p", f"127.0.0.1:{self.port}:443",
                        "-v", f"{self.html}:/usr/share/nginx/html:ro", "-v", f"{self.tls}:/etc/nginx/tls:ro",
                        "-v", f"{server}:/etc/nginx/conf.d/stock-tls.conf:ro",
                        "-v", f"{self.snippet}:/etc/nginx/snippets/tls.conf:ro", self.image],
                       check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _connect("https", self.port, DOMAIN).close()
                return self
            except OSError:
                time.sleep(0.5)
        logs = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        raise RuntimeError(f"stock nginx did not answer within 30 s: {logs.stderr[-500:]}")

    def __exit__(self, *exc) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


def edge_container(stack: Stack) -> str:
    return stack.compose("ps", "-q", "edge").stdout.decode().split()[0]


def edge_limits(stack: Stack) -> list[str]:
    """The edge container's CPU and memory limits as `docker run` options, read from Docker."""
    nano_cpus, memory = subprocess.run(["docker", "inspect", "-f", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
                                        edge_container(stack)], capture_output=True, text=True, check=True).stdout.split()
    return [f"--cpus={int(nano_cpus) / 1e9:g}", f"--memory={memory}b"]


def edge_certificate(stack: Stack, dest: Path) -> Path:
    """The edge's certificate and key (fullchain.pem, privkey.pem), copied out of its container."""
    edge = edge_container(stack)
    dest.mkdir()
    for name in ("fullchain.pem", "privkey.pem"):
        subprocess.run(["docker", "cp", "-L", f"{edge}:/etc/letsencrypt/live/{DOMAIN}/{name}", str(dest / name)],
                       check=True, capture_output=True)
    return dest


TRANSPORTS = {
    "stock nginx": "TLS, served from disk",
    "generated edge": "TLS, proxied to the frontend container",
}
MIN_EDGE_RATIO = 0.9  # full mode: the edge's req/s against stock nginx's, each protocol


def run(light: bool, runs: int = 3, log=print) -> list[str]:
    base, kind = base_image_answers(log=log)
    seconds, rounds = (3.0, 1) if light else (10.0, runs)
    lines = [f"edge benchmark ({'light' if light else 'full'} mode, base images: {kind}, {os.cpu_count()} CPUs, "
             f"h2load {H2LOAD_THREADS} threads x {H2LOAD_CONNECTIONS} keep-alive connections, "
             f"{seconds:.0f} s x {rounds} per target)"]
    with tempfile.TemporaryDirectory(prefix="petory-edge-bench-") as tmp:
        project = render(Path(tmp) / "repo", {**ANSWERS, **base})
        build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
        html = build_frontend(project / "frontend/build", "1.0.0")
        bundle = next(p for p in (html / "static/js").iterdir() if p.suffix == ".js")
        path = "/" + str(bundle.relative_to(html))
        stack = Stack(project, "staging", DOMAIN)
        try:
            stack.up()
            tls, limits = edge_certificate(stack, Path(tmp) / "tls"), edge_limits(stack)
            lines.append(f"stock nginx runs with the edge's limits: {' '.join(limits)}")
            with StockNginx(base["edge_nginx_image"], html, tls, project / "deploy/nginx/snippets/tls.conf",
                            limits) as stock:
                rates = {}

                def measure(label: str, port: int, protocol: str) -> None:
                    measured = [h2load(port, DOMAIN, path, protocol, seconds) for _ in range(rounds)]
                    rates[label, protocol] = (statistics.median(m["rate"] for m in measured), sum(m["done"] for m in measured),
                                              statistics.median(m["mean_ms"] for m in measured),
                                              sum(m["failed"] for m in measured))

                for protocol in PROTOCOLS:
                    measure("stock nginx", stock.port, protocol)
                    measure("generated edge", stack.https_port, protocol)
                rows = [[label, protocol, TRANSPORTS[label], str(done), f"{rate:,.0f}", f"{mean:.2f}", str(failed)]
                        for protocol in PROTOCOLS for label in TRANSPORTS
                        for rate, done, mean, failed in [rates[label, protocol]]]
                ratio = {protocol: rates["generated edge", protocol][0] / rates["stock nginx", protocol][0]
                         for protocol in PROTOCOLS}
                ratios = ", ".join(f"{protocol} {value:.2f}" for protocol, value in ratio.items())
                lines += table(f"requests per second: {path} ({bundle.stat().st_size:,} bytes, identity), "
                               f"edge/stock = {ratios}",
                               ["server", "protocol", "transport", "responses", "req/s", "mean ms", "failed"], rows)
                slow = [f"{protocol} {value:.2f}" for protocol, value in ratio.items() if value < MIN_EDGE_RATIO]
            plain, plain_enc = wire_bytes(stack.https_port, DOMAIN, path, gzip=False)
            packed, packed_enc = wire_bytes(stack.https_port, DOMAIN, path, gzip=True)
            lines += table(f"bytes on the wire for {path} through the edge (status line, headers, body)",
                           ["Accept-Encoding", "Content-Encoding", "bytes", "of identity"],
                           [["(none)", plain_enc, f"{plain:,}", "100%"],
                            ["gzip", packed_enc, f"{packed:,}", f"{100 * packed / plain:.0f}%"]])
            rows = []
            connections = 20 if light else 100
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                resumed, full_ms, resumed_ms = resumption(stack.https_port, DOMAIN, version, connections)
                rows.append([version.name.replace("_", "."), f"{resumed}/{connections - 1}",
                             f"{100 * resumed / (connections - 1):.0f}%", f"{full_ms:.1f}", f"{resumed_ms:.1f}"])
            lines += table(f"TLS session resumption: {connections} new connections, each offering the previous "
                           "session (shared cache, no tickets)",
                           ["TLS", "resumed", "rate", "full handshake ms", "resumed handshake ms"], rows)
        finally:
            stack.down(volumes=True)
    if slow and not light:  # light mode's single short round only reports; full mode prints, then fails
        print("\n".join(lines))
        raise SystemExit(f"edge benchmark: edge/stock below {MIN_EDGE_RATIO}: {', '.join(slow)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    return cli(run, __doc__, "one 3 s round per target", "10 s rounds per target in full mode", argv)


if __name__ == "__main__":
    sys.exit(main())
