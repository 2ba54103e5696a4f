"""The generated deploy/Makefile run with `make`, the backup-timer installer it calls, and dev's
tools in compose.dev.yaml: no Docker engine needed."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from script_helpers import private_copy, reasons, run, snapshot

# Answer sets whose Makefiles differ in their targets or environments (tests/answer_sets.py).
MAKEFILE_SETS = ["defaults", "servers-only", "dev-only", "minimal", "external-db"]


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    """The deploy/ folder of a private copy of the servers-only render (staging and prod)."""
    return private_copy(rendered, tmp_path_factory.mktemp("makefile"))


def make(deploy: Path, *args: str, env: dict | None = None):
    """`make -C deploy ARGS`, with the caller's environment less any ENV of its own (unless given)."""
    environ = {key: value for key, value in os.environ.items() if key != "ENV"}
    return run(deploy, "make", "--no-print-directory", *args, env={**environ, **(env or {})})


def help_lines(deploy: Path) -> list[str]:
    proc = make(deploy, "help")
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.startswith("  make ")]


# --- help, .PHONY --------------------------------------------------------------------------------

@pytest.mark.parametrize("answer_set", MAKEFILE_SETS)
def test_help_columns_align_after_the_longest_target(rendered, answer_set):
    lines = help_lines(rendered(answer_set) / "deploy")
    names = [line.split()[1] for line in lines]
    width = max(map(len, names))
    for line, name in zip(lines, names):
        # "  make <name padded to the longest>  <help>": every help text starts in the same column.
        assert line[len("  make "):][:width + 2] == name.ljust(width + 2), line
        assert line[len("  make ") + width + 2] != " ", line


@pytest.mark.parametrize("answer_set", MAKEFILE_SETS)
def test_phony_lists_exactly_the_targets_the_makefile_defines(rendered, answer_set):
    text = (rendered(answer_set) / "deploy/Makefile").read_text()
    phony = {word for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for word in line.split()}
    defined = set(re.findall(r"^([a-z][a-z-]*):(?!=)", text, re.M))
    assert phony == defined, {"phony, not defined": phony - defined, "defined, not phony": defined - phony}
    listed = {line.split()[1] for line in help_lines(rendered(answer_set) / "deploy")}
    assert listed == defined - {"check-env"}  # every task has its help line


# --- ENV -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("target", "env", "valid"), [
    ("maintenance-on", "qa", "staging prod"),
    ("maintenance-on", "dev", "staging prod"),  # dev is not generated in this set
    ("config", "prod staging", "staging prod"),  # one environment at a time
    ("backup-timer", "../prod", "staging prod"),
])
def test_an_env_that_was_not_generated_is_refused_with_the_valid_ones(deploy, target, env, valid):
    before = snapshot(deploy)
    proc = make(deploy, target, f"ENV={env}")
    assert proc.returncode == 2
    assert f"ENV={env} is not an environment of this repository; use one of: {valid}" in proc.stderr, proc.stderr
    assert proc.stdout == "" and snapshot(deploy) == before  # nothing ran


def test_a_missing_env_names_the_valid_ones_and_an_example(deploy):
    proc = make(deploy, "ps")
    assert proc.returncode == 2 and "Set ENV to one of: staging prod, e.g. make ps ENV=prod" in proc.stderr


def test_an_env_exported_by_the_shell_is_not_taken_for_the_environment(deploy):
    # A POSIX shell's ENV names its start-up file; some profiles export it.
    exported = {"ENV": str(Path.home() / ".shrc")}
    proc = make(deploy, "ps", env=exported)
    assert proc.returncode == 2 and "Set ENV to one of" in proc.stderr, proc.stderr
    proc = make(deploy, "-n", "maintenance-on", "ENV=prod", env={"ENV": "staging"})  # the command line counts
    assert proc.returncode == 0 and "mkdir -p .deploy/prod/edge" in proc.stdout and "staging" not in proc.stdout


