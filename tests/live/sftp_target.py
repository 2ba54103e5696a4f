"""The off-site storage's stand-in: an SFTP server in a container built from tests/live/sftp/
(OpenSSH, a chroot account `offsite` that can only transfer files), published on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

from stack import free_port

HERE = Path(__file__).resolve().parent
SFTP_IMAGE = "petory-test/sftp-target:trixie"


def sh(*cmd, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]!s}")
    return proc


class SftpTarget:
    """The off-site server: sshd with an SFTP-only account `offsite` chrooted to /srv/sftp."""

    def __init__(self, workdir: Path):
        self.name = f"petory-sftp-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.key = workdir / "offsite_key"
        self.known_hosts = workdir / "known_hosts"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "petory-backup", "-f", self.key)
        self.host_key = ""

    def start(self) -> None:
        base = "petory-standin/debian:trixie"
        if sh("docker", "image", "inspect", base, check=False).returncode:
            base = "debian:trixie"
        sh("docker", "build", "-q", "--build-arg", f"BASE={base}", "-t", SFTP_IMAGE, HERE / "sftp",
           env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=900)
        sh("docker", "run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:22",
           "-e", f"AUTHORIZED_KEY={Path(f'{self.key}.pub').read_text().strip()}", SFTP_IMAGE)
        deadline = time.monotonic() + 60
        while sh("docker", "exec", self.name, "test", "-s", "/etc/ssh/authorized_keys/offsite", check=False).returncode:
            assert time.monotonic() < deadline, sh("docker", "logs", self.name, check=False).stderr
            time.sleep(0.3)
        # The host key as ssh records a non-standard port: read from the server, never scanned.
        key = sh("docker", "exec", self.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        self.host_key = f"{key[0]} {key[1]}"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {self.host_key}\n")

    @property
    def address(self) -> str:
        """The container's own address, where other containers (a server) reach it on port 22."""
        return sh("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                  self.name).stdout.strip()

    @property
    def settings(self) -> dict[str, str]:
        return {"BACKUP_COPY_COMMAND": "scripts/offsite-sftp.sh",
                "BACKUP_SFTP_TARGET": f"sftp://offsite@127.0.0.1:{self.port}/petory",
                "BACKUP_SFTP_IDENTITY": str(self.key), "BACKUP_SFTP_KNOWN_HOSTS": str(self.known_hosts)}

    def files(self) -> dict[str, str]:
        """name -> sha256 of every file the account holds."""
        out = sh("docker", "exec", self.name, "sh", "-c", "cd /srv/sftp/petory && sha256sum -- * 2>/dev/null || true").stdout
        return {name: digest for digest, name in (line.split(maxsplit=1) for line in out.splitlines())}

    def stop(self) -> None:
        sh("docker", "rm", "-f", "-v", self.name, check=False)
