"""The nginx edge on a live stack, in letsencrypt mode against a real ACME server.

One staging stack (module fixture) is generated with TLS mode `letsencrypt`, a CORS allow-list,
trusted proxy ranges, a 1 MB body limit and a 5 s read timeout. Pebble, Let's Encrypt's ACME test
server (Debian's package), runs as a container beside it: certbot (the generated `certbot`
service) talks to it over the stack's network, and pebble validates HTTP-01 by fetching the token
from the edge, which it finds under the site's name through a network alias. Every other request
comes from this process to ports published on 127.0.0.1.

The tests run in file order and cover the ten checks of the edge (notes/nginx.md): redirects and
the ACME path, TLS versions/ciphers/ALPN (sslyze), security headers on every kind of response,
gzip, caching, SPA fallback and hidden files, rate limits (429), CORS, reloads and a recreated
backend under load, and `nginx -t` plus Gixy-Next on the running configuration.
"""

from __future__ import annotations

import http.client
import json
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from load import Load
from sample_app import build_backend_jar, build_frontend
from stack import Stack, _SNIConnection, free_port, render
from standins import ensure_tool_images

DOMAIN = "staging.petory.example.com"
ALLOWED_ORIGIN = "https://partner.petory.example.com"
FOREIGN_ORIGIN = "https://evil.example.net"
ANSWERS = {
    "environments": ["staging"],
    "tls_mode_staging": "letsencrypt",
    "server_size": "medium",
    "cors_allowed_origins": [ALLOWED_ORIGIN],
    # Docker's port publishing hands connections to the edge from the bridge gateway, which plays
    # the load balancer here: its X-Forwarded-For is believed, so each test can be its own client.
    "trusted_proxies": ["172.16.0.0/12", "192.168.0.0/16", "10.0.0.0/8"],
    "api_rate_limit": 20,
    "api_body_size_mb": 1,
    "proxy_read_timeout_seconds": 5,
}
ACME_CA_IN_VOLUME = "/etc/letsencrypt/acme-test-ca.pem"
SECURITY_HEADERS = ("strict-transport-security", "x-content-type-options", "referrer-policy",
                    "content-security-policy", "x-frame-options")


# ---------------------------------------------------------------------------------------------
# helpers


@dataclass
class AcmeStack(Stack):
    """A Stack whose certbot talks to the test CA (ACME_SERVER/ACME_CA_BUNDLE are compose variables)."""

    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def environ(self) -> dict[str, str]:
        return {**super().environ, **self.extra_env}


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


def fetch(stack: Stack, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
          scheme: str = "https", timeout: float = 30) -> Reply:
    """One request to 127.0.0.1 with the site's SNI/Host; every header kept (Vary may repeat)."""
    if scheme == "https":
        conn = _SNIConnection(stack.https_port, stack.domain, timeout)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": stack.domain, **(headers or {})})
        resp = conn.getresponse()
        return Reply(resp.status, resp.msg, resp.read())
    finally:
        conn.close()


def client(n: int) -> dict[str, str]:
    """Headers of a distinct client address (documentation range) behind the trusted proxy."""
    return {"X-Forwarded-For": f"203.0.113.{n}"}


def served_certificate(stack: Stack, context: ssl.SSLContext | None = None) -> x509.Certificate:
    if context is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", stack.https_port), 10) as sock:
        with context.wrap_socket(sock, server_hostname=stack.domain) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def common_name(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ssl.SSLError) as err:
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def logs(stack: Stack, service: str = "") -> str:
    args = ["logs", "--no-color", "--no-log-prefix", *([service] if service else [])]
    return stack.compose(*args, check=False).stdout.decode(errors="replace")


def page_load(stack: Stack):
    """A Load `send` callable: the home page from a rotating client address (no rate limit hit)."""
    counter = iter(range(10**9))

    def send() -> tuple[int, str]:
        n = next(counter)
        reply = fetch(stack, "GET", "/api/version" if n % 2 else "/",
                      headers={"X-Forwarded-For": f"198.18.{n // 250 % 250}.{n % 250 + 1}"}, timeout=15)
        return reply.status, reply.header("x-app-version") or ""

    return send


