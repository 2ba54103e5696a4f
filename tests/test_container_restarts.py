"""The restart collector of the bundled monitoring (monitoring/container-metrics/container-restarts.sh).

It runs against a stub `docker` on PATH that answers `docker ps` and `docker inspect` the way the
CLI does: one id per line, one formatted line per container, "Error: No such object: <id>" on
stderr and exit 1 for an id that is gone. The real CLI and engine run it in tests/live/test_monitoring.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from script_helpers import private_copy

SCRIPT = "monitoring/container-metrics/container-restarts.sh"
ANSWER_SET = "defaults"  # medium: monitoring bundled

STUB = r"""#!/bin/sh
# ps: the ids of $STUB_DIR/<project>; inspect: a line per id, an error for one in $STUB_DIR/gone,
# no answer for one in $STUB_DIR/locked.
echo "$1" >>"$STUB_DIR/calls"
case "$1" in
ps)
    project="${4#label=com.docker.compose.project=}"
    [ -f "$STUB_DIR/ps-fails" ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
    cat "$STUB_DIR/$project" 2>/dev/null
    exit 0 ;;
inspect)
    [ -f "$STUB_DIR/inspect-hangs" ] && exec sleep 30
    [ -f "$STUB_DIR/inspect-fails" ] && { echo "Error response from daemon: i/o timeout" >&2; exit 1; }
    shift 3
    rc=0
    for id in "$@"; do
        grep -qx "$id" "$STUB_DIR/locked" 2>/dev/null && exec sleep 30
        if grep -qx "$id" "$STUB_DIR/gone" 2>/dev/null; then
            echo "Error: No such object: $id" >&2; rc=1
        else
            echo "petory_container_restarts_total{env=\"prod\",service=\"$id\",container=\"petory-$id-1\"} 2"
        fi
    done
    exit $rc ;;
esac
exit 3
"""


@pytest.fixture(scope="module")
def script(rendered, tmp_path_factory) -> Path:
    deploy = private_copy(rendered, tmp_path_factory.mktemp("restarts"), ANSWER_SET)
    path = deploy / SCRIPT
    assert path.is_file(), f"{SCRIPT} is not rendered for {ANSWER_SET}"
    return path


@pytest.fixture
def stub(tmp_path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STUB)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "petory").write_text("backend\nmysql\n")
    (tmp_path / "stub" / "petory-monitoring").write_text("prometheus\n")
    (tmp_path / "out").mkdir()
    return tmp_path


def collect(script: Path, stub: Path, **env: str):
    return subprocess.run(["sh", str(script), "--once"], capture_output=True, text=True, timeout=20,
                          env={**os.environ, "PATH": f"{stub / 'bin'}:{os.environ['PATH']}",
                               "STUB_DIR": str(stub / "stub"), "PETORY_PROJECT": "petory", "PETORY_ENV": "prod",
                               "METRICS_TEXTFILE_DIR": str(stub / "out"), **env})


def series(stub: Path) -> list[str]:
    return [line.split("service=\"")[1].split("\"")[0]
            for line in (stub / "out" / "containers-prod.prom").read_text().splitlines() if not line.startswith("#")]


def test_every_container_of_both_projects_gets_a_line_with_help_and_type(script, stub):
    proc = collect(script, stub)
    assert proc.returncode == 0, proc.stderr
    text = (stub / "out" / "containers-prod.prom").read_text()
    assert text.startswith("# HELP petory_container_restarts_total ")
    assert "# TYPE petory_container_restarts_total counter\n" in text
    assert series(stub) == ["backend", "mysql", "prometheus"]
    assert not (stub / "out" / "containers-prod.prom.tmp").exists()
    # One CLI run per project listing and one for every container: the collector's CPU share is small.
    assert (stub / "stub" / "calls").read_text().split() == ["ps", "ps", "inspect"]


def test_a_container_removed_between_listing_and_inspection_only_loses_its_line(script, stub):
    (stub / "stub" / "gone").write_text("mysql\n")
    proc = collect(script, stub)
    assert proc.returncode == 0, proc.stderr
    assert series(stub) == ["backend", "prometheus"]
    assert (stub / "stub" / "calls").read_text().split() == ["ps", "ps", "inspect"]


def test_a_container_the_engine_does_not_answer_for_costs_only_its_line_and_is_named(script, stub):
    (stub / "stub" / "locked").write_text("mysql\n")
    proc = collect(script, stub, INSPECT_TIMEOUT="1")
    assert proc.returncode == 0
    assert series(stub) == ["backend", "prometheus"]
    assert proc.stderr.splitlines() == [
        "container-restarts: docker inspect failed for 1 of 3 containers (mysql: no answer within 1 s)"]


@pytest.mark.parametrize("fault", ["ps-fails", "inspect-fails", "inspect-hangs"])
def test_a_daemon_error_or_silence_keeps_the_last_file_and_says_why(script, stub, fault):
    assert collect(script, stub).returncode == 0
    before = (stub / "out" / "containers-prod.prom").read_text()
    (stub / "stub" / fault).touch()
    proc = collect(script, stub, INSPECT_TIMEOUT="1")
    assert proc.returncode == 1
    assert (stub / "out" / "containers-prod.prom").read_text() == before
    [line] = proc.stderr.splitlines()
    assert line.startswith("container-restarts: docker "), line
    assert {"ps-fails": "Cannot connect to the Docker daemon", "inspect-fails": "i/o timeout",
            "inspect-hangs": "no answer within 1 s"}[fault] in line
