"""Fast tests of the sample Petory app built by tests/live/sample_app.py (no Docker).

The backend jar is run locally with ``java -jar`` against ports where nothing listens, so no
database is needed. The last test is an optional smoke test against a throwaway local MariaDB
and Redis; it is skipped unless ``mariadbd`` and ``redis-server`` are installed
(``apt-get install -y mariadb-server redis-server``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

_SAMPLE_APP_PATH = Path(__file__).resolve().parent / "live" / "sample_app.py"
_spec = importlib.util.spec_from_file_location("petory_sample_app", _SAMPLE_APP_PATH)
sample_app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sample_app)

VERSION = "1.4.2-test"
JWT_SECRET = "test-secret-" + "x" * 32
# Key rotation: the shared app signs with JWT_SECRET ("key A"); rotated apps sign with key B.
JWT_SECRET_B = "rotated-secret-" + "y" * 32


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A port with nothing listening on it (free right after the socket closes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        pytest.fail("java not found: apt-get install -y openjdk-17-jdk-headless")
    return found


class RunningApp:
    """The backend jar running as a child process on a free 127.0.0.1 port."""

    def __init__(self, jar: Path, log: Path, **env_overrides: str | None):
        self.port = free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "SERVER_ADDRESS": "127.0.0.1",
            "SERVER_PORT": str(self.port),
            "SPRING_DATASOURCE_URL": f"jdbc:mysql://127.0.0.1:{free_port()}/petory"
            "?characterEncoding=UTF-8&serverTimezone=Asia/Seoul",
            "SPRING_DATASOURCE_USERNAME": "petory",
            "SPRING_DATASOURCE_PASSWORD": "petory-pw",
            "SPRING_DATA_REDIS_HOST": "127.0.0.1",
            "SPRING_DATA_REDIS_PORT": str(free_port()),
            "SPRING_DATA_REDIS_PASSWORD": "redis-pw",
            "SPRING_PROFILES_ACTIVE": "prod",
            "LOGGING_LEVEL_ROOT": "INFO",
            "PETORY_JWT_SECRET": JWT_SECRET,
            # As Spring Boot, the app exposes only health unless told (the generated compose file does).
            "MANAGEMENT_ENDPOINTS_WEB_EXPOSURE_INCLUDE": "health,info",
        }
        for key, value in env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen([java(), "-jar", str(jar)], stdout=self._log_file,
                                     stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path: str, method: str = "GET", body: object = None, timeout: float = 15,
                headers: dict[str, str] | None = None):
        """Returns (status, headers, parsed JSON body)."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            status, headers, raw = err.code, err.headers, err.read()
        return status, headers, json.loads(raw.decode("utf-8")) if raw else None

    def me(self, token: str):
        """GET /api/auth/me with the token as bearer; returns (status, headers, body)."""
        return self.request("/api/auth/me", headers={"Authorization": f"Bearer {token}"})

    def issue_token(self, user: str = "choco") -> dict:
        status, _, body = self.request("/api/auth/token", method="POST", body={"user": user})
        assert status == 200, body
        return body

    def wait_live(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"app exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.request("/actuator/health/liveness", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"app not live after {timeout}s:\n{self.output()}")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.request("/actuator/health/readiness")[0] == 200:
                return
            time.sleep(0.2)
        pytest.fail(f"app not ready after {timeout}s:\n{self.output()}")

    def sigterm_and_wait(self, timeout: float = 15) -> tuple[int, float]:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout)
        return rc, time.monotonic() - start

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def make_jwt(secret: str, claims: dict, alg: str = "HS512") -> str:
    """A compact JWT built independently of the app, to check it interoperates."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    digest = {"HS512": hashlib.sha512, "HS256": hashlib.sha256}.get(alg)
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest() if digest else b""
    return f"{signing_input}.{b64url(signature)}"


def iso_instant(delta: timedelta) -> str:
    return (datetime.now(timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_unauthorized(response, *message_parts: str) -> None:
    status, headers, body = response
    assert status == 401, body
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert headers["X-App-Version"]
    assert body["error"] == "Unauthorized" and body["path"] == "/api/auth/me" and body["timestamp"]
    for part in message_parts:
        assert part in body["message"], body["message"]


@pytest.fixture(scope="module")
def jar(tmp_path_factory) -> Path:
    return sample_app.build_backend_jar(tmp_path_factory.mktemp("jar") / "app.jar", VERSION)


@pytest.fixture
def start_app(tmp_path):
    apps: list[RunningApp] = []

    def start(jar_path: Path, wait: bool = True, **env: str | None) -> RunningApp:
        app = RunningApp(jar_path, tmp_path / f"app-{len(apps)}.log", **env)
        apps.append(app)
        if wait:
            app.wait_live()
        return app

    yield start
    for app in apps:
        app.stop()


@pytest.fixture(scope="module")
def app(jar, tmp_path_factory):
    """One app without DB/Redis shared by the read-only tests."""
    running = RunningApp(jar, tmp_path_factory.mktemp("app") / "app.log")
    running.wait_live()
    yield running
    running.stop()


# --------------------------------------------------------------------------- backend, no DB


def test_liveness_up_without_database(app):
    status, headers, body = app.request("/actuator/health/liveness")
    assert (status, body) == (200, {"status": "UP"})
    assert headers["Content-Type"] == "application/json"


def test_readiness_out_of_service_while_db_unreachable(app):
    status, _, body = app.request("/actuator/health/readiness")
    assert status == 503
    assert body["status"] == "OUT_OF_SERVICE"


def test_health_down_names_failing_components(app):
    status, _, body = app.request("/actuator/health")
    assert status == 503
    assert body["status"] == "DOWN"
    components = body["components"]
    assert components["db"]["status"] == "DOWN"
    assert "connect" in components["db"]["details"]["error"].lower()
    assert components["redis"]["status"] == "DOWN"
    assert components["livenessState"]["status"] == "UP"
    assert components["readinessState"]["status"] == "OUT_OF_SERVICE"


def test_info_version_and_header(app):
    status, headers, body = app.request("/actuator/info")
    assert status == 200 and body["app"] == {"name": "petory", "version": VERSION}
    assert set(body) == {"app", "jvm"} and body["jvm"]["max_heap_bytes"] > 0
    assert headers["X-App-Version"] == VERSION  # HTTP header names are case-insensitive
    status, headers, body = app.request("/api/version")
    assert (status, body) == (200, {"version": VERSION})
    assert headers["X-App-Version"] == VERSION


def test_actuator_exposure_as_spring_boot(jar, start_app):
    running = start_app(jar, MANAGEMENT_ENDPOINTS_WEB_EXPOSURE_INCLUDE=None)
    assert running.request("/actuator/health/liveness")[0] == 200  # health is exposed by default
    assert running.request("/actuator/info")[0] == 404
    assert running.request("/actuator/prometheus")[0] == 404


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_management_port_serves_actuator_and_metrics(jar, start_app):
    """management.server.port moves /actuator off the server port, as in the generated compose file."""
    from prometheus_client.parser import text_string_to_metric_families

    management = free_port()
    running = start_app(jar, wait=False, MANAGEMENT_SERVER_PORT=str(management),
                        MANAGEMENT_ENDPOINTS_WEB_EXPOSURE_INCLUDE="health,info,prometheus",
                        MANAGEMENT_METRICS_DISTRIBUTION_PERCENTILES_HISTOGRAM_HTTP_SERVER_REQUESTS="true",
                        SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE="7")
    base = f"http://127.0.0.1:{management}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/actuator/health/liveness", timeout=2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.1)
    for path in ("/actuator/health/liveness", "/actuator/info", "/actuator/prometheus"):
        assert running.request(path)[0] == 404, path  # not on the server port any more
    assert running.request("/api/version")[0] == 200
    assert running.request("/api/nothing-here")[0] == 404
    # The three /actuator requests to the server port and /api/nothing-here: no route, 404.
    expected = {("http_server_requests_seconds_count", "/api/version", "200", None): 1,
                ("http_server_requests_seconds_count", "NOT_FOUND", "404", None): 4}
    # A request is counted once its response is written, so a scrape right after the last answer
    # may not see it yet: scrape until the counts are as expected, for up to 5 s (more still fails).
    deadline = time.monotonic() + 5
    while True:
        content_type, text = scrape(base + "/actuator/prometheus")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {(s.name, s.labels.get("uri"), s.labels.get("status"), s.labels.get("le")): s.value
                   for s in families["http_server_requests_seconds"].samples}
        if all(samples.get(key) == count for key, count in expected.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert content_type.startswith("text/plain; version=0.0.4")
    for key, count in expected.items():
        assert samples.get(key) == count, key
    assert samples[("http_server_requests_seconds_bucket", "/api/version", "200", "+Inf")] == 1
    # Micrometer's default buckets between 1 ms and 30 s: 68 finite ones (the committed Spring
    # Boot sample has 0.022369621 and 1.073741824 among them).
    les = {s.labels["le"] for s in families["http_server_requests_seconds"].samples
           if s.name.endswith("_bucket") and s.labels["uri"] == "/api/version"}
    assert len(les) == 69 and {"0.001", "0.022369621", "1.073741824", "30.0", "+Inf"} <= les
    pool = {s.name: s.value for f in families.values() if f.name.startswith("hikaricp") for s in f.samples}
    assert pool["hikaricp_connections_max"] == 7 and pool["hikaricp_connections_active"] == 0
    heap = [s for s in families["jvm_memory_max_bytes"].samples if s.labels["area"] == "heap"]
    assert heap and all(set(s.labels) == {"area", "id"} for s in heap)
    assert any(s.value > 0 for s in heap)


@pytest.mark.parametrize("path", ["/api/does-not-exist", "/api", "/somewhere/else"])
def test_unknown_paths_are_json_404(app, path):
    status, headers, body = app.request(path)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert headers["X-App-Version"] == VERSION
    assert body["status"] == 404 and body["path"] == path


def test_api_validates_then_reports_db_unavailable(app):
    assert app.request("/api/pets", method="POST", body={"nom": "x"})[0] == 400
    assert app.request("/api/pets", method="POST", body={"name": "x" * 101})[0] == 400
    status, headers, body = app.request("/api/pets", method="POST", body={"name": "초코"})
    assert status == 503 and "Database unavailable" in body["message"]
    assert headers["X-App-Version"] == VERSION
    assert app.request("/api/pets")[0] == 503
    status, _, body = app.request("/api/roundtrip")
    assert status == 503 and body["mysql"] is False and body["redis"] is False
    assert app.request("/api/version", method="DELETE")[0] == 405


def test_slow_endpoint_caps_and_validates(app):
    status, _, body = app.request("/api/slow?ms=50")
    assert (status, body) == (200, {"slept": 50, "version": VERSION})
    assert app.request("/api/slow?ms=abc")[0] == 400


def test_request_logging_only_at_debug(app, jar, start_app):
    assert "GET /api/version" not in app.output()  # INFO level: no per-request lines
    debug_app = start_app(jar, LOGGING_LEVEL_ROOT="DEBUG", APP_VERSION="9.9.9-env")
    status, headers, body = debug_app.request("/api/version")
    assert body == {"version": "9.9.9-env"} and headers["X-App-Version"] == "9.9.9-env"
    time.sleep(0.2)
    assert re.search(r"DEBUG .* GET /api/version -> 200", debug_app.output())


@pytest.mark.parametrize("secret", [None, "", "too-short-secret"])
def test_jwt_secret_required(jar, start_app, secret):
    bad = start_app(jar, wait=False, PETORY_JWT_SECRET=secret)
    rc = bad.proc.wait(timeout=30)
    out = bad.output()
    assert rc != 0
    assert "APPLICATION FAILED TO START" in out
    assert "PETORY_JWT_SECRET" in out and "32" in out


def test_jwt_issue_and_verify(app):
    status, headers, issued = app.request("/api/auth/token", method="POST", body={"user": "choco"})
    assert status == 200 and set(issued) == {"token", "expires_at"}
    assert headers["X-App-Version"] == VERSION
    token = issued["token"]
    header, payload, signature = token.split(".")
    assert "=" not in token
    assert b64url_json(header) == {"alg": "HS512", "typ": "JWT"}
    claims = b64url_json(payload)
    assert claims["sub"] == "choco" and claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    expires_at = datetime.fromtimestamp(claims["exp"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert issued["expires_at"] == expires_at
    expected = hmac.new(JWT_SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha512).digest()
    assert signature == b64url(expected)

    status, headers, body = app.me(token)
    assert (status, body) == (200, {"user": "choco", "key": "current"})
    assert headers["X-App-Version"] == VERSION
    now = int(time.time())
    foreign = make_jwt(JWT_SECRET, {"sub": "mochi", "iat": now, "exp": now + 60})
    assert app.me(foreign)[2] == {"user": "mochi", "key": "current"}

    for bad_body in ({}, {"user": "  "}, {"user": 7}):
        assert app.request("/api/auth/token", method="POST", body=bad_body)[0] == 400
    assert app.request("/api/auth/token")[0] == 405

    assert_unauthorized(app.request("/api/auth/me"), "Missing Authorization")
    assert_unauthorized(app.request("/api/auth/me", headers={"Authorization": f"Basic {token}"}),
                        "Missing Authorization")
    assert_unauthorized(app.me("not-a-jwt"), "Malformed")
    other_sub = b64url(json.dumps({**claims, "sub": "intruder"}).encode())
    assert_unauthorized(app.me(f"{header}.{other_sub}.{signature}"), "signature does not match any accepted key")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_unauthorized(app.me(f"{header}.{payload}.{flipped}"), "signature does not match any accepted key")
    for alg in ("HS256", "none"):
        forged = make_jwt(JWT_SECRET, {"sub": "choco", "iat": now, "exp": now + 60}, alg=alg)
        if alg == "none":
            forged = forged.rstrip(".") + ".AAAA"  # the compact form needs a non-empty signature part
        assert_unauthorized(app.me(forged), f"alg '{alg}'")
    expired = make_jwt(JWT_SECRET, {"sub": "choco", "iat": now - 120, "exp": now - 60})
    assert_unauthorized(app.me(expired), "expired")


def test_jwt_key_rotation(jar, app, start_app):
    """Key A -> B: A's tokens verify during the overlap window only; B signs new tokens."""
    token_a = app.issue_token()["token"]  # the shared app signs with key A
    rotated = {"PETORY_JWT_SECRET": JWT_SECRET_B, "PETORY_JWT_PREVIOUS_SECRET": JWT_SECRET}
    window_end, window_start = iso_instant(timedelta(hours=1)), iso_instant(-timedelta(minutes=1))
    # Started together: the JVM starts dominate the run time.
    in_window = start_app(jar, wait=False, PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL=window_end,
                          PETORY_JWT_TTL_SECONDS="1", **rotated)
    after_window = start_app(jar, wait=False, PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL=window_start, **rotated)
    # Also checks that /actuator/info reports the heap the JVM was given.
    no_window = start_app(jar, wait=False, JAVA_TOOL_OPTIONS="-Xmx96m", **rotated)
    for running in (in_window, after_window, no_window):
        running.wait_live()

    assert in_window.me(token_a)[2] == {"user": "choco", "key": "previous"}
    short_lived = in_window.issue_token()
    now = int(time.time())
    stranger = make_jwt("unknown-secret-" + "z" * 32, {"sub": "choco", "iat": now, "exp": now + 60})
    assert_unauthorized(in_window.me(stranger), "signature does not match any accepted key")
    assert f"previous key accepted until {window_end}\n" in in_window.output()
    assert f"accepted until {window_start} (already passed)" in after_window.output()

    assert_unauthorized(after_window.me(token_a), "signed with the previous key", f"accepted until {window_start}")
    token_b = after_window.issue_token("mochi")["token"]
    assert after_window.me(token_b)[2] == {"user": "mochi", "key": "current"}
    assert_unauthorized(app.me(token_b), "signature does not match any accepted key")  # A does not know B

    assert_unauthorized(no_window.me(token_a), "signed with the previous key", "PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL")
    warnings = [line for line in no_window.output().splitlines() if " WARN " in line and "VALID_UNTIL" in line]
    assert len(warnings) == 1, no_window.output()
    max_heap = no_window.request("/actuator/info")[2]["jvm"]["max_heap_bytes"]
    assert 0.8 * 96 * 2**20 <= max_heap <= 96 * 2**20

    # TTL 1 s: once exp has passed the token is refused (signature still fine, so "expired").
    expires_at = datetime.strptime(short_lived["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    time.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.2)
    assert_unauthorized(in_window.me(short_lived["token"]), "expired")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL": "next tuesday"}, "PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL"),
        ({"PETORY_JWT_PREVIOUS_SECRET": "short-previous"}, "PETORY_JWT_PREVIOUS_SECRET"),
        ({"PETORY_JWT_TTL_SECONDS": "0"}, "PETORY_JWT_TTL_SECONDS"),
    ],
    ids=["bad-valid-until", "short-previous-secret", "zero-ttl"],
)
def test_jwt_rotation_config_rejected(jar, start_app, env, named):
    bad = start_app(jar, wait=False, **env)
    rc = bad.proc.wait(timeout=30)
    out = bad.output()
    assert rc != 0
    assert "APPLICATION FAILED TO START" in out
    assert f"({named})" in out, out


