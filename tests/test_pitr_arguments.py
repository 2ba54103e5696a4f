"""Point-in-time recovery without a Docker engine: restore-db.sh's --to and --identity checks (one
line each, nothing written), the time conversion for mysqlbinlog, the binary log position it reads
from a dump, ship-binlogs.sh's refusals, the binary log settings and the shipping timer.
tests/live/test_pitr.py restores to a point in time on a running stack."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess

import pytest

from script_helpers import bash, functions, private_copy, reasons, run, snapshot

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent.sock"}
FORMAT = ('--to takes "YYYY-MM-DD HH:MM:SS+HH:MM" (a time and its UTC offset, '
          'e.g. "2026-03-01 14:05:00+09:00"), not \'{value}\'')
MYSQL_HEADER = "-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002', SOURCE_LOG_POS=157;\n"
MARIADB_HEADER = "-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000012', MASTER_LOG_POS=6079;\n"
# What backup-db.sh writes at the end of a dump (scripts/lib/backup.sh's manifest).
MANIFEST = "-- petory-backup snapshot\t1767225600\n-- petory-backup binlog\tbinlog.000007\t4242\n-- petory-backup end\n"


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    return private_copy(rendered, tmp_path_factory.mktemp("pitr"))


def dump_file(folder, header: str = "", name: str = "petory-20240101T000000Z.sql.gz", trailer: str = ""):
    path = folder / name
    path.write_bytes(gzip.compress(f"-- MySQL dump\n{header}\n--\n-- Current Database: `petory`\n--\n"
                                   f"-- Dump completed\n{trailer}".encode()))
    return path


def refused(deploy, *command, env=None):
    """The finished process, after checking that it changed nothing under deploy/."""
    before = snapshot(deploy)
    proc = run(deploy, *command, env={**NO_ENGINE, **(env or {})})
    assert snapshot(deploy) == before, proc.stderr
    return proc


def usage_error(reason: str) -> list[str]:
    return [f"ERROR: {reason}; see scripts/restore-db.sh --help"]


# --- restore-db.sh --to --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "2026-03-01 14:05:00",  # no offset: mysqlbinlog would read it in the container's zone
    "2026-03-01 14:05:00Z",
    "2026-03-01T14:05:00+09:00",
    "2026-03-01 14:05:00 +09:00",
    "2026-03-01 14:05:00+0900",
    "2026-03-01 14:05+09:00",
    "2026-03-01 14:05:00+15:00",
    "2026-03-01 14:05:00+09:60",
    "yesterday",
    "",
])
def test_a_bad_to_format_gets_one_line(deploy, tmp_path, value):
    proc = refused(deploy, "scripts/restore-db.sh", "prod", str(dump_file(tmp_path, MYSQL_HEADER)), "--to", value, "--yes")
    expected = "--to needs a value" if value == "" else FORMAT.format(value=value)
    assert (proc.returncode, reasons(proc)) == (2, usage_error(expected)), proc.stderr


@pytest.mark.parametrize("value,reason", [
    ("2026-02-30 10:00:00+09:00", "--to '2026-02-30 10:00:00+09:00' is not a valid date and time"),
    ("2026-01-01 24:00:00+09:00", "--to '2026-01-01 24:00:00+09:00' is not a valid date and time"),
    ("2999-01-01 00:00:00+00:00", "--to '2999-01-01 00:00:00+00:00' is in the future"),
    ("2023-12-31 23:59:59+00:00", "--to 2023-12-31 23:59:59+00:00 (2023-12-31 23:59:59 UTC) is before the dump "
                                  "was taken (2024-01-01 00:00:00 UTC); pick an older dump"),
    ("2024-01-01 08:59:59+09:00", "--to 2024-01-01 08:59:59+09:00 (2023-12-31 23:59:59 UTC) is before the dump "
                                  "was taken (2024-01-01 00:00:00 UTC); pick an older dump"),
])
def test_an_impossible_to_gets_one_line(deploy, tmp_path, value, reason):
    proc = refused(deploy, "scripts/restore-db.sh", "prod", str(dump_file(tmp_path, MYSQL_HEADER)), "--to", value, "--yes")
    assert (proc.returncode, reasons(proc)) == (2, usage_error(reason)), proc.stderr


@pytest.mark.parametrize("value,utc", [
    ("2026-03-01 14:05:00+09:00", "2026-03-01 05:05:00"),
    ("2026-03-01 02:05:00+09:00", "2026-02-28 17:05:00"),  # the day before in UTC
    ("2026-03-01 14:05:00-03:30", "2026-03-01 17:35:00"),
    ("2024-12-31 23:59:59-01:00", "2025-01-01 00:59:59"),
    ("2024-02-29 00:00:00+00:00", "2024-02-29 00:00:00"),
])
def test_to_is_converted_to_utc_whatever_the_host_zone(deploy, value, utc):
    """mysqlbinlog runs with TZ=UTC and gets this; the host's own zone must not matter."""
    code = ("TO_FORMAT=" + re.search(r"^TO_FORMAT=(.*)$", (deploy / "scripts/restore-db.sh").read_text(), re.M).group(1)
            + "\n" + functions(deploy / "scripts/restore-db.sh", "utc_time") + f'utc_time "{value}"\n')
    for zone in ("UTC", "Asia/Seoul", "America/Sao_Paulo"):
        proc = bash(deploy, code, env={"TZ": zone})
        assert proc.stdout == f"{utc}\n", (zone, proc.stderr)


