"""Drive a generated Petory stack from the outside: render, build, start, talk to it, tear down.

Everything here goes through the generated repository's own entry points (deploy/scripts/compose.sh,
deploy/scripts/init-certificates.sh, run from deploy/), so the harness exercises what operators run. Traffic goes only to
ports published on 127.0.0.1 (or on `bind_address`).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import copier

ROOT = Path(__file__).resolve().parents[2]

OFFICIAL_IMAGES = {
    "edge_nginx_image": "nginx:1.28-alpine",
    "frontend_nginx_image": "nginx:1.28-alpine",
    "jre_image": "eclipse-temurin:17-jre",
    "mysql_image": "mysql:8.0",
    "redis_image": "redis:7-alpine",
}
STANDIN_ROLES = {
    "edge_nginx_image": "nginx",
    "frontend_nginx_image": "frontend_nginx",
    "jre_image": "jre",
    "mysql_image": "mysql",
    "redis_image": "redis",
}


def docker_ok() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def base_image_answers(log=print) -> tuple[dict[str, str], str]:
    """The base-image answers for the live stack and which kind they are ("official" or "stand-in").

    PETORY_BASE_IMAGES=official|standin forces a kind; by default official images are used when
    every one of them can be pulled, else the Debian-built stand-ins (tests/live/standins.py).
    """
    wanted = os.environ.get("PETORY_BASE_IMAGES", "auto")
    if wanted in ("auto", "official"):
        pulled = all(
            subprocess.run(["docker", "pull", "-q", image], capture_output=True, timeout=300).returncode == 0
            for image in dict.fromkeys(OFFICIAL_IMAGES.values())
        )
        if pulled:
            return dict(OFFICIAL_IMAGES), "official"
        if wanted == "official":
            raise RuntimeError("PETORY_BASE_IMAGES=official but the official images cannot be pulled")
        log("live: official images cannot be pulled here; using the Debian-built stand-ins")
    from standins import ensure_standin_images

    images = ensure_standin_images(log=log)
    return {answer: images[role] for answer, role in STANDIN_ROLES.items()}, "stand-in"


def render(dest: Path, answers: dict, template: Path = ROOT) -> Path:
    """Render the template's working tree with `answers` (defaults for the rest), tasks included."""
    copier.run_copy(str(template), str(dest), data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    return dest


def template_snapshot(dest: Path) -> Path:
    """The template's working tree committed to a new repository: a project rendered from it can
    be `copier update`d later (an uncommitted tree has no commit for the answers file to name)."""
    from update_helpers import IGNORED, git

    shutil.copytree(ROOT, dest, symlinks=True, ignore=IGNORED)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "template snapshot")
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 (or the stack's bind address) while sending the site's name in SNI, as a browser would."""

    def __init__(self, port: int, server_name: str, timeout: float, address: str = "127.0.0.1"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed in tests; the TLS tests check the handshake itself
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Stack:
    project_dir: Path  # the repository root; the generated files are in its deploy/ folder
    env: str
    domain: str
    version: str | None = "1.0.0"  # APP_VERSION for `up`; None leaves the versions to deploy.sh
    name: str = field(default_factory=lambda: f"petory-live-{uuid.uuid4().hex[:8]}")
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    # Where the edge publishes: loopback, or an address on a link to a namespace the test made.
    bind_address: str = "127.0.0.1"
    backend_image: str = "petory-live/backend"
    frontend_image: str = "petory-live/frontend"
    up_seconds: float = 0.0  # the last `up --wait`, images already built
    cold_up_seconds: float = 0.0  # the first one, on empty volumes

    @property
    def environ(self) -> dict[str, str]:
        # Shell variables win over env/<env>.env in Compose interpolation: unique project, loopback ports.
        environ = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.name,
            "EDGE_BIND_ADDRESS": self.bind_address,
            "EDGE_HTTP_PORT": str(self.http_port),
            "EDGE_HTTPS_PORT": str(self.https_port),
            "BACKEND_IMAGE": self.backend_image,
            "FRONTEND_IMAGE": self.frontend_image,
        }
        if self.version:
            environ["APP_VERSION"] = self.version
        return environ

    @property
    def deploy_dir(self) -> Path:
        return self.project_dir / "deploy"

    def run(self, *cmd: str, check: bool = True, timeout: int = 600, input: bytes | None = None):
        """Run a command in deploy/, where operators run the scripts."""
        proc = subprocess.run(list(cmd), cwd=self.deploy_dir, env=self.environ, capture_output=True,
                              timeout=timeout, input=input)
        if check and proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                               f"--- stderr ---\n{proc.stderr.decode()[-4000:]}\n--- stdout ---\n{proc.stdout.decode()[-1500:]}")
        return proc

    def compose(self, *args: str, **kwargs):
        return self.run("scripts/compose.sh", self.env, *args, **kwargs)

    def up(self) -> None:
        """Build the images, then start cold and wait until healthy; `up_seconds` is the start alone."""
        self.run("scripts/init-certificates.sh", self.env)
        try:
            self.compose("build", timeout=900)
            began = time.monotonic()
            self.compose("up", "-d", "--wait", "--wait-timeout", "300", timeout=900)
            self.up_seconds = time.monotonic() - began
            self.cold_up_seconds = self.cold_up_seconds or self.up_seconds
        except RuntimeError as err:
            logs = self.compose("logs", "--no-color", "--tail", "40", check=False).stdout.decode()[-6000:]
            raise RuntimeError(f"{err}\n--- container logs ---\n{logs}") from None

    def down(self, volumes: bool = False) -> None:
        self.compose("down", "--remove-orphans", "--timeout", "30", *(["--volumes"] if volumes else []))

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={self.name}"
        found = {}
        for kind, cmd in (("containers", ["docker", "ps", "-aq", "--filter", label]),
                          ("volumes", ["docker", "volume", "ls", "-q", "--filter", label]),
                          ("networks", ["docker", "network", "ls", "-q", "--filter", label])):
            out = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
            if out:
                found[kind] = out
        return found

    def containers(self) -> dict[str, list[dict]]:
        """service name -> docker inspect documents of its containers."""
        ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.name}"],
                             capture_output=True, text=True, check=True).stdout.split()
        services: dict[str, list[dict]] = {}
        if ids:
            docs = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                             check=True).stdout)
            for doc in docs:
                services.setdefault(doc["Config"]["Labels"]["com.docker.compose.service"], []).append(doc)
        return services

    def connection(self, host: str | None = None, scheme: str = "https", timeout: float = 15):
        if scheme == "https":
            return _SNIConnection(self.https_port, host or self.domain, timeout, self.bind_address)
        return http.client.HTTPConnection(self.bind_address, self.http_port, timeout=timeout)

    def request(self, method: str, path: str, *, host: str | None = None, scheme: str = "https",
                body: bytes | None = None, headers: dict | None = None, timeout: float = 15) -> Response:
        host = host or self.domain
        conn = self.connection(host, scheme, timeout)
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()


class KeepAliveClient:
    """HTTPS with one persistent connection per thread, like a browser or an HTTP client pool.

    A request on a reused connection that the server closed meanwhile (a keep-alive timeout, or
    nginx workers retiring after a reload) is retried once on a new connection, as browsers and
    connection pools do; a failure on a fresh connection is a real failure.
    """

    STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError)

    def __init__(self, stack: Stack, timeout: float = 10):
        self.stack = stack
        self.timeout = timeout
        self.local = threading.local()

    def request(self, method: str, path: str) -> Response:
        conn = getattr(self.local, "conn", None)
        reused = conn is not None
        if conn is None:
            conn = self.local.conn = self.stack.connection(timeout=self.timeout)
        try:
            conn.request(method, path, headers={"Host": self.stack.domain})
            resp = conn.getresponse()
            result = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        except self.STALE:
            conn.close()
            self.local.conn = None
            if reused:
                return self.request(method, path)
            raise
        except Exception:
            conn.close()
            self.local.conn = None
            raise
        if result.headers.get("connection", "").lower() == "close":
            conn.close()
            self.local.conn = None
        return result