def test_maintenance_on_and_off_for_a_valid_env(rendered, tmp_path):
    deploy = private_copy(rendered, tmp_path)
    on = make(deploy, "maintenance-on", "ENV=staging")
    assert on.returncode == 0 and (deploy / ".deploy/staging/edge/maintenance.flag").is_file(), on.stderr
    off = make(deploy, "maintenance-off", "ENV=staging")
    assert off.returncode == 0 and not (deploy / ".deploy/staging/edge/maintenance.flag").exists()


# --- make config ---------------------------------------------------------------------------------

def files(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under FOLDER: files with their size and modification time, folders by name only
    (a folder's own time changes when an entry comes and goes again)."""
    return {str(path.relative_to(folder)): None if path.is_dir() else (path.lstat().st_size, path.lstat().st_mtime_ns)
            for path in sorted(folder.rglob("*"))}


def test_config_prints_and_changes_nothing(rendered, tmp_path):
    if not shutil.which("docker"):
        pytest.skip("make config runs `docker compose config` (the CLI only, no engine)")
    deploy = private_copy(rendered, tmp_path)
    for prepare in (None, "staging"):  # a fresh checkout, then one whose other environment has state
        if prepare:
            assert make(deploy, "maintenance-on", f"ENV={prepare}").returncode == 0
        before = files(deploy)
        proc = make(deploy, "config", "ENV=prod")
        assert proc.returncode == 0, proc.stderr
        assert "name: petory-prod" in proc.stdout and "backend-blue:" in proc.stdout
        assert files(deploy) == before, "make config changed files"


# --- backup timer --------------------------------------------------------------------------------

NOT_BOOTED = "System has not been booted with systemd as init system (PID 1). Can't operate."


def fake_systemctl(tmp_path: Path, fail: str = "") -> tuple[dict, Path]:
    """A systemctl on PATH that logs its calls: systemd cannot run in the test's machine. FAIL names
    the subcommand that fails ("boot": every one, as on a host that systemd does not run)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "systemctl.calls"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "systemctl"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "{fail}:$1" in
    boot:*) echo "{NOT_BOOTED}" >&2; exit 1 ;;
    "$1:$1") echo "Failed to $1 unit: simulated" >&2; exit 1 ;;
    *:show) echo "Tue 2026-01-06 03:34:00 KST" ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, calls


def test_backup_timer_dry_run_prints_the_units_and_commands_and_writes_nothing(deploy, tmp_path):
    env, calls = fake_systemctl(tmp_path, fail="boot")
    before = snapshot(deploy)
    proc = make(deploy, "backup-timer", "ENV=prod", "DRY_RUN=1", env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "# petory-prod-backup.service, written to /etc/systemd/system/petory-prod-backup.service\n" in out
    assert "# petory-prod-backup.timer, written to /etc/systemd/system/petory-prod-backup.timer\n" in out
    assert f"ExecStart={deploy}/scripts/backup-db.sh prod --retention-days 14\n" in out
    assert out.endswith("# then:\nsystemctl daemon-reload\n"
                        "systemctl enable --now petory-prod-backup.timer petory-prod-backup-binlogs.timer\n")
    assert "dry run, nothing changed; a real run would refuse: " in proc.stderr
    assert "systemd is not running this host (PID 1 is " in proc.stderr
    assert calls.read_text() == "show --property=Version --value\n"  # asked, changed nothing
    assert snapshot(deploy) == before


@pytest.mark.parametrize(("fail", "unit_dir", "reason"), [
    ("boot", "units", "systemd is not running this host"),
    ("", "missing", "the unit directory {dir} does not exist"),
])
def test_backup_timer_checks_the_host_first_and_writes_nothing(deploy, tmp_path, fail, unit_dir, reason):
    env, calls = fake_systemctl(tmp_path, fail=fail)
    units = tmp_path / unit_dir
    if unit_dir == "units":
        units.mkdir()
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--unit-dir", str(units), env=env)
    assert proc.returncode == 1
    (line,) = reasons(proc)
    assert line.startswith("ERROR: backup timer not installed, nothing written: ") and reason.format(dir=units) in line
    assert calls.read_text().splitlines() == ["show --property=Version --value"]
    assert not units.exists() or not any(units.iterdir())


def test_backup_timer_installs_then_reports_unchanged(deploy, tmp_path):
    env, calls = fake_systemctl(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    first = run(deploy, "scripts/install-backup-timer.sh", "prod", "--unit-dir", str(units), env=env)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in units.iterdir()) == ["petory-prod-backup-binlogs.service", "petory-prod-backup-binlogs.timer",
                                                       "petory-prod-backup.service", "petory-prod-backup.timer"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in units.iterdir())
    assert "OnCalendar=*-*-* 03:30:00" in (units / "petory-prod-backup.timer").read_text()
    assert calls.read_text().splitlines()[1:] == [
        "daemon-reload", "enable --now --quiet petory-prod-backup.timer petory-prod-backup-binlogs.timer",
        "show --property=NextElapseUSecRealtime --value petory-prod-backup.timer"]
    assert f"units written to {units}" in first.stderr
    again = run(deploy, "scripts/install-backup-timer.sh", "prod", "--unit-dir", str(units), env=env)
    assert again.returncode == 0 and "units unchanged" in again.stderr, again.stderr


@pytest.mark.parametrize("installed_before", [False, True])
def test_backup_timer_failing_after_writing_leaves_the_unit_dir_as_it_was(deploy, tmp_path, installed_before):
    units = tmp_path / "units"
    units.mkdir()
    if installed_before:
        env, _ = fake_systemctl(tmp_path / "ok")
        assert run(deploy, "scripts/install-backup-timer.sh", "prod", "--unit-dir", str(units), env=env).returncode == 0
    before = {p.name: p.read_bytes() for p in units.iterdir()}
    env, calls = fake_systemctl(tmp_path / "fail", fail="enable")
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--unit-dir", str(units),
               "--at", "*-*-* 05:00:00", env=env)  # a change, so the units are rewritten
    assert proc.returncode == 1
    assert reasons(proc)[-1] == f"backup timer not installed; {units} is as it was before", proc.stderr
    assert {p.name: p.read_bytes() for p in units.iterdir()} == before
    disabled = "disable --quiet petory-prod-backup.timer"
    assert (disabled in calls.read_text().splitlines()) is not installed_before  # only a timer it added
    assert calls.read_text().splitlines()[-1] == "daemon-reload"


# --- dev tools -----------------------------------------------------------------------------------

class ComposeLoader(yaml.SafeLoader):
    """YAML of a Compose file: its merge tags (`!reset`, `!override`) read as plain values."""


ComposeLoader.add_multi_constructor("!", lambda loader, _tag, node: loader.construct_scalar(node)
                                    if isinstance(node, yaml.ScalarNode) else None)


@pytest.mark.parametrize("answer_set", ["defaults", "external-db"])
def test_dev_publishes_its_tools_on_loopback_only(rendered, answer_set):
    compose = yaml.load((rendered(answer_set) / "deploy/compose.dev.yaml").read_text(), ComposeLoader)  # noqa: S506
    services = compose["services"]
    backend = services["backend-blue"]
    assert backend["ports"] == ["127.0.0.1:5005:5005"]
    # The debug agent goes into the application's JVM (bootRun), not Gradle's, and does not wait.
    (config,) = backend["configs"]
    assert backend["command"][-3:] == ["--init-script", config["target"], "bootRun"]
    init_script = compose["configs"][config["source"]]["content"]
    assert "it.name == 'bootRun'" in init_script
    assert "-agentlib:jdwp=transport=dt_socket,server=y,suspend=n,address=*:5005" in init_script
    adminer = services["adminer"]
    assert adminer["ports"] == ["127.0.0.1:8081:8080"]
    server = adminer["environment"]["ADMINER_DEFAULT_SERVER"]
    if answer_set == "external-db":
        assert server == "db.internal.example.com:3307" and adminer["networks"] == ["public"]
    else:
        assert server == "mysql:3306" and adminer["networks"] == ["data"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert all(port.startswith("127.0.0.1:") for port in published), published


def test_only_dev_has_the_tools(rendered):
    for env in ("staging", "prod"):
        compose = yaml.load((rendered("defaults") / f"deploy/compose.{env}.yaml").read_text(), ComposeLoader)  # noqa: S506
        assert "adminer" not in compose.get("services", {}) and "configs" not in compose
