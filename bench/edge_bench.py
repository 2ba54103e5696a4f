#!/usr/bin/env python3
"""Benchmark of the generated nginx edge against stock nginx, same machine, same files.

Prints three tables:
1. requests per second for the content-hashed JS bundle through the generated edge (HTTPS,
   keep-alive, proxied to the frontend container, every header and limit on) and from stock
   nginx (the same base image with its default configuration serving the same build directory
   over plain HTTP), and the ratio;
2. bytes on the wire for the JS bundle with and without gzip;
3. the TLS session resumption rate (TLS 1.2 and 1.3) and full vs resumed handshake times.

Every load is bounded in requests and seconds and goes to 127.0.0.1 only. Light mode (the default
under CI=true, or --light) measures each target once for 3 s; full mode takes the median of --runs
10 s rounds. Run it directly (`.venv/bin/python bench/edge_bench.py`) or through the test suite
(tests/live/test_edge_bench.py).
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "live"), str(ROOT / "bench")]

from sample_app import build_backend_jar, build_frontend  # noqa: E402
from stack import Stack, base_image_answers, free_port, render  # noqa: E402
from report import cli, table  # noqa: E402

DOMAIN = "staging.petory.example.com"
ANSWERS = {"environments": ["staging"], "tls_mode_staging": "self-signed", "server_size": "medium"}
CLIENTS = 4  # client processes, one keep-alive connection each
MAX_REQUESTS = 200_000  # per client and round, whatever the duration


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


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bool]:
    """Read one Content-Length response from `sock` (leftovers stay in `buf`): (status, server closes)."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    head = bytes(buf[:end]).decode("latin-1")
    length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.lower().startswith("content-length:"))
    total = end + 4 + length
    while len(buf) < total:
        chunk = sock.recv(262144)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    del buf[:total]
    return int(head.split(" ", 2)[1]), "\r\nconnection: close" in head.lower()


def _client(scheme: str, port: int, host: str, path: str, seconds: float) -> tuple[int, int]:
    """One keep-alive connection sending GETs back to back; returns (responses, errors)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: petory-edge-bench\r\n\r\n".encode()
    done = errors = 0
    deadline = time.monotonic() + seconds
    sock, buf = _connect(scheme, port, host), bytearray()
    try:
        while time.monotonic() < deadline and done + errors < MAX_REQUESTS:
            try:
                sock.sendall(request)
                status, closing = _read_response(sock, buf)
            except (OSError, ConnectionError):
                errors += 1
                sock.close()
                sock, buf = _connect(scheme, port, host), bytearray()
                continue
            if status == 200:
                done += 1
            else:
                errors += 1
            if closing:  # keepalive_requests reached (1000 by default): a new connection, as browsers do
                sock.close()
                sock, buf = _connect(scheme, port, host), bytearray()
    finally:
        sock.close()
    return done, errors


def requests_per_second(scheme: str, port: int, host: str, path: str, seconds: float) -> tuple[float, int, int]:
    with ProcessPoolExecutor(CLIENTS) as pool:
        started = time.monotonic()
        results = list(pool.map(_client, *zip(*[(scheme, port, host, path, seconds)] * CLIENTS)))
        elapsed = time.monotonic() - started
    done, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    return done / min(elapsed, seconds + 1), done, errors


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
    """The base image as shipped (its default.conf) serving the same build directory on 127.0.0.1."""

    def __init__(self, image: str, html: Path):
        self.image, self.html = image, html
        self.name = f"petory-edge-bench-stock-{uuid.uuid4().hex[:8]}"
        self.port = free_port()

    def __enter__(self) -> "StockNginx":
        subprocess.run(["docker", "run", "-d", "--rm", "--name", self.name, "-p", f"127.0.0.1:{self.port}:80",
                        "-v", f"{self.html}:/usr/share/nginx/html:ro", self.image], check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                _client("http", self.port, "localhost", "/index.html", 0.1)
                if _client("http", self.port, "localhost", "/index.html", 0.1)[0]:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("stock nginx did not answer within 30 s")

    def __exit__(self, *exc) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


def run(light: bool, runs: int = 3, log=print) -> list[str]:
    base, kind = base_image_answers(log=log)
    seconds, rounds = (3.0, 1) if light else (10.0, runs)
    lines = [f"edge benchmark ({'light' if light else 'full'} mode, base images: {kind}, {os.cpu_count()} CPUs, "
             f"{CLIENTS} keep-alive clients, {seconds:.0f} s x {rounds} per target)"]
    with tempfile.TemporaryDirectory(prefix="petory-edge-bench-") as tmp:
        project = render(Path(tmp) / "repo", {**ANSWERS, **base})
        build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
        html = build_frontend(project / "frontend/build", "1.0.0")
        bundle = next(p for p in (html / "static/js").iterdir() if p.suffix == ".js")
        path = "/" + str(bundle.relative_to(html))
        stack = Stack(project, "staging", DOMAIN)
        try:
            stack.up()
            with StockNginx(base["edge_nginx_image"], html) as stock:
                rows, rates = [], {}
                for label, scheme, port, host in (("stock nginx (default.conf)", "http", stock.port, "localhost"),
                                                  ("generated edge", "https", stack.https_port, DOMAIN)):
                    _client(scheme, port, host, path, 0.5)  # warm-up: connections, caches, keepalive upstreams
                    measured = [requests_per_second(scheme, port, host, path, seconds) for _ in range(rounds)]
                    rate = statistics.median(m[0] for m in measured)
                    rates[label] = rate
                    transport = "HTTP/1.1, served from disk" if scheme == "http" else \
                        "HTTPS (TLS 1.3), proxied to the frontend container"
                    rows.append([label, transport, str(sum(m[1] for m in measured)), f"{rate:,.0f}",
                                 str(sum(m[2] for m in measured))])
                ratio = rates["generated edge"] / rates["stock nginx (default.conf)"]
                lines += table(f"requests per second: {path} ({bundle.stat().st_size:,} bytes, identity), "
                               f"edge/stock = {ratio:.2f}",
                               ["server", "transport", "responses", "req/s", "errors"], rows)
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
    return lines


def main(argv: list[str] | None = None) -> int:
    return cli(run, __doc__, "one 3 s round per target", "10 s rounds per target in full mode", argv)


if __name__ == "__main__":
    sys.exit(main())
