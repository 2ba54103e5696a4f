"""The generated operator scripts: shape, help, the shared option parser, argument checks and
refusals, and the pieces of deploy.sh that need no Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from script_helpers import bash, functions, private_copy, run

SCRIPTS = ["compose.sh", "deploy.sh", "rollback.sh", "backup-db.sh", "restore-db.sh", "ship-binlogs.sh",
           "install-backup-timer.sh", "upgrade-datastore.sh", "init-certificates.sh", "certificates.sh"]


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    """The deploy/ folder of a private copy of the servers-only render (staging and prod)."""
    return private_copy(rendered, tmp_path_factory.mktemp("scripts"))


@pytest.fixture
def fresh(rendered, tmp_path):
    """A private copy for a test that changes the state or the env files."""
    return private_copy(rendered, tmp_path)


def all_script_files(deploy):
    scripts = deploy / "scripts"
    return sorted([*scripts.glob("*.sh"), *(scripts / "lib").glob("*.sh")])


# --- shape ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help_and_strict_mode(deploy, script):
    path = deploy / "scripts" / script
    assert "set -Eeuo pipefail" in path.read_text()
    proc = run(deploy, f"scripts/{script}", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"Usage: scripts/{script}"), proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_reads_top_to_bottom(deploy, script):
    """Defaults, then functions, then `main "$@"` as the last line: no flow between the functions."""
    lines = (deploy / "scripts" / script).read_text().rstrip("\n").splitlines()
    assert lines[-1] == 'main "$@"'
    top_level, heredoc = [], None
    for line in lines:
        if heredoc:
            heredoc = None if line == heredoc else heredoc
            continue
        if match := re.search(r"<<'?([A-Z]+)'?", line):
            heredoc = match.group(1)
        if line and not line[0].isspace() and not line.startswith("#"):
            top_level.append(line)
    allowed = re.compile(r"^(set -Eeuo pipefail|source .*|[a-z_]+\(\) \{.*|\}|[A-Za-z_]+=.*|declare -A .*|"
                         r"main \"\$@\")$")
    stray = [line for line in top_level if not allowed.match(line)]
    assert not stray, stray
    # A trap, a lock or a Compose call at top level would run before the options are read.
    assert not [line for line in top_level if re.match(r"(trap|take_lock|compose|docker|exec) ", line)]


def test_no_inline_python_and_no_dead_helpers(deploy):
    for path in all_script_files(deploy):
        text = path.read_text()
        assert "python3 -c" not in text and "python -c" not in text, path
        assert "tr '[:lower:]' '[:upper:]'" not in text, path  # ${x^^} everywhere
    common = (deploy / "scripts/lib/common.sh").read_text()
    assert "COLOURS" not in common and "parse_confirmable_args" not in common
    assert "env_value()" not in (deploy / "scripts/deploy.sh").read_text()


def test_every_script_with_options_uses_the_shared_parser(deploy):
    for path in (deploy / "scripts").glob("*.sh"):
        text = path.read_text()
        assert "parse_args " in text, path
        assert "while (($#))" not in text and 'case "${1:-}"' not in text, path  # no hand-rolled loop


def test_the_profile_prefix_is_written_once(deploy):
    text = (deploy / "scripts/deploy.sh").read_text()
    assert text.count("COMPOSE_PROFILES=") == 2  # compose_with, and image_repo's single colour
    assert text.count("compose_with ") >= 6


# --- option parser -------------------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_arguments_print_usage_and_fail(deploy, script):
    proc = run(deploy, f"scripts/{script}")
    assert proc.returncode == 2 and "Usage:" in proc.stdout + proc.stderr


@pytest.mark.parametrize("args,message", [
    (["prod", "v1", "--bogus"], "unknown option --bogus"),
    (["prod", "v1", "--wait-lock"], "--wait-lock needs a value"),
    (["prod", "v1", "--wait-lock="], "--wait-lock needs a value"),
    (["prod", "v1", "--keep-images", "2"], "--keep-images must be at least 3"),
    (["prod", "v1", "--keep-images=x"], "--keep-images takes a whole number, not 'x'"),
    (["prod", "v1", "--drain-timeout", "1m"], "--drain-timeout takes a whole number, not '1m'"),
    (["prod", "v1", "--only", "mysql"], "--only takes backend or frontend"),
    (["prod", "v1", "--no-pull=1"], "--no-pull takes no value"),
    (["prod", "v1", "--wait-lock", "--force"], "--wait-lock needs a value"),  # an option is not a value
])
def test_bad_options_get_one_line_and_change_nothing(fresh, args, message):
    proc = run(fresh, "scripts/deploy.sh", *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "--help" in proc.stderr, proc.stderr
    assert not (fresh / ".deploy").exists()  # refused before any state was created


def test_values_may_follow_as_a_word_or_after_an_equals_sign(deploy):
    for args in (["--retention-days", "3"], ["--retention-days=3"]):
        proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--print", *args)
        assert proc.returncode == 0 and "--retention-days 3\n" in proc.stdout, proc.stderr


def test_compose_passes_every_word_after_the_environment_on(deploy):
    proc = run(deploy, "scripts/compose.sh", "prod", "config", "--services")
    assert proc.returncode == 0 and "edge" in proc.stdout.split(), proc.stderr
    proc = run(deploy, "scripts/compose.sh", "prod", "--help")  # docker compose's help, not compose.sh's
    assert proc.returncode == 0 and "Usage:  docker compose" in proc.stdout


def test_parse_args_with_a_script_of_its_own(deploy):
    code = """
