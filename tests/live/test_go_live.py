"""Live: a fresh server goes from nothing to the site on HTTPS with the generated README's three commands.

The operator's machine is this one: a checkout of the sample application with the generated files
committed and pushed (README.md's "Generate a deployment"), an SSH key whose public half the fresh
server lets root in with, and the server's host key in known_hosts (the README's precondition:
one login, the fingerprint compared with the console's). The server is tests/live/fresh_server.py's
container: Debian 13 with systemd and sshd and no Docker. DNS, the one stated precondition, is a
hosts file that the operator's commands and the CI runner's steps see as /etc/hosts (their own
mount namespace): the site's name is the server's address.

The test reads the commands from the generated deploy/README.md's first section and runs each in
deploy/ as written, timing it. What GitHub does after the third (a tag push) is played here as
tests/live/ci_play.py plays it: deploy-pipeline.yml's `version` job, its `image` job for both
images (stub Gradle and npm builds; the images are built and pushed to a registry), and its
`deploy-prod` job (deploy-environment.yml's steps, run unchanged by tests/live/workflow_runner.py)
with the secrets that `make github` handed to a stub `gh` (tests/fixtures/gh_stub.sh). GitHub's
approval of a prod deploy is a click in its UI, not a command; the test skips it. The job's tests
(deploy-ci.yml) are tests/live/test_first_ci_run.py's.

Stand-ins for what these machines cannot reach, each outside the generated files:
* GitHub's git side: the origin is a private repository at git@github.com:petory-team/petory.git,
  an sshd container that DNS calls github.com; `make provision` gives it the server's read-only
  deploy key through the stub `gh`, which adds the key to that sshd's authorized keys.
* GHCR: Debian's docker-registry in a container; CI pushes to 127.0.0.1:<port>, and on the server a
  forwarder listens on its own 127.0.0.1:<port> (Docker trusts plain HTTP on loopback).
* Docker Hub: the stand-in base images (MySQL, Redis, nginx, certbot) are loaded into the server's
  engine after provisioning, where `docker pull` would fetch the official ones.
* Let's Encrypt: pebble in a container; env/prod.env's ACME_SERVER and ACME_CA_BUNDLE (documented
  in compose.prod.yaml) point certbot at it, and its CA certificate is on the certs volume. Pebble
  validates HTTP-01 by fetching the token from the server's port 80, through the firewall.

Then, on the live server, a Docker engine restart under strict load (a new TLS connection per
request, no retries; tests/live/faults.py): daemon.json's `live-restore` keeps every container
running, and the clients' error window is measured.
"""

from __future__ import annotations

import calendar
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ci_play import JAR_NAME, STUBS, Actions, application_repository, commit_all, git, stub_environment
from faults import Writer, under_strict_load
from fresh_server import IMAGE as SERVER_IMAGE
from fresh_server import FreshServer, build_image
from sample_app import build_backend_jar, build_frontend
from sftp_target import SftpTarget
from ssh_server import Server, server_base_image, sh
from stack import Response, _SNIConnection, free_port, render
from standins import ensure_tool_images
from workflow_runner import Runner

pytestmark = pytest.mark.live

# The longest run of failed requests an engine restart may cost (issue 18): its embedded DNS and
# port rules are away for a moment while it starts.
ENGINE_RESTART_WINDOW = 1.0
DOMAIN = "petory.app"  # a real-looking name: the deploy job refuses placeholder domains
REGISTRY_PORT = free_port()
IMAGES = {app: f"127.0.0.1:{REGISTRY_PORT}/petory-team/petory-{app}" for app in ("backend", "frontend")}
ANSWERS = {"advanced": True, "environments": ["prod"], "domain": DOMAIN, "tls_mode_prod": "letsencrypt",
           "server_size": "small", "docker_source": "debian", "monitoring": "off", "db_tls": "off",
           "backend_image": IMAGES["backend"], "frontend_image": IMAGES["frontend"]}
