"""deploy.sh's wait for a new colour (`wait_ready`), run against a scripted `docker inspect`.

The live deploy tests prove the refusal of a release whose health check says DOWN; these cases
cover what a live stack cannot produce on demand: a crash at start, a restart, one failed check
that recovers, and the timeout.
"""

from __future__ import annotations

import pytest

from script_helpers import bash, functions, private_copy


@pytest.fixture
def deploy(rendered, tmp_path):
    return private_copy(rendered, tmp_path)


def wait_ready(deploy, tmp_path, inspections: list[str], timeout: int = 30) -> str:
    """Run wait_ready for one container whose `docker inspect` answers the given lines in turn
    (the last one from then on); `sleep` returns at once."""
    (tmp_path / "inspections").write_text("".join(line + "\n" for line in inspections))
    code = functions(deploy / "scripts/deploy.sh", "wait_ready") + f"""
compose_with() {{ echo c0ffee; }}
docker() {{
    local n; n=$(($(cat "{tmp_path}/polls" 2>/dev/null || echo 0) + 1)); echo "$n" >"{tmp_path}/polls"
    sed -n "$(( n < {len(inspections)} ? n : {len(inspections)} ))p" "{tmp_path}/inspections"
}}
sleep() {{ :; }}
if reason="$(wait_ready backend-green {timeout})"; then echo ready; else echo "refused: $reason"; fi
"""
    proc = bash(deploy, code, libs=())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_container_that_becomes_healthy_is_ready(deploy, tmp_path):
    # Connection refused (curl 7) while the JVM starts, then healthy.
    assert wait_ready(deploy, tmp_path, ["running 0 0 starting ", "running 0 0 starting 7,", "running 0 0 healthy 7,0,"]) == "ready"


def test_one_failed_check_that_recovers_is_not_a_refusal(deploy, tmp_path):
    assert wait_ready(deploy, tmp_path, ["running 0 0 starting 22,", "running 0 0 healthy 22,0,"]) == "ready"


@pytest.mark.parametrize("inspection", ["exited 1 0 none -", "restarting 137 1 starting 7,", "running 0 1 starting 7,"])
def test_a_container_that_exits_or_restarts_is_refused_at_once(deploy, tmp_path, inspection):
    code = inspection.split()[1]
    assert wait_ready(deploy, tmp_path, [inspection]) == f"refused: a container exited with status {code}"


@pytest.mark.parametrize("inspections", [
    ["running 0 0 starting 22,", "running 0 0 starting 22,22,"],  # inside the start period: Docker still says starting
    ["running 0 0 unhealthy 22,22,22,"],
])
def test_two_http_errors_in_a_row_refuse_without_waiting_out_the_start_period(deploy, tmp_path, inspections):
    assert wait_ready(deploy, tmp_path, inspections) == (
        "refused: it answers its health check with an HTTP error (it runs, but reports itself unhealthy)")


def test_a_container_that_never_answers_is_refused_at_the_timeout(deploy, tmp_path):
    assert wait_ready(deploy, tmp_path, ["running 0 0 starting 7,7,7,"], timeout=0) == (
        "refused: health check did not pass within 0s")