def test_sigterm_exits_zero_quickly(jar, start_app):
    running = start_app(jar)
    rc, elapsed = running.sigterm_and_wait()
    assert rc == 0, running.output()
    assert elapsed < 5
    assert "Graceful shutdown complete" in running.output()


def test_sigterm_lets_in_flight_request_finish(jar, start_app):
    running = start_app(jar)
    # A raw socket makes sure the request reached the server before SIGTERM is sent.
    client = socket.create_connection(("127.0.0.1", running.port), timeout=15)
    client.sendall(b"GET /api/slow?ms=2000 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    time.sleep(0.4)
    start = time.monotonic()
    running.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(OSError):  # the listener is closed: new connections are refused
        socket.create_connection(("127.0.0.1", running.port), timeout=2).close()
    response = b""
    while chunk := client.recv(65536):
        response += chunk
    client.close()
    rc = running.proc.wait(timeout=15)
    elapsed = time.monotonic() - start
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    assert json.loads(body) == {"slept": 2000, "version": VERSION}
    assert rc == 0, running.output()
    assert 1.0 < elapsed < 10


def test_broken_build_reports_down(tmp_path, start_app):
    broken_jar = sample_app.build_backend_jar(tmp_path / "broken.jar", VERSION + "-broken", healthy=False)
    broken = start_app(broken_jar)
    assert broken.request("/actuator/health/liveness")[0] == 200
    status, _, body = broken.request("/actuator/health")
    assert status == 503 and body["status"] == "DOWN"
    assert body["components"]["petory"]["status"] == "DOWN"
    status, _, body = broken.request("/actuator/health/readiness")
    assert status == 503 and body["status"] == "DOWN"
    assert broken.request("/api/version")[2] == {"version": VERSION + "-broken"}


# --------------------------------------------------------------------------- build


def test_fat_jar_layout(jar):
    with zipfile.ZipFile(jar) as zf:
        names = zf.namelist()
        assert names[:2] == ["META-INF/", "META-INF/MANIFEST.MF"]
        manifest = zf.read("META-INF/MANIFEST.MF").decode()
        assert f"Main-Class: {sample_app.MAIN_CLASS}" in manifest
        assert "version=" + VERSION in zf.read(sample_app.BUILD_RESOURCE).decode()
        assert "org/mariadb/jdbc/Driver.class" in names
        assert "org.mariadb.jdbc.Driver" in zf.read("META-INF/services/java.sql.Driver").decode()
        assert not [n for n in names if n.upper().endswith((".SF", ".RSA", ".DSA"))]


def test_build_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("PETORY_FIXTURE_CACHE", str(tmp_path / "cache"))
    first = sample_app.build_backend_jar(tmp_path / "a" / "app.jar", "2.0.0")
    start = time.monotonic()
    second = sample_app.build_backend_jar(tmp_path / "b" / "app.jar", "2.0.0")
    assert time.monotonic() - start < 1.0
    assert first.read_bytes() == second.read_bytes()
    other = sample_app.build_backend_jar(tmp_path / "c" / "app.jar", "2.0.1")
    assert other.read_bytes() != first.read_bytes()
    assert len(list((tmp_path / "cache" / "classes").iterdir())) == 1  # javac ran once


def test_missing_toolchain_errors_name_debian_packages(tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="openjdk-17-jdk-headless"):
        sample_app.build_backend_jar(tmp_path / "x.jar", "1")
    monkeypatch.setenv("PETORY_MARIADB_CONNECTOR_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(RuntimeError, match="libmariadb-java"):
        sample_app.connector_jar()
    monkeypatch.delenv("PETORY_MARIADB_CONNECTOR_JAR")
    monkeypatch.setattr(sample_app, "_CONNECTOR_DIRS", (tmp_path,))
    with pytest.raises(RuntimeError, match="libmariadb-java"):
        sample_app.connector_jar()


def test_connector_jar_found():
    jar_path = sample_app.connector_jar()
    assert jar_path.is_file() and jar_path.suffix == ".jar"
    assert re.match(r"\d+\.\d+\.\d+", sample_app.connector_version(jar_path))


# --------------------------------------------------------------------------- frontend


def test_frontend_build(tmp_path):
    out = sample_app.build_frontend(tmp_path / "web", VERSION)
    assert out == tmp_path / "web"
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f'<meta name="petory-version" content="{VERSION}">' in index.replace(" />", ">")

    assets = {}
    for kind, ext in (("js", "js"), ("css", "css")):
        files = list((out / "static" / kind).glob(f"main.*.{ext}"))
        assert len(files) == 1
        path = files[0]
        digest = re.fullmatch(rf"main\.([0-9a-f]{{8}})\.{ext}", path.name).group(1)
        assert digest == hashlib.sha256(path.read_bytes()).hexdigest()[:8]
        rel = path.relative_to(out).as_posix()
        assert f'"/{rel}"' in index
        assets[f"main.{ext}"] = rel

    js = (out / assets["main.js"]).read_bytes()
    assert len(js) >= 20 * 1024
    assert VERSION.encode() in js
    assert len(gzip.compress(js)) < len(js) * 0.4  # realistic, compressible text

    manifest = json.loads((out / "asset-manifest.json").read_text())
    assert manifest["files"]["main.js"] == "/" + assets["main.js"]
    assert manifest["files"]["main.css"] == "/" + assets["main.css"]
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["short_name"] == "Petory"
    assert (out / "robots.txt").read_text().startswith("#")
    assert (out / "favicon.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"

    # Rebuilding another version into the same directory replaces the old build.
    sample_app.build_frontend(out, "1.4.3-test")
    assert not (out / assets["main.js"]).exists()
    assert len(list((out / "static" / "js").iterdir())) == 1
    assert 'content="1.4.3-test"' in (out / "index.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- optional smoke


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def local_mariadb(tmp_path_factory):
    """A throwaway MariaDB server (MySQL stand-in) on a free port; yields its port."""
    if not (shutil.which("mariadbd") and shutil.which("mariadb-install-db") and shutil.which("mariadb")):
        pytest.skip("mariadb-server not installed (apt-get install -y mariadb-server)")
    base = tmp_path_factory.mktemp("mariadb")
    datadir, sock, port = base / "data", base / "mysqld.sock", free_port()
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", *as_root,
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True)
    log = open(base / "server.log", "wb")
    server = subprocess.Popen(
        ["mariadbd", "--no-defaults", f"--datadir={datadir}", *as_root, f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={base / 'mariadbd.pid'}",
         "--skip-log-bin", "--innodb-buffer-pool-size=32M"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(sock.exists, 30, "mariadbd socket")
        subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e",
                        "CREATE DATABASE petory; CREATE USER 'petory'@'%' IDENTIFIED BY 'petory-pw';"
                        " GRANT ALL ON petory.* TO 'petory'@'%';"], check=True, capture_output=True)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_smoke_against_local_mariadb_and_redis(jar, start_app, local_mariadb, tmp_path):
    redis_server = shutil.which("redis-server")
    if not redis_server:
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    redis_port = free_port()
    running = start_app(
        jar,
        SPRING_DATASOURCE_URL=f"jdbc:mysql://127.0.0.1:{local_mariadb}/petory"
        "?characterEncoding=UTF-8&serverTimezone=Asia/Seoul",
        SPRING_DATA_REDIS_PORT=str(redis_port),
    )
    # Redis is not up yet: the app must keep retrying and stay out of service.
    assert running.request("/actuator/health/readiness")[0] == 503
    redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--requirepass", "redis-pw", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running.wait_ready()
        status, _, health = running.request("/actuator/health")
        assert status == 200 and health["status"] == "UP", health
        assert health["components"]["db"]["status"] == "UP"
        assert health["components"]["redis"]["status"] == "UP"

        status, _, created = running.request("/api/pets", method="POST", body={"name": "초코"})
        assert status == 201 and created["name"] == "초코" and created["version"] == VERSION
        status, _, listing = running.request("/api/pets")
        assert status == 200
        assert {"id": created["id"], "name": "초코"} in listing["pets"]
        assert listing["notifications"] >= 1

        status, _, roundtrip = running.request("/api/roundtrip")
        assert status == 200 and roundtrip["mysql"] and roundtrip["redis"], roundtrip
        assert "MariaDB" in roundtrip["db"]
        print(f"database engine: {roundtrip['db']}")

        rc, _ = running.sigterm_and_wait()
        assert rc == 0
    finally:
        redis.terminate()
        redis.wait(timeout=10)
