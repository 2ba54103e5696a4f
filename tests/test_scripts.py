"""The generated operator scripts: help, argument checks and refusals that need no Docker engine."""

from __future__ import annotations

import subprocess

import pytest

SCRIPTS = ["compose.sh", "deploy.sh", "rollback.sh", "backup-db.sh", "restore-db.sh",
           "install-backup-timer.sh", "upgrade-datastore.sh", "init-certificates.sh"]


@pytest.fixture(scope="module")
def project(copie_session):
    result = copie_session.copy(extra_answers={"environments": ["staging", "prod"]})
    assert result.exit_code == 0, result.exception
    return result.project_dir


def run(project, *args):
    return subprocess.run(list(args), cwd=project, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help_and_strict_mode(project, script):
    path = project / "scripts" / script
    assert "set -Eeuo pipefail" in path.read_text()
    proc = run(project, f"scripts/{script}", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: scripts/"), proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_missing_arguments_print_usage_and_fail(project, script):
    proc = run(project, f"scripts/{script}")
    assert proc.returncode != 0 and "Usage:" in proc.stdout + proc.stderr


@pytest.mark.parametrize("version,message", [
    ("latest", "refusing the mutable tag 'latest'"),
    ("bad tag!", "is not a valid image tag"),
])
def test_deploy_refuses_mutable_or_invalid_tags(project, version, message):
    proc = run(project, "scripts/deploy.sh", "prod", version)
    assert proc.returncode == 1 and message in proc.stderr


def test_unknown_environment_and_missing_env_file_are_named(project):
    proc = run(project, "scripts/deploy.sh", "qa", "v1")
    assert proc.returncode == 1 and "unknown environment 'qa'" in proc.stderr
    env_file = project / "env" / "staging.env"
    saved = env_file.read_text()
    env_file.unlink()
    try:
        proc = run(project, "scripts/backup-db.sh", "staging")
        assert proc.returncode == 1 and "env/staging.env is missing" in proc.stderr
    finally:
        env_file.write_text(saved)
        env_file.chmod(0o600)


def test_rollback_without_history_says_so(project):
    proc = run(project, "scripts/rollback.sh", "prod", "--yes")
    assert proc.returncode == 1 and "no deploy history for prod" in proc.stderr


def test_backup_timer_units_are_persistent_and_run_the_backup(project):
    proc = run(project, "scripts/install-backup-timer.sh", "prod", "--print", "--at", "*-*-* 04:00:00")
    assert proc.returncode == 0, proc.stderr
    assert "OnCalendar=*-*-* 04:00:00" in proc.stdout and "Persistent=true" in proc.stdout
    assert f"ExecStart={project}/scripts/backup-db.sh prod --retention-days 14" in proc.stdout
