"""Run the generated operator scripts, or single functions of them, without a Docker engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# The answer set (tests/answer_sets.py) of the project these tests run the scripts in.
ANSWER_SET = "servers-only"


def private_copy(rendered, tmp_path: Path, answer_set: str = ANSWER_SET) -> Path:
    """A copy of the shared render that a test may change; returns its deploy/ folder."""
    root = tmp_path / "project"
    shutil.copytree(rendered(answer_set), root, symlinks=True)
    return root / "deploy"


def run(deploy: Path, *args: str, env: dict | None = None, input: str | None = None):
    """Run a command in deploy/, where operators run the scripts."""
    return subprocess.run(list(args), cwd=deploy, capture_output=True, text=True, timeout=60, input=input,
                          env={**os.environ, **(env or {})})


def functions(script: Path, *names: str) -> str:
    """The source of the named top-level functions of a script (`name() {` up to the closing `}`)."""
    text = script.read_text()
    found = []
    for name in names:
        match = re.search(rf"^{re.escape(name)}\(\) \{{\n.*?^\}}\n", text, re.S | re.M)
        assert match, f"{name}() not found in {script}"
        found.append(match.group(0))
    return "".join(found)


def bash(deploy: Path, code: str, *, libs=("common",), env: dict | None = None, input: str | None = None):
    """Run CODE in bash with the scripts' strict mode and the given scripts/lib/<name>.sh sourced."""
    sources = "".join(f"source scripts/lib/{lib}.sh\n" for lib in libs)
    return run(deploy, "bash", "-c", f"set -Eeuo pipefail\n{sources}{code}", env=env, input=input)


def reasons(proc) -> list[str]:
    """The script's stderr lines without log()'s time of day ("12:34:56 ERROR: ..." -> "ERROR: ...")."""
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in proc.stderr.splitlines()]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under FOLDER with its size and modification time: compare two to see a write."""
    return {str(path.relative_to(folder)): (path.lstat().st_size, path.lstat().st_mtime_ns)
            for path in sorted(folder.rglob("*"))}