ACME_CA_IN_VOLUME = "/etc/letsencrypt/acme-test-ca.pem"
SERVER_DIR = "/srv/petory"
GITHUB_STUB = Path(__file__).resolve().parents[1] / "fixtures/gh_stub.sh"
# The registry's route on the server: 127.0.0.1:<port> there to the registry's container.
FORWARDER = r"""
import socket, sys, threading
listen, target = int(sys.argv[1]), (sys.argv[2], int(sys.argv[3]))
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
server = socket.create_server(("127.0.0.1", listen))
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(target)
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


def seeing_dns(hosts: Path) -> list[str]:
    """A command prefix: the command sees `hosts` as /etc/hosts, in a mount namespace of its own."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
            str(hosts)]


def docker(*args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    return sh("docker", *args, check=check, timeout=timeout)


def readme_commands(readme: Path) -> list[str]:
    """The numbered commands of the README's first section, as an operator copies them."""
    return numbered_commands(readme.read_text().split("\n## ", 2)[1])


def runbook_commands(doc: Path, command: str) -> list[str]:
    """The numbered commands of the section of DOC whose steps include COMMAND (either language)."""
    section = next(part for part in doc.read_text().split("\n## ") if f"`{command} " in part)
    return numbered_commands(section)


def numbered_commands(section: str) -> list[str]:
    return re.findall(r"(?m)^\d+\. `([^`]+)`", section)


class Registry:
    """GHCR's stand-in: Debian's docker-registry in a container, published on 127.0.0.1:REGISTRY_PORT."""

    def __init__(self, workdir: Path):
        self.name = f"petory-golive-registry-{uuid.uuid4().hex[:6]}"
        self.config = workdir / "registry.yml"

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        assert binary, "docker-registry is not installed (apt-get install docker-registry)"
        self.config.write_text("version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: /var/lib/registry}}\n"
                               "http: {addr: '0.0.0.0:5000'}\n")
        docker("run", "-d", "--name", self.name, "-p", f"127.0.0.1:{REGISTRY_PORT}:5000",
               "-v", f"{binary}:/usr/local/bin/docker-registry:ro", "-v", f"{self.config}:/etc/registry.yml:ro",
               "--entrypoint", "/usr/local/bin/docker-registry", SERVER_IMAGE, "serve", "/etc/registry.yml")
        wait_for(lambda: _answers(f"http://127.0.0.1:{REGISTRY_PORT}/v2/"), 30, "the registry")

    @property
    def address(self) -> str:
        return container_address(self.name)

    def stop(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


class GitHost:
    """GitHub's git side: sshd (tests/live/ssh/) serving git@github.com:petory-team/petory.git from
    the origin. Its `git` account is uid 0, so it writes the origin as root does here; it lets in
    the operator's key and the deploy keys that `gh api .../keys` (the stub) adds to `keys`."""

    URL = "git@github.com:petory-team/petory.git"

    def __init__(self, shared: Path, origin: Path, operator_key: str):
        self.keys = shared / "git-keys/authorized_keys"
        self.origin = origin
        self.operator_key = operator_key
        # StrictModes off: the keys file is under /var/tmp, which is world-writable (sticky).
        self.server = Server(shared, operator_key, server_base_image(),
                             sshd_options=("PermitRootLogin=prohibit-password", f"AuthorizedKeysFile={self.keys}",
                                           "StrictModes=no"))

    def start(self) -> None:
        self.keys.parent.mkdir()
        self.keys.write_text(self.operator_key + "\n")
        self.server.start()
        self.server.exec("sh", "-c", "useradd -o -u 0 -g 0 -M -d /home/git -s /bin/bash git && "
                         f"mkdir -p /home/git/petory-team && ln -s {self.origin} /home/git/petory-team/petory.git")

    @property
    def address(self) -> str:
        return container_address(self.server.name)

    def known_hosts_line(self) -> str:
        key = self.server.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        return f"github.com {key[0]} {key[1]}"

    def deploy_keys(self) -> list[str]:
        return [line for line in self.keys.read_text().splitlines()[1:] if line]

    def stop(self) -> None:
        self.server.stop()


class Pebble:
    """Let's Encrypt's stand-in: pebble in a container, validating HTTP-01 on the server's port 80."""

    def __init__(self, workdir: Path, image: str, server_address: str):
        self.name = f"petory-golive-pebble-{uuid.uuid4().hex[:6]}"
        self.dir = workdir
        self.dir.chmod(0o755)
        self.image = image
        self.server_address = server_address
        self.management_port = free_port()
        self.ca_pem = b""

    def start(self) -> None:
        """Pebble's HTTPS certificate names its own address, known once it runs: it waits for its config."""
        config = "/test/config/pebble-config.json"
        docker("run", "-d", "--name", self.name, "--add-host", f"{DOMAIN}:{self.server_address}",
               "-e", "PEBBLE_VA_NOSLEEP=1", "-e", "PEBBLE_WFE_NONCEREJECT=0",
               "-p", f"127.0.0.1:{self.management_port}:15000", "-v", f"{self.dir}:/test/config:ro",
               "--entrypoint", "sh", self.image, "-c",
               f"until [ -s {config} ]; do sleep 0.2; done; exec pebble -config {config} -strict")
        run = lambda *a: subprocess.run(["openssl", *a], cwd=self.dir, check=True, capture_output=True)  # noqa: E731
        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=petory go-live ACME CA", "-keyout", "ca.key", "-out", "ca.pem")
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=pebble",
            "-keyout", "key.pem", "-out", "pebble.csr")
        (self.dir / "san.ext").write_text(f"subjectAltName=IP:{self.address},IP:127.0.0.1\n")
        run("x509", "-req", "-in", "pebble.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "cert.pem")
        for path in self.dir.iterdir():
            path.chmod(0o644)
        self.ca_pem = (self.dir / "ca.pem").read_bytes()
        (self.dir / "pebble-config.json").write_text(json.dumps({"pebble": {
            "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
            "certificate": "/test/config/cert.pem", "privateKey": "/test/config/key.pem",
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        (self.dir / "pebble-config.json").chmod(0o644)
        wait_for(lambda: self.root_pem(), 30, "pebble's management API")

    @property
    def address(self) -> str:
        return container_address(self.name)

    @property
    def directory_url(self) -> str:
        return f"https://{self.address}:14000/dir"

    def root_pem(self) -> bytes:
        """Pebble's issuing root (new on every start), from its management API on 127.0.0.1."""
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.management_port}/roots/0", context=context,
                                        timeout=5) as resp:  # noqa: S310 - loopback
                return resp.read()
        except OSError:
            return b""

    def point_dns_at(self, address: str) -> None:
        """DNS moves to a new server: pebble validates HTTP-01 there from now on."""
        docker("exec", "-u", "0", self.name, "sh", "-c", f"grep -vw {DOMAIN} /etc/hosts >/tmp/hosts; "
               f"printf '%s\\t%s\\n' {address} {DOMAIN} >>/tmp/hosts; cat /tmp/hosts >/etc/hosts")

    def stop(self) -> None:
        docker("rm", "-f", self.name, check=False)


def container_address(name: str) -> str:
    info = json.loads(docker("inspect", name).stdout)[0]
    return next(n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback
        return True
    except OSError:
        return False


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise AssertionError(f"{what} did not come up within {seconds:.0f} s")


@dataclass
class Operator:
    """The operator's machine: the application checkout with the generated files, a home with
    the SSH key, known_hosts and git identity, a stub `gh`, and DNS (a hosts file)."""

    work: Path
    origin: Path
    checkout: Path = field(init=False)
    home: Path = field(init=False)
    hosts: Path = field(init=False)
    github: GitHost | None = None  # GitHub's git side, once it runs: its name in DNS and known_hosts

    def __post_init__(self):
        self.home = self.work / "home"
        (self.home / ".ssh").mkdir(parents=True, mode=0o700)
        (self.home / ".gitconfig").write_text("[user]\n\tname = Operator\n\temail = ops@petory.app\n")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator", "-f", self.home / ".ssh/id_ed25519")
        (self.work / "bin").mkdir()
        shutil.copy2(GITHUB_STUB, self.work / "bin/gh")
        (self.work / "gh-calls").mkdir()
        self.hosts = self.work / "hosts"
        # ssh reads ~/.ssh/config from the account's home, not $HOME: Ansible gets it with -F.
        (self.home / ".ssh/config").write_text(
            f"Host *\n  IdentityFile {self.home}/.ssh/id_ed25519\n  UserKnownHostsFile {self.home}/.ssh/known_hosts\n"
            "  StrictHostKeyChecking yes\n  ConnectTimeout 10\n")

    @property
    def admin_key(self) -> str:
        return (self.home / ".ssh/id_ed25519.pub").read_text().strip()

    def point_dns_at(self, server: FreshServer) -> None:
        github = [f"{self.github.address} github.com"] if self.github else []
        self.hosts.write_text("\n".join(["127.0.0.1 localhost", f"{server.address} {DOMAIN}", *github]) + "\n")
        known = [server.host_key_line(DOMAIN), *([self.github.known_hosts_line()] if self.github else [])]
        (self.home / ".ssh/known_hosts").write_text("\n".join(known) + "\n")

    def environ(self) -> dict[str, str]:
        return {"PATH": f"{self.work / 'bin'}:{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(self.home), "LANG": "C.UTF-8", "STUB_DIR": str(self.work / "gh-calls"),
                "ANSIBLE_SSH_COMMON_ARGS": f"-F {self.home}/.ssh/config", "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"), "GIT_SSH_COMMAND": f"ssh -F {self.home}/.ssh/config",
                "SSH": f"ssh -F {self.home}/.ssh/config",  # what make host-audit and make recover log in with
                "STUB_DEPLOY_KEYS": str(self.github.keys) if self.github else ""}

    def run(self, command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """One command of the README, typed in deploy/ (`env`: what the operator's shell adds)."""
        return subprocess.run([*seeing_dns(self.hosts), "bash", "-c", command], cwd=self.checkout / "deploy",
                              env={**self.environ(), **(env or {})}, capture_output=True, text=True, timeout=1200)

    def github_secrets(self) -> dict[str, str]:
        """What `gh secret set NAME` received on stdin, by NAME."""
        calls = (self.work / "gh-calls/calls").read_text().splitlines()
        return {line.split()[2]: (self.work / f"gh-calls/stdin.{n}").read_text()
                for n, line in enumerate(calls, 1) if line.startswith("secret set ")}


@dataclass
class Site:
    operator: Operator
    server: FreshServer
    pebble: Pebble
    version: str
    timings: list[tuple[str, float]]
    deploy_output: str
    registry: Registry

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 15) -> Response:
        """HTTPS to the server's address with the site's name (SNI and Host), as a browser would."""
        conn = _SNIConnection(443, DOMAIN, timeout, self.server.address)
        try:
            conn.request(method, path, body=body, headers={"Host": DOMAIN, **(headers or {})})
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def compose(self, *args: str) -> subprocess.CompletedProcess:
        """scripts/compose.sh prod on the server, as the deploy user (faults.Writer reads the rows with it)."""
        proc = subprocess.run(["docker", "exec", "-u", "deploy", "-w", f"{SERVER_DIR}/deploy", self.server.name,
                               "scripts/compose.sh", "prod", *args], capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        return proc

    def verified_certificate(self) -> dict:
        """The served certificate, verified for the site's name against pebble's root, as a browser does."""
        context = ssl.create_default_context(cadata=self.pebble.root_pem().decode())
        with socket.create_connection((self.server.address, 443), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=DOMAIN) as tls:
                return tls.getpeercert()


def play_the_pipeline(operator: Operator, pebble: Pebble, workdir: Path, samples: Path,
                      npm_bin: Path) -> tuple[str, str]:
    """GitHub's run for the pushed tag: version, both images (built and pushed), deploy-prod; returns
    (version, the deploy job's output)."""
    tag = git(operator.checkout, "describe", "--tags", "--exact-match")
    ref = f"refs/tags/{tag}"
    clone = workdir / "github"
    git(operator.origin, "clone", "-q", operator.origin, clone)
    git(clone, "checkout", "-q", ref)
    sha = git(clone, "rev-parse", "HEAD")
    pipeline = clone / ".github/workflows/deploy-pipeline.yml"
    actions = Actions(clone, clone, npm_bin, push=True)
    secrets = operator.github_secrets()
    expressions = {"github.token": "", "github.actor": "petory-ci", "secrets.GITHUB_TOKEN": "",
                   "secrets.SSH_PRIVATE_KEY": secrets["SSH_PRIVATE_KEY"],
                   "secrets.SSH_KNOWN_HOSTS": secrets["SSH_KNOWN_HOSTS"],
                   "vars.SSH_PORT || '22'": "22", "vars.SMOKE_API_PATH || '/api/'": "/api/"}
    # The runner's curl trusts pebble's root, as a real runner trusts Let's Encrypt's.
    runner_home = workdir / "runner-home"
    runner_home.mkdir()
    (runner_home / "acme-root.pem").write_bytes(pebble.root_pem())
    (runner_home / ".curlrc").write_text(f"cacert = {runner_home / 'acme-root.pem'}\n")

    def job(runner: Runner, matrix: dict | None = None):
        workspace = workdir / f"runner-{uuid.uuid4().hex[:6]}"
        workspace.mkdir()
        runner.checkout = workspace
        log = workspace.with_suffix(".calls")
        env = {"HOME": str(runner_home), "CURL_HOME": str(runner_home), **stub_environment(samples, log, "build")}
        run = runner.run(sha, env, event="push", ref=ref, matrix=matrix)
        assert run.ok, run.output
        return run

    version = job(Runner(pipeline, "version", clone, workdir, expressions, actions=actions.mapping())).outputs
    needs = {f"needs.version.outputs.{key}": value for key, value in version.items()}
    image = Runner(pipeline, "image", clone, workdir, {**expressions, **needs}, actions=actions.mapping())
    for entry in image.matrix():
        job(image, entry)
    deploy = Runner.called_by(pipeline, "deploy-prod", clone, workdir, {**expressions, **needs},
                              actions=actions.mapping(), wrap=seeing_dns(operator.hosts))
    run = job(deploy)
    assert run.outcome("Roll back") == "skipped", run.output
    docker("image", "rm", "-f", *set(actions.images), check=False)
    return version["version"], run.output


@pytest.fixture(scope="module")
def site(base_images, age_key_pair, tmp_path_factory, summary):
    work = tmp_path_factory.mktemp("go-live")
    tools = ensure_tool_images(["certbot", "pebble"], log=lambda _: None)
    build_image()
    # The origin, which GitHost serves over SSH from the same path (bind-mounted).
    shared = Path(tempfile.mkdtemp(prefix="petory-golive-", dir="/var/tmp"))
    shared.chmod(0o755)
    origin = shared / "petory.git"
    operator = Operator(work, origin)
    registry, server, pebble, live, github = Registry(work), None, None, None, None
    try:
        # README.md's "Generate a deployment": copier copy in the application's checkout, commit, push.
        application = application_repository(work / "petory")
        # Dumps encrypted to the session's age key: only encrypted dumps leave a server.
        operator.checkout = render(application, {**ANSWERS, **base_images, "certbot_image": tools["certbot"],
                                                 "backup_age_recipient": age_key_pair[1]})
        commit_all(application, "Deployment from the Petory template")
        sh("git", "init", "-q", "--bare", "-b", "main", origin)
        git(application, "remote", "add", "origin", origin)
        git(application, "push", "-q", "origin", "main")
        # From here the origin is a private repository on "GitHub", reached over SSH.
        github = GitHost(shared, origin, operator.admin_key)
        github.start()
        operator.github = github
        git(application, "remote", "set-url", "origin", GitHost.URL)
        registry.start()

        server = new_server(operator)
        pebble = Pebble(tmp_path_factory.mktemp("pebble"), tools["pebble"], server.address)
        pebble.start()
        with (operator.checkout / "deploy/env/prod.env").open("a") as env_file:
            env_file.write(f"# The ACME test CA (Let's Encrypt's stand-in)\nACME_SERVER={pebble.directory_url}\n"
                           f"ACME_CA_BUNDLE={ACME_CA_IN_VOLUME}\n")

        commands = readme_commands(operator.checkout / "deploy/README.md")
        assert len(commands) == 3, commands
        samples, npm_bin = work / "samples", work / "npm-bin"
        build_backend_jar(samples / JAR_NAME, "go-live")
        build_frontend(samples / "frontend-build", "go-live")
        npm_bin.mkdir()
        shutil.copy2(STUBS / "npm", npm_bin / "npm")
        timings, began, version, deploy_output = [], time.monotonic(), "", ""
        for number, command in enumerate(commands, 1):
            started = time.monotonic()
            proc = operator.run(command)
            assert proc.returncode == 0, f"{command}:\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
            timings.append((command, time.monotonic() - started))
            if number == 1:
                preload(server, operator, registry, pebble)
            if "git push" in command:
                started = time.monotonic()
                version, deploy_output = play_the_pipeline(operator, pebble, work, samples, npm_bin)
                timings.append(("CI: version, images, deploy-prod (GitHub's part)", time.monotonic() - started))
        total = time.monotonic() - began
        live = Site(operator, server, pebble, version, timings, deploy_output, registry)
        summary.append("go-live: " + "; ".join(f"{what}: {took:.0f} s" for what, took in timings)
                       + f"; {len(commands)} operator commands, {total:.0f} s in all (goal 600 s)")
        yield live
    finally:
        for part in (pebble, server, live.server if live else None, registry, github):
            if part is not None:
                part.stop()
        shutil.rmtree(shared, ignore_errors=True)


def new_server(operator: Operator) -> FreshServer:
    """A fresh server that DNS and the operator's known_hosts point at; it finds GitHub by DNS too."""
    server = FreshServer(operator.admin_key)
    server.start()
    server.exec("sh", "-c", f"echo '{operator.github.address} github.com' >>/etc/hosts")
    operator.point_dns_at(server)
    return server


def preload(server: FreshServer, operator: Operator, registry: Registry, pebble: Pebble) -> None:
    """The stand-ins' part on the provisioned server: Docker Hub's images, the registry's route and
    pebble's CA certificate on the certs volume (Let's Encrypt's is in every client's trust store)."""
    deploy = operator.checkout / "deploy"
    listed = subprocess.run(["docker", "compose", "--env-file", "env/prod.env", "-f", "compose.yaml", "-f",
                             "compose.prod.yaml", "config", "--images"], cwd=deploy, capture_output=True, text=True,
                            check=True).stdout.split()
    hub = sorted({image for image in listed if not image.startswith("127.0.0.1:")})
    save = subprocess.Popen(["docker", "save", *hub], stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", server.name, "docker", "load", "-q"], stdin=save.stdout, check=True,
                   capture_output=True, timeout=600)
    assert save.wait() == 0
    server.exec("sh", "-c", f"cat > /usr/local/bin/registry-route <<'EOF'\n{FORWARDER}\nEOF")
    server.exec("systemd-run", "--unit", "registry-route", "python3", "/usr/local/bin/registry-route",
                str(REGISTRY_PORT), registry.address, "5000")
    project = "petory-prod"
    labels = ["--label", f"com.docker.compose.project={project}", "--label", "com.docker.compose.volume=certs"]
    server.exec("docker", "volume", "create", *labels, f"{project}_certs")
    subprocess.run(["docker", "exec", "-i", server.name, "docker", "run", "--rm", "-i", "-v", f"{project}_certs:/c",
                    "--entrypoint", "sh", hub[0], "-c", f"cat > /c/{Path(ACME_CA_IN_VOLUME).name}"],
                   input=pebble.ca_pem, check=True, capture_output=True, timeout=120)


def test_three_commands_take_a_fresh_server_to_the_site_on_https(site, summary):
    # The certificate: issued by pebble through HTTP-01 on the server's port 80, valid for the site.
    certificate = wait_for(lambda: _verified(site), 180, "the ACME certificate")
    assert dict(item[0] for item in certificate["subject"]).get("commonName") == DOMAIN
    page = site.request("GET", "/")
    assert page.status == 200 and b"petory-version" in page.body
    api = site.request("GET", "/api/version")
    assert api.status == 200, api.body[:300]
    # HTTP answers with a redirect to HTTPS.
    conn = http.client.HTTPConnection(site.server.address, 80, timeout=10)
    conn.request("GET", "/pets", headers={"Host": DOMAIN})
    resp = conn.getresponse()
    assert resp.status in (301, 308) and resp.getheader("Location") == f"https://{DOMAIN}/pets"
    conn.close()
    # The images CI built and pushed for this tag run, pulled by the server.
    running = set(site.server.exec("docker", "ps", "--format", "{{.Image}}").stdout.split())
    assert {f"{IMAGES[app]}:{site.version}" for app in IMAGES} <= running, running
    assert "smoke: GET https://" in site.deploy_output
    # The private repository: the server cloned it over SSH with a key of its own, which make
    # provision gave GitHub as a read-only deploy key (through gh).
    checkout = site.server.exec("git", "-C", SERVER_DIR, "remote", "get-url", "origin", user="deploy").stdout.strip()
    assert checkout == GitHost.URL
    server_key = site.server.exec("cat", "/home/deploy/.ssh/petory-repository.pub").stdout.split()[:2]
    assert site.operator.github.deploy_keys() == [" ".join(server_key)]
    calls = (site.operator.work / "gh-calls/calls").read_text()
    assert "api --method POST repos/petory-team/petory/keys " in calls and "-F read_only=true" in calls
    total = sum(took for _, took in site.timings)
    summary.append(f"go-live: the site answers on https://{DOMAIN} with pebble's certificate, images {site.version}; "
                   f"{total:.0f} s from the first command")


def _verified(site: Site):
    try:
        return site.verified_certificate()
    except (ssl.SSLError, OSError):
        return None


def test_a_docker_engine_restart_with_live_restore_keeps_containers_and_no_failure_run_lasts_a_second(site, summary):
    """live-restore keeps every container running through `systemctl restart docker`; while the engine
    is away (its DNS and port rules) a few requests fail, never for a second in a row, and no write is lost."""
    before = site.server.exec("docker", "ps", "-q", "--no-trunc").stdout.split()
    started = {cid: site.server.exec("docker", "inspect", "-f", "{{.State.StartedAt}}", cid).stdout.strip()
               for cid in before}
    restart = {}

    def engine_restart() -> None:
        began = time.monotonic()
        site.server.exec("systemctl", "restart", "docker")
        restart["took"] = time.monotonic() - began

    outage, writer = under_strict_load(site, "Docker engine restart (live-restore)", engine_restart, settle=5.0,
                                       rate=20.0)
    summary.append(outage.report() + f" engine restart took {restart['took']:.1f} s")
    after = {cid: site.server.exec("docker", "inspect", "-f", "{{.State.StartedAt}}", cid).stdout.strip()
             for cid in before}
    assert after == started, "a container was restarted: live-restore did not keep it"
    assert set(writer.acknowledged) <= writer.stored(), "an acknowledged write is missing"
    for name, load in outage.loads.items():
        # Failures come here and there while the engine is away; no run of them may last a second.
        assert load.longest_error_window() <= ENGINE_RESTART_WINDOW + load.resolution(), \
            f"{name}: {outage.report()} engine restart took {restart['took']:.1f} s"


def test_a_lost_server_comes_back_on_a_new_one_with_the_newest_offsite_dump(site, age_key_pair, tmp_path, summary):
    """Docs 06's recovery runbook, run as written: the server is destroyed after its nightly backup
    went off-site; a second fresh server gets the site back with that dump's data. Prints the RTO
    (server lost to site serving) and the RPO (the age of the newest data restored)."""
    (tmp_path / "offsite").mkdir()
    offsite = SftpTarget(tmp_path / "offsite")
    replacement = None
    try:
        offsite.start()
        target = f"sftp://offsite@{offsite.address}:22/petory"
        # The off-site copy as docs 06 sets it up on the server ("Off the host"), the storage's key
        # in the deploy user's ~/.ssh.
        old = site.server
        key = "/home/deploy/.ssh/petory-offsite"
        docker("cp", str(offsite.key), f"{old.name}:{key}")
        old.exec("sh", "-c", f"chown deploy:deploy {key} && chmod 600 {key} && "
                 f"echo '{offsite.address} {offsite.host_key}' >>/home/deploy/.ssh/known_hosts && "
                 f"printf 'BACKUP_COPY_COMMAND=scripts/offsite-sftp.sh\\nBACKUP_SFTP_TARGET={target}\\n"
                 f"BACKUP_SFTP_IDENTITY={key}\\n' >>{SERVER_DIR}/deploy/env/prod.env")
        kept, lost = Writer(site), Writer(site)
        for _ in range(10):
            kept.send()
        backup = subprocess.run(["docker", "exec", "-u", "deploy", "-w", f"{SERVER_DIR}/deploy", old.name,
                                 "scripts/backup-db.sh", "prod"], capture_output=True, text=True, timeout=600)
        assert backup.returncode == 0, backup.stderr[-3000:]
        assert len(offsite.files()) == 1, backup.stderr[-2000:]
        for _ in range(5):  # written after the last backup: what the loss takes
            lost.send()
        assert len(kept.acknowledged) == 10 and len(lost.acknowledged) == 5

        lost_at, began = time.time(), time.monotonic()
        old.stop()
        replacement = site.server = new_server(site.operator)
        site.pebble.point_dns_at(replacement.address)
        commands = runbook_commands(site.operator.checkout / "deploy/docs/06-deployment-process.md", "make recover")
        assert [c.split()[1] for c in commands] == ["provision", "github", "recover"], commands
        # The operator's own access to the storage and the age key; curl trusts the ACME CA's root.
        (site.operator.home / ".curlrc").write_text(f"cacert = {tmp_path / 'acme-root.pem'}\n")
        (tmp_path / "acme-root.pem").write_bytes(site.pebble.root_pem())
        shell = {"BACKUP_SFTP_TARGET": target, "BACKUP_SFTP_IDENTITY": str(offsite.key),
                 "BACKUP_SFTP_KNOWN_HOSTS": str(tmp_path / "offsite-known-hosts"),
                 "BACKUP_AGE_IDENTITY": str(age_key_pair[0])}
        (tmp_path / "offsite-known-hosts").write_text(f"{offsite.address} {offsite.host_key}\n")
        timings, output = [], ""
        for command in commands:
            started = time.monotonic()
            proc = site.operator.run(command, env=shell)
            assert proc.returncode == 0, f"{command}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            timings.append((command, time.monotonic() - started))
            if command.startswith("make provision"):
                preload(replacement, site.operator, site.registry, site.pebble)
            output = proc.stderr
        rto = time.monotonic() - began

        restored = re.search(r"with the data as of (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC, after (\d+) s", output)
        assert restored, output[-2000:]
        dump_epoch = calendar.timegm(time.strptime(restored.group(1), "%Y-%m-%d %H:%M:%S"))
        assert len(site.operator.github.deploy_keys()) == 2, "the new server reads the repository with a key of its own"
        assert set(kept.acknowledged) <= kept.stored(), "a row of the dump is missing"
        assert lost.stored() == set(), "rows written after the dump cannot be in it"
        page = site.request("GET", "/")
        assert page.status == 200 and b"petory-version" in page.body
        assert dict(item[0] for item in site.verified_certificate()["subject"]).get("commonName") == DOMAIN
        summary.append("recovery: " + "; ".join(f"{what}: {took:.0f} s" for what, took in timings)
                       + f"; RTO {rto:.0f} s (server lost to site serving, {len(commands)} commands), "
                       f"RPO {lost_at - dump_epoch:.0f} s (the newest dump's age at the loss; "
                       f"{len(lost.acknowledged)} rows written after it lost, {len(kept.acknowledged)} before it kept)")
    finally:
        offsite.stop()

