#!/usr/bin/env python3
"""Benchmark of the generated stack: cold start per environment, idle memory, image sizes.

Prints one table per measure. Light mode (the default under CI=true, or --light) starts each
environment once; full mode takes the median of --runs starts. Run it directly
(`.venv/bin/python bench/stack_bench.py`); the test suite (tests/live/test_bench.py) reports the
light mode from the live tests' own stacks (`report`), which were started cold once each.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "live"), str(ROOT / "hooks"), str(ROOT / "bench")]

import sizing  # noqa: E402
from sample_app import build_backend_jar, build_frontend  # noqa: E402
from report import cli, table  # noqa: E402
from stack import Stack, base_image_answers, render  # noqa: E402

ANSWERS = {"environments": ["staging", "prod"], "tls_mode_staging": "self-signed", "tls_mode_prod": "self-signed"}
DOMAINS = {"staging": "staging.petory.example.com", "prod": "petory.example.com"}


def mib(value: str) -> float:
    """docker stats memory ('12.5MiB', '1.2GiB', '800KiB') in MiB."""
    units = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    for unit in ("KiB", "MiB", "GiB", "B"):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * units[unit]
    raise ValueError(value)


def idle_memory(stack: Stack) -> dict[str, float]:
    names = [doc["Name"].lstrip("/") for docs in stack.containers().values() for doc in docs]
    out = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{json .}}", *names],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    usage: dict[str, float] = {}
    for line in out:
        stat = json.loads(line)
        service = stat["Name"].removeprefix(stack.name + "-").rsplit("-", 1)[0]
        service = service.removesuffix("-blue").removesuffix("-green")
        usage[service] = max(usage.get(service, 0.0), mib(stat["MemUsage"].split("/")[0].strip()))
    return usage


def image_sizes(images: dict[str, str]) -> list[list[str]]:
    rows = []
    for role, image in images.items():
        size = json.loads(subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True,
                                         check=True).stdout)[0]["Size"]
        rows.append([role, image, f"{size / 1e6:.1f}"])
    return rows


def measure(stack: Stack, plan: dict) -> list[list[str]]:
    """Idle memory of a healthy stack's services against their limits (largest replica each)."""
    time.sleep(5)  # let the JVM and MySQL settle before reading idle memory
    return [[stack.env, service, f"{used:.1f}", str(plan["services"][service]["memory_limit_mb"]),
             f"{100 * used / plan['services'][service]['memory_limit_mb']:.1f}"]
            for service, used in sorted(idle_memory(stack).items())]


def tables(kind: str, mode: str, starts: dict[str, list[float]], memory_rows: list[list[str]],
           base: dict[str, str]) -> list[str]:
    lines = [f"stack benchmark ({mode} mode, base images: {kind})"]
    start_rows = [[env, str(len(times)), f"{statistics.median(times):.1f}", f"{min(times):.1f}", f"{max(times):.1f}"]
                  for env, times in starts.items()]
    lines += table("cold `up --wait` to all healthy (empty volumes, images built)",
                   ["env", "runs", "median s", "min s", "max s"], start_rows)
    lines += table("idle memory per service against its limit (largest replica)",
                   ["env", "service", "used MiB", "limit MiB", "% of limit"], memory_rows)
    images = {**{k.removesuffix("_image"): v for k, v in base.items()},
              "backend (app)": "petory-live/backend:1.0.0", "frontend (app)": "petory-live/frontend:1.0.0"}
    return lines + table("image sizes", ["role", "image", "MB"], image_sizes(images))


def report(stacks: list[Stack], kind: str, base: dict[str, str]) -> list[str]:
    """Light mode inside the test suite: the live tests' own stacks, one cold start each."""
    plan = sizing.plan(*sizing.PRESETS["medium"])
    starts = {stack.env: [stack.cold_up_seconds] for stack in stacks}
    memory_rows = [row for stack in stacks for row in measure(stack, plan)]
    return tables(kind, "light", starts, memory_rows, base)


def run(light: bool, runs: int, log=print) -> list[str]:
    base, kind = base_image_answers(log=log)
    with tempfile.TemporaryDirectory(prefix="petory-bench-") as tmp:
        project = render(Path(tmp) / "repo", {**ANSWERS, **base})
        build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
        build_frontend(project / "frontend/build", "1.0.0")
        plan = sizing.plan(*sizing.PRESETS["medium"])
        starts, memory_rows = {}, []
        for env in ("staging", "prod"):
            stack = Stack(project, env, DOMAINS[env])
            times = starts[env] = []
            try:
                for _ in range(1 if light else runs):
                    stack.up()
                    times.append(stack.up_seconds)
                    if len(times) < (1 if light else runs):
                        stack.down(volumes=True)
                memory_rows += measure(stack, plan)
            finally:
                stack.down(volumes=True)
        return tables(kind, "light" if light else "full", starts, memory_rows, base)


def main(argv: list[str] | None = None) -> int:
    return cli(run, __doc__, "one start per environment", "starts per environment in full mode", argv)


if __name__ == "__main__":
    sys.exit(main())