def test_the_replay_runs_mysqlbinlog_in_utc(deploy):
    text = functions(deploy / "scripts/restore-db.sh", "replay")
    assert "exec -T -e TZ=UTC" in text and '--stop-datetime="$2"' in text
    assert "mysqlbinlog --no-defaults" in text  # it refuses the [client] default-character-set
    assert "--loose-skip-gtid-strict-mode" in text  # MariaDB, after an earlier replay
    assert '--database="$MYSQL_DATABASE"' in text


@pytest.mark.parametrize("header,trailer,position", [
    ("", MANIFEST, "binlog.000007 4242"),  # backup-db.sh's dumps
    (MYSQL_HEADER, "", "binlog.000002 157"),  # mysqldump --source-data=2 (MySQL 8.0.26+, 8.4)
    (MARIADB_HEADER, "", "binlog.000012 6079"),  # mysqldump --master-data=2 (MariaDB)
    ("", "", ""),
])
def test_the_binlog_position_comes_from_the_dump(deploy, tmp_path, header, trailer, position):
    dump = dump_file(tmp_path, header, trailer=trailer)
    code = functions(deploy / "scripts/restore-db.sh", "plain", "binlog_position") + f'binlog_position "{dump}"\n'
    proc = bash(deploy, code, libs=("common", "backup"))
    assert proc.returncode == 0 and proc.stdout == (f"{position}\n" if position else ""), proc.stderr


def test_a_dump_without_a_binlog_position_cannot_roll_forward(deploy, tmp_path):
    dump = dump_file(tmp_path)
    proc = refused(deploy, "scripts/restore-db.sh", "prod", str(dump), "--to", "2025-01-01 00:00:00+00:00", "--yes")
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: {dump} records no binary log position (dumps made before point-in-time recovery have none); "
        "restore it without --to"])


# --- restore-db.sh --identity --------------------------------------------------------------------

@pytest.fixture(scope="module")
def age_key(tmp_path_factory):
    if not shutil.which("age-keygen"):
        pytest.skip("age is not installed (apt-get install age)")
    folder = tmp_path_factory.mktemp("age")
    subprocess.run(["age-keygen", "-o", str(folder / "key.txt")], check=True, capture_output=True)
    subprocess.run(["age-keygen", "-o", str(folder / "other.txt")], check=True, capture_output=True)
    return folder


def encrypted_dump(folder, age_key):
    plain = dump_file(folder, trailer=MANIFEST)
    subprocess.run(["age", "-e", "-i", str(age_key / "key.txt"), "-o", f"{plain}.age", str(plain)], check=True)
    plain.unlink()
    return folder / f"{plain.name}.age"


def test_an_encrypted_dump_needs_the_identity(deploy, tmp_path, age_key):
    dump = encrypted_dump(tmp_path, age_key)
    proc = refused(deploy, "scripts/restore-db.sh", "prod", str(dump), "--yes", env={"BACKUP_AGE_IDENTITY": ""})
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: {dump} is encrypted: pass --identity FILE (or set BACKUP_AGE_IDENTITY) with the age key of "
        "backup/age-recipients.txt"])
    proc = refused(deploy, "scripts/restore-db.sh", "prod", str(dump), "--yes", "--identity", str(tmp_path / "none"))
    assert (proc.returncode, reasons(proc)) == (1, [f"ERROR: cannot read the age identity {tmp_path / 'none'}"])


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_wrong_identity_is_one_line_and_the_right_one_gets_to_the_engine(deploy, tmp_path, age_key, how):
    dump = encrypted_dump(tmp_path, age_key)

    def restore(key):
        args, env = (["--identity", str(key)], {}) if how == "option" else ([], {"BACKUP_AGE_IDENTITY": str(key)})
        return refused(deploy, "scripts/restore-db.sh", "prod", str(dump), "--to", "2025-06-01 12:00:00+09:00",
                       "--yes", *args, env=env)

    proc = restore(age_key / "other.txt")
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: {dump} cannot be read as a compressed dump: age: error: no identity matched any of the recipients"])
    proc = restore(age_key / "key.txt")  # decrypted, checked and its position read: the engine is next
    assert proc.returncode == 1 and len(reasons(proc)) == 1 and "cannot reach the Docker engine" in proc.stderr, proc.stderr


