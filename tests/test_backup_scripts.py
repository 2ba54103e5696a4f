"""Backups without a Docker engine: the age recipients answer and file, the pieces of
scripts/backup-db.sh and scripts/lib/backup.sh that decide (the comparison, the disk checks, the
refusal to copy plaintext), the restore drill's and the SFTP hook's refusals, the drill's timer,
and the Makefile targets. tests/live/test_backups.py runs them against a real MySQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import answers_rules
import deployment
from script_helpers import bash, functions, private_copy, reasons, run, snapshot

RECIPIENT = "age1py2wwa7g6pxav3wahw6cfrsdj0m4988gnujhaf65sxpnwq6fjacs5wzt2w"
NEW_SCRIPTS = ["restore-drill.sh", "offsite-sftp.sh"]
LIBS = ("common", "metrics", "backup")


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    """deploy/ of a private copy of the servers-only render (staging and prod)."""
    return private_copy(rendered, tmp_path_factory.mktemp("backups"))


@pytest.fixture
def fresh(rendered, tmp_path):
    return private_copy(rendered, tmp_path)


# --- the answer and the recipients file ---------------------------------------------------------

def test_the_answer_is_an_age_public_key_or_nothing():
    assert answers_rules.QUESTIONS["backup_age_recipient"] == "age_recipient"
    assert answers_rules.answer_error("age_recipient", f" {RECIPIENT} ") == ""
    assert answers_rules.answer_error("age_recipient", "") == ""
    assert answers_rules.answer_error("age_recipient", "AGE-SECRET-KEY-1" + "Q" * 58) == "that is the secret key"
    assert answers_rules.answer_error("age_recipient", RECIPIENT.replace("q", "b", 1)) == "not an age1... public key"


def test_the_model_lists_the_recipients():
    answers = {"backup_age_recipient": RECIPIENT}
    assert deployment._backup(answers) == {"age_recipients": [RECIPIENT], "recipients_file": "backup/age-recipients.txt"}
    assert deployment._backup({"backup_age_recipient": ""})["age_recipients"] == []


def test_the_recipients_file_holds_the_answer_and_says_what_it_is_for(rendered, rendered_with):
    plain = (rendered("servers-only") / "deploy/backup/age-recipients.txt").read_text()
    assert all(line.startswith("#") for line in plain.splitlines()) and "BACKUP_COPY_COMMAND is refused" in plain
    keyed = (rendered_with({"advanced": True, "backup_age_recipient": RECIPIENT}) / "deploy/backup/age-recipients.txt").read_text()
    assert [line for line in keyed.splitlines() if not line.startswith("#")] == [RECIPIENT]
    assert not (rendered("external-db") / "deploy/backup").exists()  # no bundled MySQL, no backups


# --- shape ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", NEW_SCRIPTS)
def test_the_new_scripts_have_help_strict_mode_and_main_last(deploy, script):
    path = deploy / "scripts" / script
    text = path.read_text()
    assert "set -Eeuo pipefail" in text and text.rstrip("\n").splitlines()[-1] == 'main "$@"'
    assert os.access(path, os.X_OK)
    proc = run(deploy, f"scripts/{script}", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith(f"Usage: scripts/{script} "), proc.stderr
    proc = run(deploy, f"scripts/{script}")
    assert proc.returncode == 2 and "Usage:" in proc.stderr


def test_the_library_only_defines(deploy):
    """lib/backup.sh: assignments and functions at top level, nothing that runs when sourced."""
    top = [line for line in (deploy / "scripts/lib/backup.sh").read_text().splitlines()
           if line and not line[0].isspace() and not line.startswith("#")]
    stray = [line for line in top if not re.match(r"^([a-z_]+\(\) \{.*|\}|[A-Z_]+=.*)$", line)]
    assert not stray, stray


def test_the_scripts_are_shellcheck_clean(deploy):
    shellcheck = shutil.which("shellcheck") or str(Path(__file__).parents[1] / ".venv/bin/shellcheck")
    scripts = ["scripts/backup-db.sh", "scripts/restore-drill.sh", "scripts/offsite-sftp.sh",
               "scripts/install-backup-timer.sh", "scripts/lib/backup.sh"]
    proc = run(deploy, shellcheck, "-x", *scripts)
    assert proc.returncode == 0, proc.stdout


# --- the comparison -------------------------------------------------------------------------------

def stats(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def compare(deploy, tmp_path, snapshot_stats: str, restored: str, now: str | None = None):
    files = [stats(tmp_path, "a", snapshot_stats), stats(tmp_path, "b", restored)]
    if now is not None:
        files.append(stats(tmp_path, "c", now))
    sources = "".join(f"source scripts/lib/{lib}.sh; " for lib in LIBS)
    return run(deploy, "bash", "-c", f'set -Eeuo pipefail; {sources}stats_compare "$@"', "compare", *files)


def test_the_comparison_passes_only_when_every_table_matches(deploy, tmp_path):
    same = "pets\t3\t111\nusers\t2\t222\n"
    proc = compare(deploy, tmp_path, same, same)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-1] == "2 tables, 5 rows restored; every table matches the snapshot (rows and CHECKSUM TABLE)"
    for restored, verdict in [("pets\t2\t111\nusers\t2\t222\n", "ROWS DIFFER"),
                              ("pets\t3\t999\nusers\t2\t222\n", "CHECKSUM DIFFERS"),
                              ("users\t2\t222\n", "MISSING after the restore"),
                              ("pets\t3\t111\nusers\t2\t222\nzebra\t1\t1\n", "NOT in the snapshot")]:
        proc = compare(deploy, tmp_path, same, restored)
        assert proc.returncode == 1, restored
        assert verdict in proc.stdout and proc.stdout.splitlines()[-1].endswith("1 differ from the snapshot"), proc.stdout


def test_the_comparison_shows_production_now_beside_the_snapshot(deploy, tmp_path):
    proc = compare(deploy, tmp_path, "pets\t3\t111\n", "pets\t3\t111\n", "pets\t5\t-\n")
    assert proc.returncode == 0
    header, row = proc.stdout.splitlines()[:2]
    assert header.split() == ["table", "snapshot", "rows", "restored", "rows", "production", "now", "result"]
    assert row.split() == ["pets", "3", "3", "5", "ok"]


def test_the_stats_statements_quote_every_name(deploy):
    proc = bash(deploy, "table_stats_sql full 'a`b' \"it's\"; table_stats_sql rows pets; table_stats_sql full", libs=LIBS)
    assert proc.stdout.splitlines() == [
        "SELECT 'rows', 'a`b', COUNT(*) FROM `a``b` UNION ALL SELECT 'rows', 'it''s', COUNT(*) FROM `it's`;",
        "CHECKSUM TABLE `a``b`, `it's`;",
        "SELECT 'rows', 'pets', COUNT(*) FROM `pets`;"]


def test_the_mysql_output_becomes_one_line_per_table(deploy):
    proc = bash(deploy, "stats_parse", libs=LIBS, input="rows\tusers\t2\nrows\tpets\t3\npetory.pets\t111\npetory.users\t222\n")
    assert proc.stdout == "pets\t3\t111\nusers\t2\t222\n"


# --- the disk ---------------------------------------------------------------------------------------

def backup_functions(deploy: Path, *names: str) -> str:
    return functions(deploy / "scripts/backup-db.sh", *names)


@pytest.mark.parametrize(("reason", "kind"), [
    ("age: error: failed to write header: write /dev/stdout: no space left on device", "the disk is full"),
    ("cat: write error: No space left on device", "the disk is full"),
    ("cat: write error: Disk quota exceeded", "the disk is full"),
    ("cat: write error: Input/output error", "write error"),
])
def test_a_write_error_names_a_full_disk_the_directory_and_its_free_bytes(deploy, tmp_path, reason, kind):
    code = backup_functions(deploy, "write_failed") + f'free_bytes() {{ echo 4096; }}\nwrite_failed "{tmp_path}/petory-1.sql.gz.age" "$1"'
    proc = run(deploy, "bash", "-c", "set -Eeuo pipefail; source scripts/lib/common.sh\n" + code, "x", reason)
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: {kind}: writing petory-1.sql.gz.age failed ({reason}); {tmp_path} has 4096 bytes free; "
        "nothing of this backup is kept, older dumps are untouched"])


def test_a_real_full_device_is_recognised(deploy, tmp_path):
    """/dev/full answers every write with ENOSPC, as a full filesystem does."""
    proc = bash(deploy, "head -c 100 /dev/zero | cat 2>&1 >/dev/full || true")
    assert "No space left on device" in proc.stdout


@pytest.mark.parametrize(("previous", "free", "refused"), [(None, 10, False), (1000, 1500, False), (1000, 1499, True)])
def test_less_space_than_one_and_a_half_previous_dumps_is_refused_up_front(deploy, tmp_path, previous, free, refused):
    folder = tmp_path / "prod"
    folder.mkdir()
    (folder / "petory-20260101T000000Z.sql.gz.partial").write_bytes(b"x" * 9999)  # not a dump
    if previous:
        (folder / "petory-20260102T000000Z.sql.gz.age").write_bytes(b"x" * previous)
    code = backup_functions(deploy, "check_space") + f'free_bytes() {{ echo {free}; }}\ncheck_space "{folder}"; echo passed'
    proc = bash(deploy, code, libs=LIBS)
    if refused:
        assert (proc.returncode, reasons(proc)) == (1, [
            f"ERROR: not enough free space for a new dump: {folder} has {free} bytes free, less than 1.5 x the previous "
            f"dump (petory-20260102T000000Z.sql.gz.age, {previous} bytes); nothing written"])
    else:
        assert proc.returncode == 0 and proc.stdout == "passed\n", proc.stderr


def test_the_newest_dump_is_the_latest_plain_or_encrypted_one(deploy, tmp_path):
    (tmp_path / "binlog").mkdir()
    for age, name in [(300, "petory-a.sql.gz"), (200, "petory-b.sql.gz.age"), (100, "petory-c.sql.gz.age.partial"),
                      (50, "binlog/binlog.000001.age"), (10, "notes.txt")]:
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (1_000_000 - age,) * 2)
    proc = bash(deploy, f'newest_dump "{tmp_path}"', libs=LIBS)
    assert proc.stdout == f"{tmp_path}/petory-b.sql.gz.age\n"


# --- copying off the host ---------------------------------------------------------------------------

def copy_code(deploy: Path, file: str) -> str:
    return backup_functions(deploy, "copy_off_host") + f'if copy_off_host prod "{file}"; then echo "status 0"; else echo "status $?"; fi'


def test_an_unencrypted_dump_is_never_copied(fresh, tmp_path):
    dump = tmp_path / "petory-20260101T000000Z.sql.gz"
    dump.write_bytes(b"x")
    proc = bash(fresh, copy_code(fresh, str(dump)), env={"BACKUP_COPY_COMMAND": "/bin/echo"})
    assert (proc.returncode, reasons(proc)) == (1, [
        "ERROR: not copied off the host: backup/age-recipients.txt names no recipient, and unencrypted dumps never "
        f"leave the host (BACKUP_COPY_COMMAND is set); the local dump {dump} is kept"])


def test_the_hook_gets_the_dump_last_and_the_environment_and_runs_from_deploy(fresh, tmp_path):
    dump = tmp_path / "petory-20260101T000000Z.sql.gz.age"
    dump.write_bytes(b"x")
    hook = fresh / "scripts/test-hook.sh"
    hook.write_text('#!/bin/sh\necho "env=$BACKUP_ENV args=$*"\n')
    hook.chmod(0o755)
    with (fresh / "env/prod.env").open("a") as env_file:
        env_file.write("BACKUP_COPY_COMMAND=scripts/test-hook.sh --flag\n")
    proc = run(tmp_path, "bash", "-c", f"set -Eeuo pipefail; source {fresh}/scripts/lib/common.sh\n" + copy_code(fresh, str(dump)),
               env={"BACKUP_COPY_COMMAND": ""})
    assert proc.stdout == f"env=prod args=--flag {dump}\nstatus 0\n", proc.stderr
    proc = bash(fresh, copy_code(fresh, str(dump)).replace("copy_off_host prod", "sed -i '/BACKUP_COPY/d' env/prod.env; copy_off_host prod"))
    assert proc.stdout == "status 1\n"  # no command: nothing to do


def test_the_recipients_file_is_checked_before_anything_is_written(fresh):
    code = backup_functions(fresh, "recipients_file") + 'recipients_file; echo "[$?]"'
    assert bash(fresh, code).stdout == "[0]\n"  # comments only: unencrypted
    if not shutil.which("age"):
        pytest.skip("age is not installed (apt-get install age)")
    recipients = fresh / "backup/age-recipients.txt"
    recipients.write_text(recipients.read_text() + RECIPIENT + "\n")
    assert bash(fresh, code).stdout == f"{recipients}[0]\n"
    recipients.write_text(recipients.read_text() + "age1notakey\n")
    line = len(recipients.read_text().splitlines())
    proc = bash(fresh, code)
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: backup/age-recipients.txt: malformed recipient at line {line}; nothing written"])


def test_encryption_without_age_installed_is_one_clear_line(fresh, tmp_path):
    recipients = fresh / "backup/age-recipients.txt"
    recipients.write_text(RECIPIENT + "\n")
    bin_dir = tmp_path / "bin"  # every command of this host but age
    bin_dir.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin"):
        for tool in Path(folder).iterdir():
            if tool.name != "age" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    code = backup_functions(fresh, "recipients_file") + "recipients_file"
    proc = run(fresh, shutil.which("bash"), "-c", "set -Eeuo pipefail; source scripts/lib/common.sh\n" + code,
               env={"PATH": str(bin_dir)})
    assert (proc.returncode, reasons(proc)) == (1, [
        "ERROR: age is not installed (apt-get install age), and backup/age-recipients.txt names the recipients to "
        "encrypt dumps to; nothing written"])


# --- the SFTP hook ----------------------------------------------------------------------------------

def test_the_sftp_hook_needs_a_target_and_a_readable_file(fresh, tmp_path):
    dump = fresh / "backups/prod/petory-20260101T000000Z.sql.gz.age"
    dump.parent.mkdir(parents=True)
    dump.write_bytes(b"x")
    proc = run(fresh, "scripts/offsite-sftp.sh", str(dump), env={"BACKUP_SFTP_TARGET": "", "BACKUP_ENV": ""})
    assert (proc.returncode, reasons(proc)) == (1, [
        "ERROR: BACKUP_SFTP_TARGET is not set (user@host:directory or sftp://user@host:port/directory); "
        "set it in env/prod.env"])  # the environment named by the dump's folder
    proc = run(fresh, "scripts/offsite-sftp.sh", str(tmp_path / "missing.age"))
    assert (proc.returncode, reasons(proc)) == (1, [f"ERROR: cannot read {tmp_path}/missing.age"])
    proc = run(fresh, "scripts/offsite-sftp.sh", str(dump), env={"BACKUP_SFTP_TARGET": "u@h:d", "BACKUP_SFTP_IDENTITY": "/nonexistent"})
    assert reasons(proc) == ["ERROR: cannot read BACKUP_SFTP_IDENTITY /nonexistent"]


# --- the restore drill ------------------------------------------------------------------------------

def test_the_drill_refuses_bad_input_before_it_touches_docker(deploy, tmp_path):
    before = snapshot(deploy)
    proc = run(deploy, "scripts/restore-drill.sh", "prod", "--dump", str(tmp_path / "nope.sql.gz.age"))
    assert (proc.returncode, reasons(proc)) == (2, [
        f"ERROR: cannot read the dump {tmp_path}/nope.sql.gz.age; see scripts/restore-drill.sh --help"])
    proc = run(deploy, "scripts/restore-drill.sh", "qa")
    assert proc.returncode == 2 and "unknown environment 'qa'" in proc.stderr
    assert snapshot(deploy) == before


def test_the_drill_names_the_image_it_restores_into(deploy):
    help_text = run(deploy, "scripts/restore-drill.sh", "--help").stdout
    image = re.search(r"^mysql_image: (.*)$", (deploy.parent / ".copier-answers.yml").read_text(), re.M)
    assert f"else {image.group(1) if image else 'mysql:8.0'};" in help_text


# --- the drill's timer ------------------------------------------------------------------------------

def fake_systemctl(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\n[ "$1" != show ] || echo "Sun 2026-01-04 05:03:00 KST"\n')
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_the_backup_timer_alone_is_as_before(deploy, tmp_path):
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--dry-run", env=fake_systemctl(tmp_path))
    assert proc.returncode == 0 and "drill" not in proc.stdout


def test_drill_adds_the_weekly_restore_drill(deploy, tmp_path):
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--drill", "--dry-run", env=fake_systemctl(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "# petory-prod-backup-drill.service, written to /etc/systemd/system/petory-prod-backup-drill.service\n" in out
    assert f"ExecStart={deploy}/scripts/restore-drill.sh prod\n" in out
    assert "OnCalendar=Sun *-*-* 05:00:00\n" in out
    enable = out.splitlines()[-1]
    assert enable.startswith("systemctl enable --now petory-prod-backup.timer ") and enable.endswith(" petory-prod-backup-drill.timer")


def test_drill_only_with_a_key_needs_no_env_file_and_runs_as_the_keys_owner(fresh, tmp_path):
    (fresh / "env/prod.env").unlink()
    key = tmp_path / "key.txt"
    key.write_text("AGE-SECRET-KEY-1...\n")
    proc = run(fresh, "scripts/install-backup-timer.sh", "prod", "--drill-only", "--identity", str(key),
               "--drill-at", "Mon *-*-* 06:00:00", "--dry-run", env=fake_systemctl(tmp_path))
    assert proc.returncode == 0, proc.stderr
    files = re.findall(r"^# (\S+), written to ", proc.stdout, re.M)
    assert files == ["petory-prod-backup-drill.service", "petory-prod-backup-drill.timer"]
    assert f"ExecStart={fresh}/scripts/restore-drill.sh prod --identity {key}\n" in proc.stdout
    assert f"User={key.owner()}\n" in proc.stdout and "OnCalendar=Mon *-*-* 06:00:00\n" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "systemctl enable --now petory-prod-backup-drill.timer"


def test_the_drill_timer_installs_and_enables_both_timers(deploy, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    env = fake_systemctl(tmp_path)
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--drill", "--unit-dir", str(units), env=env)
    if proc.returncode and "as root" in proc.stderr:
        pytest.skip("installs need root")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in units.iterdir()} >= {"petory-prod-backup-drill.service", "petory-prod-backup-drill.timer",
                                                 "petory-prod-backup.service", "petory-prod-backup.timer"}
    enable = next(line for line in (tmp_path / "calls").read_text().splitlines() if line.startswith("enable"))
    assert enable.startswith("enable --now --quiet petory-prod-backup.timer") and enable.endswith("petory-prod-backup-drill.timer")
    assert re.search(r"backup timer: petory-prod-backup\.timer, .* and petory-prod-backup-drill\.timer enabled, units written to ",
                     proc.stderr), proc.stderr


def test_an_unreadable_identity_is_refused(deploy, tmp_path):
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--identity", str(tmp_path / "none"), "--dry-run")
    assert (proc.returncode, reasons(proc)) == (2, [
        f"ERROR: cannot read the identity file {tmp_path}/none; see scripts/install-backup-timer.sh --help"])


# --- make, metrics ----------------------------------------------------------------------------------

def make_dry(deploy: Path, *args: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ENV"}
    proc = subprocess.run(["make", "--no-print-directory", "-n", *args], cwd=deploy, capture_output=True, text=True,
                          env=environ, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_passes_the_key_the_dump_and_the_drill_on(deploy):
    assert make_dry(deploy, "restore-drill", "ENV=prod").strip() == "scripts/restore-drill.sh prod"
    assert make_dry(deploy, "restore-drill", "ENV=prod", "IDENTITY=/k.txt", "FILE=/d.sql.gz.age").strip() == \
        "scripts/restore-drill.sh prod --identity /k.txt --dump /d.sql.gz.age"
    assert "scripts/install-backup-timer.sh prod --drill" in make_dry(deploy, "backup-timer", "ENV=prod", "DRILL=1")


def test_every_metric_the_scripts_write_is_declared(deploy):
    written = set()
    for script in ("backup-db.sh", "restore-drill.sh"):
        written |= set(re.findall(r"metric (petory_\w+)", (deploy / "scripts" / script).read_text()))
    assert {"petory_backup_last_verified_rows", "petory_backup_drill_last_success_timestamp_seconds"} <= written
    assert written <= set(deployment.METRICS), written - set(deployment.METRICS)