usage() { echo "Usage: demo <a> [b]"; }
verbose=0 name=""
OPTIONS=(--verbose --name=)
option() { case "$1" in --verbose) verbose=1 ;; --name) name="$2" ;; esac; }
parse_args 1 2 "$@"
echo "${#POSITIONAL[@]} ${POSITIONAL[*]} verbose=${verbose} name=${name}"
"""
    ok = bash(deploy, code + "", env={})
    assert ok.returncode == 2 and "Usage: demo" in ok.stderr  # no positional argument
    proc = run(deploy, "bash", "-c", "set -Eeuo pipefail; source scripts/lib/common.sh\n" + code,
               "demo", "x", "--name", "-n", "--verbose", "--", "-y")
    assert proc.stdout == "2 x -y verbose=1 name=-n\n", proc.stderr  # a value may start with -
    proc = run(deploy, "bash", "-c", "set -Eeuo pipefail; source scripts/lib/common.sh\n" + code,
               "demo", "x", "--name=--verbose")
    assert proc.stdout == "1 x verbose=0 name=--verbose\n", proc.stderr  # even with an option's name, after =
    proc = run(deploy, "bash", "-c", "set -Eeuo pipefail; source scripts/lib/common.sh\n" + code,
               "demo", "x", "--name", "--verbose")
    assert proc.returncode == 2 and "--name needs a value" in proc.stderr, proc.stderr
    proc = run(deploy, "bash", "-c", "set -Eeuo pipefail; source scripts/lib/common.sh\n" + code, "demo")
    assert proc.returncode == 2 and "ERROR: missing <a>\nUsage: demo" in proc.stderr, proc.stderr


# --- refusals (tests/test_script_errors.py has every bad input and its exact reason) --------------

def test_rollback_without_history_says_so(deploy):
    proc = run(deploy, "scripts/rollback.sh", "prod", "--yes")
    assert proc.returncode == 1 and "no deploy history for prod" in proc.stderr


def test_backup_label_must_fit_in_a_file_name(deploy):
    proc = run(deploy, "scripts/backup-db.sh", "prod", "--label", "../x")
    assert proc.returncode == 2 and "--label takes letters" in proc.stderr


def test_backup_timer_units_are_persistent_and_run_the_backup(deploy):
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--print", "--at", "*-*-* 04:00:00")
    assert proc.returncode == 0, proc.stderr
    assert "OnCalendar=*-*-* 04:00:00" in proc.stdout and "Persistent=true" in proc.stdout
    assert f"ExecStart={deploy}/scripts/backup-db.sh prod --retention-days 14" in proc.stdout
    assert "# petory-prod-backup.timer" in proc.stdout  # the Compose project's name, not the checkout's folder


# --- the edge's blue-green state -----------------------------------------------------------------

def test_initial_active_conf_is_the_writers_output(deploy):
    """nginx/initial-state/active.conf is byte-equal to `edge_state blue blue`, its one writer."""
    proc = bash(deploy, "edge_state blue blue")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (deploy / "nginx/initial-state/active.conf").read_text()
    assert "map with an empty source always yields its default" in proc.stdout


def test_active_conf_has_one_writer(deploy):
    writes = []
    for path in all_script_files(deploy):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "active.conf" in line and not line.lstrip().startswith("#") and re.search(r">|\bcp\b|\bmv\b", line):
                writes.append(f"{path.name}:{number}: {line.strip()}")
    # write_edge_state's rename, and deploy.sh's backup copy and its restore on a refused switch.
    assert len(writes) == 4, writes
    assert sum("write_edge_state" in line for line in (deploy / "scripts/lib/common.sh").read_text().splitlines()
               if not line.lstrip().startswith("#")) == 2  # defined once, called by ensure_state


def test_state_is_created_with_the_writer_and_switches_only_the_named_app(fresh):
    proc = bash(fresh, "ensure_state prod; write_edge_state prod green blue; cat .deploy/prod/edge/active.conf")
    assert proc.returncode == 0, proc.stderr
    assert "map \"\" $backend_upstream { default backend_green; }" in proc.stdout
    assert "map \"\" $backend_preview_upstream { default backend_blue; }" in proc.stdout
    assert "map \"\" $frontend_upstream { default frontend_blue; }" in proc.stdout
    assert (fresh / ".deploy/prod/edge/active.conf").stat().st_mode & 0o777 == 0o644
    assert not list((fresh / ".deploy/prod/edge").glob(".active.*"))  # no temporary file left behind
    fresh_state = bash(fresh, "ensure_state staging; cat .deploy/staging/edge/active.conf")
    assert fresh_state.stdout == (fresh / "nginx/initial-state/active.conf").read_text()


# --- deploy.sh pieces ----------------------------------------------------------------------------

def test_image_repository_comes_from_compose_without_the_dependencies(deploy):
    code = functions(deploy / "scripts/deploy.sh", "image_repo") + 'env=prod\nimage_repo backend\nimage_repo frontend\n'
    proc = bash(deploy, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ghcr.io/petory-team/petory-backend", "ghcr.io/petory-team/petory-frontend"]
    proc = bash(deploy, code, env={"BACKEND_IMAGE": "registry.internal:5000/petory/backend"})
    assert proc.stdout.split()[0] == "registry.internal:5000/petory/backend"


@pytest.fixture(scope="module")
def docker_images():
    """Two local images without layers, one with a HEALTHCHECK (needs a Docker engine)."""
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.skip("no Docker engine")
    tar = subprocess.run(["tar", "cf", "-", "-T", "/dev/null"], capture_output=True, check=True).stdout
    images = {"with": "petory-scripts-healthcheck:1", "without": "petory-scripts-no-healthcheck:1"}
    subprocess.run(["docker", "import", "--change", "HEALTHCHECK --start-period=40s --interval=5s --timeout=3s "
                    "--retries=4 CMD true", "-", images["with"]], input=tar, capture_output=True, check=True)
    subprocess.run(["docker", "import", "-", images["without"]], input=tar, capture_output=True, check=True)
    yield images
    subprocess.run(["docker", "image", "rm", *images.values()], capture_output=True)


def test_health_timeout_reads_the_image_healthcheck(deploy, docker_images):
    code = functions(deploy / "scripts/deploy.sh", "health_timeout")
    proc = bash(deploy, code + f"health_timeout {docker_images['with']}; echo; health_timeout {docker_images['without']}")
    assert proc.returncode == 0, proc.stderr
    # 40 + 4 x (5 + 3) + 10 = 82; without a HEALTHCHECK Docker's defaults: 3 x (30 + 30) + 10 = 190.
    assert proc.stdout.split() == ["82", "190"]


def test_deploy_metrics_carry_the_other_outcome_over(fresh, tmp_path):
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    code = functions(fresh / "scripts/deploy.sh", "export_metrics") + """
env=prod
ensure_state prod
state_set prod BACKEND_ACTIVE green
state_set prod BACKEND_GREEN_TAG sha-1234567
state_set prod FRONTEND_BLUE_TAG v1
export_metrics 0
success="$(metrics_value deploy prod petory_deploy_last_success_timestamp_seconds)"
sleep 1
export_metrics 1
[[ "$(metrics_value deploy prod petory_deploy_last_success_timestamp_seconds)" == "${success}" ]]
"""
    proc = bash(fresh, code, libs=("common", "metrics"), env={"METRICS_TEXTFILE_DIR": str(metrics)})
    assert proc.returncode == 0, proc.stderr
    text = (metrics / "petory_deploy_prod.prom").read_text()
    assert 'petory_deploy_version_info{env="prod",app="backend",version="sha-1234567",colour="green"} 1' in text
    assert 'petory_deploy_version_info{env="prod",app="frontend",version="v1",colour="blue"} 1' in text
    success = re.search(r"^petory_deploy_last_success_timestamp_seconds\{env=\"prod\"\} (\d+)$", text, re.M)
    failure = re.search(r"^petory_deploy_last_failure_timestamp_seconds\{env=\"prod\"\} (\d+)$", text, re.M)
    assert success and failure and int(failure.group(1)) > int(success.group(1))