class Pebble:
    """Pebble in a container: ACME on the stack's network, HTTP-01 to the edge via an alias."""

    def __init__(self, stack: Stack, image: str, workdir: Path):
        self.stack = stack
        self.image = image
        self.workdir = workdir
        self.name = f"{stack.name}-pebble"
        self.network = f"{stack.name}-acme"
        self.management_port = free_port()
        self.ca_pem = b""

    def make_tls(self) -> bytes:
        """A throwaway CA and pebble's HTTPS certificate (names pebble, localhost, 127.0.0.1)."""
        d = self.workdir
        d.chmod(0o755)
        run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)  # noqa: E731
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=petory live-test ACME CA", "-keyout", "ca.key", "-out", "ca.pem")
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=pebble",
            "-keyout", "key.pem", "-out", "pebble.csr")
        (d / "san.ext").write_text("subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "pebble.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "cert.pem")
        (d / "pebble-config.json").write_text(json.dumps({"pebble": {
            "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
            "certificate": "/test/config/cert.pem", "privateKey": "/test/config/key.pem",
            "httpPort": 8080, "tlsPort": 8443,  # the edge's ports inside its container
            "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        for path in d.iterdir():
            path.chmod(0o644)
        self.ca_pem = (d / "ca.pem").read_bytes()
        return self.ca_pem

    def attach_edge(self) -> None:
        """A network on which the site's name is the edge; internal, so the edge's gateway and
        published ports stay where they are."""
        edge = self.stack.containers()["edge"][0]["Id"]
        docker("network", "create", "--internal", self.network)
        docker("network", "connect", "--alias", self.stack.domain, self.network, edge)

    def start(self) -> None:
        docker("run", "-d", "--name", self.name, "--network", f"{self.stack.name}_public", "--network-alias", "pebble",
               "-p", f"127.0.0.1:{self.management_port}:15000", "-v", f"{self.workdir}:/test/config:ro", self.image)
        docker("network", "connect", self.network, self.name)

    def root_pem(self) -> bytes:
        """Pebble's issuing root (new on every start), from its management API on 127.0.0.1."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.read()

    def stop(self) -> None:
        docker("rm", "-f", self.name, check=False)
        for doc in self.stack.containers().get("edge", []):
            docker("network", "disconnect", "-f", self.network, doc["Id"], check=False)
        docker("network", "rm", self.network, check=False)


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode:
        raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


@dataclass
class Edge:
    stack: AcmeStack
    pebble: Pebble
    placeholder: x509.Certificate
    issued: x509.Certificate
    issuance_load: Load
    issued_after: float


def certbot_image(kind: str) -> str:
    """The official certbot image when the official base images are in use, else the stand-in."""
    official = "certbot/certbot:v4.0.0"
    if kind == "official" and docker("pull", "-q", official, check=False).returncode == 0:
        return official
    return ensure_tool_images(["certbot"], log=lambda _: None)["certbot"]


@pytest.fixture(scope="module")
def edge(base_images, tmp_path_factory, summary):
    kind = "official" if base_images.get("edge_nginx_image", "").startswith("nginx:") else "stand-in"
    pebble_image = ensure_tool_images(["pebble"], log=lambda _: None)["pebble"]
    certbot = certbot_image(kind)
    project = render(tmp_path_factory.mktemp("edge") / "petory-deploy",
                     {**ANSWERS, **base_images, "certbot_image": certbot})
    build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
    build_frontend(project / "frontend/build", "1.0.0")
    stack = AcmeStack(project, "staging", DOMAIN,
                      extra_env={"ACME_SERVER": "https://pebble:14000/dir", "ACME_CA_BUNDLE": ACME_CA_IN_VOLUME})
    pebble = Pebble(stack, pebble_image, tmp_path_factory.mktemp("pebble"))
    try:
        ca_pem = pebble.make_tls()
        stack.run("scripts/init-certificates.sh", "staging")  # the self-signed placeholder
        stack.compose("run", "--rm", "--no-deps", "-T", "certs-init", f"cat > {ACME_CA_IN_VOLUME}", input=ca_pem)
        try:
            stack.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300", timeout=900)
        except RuntimeError as err:
            raise RuntimeError(f"{err}\n--- logs ---\n{logs(stack)[-6000:]}") from None
        pebble.attach_edge()
        time.sleep(2)
        placeholder = served_certificate(stack)
        # certbot is up and waits for its ACME server; from here on traffic must never fail.
        with Load(send=page_load(stack), rate=10, threads=2, max_seconds=240) as load:
            started = time.monotonic()
            pebble.start()
            try:
                issued = wait_for(lambda: (c := served_certificate(stack)) and "Pebble" in common_name(c.issuer) and c,
                                  180, "the ACME certificate to be served")
            except AssertionError as err:
                raise AssertionError(f"{err}\n--- certbot ---\n{logs(stack, 'certbot')[-3000:]}\n--- cert-reload ---\n"
                                     f"{logs(stack, 'cert-reload')[-2000:]}") from None
            issued_after = time.monotonic() - started
            time.sleep(2)
        summary.append(f"live edge: ACME issuance through pebble served {issued_after:.1f}s after the CA came up; "
                       f"{len(load.samples)} requests meanwhile, {len(load.failures)} failed (certbot image {certbot})")
        yield Edge(stack, pebble, placeholder, issued, load, issued_after)
    finally:
        pebble.stop()
        stack.down(volumes=True)
        left = stack.leftovers()
        assert not left, f"teardown left {left} behind"


# ---------------------------------------------------------------------------------------------
# certificates


def test_letsencrypt_mode_issues_through_http01_and_replaces_the_placeholder_without_downtime(edge):
    # The placeholder is a leaf of the environment's local CA (scripts/certificates.sh), not a CA itself.
    assert common_name(edge.placeholder.subject) == DOMAIN and "local CA" in common_name(edge.placeholder.issuer)
    assert not edge.placeholder.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = edge.issued.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert names.get_values_for_type(x509.DNSName) == [DOMAIN]
    # The served chain verifies for the site's name against pebble's root, like a browser would.
    strict = ssl.create_default_context(cadata=edge.pebble.root_pem().decode())
    assert served_certificate(edge.stack, strict).serial_number == edge.issued.serial_number
    assert len(edge.issuance_load.samples) >= 10 and not edge.issuance_load.failures, edge.issuance_load.failures[:5]
    assert "certificate issued" in logs(edge.stack, "certbot")
    assert "nginx -t passed; reloaded the edge" in logs(edge.stack, "cert-reload")
    layout = edge.stack.compose("exec", "-T", "certbot", "sh", "-c",
                                f"test -f /etc/letsencrypt/renewal/{DOMAIN}.conf && readlink /etc/letsencrypt/live/"
                                f"{DOMAIN}/fullchain.pem && stat -L -c '%u %a' /etc/letsencrypt/live/{DOMAIN}/privkey.pem "
                                f"&& ! test -e /etc/letsencrypt/live/{DOMAIN}/.self-signed").stdout.decode().split()
    assert layout[0].startswith(f"../../archive/{DOMAIN}/fullchain") and layout[1:] == ["101", "600"], layout


def test_forced_renewal_is_served_after_nginx_t_and_a_graceful_reload(edge):
    before = served_certificate(edge.stack)
    with Load(send=page_load(edge.stack), rate=10, threads=2, max_seconds=180) as load:
        edge.stack.run("make", "certs-renew", "ENV=staging", "FORCE=1", timeout=300)
        pem = edge.stack.compose("exec", "-T", "certbot", "cat", f"/etc/letsencrypt/live/{DOMAIN}/cert.pem").stdout
        renewed = x509.load_pem_x509_certificate(pem)
        assert renewed.serial_number != before.serial_number
        wait_for(lambda: served_certificate(edge.stack).serial_number == renewed.serial_number, 90,
                 "the renewed certificate to be served")
        time.sleep(2)
    assert len(load.samples) >= 10 and not load.failures, load.failures[:5]
    assert logs(edge.stack, "cert-reload").count("nginx -t passed; reloaded the edge") >= 3  # start, issue, renew


# ---------------------------------------------------------------------------------------------
# 1. redirects, 2. TLS


def test_http_answers_308_to_https_except_the_acme_challenge(edge):
    redirect = fetch(edge.stack, "POST", "/api/pets?x=1", scheme="http", body=b"{}")
    assert redirect.status == 308 and redirect.header("location") == f"https://{DOMAIN}/api/pets?x=1"
    assert redirect.header("x-content-type-options") == "nosniff"
    challenge = fetch(edge.stack, "GET", "/.well-known/acme-challenge/not-a-token", scheme="http")
    assert challenge.status == 404 and challenge.header("location") is None


def test_unknown_hosts_are_dropped_on_both_ports(edge):
    for scheme in ("http", "https"):
        stack = AcmeStack(edge.stack.project_dir, "staging", "unknown.example.org", name=edge.stack.name,
                          http_port=edge.stack.http_port, https_port=edge.stack.https_port)
        with pytest.raises((ConnectionError, OSError, http.client.HTTPException)):
            fetch(stack, "GET", "/", scheme=scheme)


def test_tls_scan_shows_tls12_and_13_only_strong_ciphers_and_hsts(edge, summary):
    from sslyze import (Scanner, ScanCommand, ServerNetworkLocation, ServerScanRequest,
                        ServerScanStatusEnum)
    from sslyze.mozilla_tls_profile.tls_config_checker import MozillaTlsConfiguration, TlsConfigurationEnum

    commands = {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES, ScanCommand.TLS_1_0_CIPHER_SUITES,
                ScanCommand.TLS_1_1_CIPHER_SUITES, ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
                ScanCommand.ELLIPTIC_CURVES, ScanCommand.HTTP_HEADERS}
    location = ServerNetworkLocation(hostname=DOMAIN, port=edge.stack.https_port, ip_address="127.0.0.1")
    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(server_location=location, scan_commands=commands)])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    scan = result.scan_result
    accepted = {}
    for name in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3"):
        attempt = getattr(scan, f"{name}_cipher_suites")
        assert attempt.result is not None, (name, attempt.error_trace)
        accepted[name] = [s.cipher_suite for s in attempt.result.accepted_cipher_suites]
    assert not any(accepted[v] for v in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")), accepted
    assert accepted["tls_1_2"] and accepted["tls_1_3"]
    for suite in accepted["tls_1_2"]:  # forward secrecy and AEAD only: no CBC, RC4, 3DES, static RSA
        assert suite.name.startswith("TLS_ECDHE_") and ("_GCM_" in suite.name or "CHACHA20" in suite.name), suite.name
        assert suite.key_size >= 128, suite
    # Key exchange: the groups of Mozilla's profile and no others (OpenSSL's defaults add X448, secp521r1).
    curves = {c.name for c in scan.elliptic_curves.result.supported_curves}
    assert curves == MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE).tls_curves, curves
    hsts = scan.http_headers.result.strict_transport_security_header
    assert hsts is not None and hsts.max_age == 63072000 and hsts.include_subdomains
    summary.append("live edge: sslyze: TLS 1.2 " + ", ".join(s.name for s in accepted["tls_1_2"]) + "; TLS 1.3 "
                   + ", ".join(s.name for s in accepted["tls_1_3"]) + "; groups " + ", ".join(sorted(curves))
                   + "; SSL 2/3, TLS 1.0/1.1 refused; " f"HSTS max-age={hsts.max_age} includeSubDomains")


def test_alpn_offers_h2_and_both_tls_versions_handshake(edge):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = context.maximum_version = version
        context.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", edge.stack.https_port), 10) as sock:
            with context.wrap_socket(sock, server_hostname=DOMAIN) as tls:
                assert tls.selected_alpn_protocol() == "h2" and tls.version() == version.name.replace("_", ".")


# ---------------------------------------------------------------------------------------------
# 3. headers, 4. gzip, 5. caching, 6. SPA and hidden files


def hashed_asset(stack: Stack, kind: str) -> str:
    index = fetch(stack, "GET", "/").body.decode()
    marker = {"js": 'src="/static/js/', "css": 'href="/static/css/'}[kind]
    return marker.split('"')[1] + index.split(marker, 1)[1].split('"', 1)[0]


def test_security_headers_on_every_kind_of_response(edge):
    stack = edge.stack
    replies = {
        "page 200": fetch(stack, "GET", "/"),
        "asset 200": fetch(stack, "GET", hashed_asset(stack, "js")),
        "api 200": fetch(stack, "GET", "/api/version", headers=client(1)),
        "api 404 (backend)": fetch(stack, "GET", "/api/does-not-exist", headers=client(1)),
        "dotfile 404 (edge)": fetch(stack, "GET", "/.env"),
        "actuator 404": fetch(stack, "GET", "/actuator/health"),
        "413 body too large": fetch(stack, "POST", "/api/pets", headers={**client(1), "Content-Type": "application/json"},
                                    body=b"x" * (1024 * 1024 + 1)),
    }
    expected = {"page 200": 200, "asset 200": 200, "api 200": 200, "api 404 (backend)": 404, "dotfile 404 (edge)": 404,
                "actuator 404": 404, "413 body too large": 413}
    for name, reply in replies.items():
        assert reply.status == expected[name], (name, reply.status)
        for header in SECURITY_HEADERS:
            assert reply.header(header), (name, header)
        assert reply.header("server") == "nginx", (name, reply.header("server"))  # no version
        assert reply.header("x-xss-protection") is None
        assert "nginx/" not in reply.body.decode(errors="replace")


def test_gzip_for_text_over_256_bytes_with_vary(edge):
    stack = edge.stack
    for n in range(4):  # a JSON answer from the backend longer than gzip_min_length
        fetch(stack, "POST", "/api/pets", headers={**client(2), "Content-Type": "application/json"},
              body=json.dumps({"name": f"gzip-test-{n}-" + "멍" * 30}).encode())
    for path in (hashed_asset(stack, "js"), hashed_asset(stack, "css"), "/api/pets"):
        plain = fetch(stack, "GET", path, headers=client(2))
        assert plain.status == 200 and len(plain.body) > 256, (path, len(plain.body))
        packed = fetch(stack, "GET", path, headers={**client(2), "Accept-Encoding": "gzip"})
        assert packed.header("content-encoding") == "gzip", path
        assert any("Accept-Encoding" in v for v in packed.all("vary")), (path, packed.all("vary"))
        assert len(packed.body) < len(plain.body), path
    tiny = fetch(stack, "GET", "/api/version", headers={**client(2), "Accept-Encoding": "gzip"})
    assert len(tiny.body) < 256 and tiny.header("content-encoding") is None  # would only grow


def test_caching_hashed_assets_a_year_html_revalidated_api_untouched(edge):
    stack = edge.stack
    for kind in ("js", "css"):
        asset = fetch(stack, "GET", hashed_asset(stack, kind))
        assert asset.all("cache-control") == ["public, max-age=31536000, immutable"], asset.all("cache-control")
    for path in ("/", "/index.html", "/pets/42", "/favicon.ico", "/manifest.json"):
        assert fetch(stack, "GET", path).all("cache-control") == ["no-cache"], path
    api = fetch(stack, "GET", "/api/version", headers=client(3))
    assert api.status == 200 and api.all("cache-control") == [] and api.header("expires") is None


def test_spa_routes_fall_back_to_index_and_hidden_files_are_denied(edge):
    route = fetch(edge.stack, "GET", "/pets/42/profile")
    assert route.status == 200 and b"petory-version" in route.body
    for path in ("/.env", "/.git/config", "/.htpasswd", "/backup.sql", "/index.html.bak", "/nginx.conf",
                 "/static/js/main.js.orig", "/app.js~", "/deploy.sh", "/%2e%2e/%2e%2e/etc/passwd"):
        assert fetch(edge.stack, "GET", path).status in (400, 403, 404), path


# ---------------------------------------------------------------------------------------------
# 7. rate limits, 8. CORS


def burst(stack: Stack, path: str, count: int, headers: dict, refused: list | None = None) -> list[int]:
    """`count` requests back to back on one keep-alive connection; 429 answers' headers go to `refused`."""
    conn = _SNIConnection(stack.https_port, stack.domain, 15)
    statuses = []
    try:
        for _ in range(count):
            conn.request("GET", path, headers={"Host": stack.domain, **headers})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
            if resp.status == 429 and refused is not None:
                refused.append(resp.msg)
    finally:
        conn.close()
    return statuses


def test_api_burst_over_the_limit_gets_429_per_client_and_auth_is_stricter(edge):
    stack = edge.stack
    began = time.monotonic()
    refused: list = []
    statuses = burst(stack, "/api/version", 150, client(70), refused)
    took = time.monotonic() - began
    assert statuses[:41] == [200] * 41, statuses  # the burst of 40 (twice api_rate_limit) passes at once
    # Beyond that, 20 requests a second (api_rate_limit) get through and the rest is refused with 429.
    assert statuses.count(200) <= 41 + 20 * took + 2, (took, statuses)
    assert statuses.count(429) >= 10 and set(statuses) == {200, 429}, statuses
    assert all(refused[0].get(h) for h in SECURITY_HEADERS), refused[0]
    assert fetch(stack, "GET", "/api/version", headers=client(71)).status == 200  # another client is not affected
    assert fetch(stack, "GET", "/", headers=client(70)).status == 200  # pages are not rate limited
    auth = burst(stack, "/api/login", 10, client(72))
    assert 429 not in auth[:6] and auth[6:] == [429] * 4, auth  # 5 a minute after a burst of 5


def test_cors_echoes_only_allow_listed_origins(edge):
    stack = edge.stack
    allowed = fetch(stack, "GET", "/api/version", headers={**client(4), "Origin": ALLOWED_ORIGIN})
    assert allowed.header("access-control-allow-origin") == ALLOWED_ORIGIN
    assert allowed.header("access-control-allow-credentials") == "true"
    assert "Origin" in allowed.all("vary")
    foreign = fetch(stack, "GET", "/api/version", headers={**client(4), "Origin": FOREIGN_ORIGIN})
    assert foreign.status == 200 and foreign.header("access-control-allow-origin") is None
    assert foreign.header("access-control-allow-credentials") is None
    preflight = fetch(stack, "OPTIONS", "/api/pets", headers={
        **client(4), "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status == 204 and preflight.header("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "POST" in preflight.header("access-control-allow-methods")
    assert "Content-Type" in preflight.header("access-control-allow-headers")
    assert preflight.header("strict-transport-security")
    foreign_preflight = fetch(stack, "OPTIONS", "/api/pets", headers={
        **client(4), "Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert foreign_preflight.header("access-control-allow-origin") is None
    assert foreign_preflight.header("access-control-allow-methods") is None
    page = fetch(stack, "GET", "/", headers={"Origin": ALLOWED_ORIGIN})  # pages stay same-origin
    assert page.header("access-control-allow-origin") is None


# ---------------------------------------------------------------------------------------------
# error pages, maintenance, logs


def test_timeout_answer_and_its_page_come_from_the_answers(edge):
    began = time.monotonic()
    slow = fetch(edge.stack, "GET", "/api/slow?ms=20000", headers=client(5), timeout=60)
    took = time.monotonic() - began
    assert slow.status == 504 and b"(504)" in slow.body, slow.status
    assert 5 <= took < 15, took  # proxy_read_timeout_seconds=5, one retry on the other replica at most
    assert all(slow.header(h) for h in SECURITY_HEADERS)


def test_maintenance_switch_serves_the_503_page_at_once_and_off_again(edge):
    stack = edge.stack
    stack.run("make", "maintenance-on", "ENV=staging")
    try:
        for path in ("/", "/api/version", "/pets/1"):
            reply = fetch(stack, "GET", path, headers=client(6))
            assert reply.status == 503 and "점검 중" in reply.body.decode(), path
            assert all(reply.header(h) for h in SECURITY_HEADERS), path
    finally:
        stack.run("make", "maintenance-off", "ENV=staging")
    assert fetch(stack, "GET", "/", headers=client(6)).status == 200
    assert fetch(stack, "GET", "/api/version", headers=client(6)).status == 200


def test_json_access_log_has_timings_and_the_real_client_address(edge):
    marker = f"edge-log-test-{random.randrange(10**9)}"
    reply = fetch(edge.stack, "GET", "/api/version", headers={"X-Forwarded-For": "203.0.113.99, 10.9.8.7",
                                                             "User-Agent": marker})
    assert reply.status == 200
    entry = wait_for(lambda: next((json.loads(line) for line in logs(edge.stack, "edge").splitlines()
                                   if marker in line and line.startswith("{")), None), 20, "the access log line")
    assert entry["remote_addr"] == "203.0.113.99"  # the trusted hop 10.9.8.7 is skipped (real_ip_recursive)
    assert entry["peer_addr"] != entry["remote_addr"]
    assert entry["status"] == 200 and entry["uri"] == "/api/version" and entry["ssl_protocol"].startswith("TLSv1.")
    assert isinstance(entry["request_time"], (int, float))
    assert float(entry["upstream_response_time"]) >= 0 and entry["upstream_addr"].endswith(":8080")


# ---------------------------------------------------------------------------------------------
# 9. reloads and a recreated backend under load, 502 page, 10. nginx -t and gixy


def test_reloads_under_load_lose_no_request_and_a_recreated_backend_heals(edge, summary):
    stack = edge.stack
    with Load(send=page_load(stack), rate=30, threads=4, max_seconds=240) as load:
        time.sleep(2)
        for _ in range(3):
            stack.compose("exec", "-T", "edge", "sh", "-c", "nginx -t -q && nginx -s reload")
            time.sleep(2)
        reloads_end = time.monotonic()
        before = {d["Id"] for d in stack.containers()["backend-blue"]}
        stack.compose("up", "-d", "--no-deps", "--force-recreate", "--wait", "backend-blue", timeout=300)
        recreated = time.monotonic()
        after = {d["Id"] for d in stack.containers()["backend-blue"]}
        time.sleep(15)  # names re-resolve every 10 s (resolver valid=10s, upstream `resolve`)
        settled = time.monotonic()
        time.sleep(10)
    assert after and not before & after
    during_reloads = [s for s in load.samples if s.at <= reloads_end]
    assert len(during_reloads) > 100 and not [s for s in during_reloads if not s.ok], \
        [s for s in during_reloads if not s.ok][:5]
    tail = [s for s in load.samples if s.at >= settled]
    assert len(tail) > 100 and all(s.ok for s in tail), [s for s in tail if not s.ok][:5]
    window = load.longest_error_window()
    failures = [s for s in load.samples if recreated - 120 <= s.at <= settled and not s.ok]
    summary.append(f"live edge: {len(during_reloads)} requests across 3 reloads, 0 failed; backend recreated: "
                   f"{len(failures)} failed requests, longest error window {window:.1f}s, none after 15 s")


def test_502_page_when_the_frontend_is_down(edge):
    stack = edge.stack
    stack.compose("stop", "frontend-blue", timeout=120)
    try:
        reply = wait_for(lambda: (r := fetch(stack, "GET", "/pets")) and r.status == 502 and r, 30, "a 502")
        assert b"(502)" in reply.body and all(reply.header(h) for h in SECURITY_HEADERS)
    finally:
        stack.compose("start", "frontend-blue", timeout=120)
    wait_for(lambda: fetch(stack, "GET", "/").status == 200, 60, "the frontend to answer again")


def test_running_configuration_passes_nginx_t_and_gixy(edge):
    stack = edge.stack
    assert stack.compose("exec", "-T", "edge", "nginx", "-t", check=False).returncode == 0
    dump = stack.compose("exec", "-T", "edge", "nginx", "-T").stdout.decode()
    gixy = shutil.which("gixy") or str(Path(sys.executable).parent / "gixy")
    proc = subprocess.run([gixy, "-f", "json", "-"], input=dump, capture_output=True, text=True, timeout=120)
    assert json.loads(proc.stdout or "[]") == [], proc.stdout[-3000:] + proc.stderr[-2000:]
