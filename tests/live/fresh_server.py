"""A fresh server for provisioning tests: a container built from tests/live/fresh_server/.

systemd runs as PID 1 and sshd lets root in with the operator's key; Docker is not installed. The
container has its own network namespace (its firewall and sysctls are its own) and its own
/var/lib/docker volume, so the Docker engine that provisioning installs runs nested and never
changes the machine that runs the tests. The machine's kernel lacks CAP_SYS_RESOURCE for
containers, so `--privileged` fails here: every other capability, no seccomp or AppArmor profile,
writable /proc/sys and all devices instead.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from ssh_server import server_base_image, sh

HERE = Path(__file__).resolve().parent
IMAGE = "petory-test/fresh-server:trixie"
LABEL = "org.petory.test=fresh-server"
NESTED_ENGINE = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                 "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
                 "--device-cgroup-rule", "a *:* rwm", "--cgroupns", "host",
                 "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                 "-v", "/var/lib/docker", "-e", "container=docker"]


def build_image() -> str:
    sh("docker", "build", "-q", "--build-arg", f"BASE={server_base_image()}", "-t", IMAGE, HERE / "fresh_server",
       env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=1200)
    return IMAGE


class FreshServer:
    """One fresh server; `mounts` are (host path, container path, mode) bind mounts."""

    def __init__(self, root_key: str, mounts: tuple[tuple[Path, str, str], ...] = ()):
        self.name = f"petory-fresh-{uuid.uuid4().hex[:8]}"
        self.root_key = root_key
        self.mounts = mounts

    def start(self) -> None:
        build_image()
        volumes = [arg for host, inside, mode in self.mounts for arg in ("-v", f"{host}:{inside}:{mode}")]
        sh("docker", "run", "-d", "--name", self.name, "--hostname", "fresh-server", "--label", LABEL,
           *NESTED_ENGINE, *volumes, IMAGE)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = self.exec("systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded") and self.exec("systemctl", "is-active", "ssh", check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{self.name}: systemd or sshd did not come up: "
                               f"{self.exec('systemctl', '--failed', '--no-legend', check=False).stdout}")
        self.exec("sh", "-c", f"echo '{self.root_key}' > /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys")

    @property
    def address(self) -> str:
        info = json.loads(sh("docker", "inspect", self.name).stdout)[0]
        return next(n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])

    def host_key_line(self, host: str) -> str:
        """known_hosts line for HOST, read from the server itself (never scanned)."""
        key = self.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        return f"{host} {key[0]} {key[1]}"

    def exec(self, *cmd, user: str = "root", check: bool = True):
        return sh("docker", "exec", "-u", user, self.name, *cmd, check=check)

    def stop(self) -> None:
        sh("docker", "rm", "-f", "-v", self.name, check=False)
