"""A local image registry on 127.0.0.1 (Debian's docker-registry), so deploys really pull."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from stack import free_port


class LocalRegistry:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.root = workdir / "registry"
        self.config = workdir / "registry.yml"
        self.process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"  # Docker trusts plain HTTP on loopback registries

    def start(self) -> None:
        binary = shutil.which("docker-registry")
        if not binary:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: '127.0.0.1:{self.port}'}}\n"
        )
        self.process = subprocess.Popen([binary, "serve", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the local registry did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def push(self, local: str, remote: str) -> None:
        subprocess.run(["docker", "tag", local, remote], check=True)
        subprocess.run(["docker", "push", "-q", remote], check=True, capture_output=True)
        subprocess.run(["docker", "image", "rm", remote], check=True, capture_output=True)
