"""Bad input to the generated scripts: each mistake gets its one-line reason and exit code, and
nothing is written. No Docker engine is reachable here (DOCKER_HOST names a socket that does not
exist), as on a host whose engine is down: the scripts must say so before anything else."""

from __future__ import annotations

import gzip
import re
import shutil
import socket
from pathlib import Path

import pytest

import deployment
from script_helpers import bash, private_copy, reasons, run, snapshot

ANSWER_SET = "defaults"  # dev, staging and prod; prod uses Let's Encrypt
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent.sock"}
ENGINE_DOWN = re.compile(r"ERROR: cannot reach the Docker engine \(docker info failed: \S.*nonexistent\.sock.*\); "
                         r"start it or check DOCKER_HOST")
MUTABLE = ("ERROR: refusing the mutable tag '{tag}': deploy sha-<commit> or a release MAJOR.MINOR.PATCH, "
           "or pass --allow-mutable-tag; see scripts/{script} --help")


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    """deploy/ of a private copy of the default render, shared by the tests that must write nothing."""
    return private_copy(rendered, tmp_path_factory.mktemp("script-errors"), ANSWER_SET)


@pytest.fixture
def fresh(rendered, tmp_path):
    """A private copy for a test that prepares state (a history, a removed env file)."""
    return private_copy(rendered, tmp_path, ANSWER_SET)


@pytest.fixture
def refused(tmp_path):
    """refused(deploy, *command) -> the finished process, after checking that it wrote nothing:
    no file under deploy/ changed, and no metrics were exported to METRICS_TEXTFILE_DIR."""
    metrics = tmp_path / "textfile"
    metrics.mkdir()

    def check(deploy: Path, *command: str, env: dict | None = None):
        before = snapshot(deploy)
        proc = run(deploy, *command, env={**NO_ENGINE, "METRICS_TEXTFILE_DIR": str(metrics), **(env or {})})
        assert snapshot(deploy) == before, f"{command} changed files in deploy/:\n{proc.stderr}"
        assert not list(metrics.iterdir()), f"{command} exported metrics"
        return proc

    return check


@pytest.fixture(scope="module")
def needs_docker_cli():
    if not shutil.which("docker"):
        pytest.skip("the docker CLI is not installed; these tests need it to fail to reach the engine")


def usage_error(script: str, reason: str) -> list[str]:
    return [f"ERROR: {reason}; see scripts/{script} --help"]


# --- environments --------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["deploy.sh", "qa", "1.2.3"], ["rollback.sh", "qa"], ["backup-db.sh", "qa"],
    ["restore-db.sh", "qa", "dump.sql.gz"], ["upgrade-datastore.sh", "qa", "mysql"],
    ["init-certificates.sh", "qa"], ["compose.sh", "qa", "ps"], ["certificates.sh", "ca", "qa"],
    ["deploy.sh", "../prod", "1.2.3"], ["apply.sh", "qa"], ["rotate-secret.sh", "qa", "jwt"],
], ids=lambda command: " ".join(command))
def test_an_unknown_environment_lists_the_valid_ones(deploy, refused, command):
    script, env = command[0], command[1 + (command[0] == "certificates.sh")]
    proc = refused(deploy, f"scripts/{script}", *command[1:])
    assert (proc.returncode, reasons(proc)) == (
        2, usage_error(script, f"unknown environment '{env}'; use one of: dev staging prod"))


def test_the_valid_environments_are_those_of_the_repository(rendered, tmp_path, refused):
    servers = private_copy(rendered, tmp_path, "servers-only")
    proc = refused(servers, "scripts/deploy.sh", "dev", "1.2.3")
    assert (proc.returncode, reasons(proc)) == (2, usage_error("deploy.sh", "unknown environment 'dev'; use one of: staging prod"))
    proc = refused(servers, "scripts/backup-db.sh")
    assert proc.returncode == 2 and reasons(proc)[0] == "ERROR: missing <env> (one of: staging prod)"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_a_missing_server_env_file_comes_from_the_secret_store(fresh, refused, env):
    (fresh / "env" / f"{env}.env").unlink()
    proc = refused(fresh, "scripts/deploy.sh", env, "1.2.3")
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: env/{env}.env is missing: copy it from the secret store (new secrets would not match the {env} database)"])
    assert "env-sync" not in proc.stderr


def test_a_missing_dev_env_file_is_made_with_env_sync(fresh, refused):
    (fresh / "env/dev.env").unlink()
    proc = refused(fresh, "scripts/backup-db.sh", "dev")
    assert (proc.returncode, reasons(proc)) == (1, ["ERROR: env/dev.env is missing: create it with make env-sync ENV=dev"])


