"""A server reached over SSH, played by a container built from tests/live/ssh/.

sshd with a `deploy` user (the test's public key only), git, the Docker CLI and Compose, talking to
the host's engine through the mounted socket. By default it has its own network namespace with
port 22 published on 127.0.0.1; `host_network=True` runs sshd in the host's namespace on
127.0.0.1, as sshd runs on a real server, so that a tunnel from it reaches the containers'
addresses the way the server's own sshd would. `sshd_options` are sshd's `-o` options, which win
over tests/live/ssh/sshd_config.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from stack import free_port

HERE = Path(__file__).resolve().parent
SERVER_DIR = HERE / "ssh"
SERVER_IMAGE = "petory-test/ssh-server:trixie"
LABEL = "org.petory.test=ssh-server"


def sh(*cmd, cwd=None, check=True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(map(str, cmd)), cwd=cwd, capture_output=True, text=True, **kwargs)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n{proc.stdout[-1000:]}")
    return proc


class Server:
    """The SSH server container; the deploy directory lives at the same path on host and container."""

    def __init__(self, workdir: Path | None, public_key: str, base: str, *, host_network: bool = False,
                 sshd_options: tuple[str, ...] = ()):
        self.name = f"petory-ssh-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.workdir = workdir  # mounted at the same path, or None
        self.public_key = public_key
        self.base = base
        self.host_network = host_network
        self.sshd_options = sshd_options

    def start(self) -> None:
        sh("docker", "build", "-q", "--build-arg", f"BASE={self.base}", "-t", SERVER_IMAGE, SERVER_DIR,
           env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=1200)
        network = ["--network", "host"] if self.host_network else ["-p", f"127.0.0.1:{self.port}:22"]
        options = [f"ListenAddress=127.0.0.1:{self.port}"] if self.host_network else []
        mounts = ["-v", f"{self.workdir}:{self.workdir}"] if self.workdir else []
        sh("docker", "run", "-d", "--name", self.name, "--label", LABEL, *network,
           "-v", "/var/run/docker.sock:/var/run/docker.sock", *mounts,
           "-e", f"AUTHORIZED_KEY={self.public_key}", SERVER_IMAGE,
           *(arg for option in (*options, *self.sshd_options) for arg in ("-o", option)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.exec("test", "-s", "/etc/ssh/ssh_host_ed25519_key.pub", check=False).returncode == 0 and \
                    "sshd" in self.exec("sh", "-c", "cat /proc/1/cmdline", check=False).stdout:
                return
            time.sleep(0.5)
        raise RuntimeError(f"sshd did not start: {sh('docker', 'logs', self.name, check=False).stderr}")

    def exec(self, *cmd, user: str = "root", check: bool = True) -> subprocess.CompletedProcess:
        return sh("docker", "exec", "-u", user, self.name, *cmd, check=check)

    def known_hosts(self) -> str:
        """The host key as ssh writes it for a non-standard port; read from the server, never scanned."""
        key = self.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        return f"[127.0.0.1]:{self.port} {key[0]} {key[1]}"

    def stop(self) -> None:
        sh("docker", "rm", "-f", "-v", self.name, check=False)


def server_base_image() -> str:
    """Debian trixie: the locally built stand-in when present (no registry here), else the official image."""
    if sh("docker", "image", "inspect", "petory-standin/debian:trixie", check=False).returncode == 0:
        return "petory-standin/debian:trixie"
    return "debian:trixie"


