#!/usr/bin/env python3
"""Benchmark of `copier copy` of this template against Copier's floor, side by side in one run.

Times four copies, each a fresh `copier copy --trust --defaults` process into an empty folder:
(a) a one-file template (Copier's floor: its start-up, a git clone and one rendered file);
(b) this template with --skip-tasks (rendering only);
(c) this template with its copy-time tasks (env files made private, validate.py's fast checks);
(d) for information, (b) followed by the tasks with `validate.py --full` (every linter).
Both templates are rendered from a clean commit made in a temporary folder (the working tree of
this one, dirty changes included), so neither pays for Copier's handling of a dirty checkout.

Prints the median of each case and its ratio to (a). Light mode (the default under CI=true, or
--light) runs one round; full mode takes the median of --runs rounds (5) and fails when (b) is
above 2x the floor or (c) above 4x. Run it directly (`.venv/bin/python bench/render_bench.py`)
or through the test suite (tests/test_bench_render.py).
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from report import cli, table  # noqa: E402

COPIER = [sys.executable, "-m", "copier"]
LIMITS = {"skip-tasks": 2.0, "tasks": 4.0}  # the largest ratio to the floor that full mode accepts
CASES = {
    "floor": "(a) copier floor: one-file template",
    "first-copy": "(b0) this template, --skip-tasks, first copy on the machine (empty bytecode cache)",
    "skip-tasks": "(b) this template, --skip-tasks",
    "tasks": "(c) this template, copy-time tasks (fast checks)",
    "full": "(d) this template, tasks with validate.py --full",
}
GIT = ["git", "-c", "user.name=render-bench", "-c", "user.email=render-bench@example.invalid",
       "-c", "commit.gpgsign=false"]


def committed(tree: Path) -> Path:
    subprocess.run([*GIT, "init", "-q", str(tree)], check=True)
    subprocess.run([*GIT, "-C", str(tree), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(tree), "commit", "-q", "-m", "benchmark"], check=True)
    return tree


def floor_template(dest: Path) -> Path:
    """The smallest template Copier renders: one question, one file."""
    dest.mkdir(parents=True)
    (dest / "copier.yml").write_text("_subdirectory: template\nname:\n  type: str\n  default: petory\n")
    (dest / "template").mkdir()
    (dest / "template" / "README.md.jinja").write_text("# {{ name }}\n")
    return committed(dest)


def this_template(dest: Path) -> Path:
    """The working tree (tracked and untracked files, not ignored ones) as one clean commit."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, dest / name
        if not source.is_symlink() and not source.exists():  # deleted in the working tree
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))  # validate.py and env_files.py link into hooks/
        else:
            shutil.copy2(source, target)
    return committed(dest)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(*commands: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds of the commands run one after the other (CPU: the processes and theirs)."""
    began, cpu = time.perf_counter(), children_cpu()
    for command in commands:
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode and "validate.py" not in " ".join(command):  # (d) reports findings, it still counts
            raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - began, children_cpu() - cpu


def one_round(floor: Path, template: Path, work: Path) -> dict[str, tuple[float, float]]:
    def dest(case: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{case}-", dir=work)) / "project"

    copy = [*COPIER, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "HEAD"]
    # Jinja's bytecode cache lives under TMPDIR: a fresh one is a machine that never copied it.
    fresh_tmp = tempfile.mkdtemp(prefix="tmpdir-", dir=work)
    times = {"floor": timed([*copy, str(floor), str(dest("floor"))]),
             "first-copy": timed([*copy, "--skip-tasks", str(template), str(dest("first-copy"))],
                                 env={**os.environ, "TMPDIR": fresh_tmp}),
             "skip-tasks": timed([*copy, "--skip-tasks", str(template), str(dest("skip-tasks"))]),
             "tasks": timed([*copy, str(template), str(dest("tasks"))])}
    full = dest("full")
    times["full"] = timed([*copy, "--skip-tasks", str(template), str(full)],
                          [sys.executable, str(full / "deploy/scripts/env_files.py"), "--secure"],
                          [sys.executable, str(full / "deploy/scripts/validate.py"), "--full"])
    return times


def measure(light: bool, runs: int = 5, log=print) -> tuple[list[str], list[str]]:
    """The report lines and the limits that full mode found exceeded."""
    rounds = 1 if light else runs
    walls: dict[str, list[float]] = {case: [] for case in CASES}
    cpus: dict[str, list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="petory-render-bench-") as tmp:
        work = Path(tmp)
        floor, template = floor_template(work / "floor-template"), this_template(work / "template")
        for number in range(rounds):
            log(f"render bench: round {number + 1}/{rounds}")
            for case, (wall, cpu) in one_round(floor, template, work).items():
                walls[case].append(wall)
                cpus[case].append(cpu)
    wall = {case: statistics.median(values) for case, values in walls.items()}
    cpu = {case: statistics.median(values) for case, values in cpus.items()}
    rows, exceeded = [], []
    for case, label in CASES.items():
        ratio = wall[case] / wall["floor"]
        limit = LIMITS.get(case)
        rows.append([label, f"{wall[case]:.2f}", f"{ratio:.2f}x", f"{cpu[case]:.2f}",
                     f"{cpu[case] / cpu['floor']:.2f}x", f"<= {limit:.0f}x" if limit else "-"])
        if limit and ratio > limit:
            exceeded.append(f"{label}: {ratio:.2f}x the floor, above {limit:.0f}x")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [f"render benchmark ({'light' if light else 'full'} mode, {rounds} round(s), median, "
             f"{os.cpu_count()} CPUs, load average {load}; the limit is on wall time, CPU time is "
             "steadier on a busy machine)"]
    lines += table("copier copy", ["case", "wall s", "x floor", "CPU s", "CPU x floor", "limit (full mode)"], rows)
    return lines, exceeded


def run(light: bool, runs: int = 5, log=print) -> list[str]:
    return measure(light, runs, log)[0]


def main(argv: list[str] | None = None) -> int:
    exceeded: list[str] = []

    def checked(light: bool, runs: int) -> list[str]:
        lines, over = measure(light, runs)
        if not light:  # one light round is too noisy to hold to a limit
            exceeded.extend(over)
        return lines + [f"FAIL {line}" for line in over if not light]

    cli(checked, __doc__, "one round", "rounds in full mode", argv, runs_default=5)
    return 1 if exceeded else 0


if __name__ == "__main__":
    sys.exit(main())