# --- ship-binlogs.sh -----------------------------------------------------------------------------

@pytest.mark.parametrize("args,reason", [
    (["--interval", "0"], "--interval must be at least 1"),
    (["--interval", "5m"], "--interval takes a whole number, not '5m'"),
    (["--retention-days", "3"], "unknown option --retention-days"),
])
def test_ship_binlogs_bad_options_get_one_line(deploy, args, reason):
    proc = refused(deploy, "scripts/ship-binlogs.sh", "prod", *args)
    assert (proc.returncode, reasons(proc)) == (2, [f"ERROR: {reason}; see scripts/ship-binlogs.sh --help"])


def test_binlogs_leave_the_host_only_encrypted(rendered, tmp_path):
    fresh = private_copy(rendered, tmp_path)
    (fresh / "backup").mkdir(exist_ok=True)
    (fresh / "backup/age-recipients.txt").write_text("# no recipient yet\n\n")
    proc = refused(fresh, "scripts/ship-binlogs.sh", "prod", env={"BACKUP_COPY_COMMAND": "/bin/true"})
    assert (proc.returncode, reasons(proc)) == (1, [
        "ERROR: BACKUP_COPY_COMMAND is set but backup/age-recipients.txt lists no recipient: binary logs leave "
        "the host only encrypted"])
    proc = refused(fresh, "scripts/ship-binlogs.sh", "prod", env={"BACKUP_COPY_COMMAND": ""})
    assert proc.returncode == 1 and "cannot reach the Docker engine" in proc.stderr  # local shipping is allowed


def test_the_shipping_timer_runs_every_five_minutes(deploy):
    proc = run(deploy, "scripts/install-backup-timer.sh", "prod", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "# petory-prod-backup-binlogs.service, written to /etc/systemd/system/petory-prod-backup-binlogs.service" in out
    assert f"ExecStart={deploy}/scripts/ship-binlogs.sh prod --interval 5\n" in out
    timer = out.split("# petory-prod-backup-binlogs.timer")[1]
    assert "OnCalendar=*:0/5\n" in timer and "Persistent=true" in timer
    assert "systemctl enable --now petory-prod-backup.timer petory-prod-backup-binlogs.timer" in out
    assert f"ExecStart={deploy}/scripts/backup-db.sh prod --retention-days 14" in out  # the daily one is still there


# --- configuration -------------------------------------------------------------------------------

def test_the_server_keeps_row_based_binary_logs(deploy):
    """log_bin and server_id hold on MySQL 8.0 and 8.4 (and the MariaDB stand-in); binlog_format is
    left at MySQL's default ROW: setting it is deprecated since 8.0.34 (the stand-in sets it)."""
    cnf = (deploy / "docker/mysql/conf.d/petory.cnf").read_text()
    mysqld = cnf.split("[mysqld]")[1].split("[client]")[0]
    settings = dict(re.findall(r"^(\w+) = (\S+)", mysqld, re.M))
    assert settings["log_bin"] == "binlog" and settings["server_id"] == "1"
    assert int(settings["binlog_expire_logs_seconds"]) == 7 * 86400
    assert "binlog_format" not in settings and "expire_logs_days" not in settings  # removed in 8.4


def test_make_restore_passes_to_on(deploy):
    proc = run(deploy, "make", "-n", "restore", "ENV=prod", "FILE=backups/prod/x.sql.gz", "TO=2026-03-01 14:05:00+09:00")
    assert proc.returncode == 0, proc.stderr
    assert 'scripts/restore-db.sh prod backups/prod/x.sql.gz --to "2026-03-01 14:05:00+09:00"' in proc.stdout
    proc = run(deploy, "make", "-n", "restore", "ENV=prod", "FILE=backups/prod/x.sql.gz")
    assert "scripts/restore-db.sh prod backups/prod/x.sql.gz \n" in proc.stdout or \
        "scripts/restore-db.sh prod backups/prod/x.sql.gz\n" in proc.stdout