def test_the_scripts_know_the_models_server_environments(deploy):
    """scripts/lib/common.sh's lists (scripts/env_files.py's: tests/test_env_files.py)."""
    proc = bash(deploy, 'echo "${ENVIRONMENTS[*]}"; echo "${SERVER_ENVIRONMENTS[*]}"')
    assert proc.stdout.splitlines() == [" ".join(deployment.ENVIRONMENTS), " ".join(deployment.SERVER_ENVIRONMENTS)]


@pytest.mark.parametrize("command,advice", [
    (["apply.sh", "dev"], "make up ENV=dev applies changes there"),
    (["rotate-secret.sh", "dev", "redis"], "in dev, edit env/dev.env and run make up ENV=dev"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_changing_a_running_installation_is_for_servers(deploy, refused, command, advice):
    proc = refused(deploy, f"scripts/{command[0]}", *command[1:])
    assert (proc.returncode, reasons(proc)) == (1, [f"ERROR: dev is not a server environment; {advice}"])


# --- options and arguments -----------------------------------------------------------------------

@pytest.mark.parametrize("command,reason", [
    (["deploy.sh", "prod", "1.2.3", "--wait-lock"], "--wait-lock needs a value"),
    (["deploy.sh", "prod", "--wait-lock", "--force", "1.2.3"], "--wait-lock needs a value"),
    (["deploy.sh", "prod", "1.2.3", "--wait-lock="], "--wait-lock needs a value"),
    (["deploy.sh", "prod", "1.2.3", "--drain-timeout", "abc"], "--drain-timeout takes a whole number, not 'abc'"),
    (["deploy.sh", "prod", "1.2.3", "--keep-images=2"], "--keep-images must be at least 3"),
    (["deploy.sh", "prod", "1.2.3", "--force=yes"], "--force takes no value"),
    (["deploy.sh", "prod", "1.2.3", "extra"], "unexpected argument 'extra'"),
    (["init-certificates.sh", "--frce"], "unknown option --frce"),
    (["init-certificates.sh", "prod", "--frce"], "unknown option --frce"),
    (["backup-db.sh", "prod", "--retention-days"], "--retention-days needs a value"),
    (["backup-db.sh", "prod", "--label", "--retention-days", "3"], "--label needs a value"),
    (["rollback.sh", "prod", "--yes=1"], "--yes takes no value"),
    (["upgrade-datastore.sh", "prod", "postgres", "--yes"], "the service must be mysql or redis, not 'postgres'"),
    (["apply.sh", "prod", "--restart", "backend"], "--restart takes edge, mysql or redis"),
    (["apply.sh", "prod", "--dry-run=1"], "--dry-run takes no value"),
    (["rotate-secret.sh", "prod", "ssh"], "unknown secret 'ssh'; use jwt, redis or mysql"),
    (["rotate-secret.sh", "prod", "jwt", "--overlap", "5x"], "--overlap takes a duration such as 90m, 24h or 7d"),
    (["rotate-secret.sh", "prod", "jwt", "--overlap", "0h"], "--overlap takes a duration such as 90m, 24h or 7d"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_a_bad_option_gets_a_one_line_reason(deploy, refused, command, reason):
    proc = refused(deploy, f"scripts/{command[0]}", *command[1:])
    assert (proc.returncode, reasons(proc)) == (2, usage_error(command[0], reason))


@pytest.mark.parametrize("command,missing", [
    (["deploy.sh"], "<env> (one of: dev staging prod)"),
    (["deploy.sh", "prod"], "<version>"),
    (["deploy.sh", "prod", "--no-pull"], "<version>"),
    (["restore-db.sh", "prod", "--yes"], "<backup.sql.gz>"),
    (["upgrade-datastore.sh", "prod"], "<mysql|redis>"),
    (["certificates.sh"], "<command>"),
    (["compose.sh"], "<env> (one of: dev staging prod)"),
    (["apply.sh"], "<env> (one of: dev staging prod)"),
    (["rotate-secret.sh", "prod"], "<secret>"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_a_missing_argument_is_named_before_the_usage(deploy, refused, command, missing):
    proc = refused(deploy, f"scripts/{command[0]}", *command[1:])
    lines = reasons(proc)
    assert proc.returncode == 2 and lines[0] == f"ERROR: missing {missing}", proc.stderr
    assert lines[1].startswith(f"Usage: scripts/{command[0]} ") and not proc.stdout


# --- the Docker engine ---------------------------------------------------------------------------

@pytest.fixture
def history(fresh):
    """fresh, with a deploy history of prod to roll back in."""
    state = fresh / ".deploy/prod"
    state.mkdir(parents=True)
    (state / "history").write_text("2024-01-01T00:00:00Z prod main backend=blue frontend=blue\n"
                                   "2024-01-02T00:00:00Z prod 1.2.2 backend=green frontend=green\n"
                                   "2024-01-03T00:00:00Z prod 1.2.3 backend=blue frontend=blue\n")
    (state / "current").write_text("1.2.3\n")
    return fresh


@pytest.fixture
def dump(tmp_path):
    path = tmp_path / "petory-20240101T000000Z.sql.gz"
    path.write_bytes(gzip.compress(b"-- Dump completed\n"))
    return path


@pytest.mark.parametrize("command", [
    ["deploy.sh", "prod", "sha-abc1234"], ["deploy.sh", "staging", "v1.2.3", "--no-pull", "--only", "backend"],
    ["backup-db.sh", "prod"], ["restore-db.sh", "prod", "{dump}", "--yes"],
    ["upgrade-datastore.sh", "prod", "mysql", "--yes"], ["upgrade-datastore.sh", "staging", "redis", "--yes"],
    ["init-certificates.sh", "prod"], ["init-certificates.sh", "dev"], ["rollback.sh", "prod", "--yes"],
    ["apply.sh", "prod"], ["apply.sh", "staging", "--dry-run"], ["rotate-secret.sh", "prod", "jwt"],
], ids=lambda command: " ".join(command))
def test_an_unreachable_engine_is_reported_once_up_front(history, dump, refused, needs_docker_cli, command):
    """Not as "the mysql service of prod is not running", and before a CA, a lock or state is made."""
    proc = refused(history, f"scripts/{command[0]}", *(word.format(dump=dump) for word in command[1:]))
    lines = reasons(proc)
    assert proc.returncode == 1 and len(lines) == 1 and ENGINE_DOWN.fullmatch(lines[0]), proc.stderr
    assert not (history / ".deploy/prod/ca").exists() and not (history / "backups").exists()


def test_a_missing_docker_is_reported_as_such(deploy, refused, tmp_path):
    """PATH holds every command of this host except docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin"):
        for tool in Path(folder).iterdir():
            if not tool.name.startswith("docker") and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    proc = refused(deploy, "scripts/deploy.sh", "prod", "1.2.3", env={"PATH": str(bin_dir)})
    assert (proc.returncode, reasons(proc)) == (1, ["ERROR: docker is not installed; install Docker Engine and its Compose plugin"])


# --- image tags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["sha-abc1234", "sha-" + "0123456789abcdef" * 2 + "01234567", "v1.2.3", "1.2.3",
                                 "v10.20.300"])
def test_an_immutable_tag_passes_the_tag_check(deploy, refused, needs_docker_cli, tag):
    """It gets as far as the engine check, the first thing after the arguments."""
    proc = refused(deploy, "scripts/deploy.sh", "prod", tag)
    lines = reasons(proc)
    assert proc.returncode == 1 and len(lines) == 1 and ENGINE_DOWN.fullmatch(lines[0]), proc.stderr


BAD_TAGS = ["latest", "Latest", "main", "stable", "sha-xyz", "sha-abc123", "sha-ABC1234", "1.2", "v1.2.3-rc.1", "V1.2.3"]


@pytest.mark.parametrize("tag", BAD_TAGS)
def test_a_mutable_tag_is_refused(deploy, refused, tag):
    proc = refused(deploy, "scripts/deploy.sh", "prod", tag)
    assert (proc.returncode, reasons(proc)) == (2, [MUTABLE.format(tag=tag, script="deploy.sh")])


@pytest.mark.parametrize("tag", ["main", "Latest", "1.2"])
def test_allow_mutable_tag_warns_and_goes_on(deploy, refused, needs_docker_cli, tag):
    proc = refused(deploy, "scripts/deploy.sh", "prod", tag, "--allow-mutable-tag")
    lines = reasons(proc)
    assert proc.returncode == 1 and len(lines) == 2, proc.stderr
    assert lines[0] == (f"WARNING: '{tag}' is a mutable tag (--allow-mutable-tag): the image behind it may change, "
                        "so a later rollback to it may not bring back what runs now")
    assert ENGINE_DOWN.fullmatch(lines[1]), proc.stderr


@pytest.mark.parametrize("tag", ["bad tag!", "-main", "a" * 129])
def test_an_invalid_tag_is_refused_even_when_mutable_tags_are_allowed(deploy, refused, tag):
    proc = refused(deploy, "scripts/deploy.sh", "prod", "--allow-mutable-tag", "--", tag)
    assert (proc.returncode, reasons(proc)) == (2, usage_error("deploy.sh", f"'{tag}' is not a valid image tag"))


def test_rollback_applies_the_tag_rule_and_passes_the_option_on(history, refused, needs_docker_cli):
    proc = refused(history, "scripts/rollback.sh", "prod", "main", "--yes")
    assert (proc.returncode, reasons(proc)) == (2, [MUTABLE.format(tag="main", script="rollback.sh")])
    proc = refused(history, "scripts/rollback.sh", "prod", "main", "--yes", "--allow-mutable-tag")
    lines = reasons(proc)
    assert proc.returncode == 1 and len(lines) == 2, proc.stderr
    assert lines[0].startswith("WARNING: 'main' is a mutable tag") and ENGINE_DOWN.fullmatch(lines[1])
    # Without a version: the newest other version of the history, here one deployed with the option.
    (history / ".deploy/prod/current").write_text("1.2.2\n")
    (history / ".deploy/prod/history").write_text("2024-01-01T00:00:00Z prod 1.2.2 backend=blue frontend=blue\n"
                                                  "2024-01-02T00:00:00Z prod main backend=green frontend=green\n"
                                                  "2024-01-03T00:00:00Z prod 1.2.2 backend=blue frontend=blue\n")
    proc = refused(history, "scripts/rollback.sh", "prod", "--yes")
    assert (proc.returncode, reasons(proc)) == (2, [MUTABLE.format(tag="main", script="rollback.sh")])


# --- recovery onto a new server ------------------------------------------------------------------

@pytest.fixture
def released(fresh):
    """The private copy as a git checkout whose HEAD is the release v1.0.0."""
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "r"],
                    ["tag", "v1.0.0"]):
        run(fresh.parent, "git", *command).check_returncode()
    return fresh


@pytest.mark.parametrize("args,code,reason", [
    ([], 2, "--version is missing: the release prod ran (git tag --sort=-creatordate | head -n 3); see scripts/recover.sh --help"),
    (["--version", "latest"], 2, "refusing the mutable tag 'latest': deploy sha-<commit> or a release MAJOR.MINOR.PATCH, "
                                 "or pass --allow-mutable-tag; see scripts/recover.sh --help"),
    (["--version", "v2.0.0"], 1, "v2.0.0 is neither a tag nor sha-<commit> of this checkout (git fetch --tags first?); nothing changed"),
    (["--version", "v1.0.0", "--dump", "/nonexistent/petory-20260101T033000Z.sql.gz"], 1,
     "cannot read the dump /nonexistent/petory-20260101T033000Z.sql.gz"),
    (["--version", "v1.0.0"], 1, "no --dump given, and BACKUP_SFTP_TARGET (the off-site storage) is set neither in the "
                                 "environment nor in env/prod.env; give the dump with --dump FILE"),
], ids=["no version", "mutable", "unknown tag", "missing dump", "no off-site storage"])
def test_recover_refuses_bad_input_before_it_logs_in(released, refused, args, code, reason):
    proc = refused(released, "scripts/recover.sh", "prod", *args, env={"BACKUP_SFTP_TARGET": ""})
    assert (proc.returncode, reasons(proc)) == (code, [f"ERROR: {reason}"]), proc.stderr


def test_recover_needs_a_dump_named_by_backup_db_and_the_age_key_of_an_encrypted_one(released, refused, tmp_path):
    odd, encrypted = tmp_path / "copy.sql.gz", tmp_path / "petory-20260101T033000Z.sql.gz.age"
    odd.write_bytes(b"x")
    encrypted.write_bytes(b"x")
    proc = refused(released, "scripts/recover.sh", "prod", "--version", "v1.0.0", "--dump", str(odd))
    assert (proc.returncode, reasons(proc)) == (1, [
        "ERROR: copy.sql.gz is not named as scripts/backup-db.sh names dumps (<database>-<UTC time>.sql.gz[.age])"])
    proc = refused(released, "scripts/recover.sh", "prod", "--version", "v1.0.0", "--dump", str(encrypted),
                   env={"BACKUP_AGE_IDENTITY": ""})
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: {encrypted.name} is encrypted: pass --identity FILE (or BACKUP_AGE_IDENTITY) with the age key of backup/age-recipients.txt"])


def test_recover_names_the_host_and_account_it_cannot_log_in_to(released, refused, tmp_path):
    """A server that does not answer (here a closed port on 127.0.0.1, through SSH=) stops it with one
    line before anything is uploaded."""
    dump = tmp_path / "petory-20260101T033000Z.sql.gz"
    dump.write_bytes(gzip.compress(b"-- dump\n"))
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    ssh = f"ssh -F /dev/null -o HostName=127.0.0.1 -o Port={port} -o ConnectTimeout=5"
    proc = refused(released, "scripts/recover.sh", "prod", "--version", "v1.0.0", "--dump", str(dump), env={"SSH": ssh})
    assert proc.returncode == 1, proc.stderr
    assert re.fullmatch(rf"ERROR: cannot log in to [\w.-]+ as admin and act as deploy: ssh: connect to host 127\.0\.0\.1 "
                        rf"port {port}: Connection refused; run make provision ENV=prod first", reasons(proc)[-1]), proc.stderr
