#!/usr/bin/env python3
"""Benchmark: a deploy with scripts/deploy.sh against a naive `docker compose up -d` recreate.

Both replace the backend of a live prod stack under the same constant load through the edge
(60 requests/s on 127.0.0.1, keep-alive clients). Prints failed requests, the longest error window
and durations, plus the duration of a rollback. Light mode (CI) runs each scenario once.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "live"), str(ROOT / "bench")]

from load import Load  # noqa: E402
from sample_app import build_backend_jar, build_frontend  # noqa: E402
from stack import KeepAliveClient, Stack, base_image_answers, render  # noqa: E402
from report import cli, table  # noqa: E402

# One backend replica: with two, Compose may recreate them one at a time and hide the naive gap.
ANSWERS = {"environments": ["prod"], "tls_mode_prod": "self-signed", "api_rate_limit": 1000, "server_size": "small"}
IMAGE = "petory-bench/{app}:{version}"


def build(project: Path, version: str) -> None:
    build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", version)
    build_frontend(project / "frontend/build", version)
    for app in ("backend", "frontend"):
        subprocess.run(["docker", "build", "-q", "-f", f"deploy/docker/{app}/Dockerfile", "--build-arg",
                        f"APP_VERSION={version}", "-t", IMAGE.format(app=app, version=version), "."],
                       cwd=project, check=True, capture_output=True,
                       env={"PATH": os.environ["PATH"], "DOCKER_BUILDKIT": "0"})


def measured(stack: Stack, action) -> tuple[Load, float]:
    client = KeepAliveClient(stack)

    def send():
        resp = client.request("GET", "/api/version")
        return resp.status, resp.body.decode(errors="replace")

    with Load(send, rate=60, threads=12, max_seconds=400) as load:
        time.sleep(3)
        began = time.monotonic()
        action()
        took = time.monotonic() - began
        time.sleep(5)  # a naive recreate's errors continue after the command returns
    return load, took


def naive_recreate(stack: Stack, version: str) -> None:
    """What `docker compose up -d` does with a new tag: stop the old container, start the new."""
    colours = stack.deploy_dir / ".deploy/prod/colours.env"
    active = re.search(r"^BACKEND_ACTIVE=(\w+)$", colours.read_text(), re.M).group(1)
    text = re.sub(rf"^BACKEND_{active.upper()}_TAG=.*$", f"BACKEND_{active.upper()}_TAG={version}",
                  colours.read_text(), flags=re.M)
    colours.write_text(text)
    stack.compose("up", "-d", "--no-deps", f"backend-{active}", timeout=600)


def run(light: bool, runs: int, log=print) -> list[str]:
    base, kind = base_image_answers(log=log)
    rows, durations = [], {"deploy": [], "rollback": []}
    with tempfile.TemporaryDirectory(prefix="petory-deploy-bench-") as tmp:
        project = render(Path(tmp) / "repo", {**ANSWERS, **base})
        for version in ("1.0.1", "1.0.2"):
            build(project, version)
        stack = Stack(project, "prod", "petory.example.com", version=None,
                      backend_image="petory-bench/backend", frontend_image="petory-bench/frontend")
        try:
            stack.run("scripts/deploy.sh", "prod", "1.0.1", "--no-pull", timeout=900)
            versions = ["1.0.2", "1.0.1"]
            for attempt in range(1 if light else runs):
                target = versions[attempt % 2]
                load, took = measured(stack, lambda: naive_recreate(stack, target))
                rows.append(["naive `compose up -d` recreate", str(len(load.samples)), str(len(load.failures)),
                             f"{load.longest_error_window():.2f}", f"{took:.1f}"])
                # bring the stack back to a clean blue-green state on the other version
                stack.run("scripts/deploy.sh", "prod", versions[(attempt + 1) % 2], "--no-pull", "--only", "backend",
                          timeout=900)
                load, took = measured(stack, lambda: stack.run("scripts/deploy.sh", "prod", target, "--no-pull",
                                                               "--only", "backend", timeout=900))
                durations["deploy"].append(took)
                rows.append(["scripts/deploy.sh (blue-green)", str(len(load.samples)), str(len(load.failures)),
                             f"{load.longest_error_window():.2f}", f"{took:.1f}"])
            began = time.monotonic()
            stack.run("scripts/rollback.sh", "prod", "--yes", timeout=900)
            durations["rollback"].append(time.monotonic() - began)
        finally:
            stack.down(volumes=True)
            for version in ("1.0.1", "1.0.2"):
                for app in ("backend", "frontend"):
                    subprocess.run(["docker", "image", "rm", "-f", IMAGE.format(app=app, version=version)],
                                   capture_output=True)
    lines = [f"deploy benchmark ({'light' if light else 'full'} mode, base images: {kind}, 60 req/s on /api/version)"]
    lines += table("replacing the backend under load", ["method", "requests", "failed", "longest error window s",
                                                        "duration s"], rows)
    lines += table("durations", ["operation", "runs", "median s"],
                   [[name, str(len(values)), f"{statistics.median(values):.1f}"] for name, values in durations.items()])
    return lines


def main(argv: list[str] | None = None) -> int:
    return cli(run, __doc__, "one run of each scenario", "runs of each scenario in full mode", argv)


if __name__ == "__main__":
    sys.exit(main())
