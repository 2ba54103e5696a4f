"""Point-in-time recovery on a running stack: binary logs shipped encrypted off the host by
scripts/ship-binlogs.sh (the copy hook writes into a folder standing in for the backup host), and
`restore-db.sh --to` just before the moment rows were deleted brings back every row written
before it and nothing written after. The instant is given in +09:00 while the host runs in UTC
and the mysql container in the project's zone, so a time-zone slip shows as missing or extra rows."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest

KST = timezone(timedelta(hours=9))


@pytest.fixture(scope="module")
def pitr_stack(database_stack):
    """The shared database stack (tests/live/conftest.py) and the age key its backups are encrypted to."""
    recipients = (database_stack.stack.deploy_dir / "backup/age-recipients.txt").read_text()
    assert database_stack.age_recipient in recipients, "the database stack's backups are not encrypted to its age key"
    return database_stack.stack, database_stack.age_identity


def mysql(stack, sql: str) -> str:
    proc = stack.compose("exec", "-T", "mysql", "sh", "-c",
                         'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B -e "$1" "$MYSQL_DATABASE"', "sh", sql)
    return proc.stdout.decode()


def run(stack, *command: str, env: dict | None = None, check: bool = True):
    proc = subprocess.run(list(command), cwd=stack.deploy_dir, env={**stack.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)
    assert not check or proc.returncode == 0, f"{command} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc


def rows(stack) -> dict[int, tuple[str, str]]:
    out = mysql(stack, "SELECT id, phase, note FROM pitr_probe ORDER BY id")
    return {int(i): (phase, note) for i, phase, note in (line.split("\t") for line in out.splitlines())}


def insert(stack, ids, phase: str) -> None:
    values = ", ".join(f"({i}, '{phase}', '메모 {i}')" for i in ids)
    mysql(stack, f"INSERT INTO pitr_probe (id, phase, note) VALUES {values}")


def test_restore_to_just_before_a_delete_brings_every_earlier_row_back(pitr_stack, tmp_path, summary):
    stack, identity = pitr_stack
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    hook = tmp_path / "copy-off-host"
    hook.write_text(f'#!/bin/sh\nexec cp "$1" {offsite}/\n')
    hook.chmod(0o755)
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    shipping = {"BACKUP_COPY_COMMAND": str(hook), "METRICS_TEXTFILE_DIR": str(metrics)}
    began = time.monotonic()

    mysql(stack, "DROP TABLE IF EXISTS pitr_probe; CREATE TABLE pitr_probe (id INT PRIMARY KEY, "
                 "phase VARCHAR(16) NOT NULL, note VARCHAR(64) NOT NULL) DEFAULT CHARSET=utf8mb4")
    insert(stack, range(1, 201), "in-dump")
    dump = run(stack, "scripts/backup-db.sh", "prod").stdout.strip().splitlines()[-1]
    for start in (201, 301, 401):  # three transactions after the dump, shipped by the timer's run
        insert(stack, range(start, start + 100), "replayed")
    shipped = run(stack, "scripts/ship-binlogs.sh", "prod", env=shipping)
    rpo = re.search(r"^RPO (\d+) s: .* off the host; shipped every 5 min$", shipped.stdout, re.M)
    assert rpo and int(rpo.group(1)) == 300, shipped.stdout + shipped.stderr
    assert 'petory_binlog_rpo_seconds{env="prod"} 300\n' in (metrics / "petory_binlog_prod.prom").read_text()
    mysql(stack, "UPDATE pitr_probe SET note = CONCAT(note, ' (고침)') WHERE id % 10 = 0")
    expected = rows(stack)

    # T: the next whole second; every write above happened before it, every one below after it.
    instant = datetime.fromtimestamp(int(time.time()) + 1, KST)
    time.sleep(max(0.0, instant.timestamp() - time.time()) + 0.3)
    mysql(stack, "DELETE FROM pitr_probe WHERE id % 2 = 0")  # 250 rows, from the dump and replayed
    insert(stack, range(1001, 1051), "after-T")
    assert len(rows(stack)) == 300

    to = instant.strftime("%Y-%m-%d %H:%M:%S+09:00")
    restore_began = time.monotonic()
    restored = run(stack, "scripts/restore-db.sh", "prod", dump, "--to", to, "--identity", str(identity), "--yes",
                   env=shipping)
    restore_seconds = time.monotonic() - restore_began
    replayed = re.search(r"replaying (\d+) binary logs from (\S+) up to (.*) UTC", restored.stderr)
    assert replayed and replayed.group(3) == instant.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), restored.stderr

    after = rows(stack)
    assert after == expected  # every row and change before T, none of the delete or the inserts at T
    assert len(after) == 500 and not [i for i, (phase, _) in after.items() if phase == "after-T"]

    # Again from the same dump, to a moment after that restore: its replay is in the binary logs
    # now (on MariaDB under GTIDs out of order), and replaying it once more must give the same.
    insert(stack, range(2001, 2011), "after-restore")
    second = datetime.fromtimestamp(int(time.time()) + 1, KST)
    time.sleep(max(0.0, second.timestamp() - time.time()) + 0.3)
    mysql(stack, "DELETE FROM pitr_probe WHERE phase = 'after-restore'")
    run(stack, "scripts/restore-db.sh", "prod", dump, "--to", second.strftime("%Y-%m-%d %H:%M:%S+09:00"),
        "--identity", str(identity), "--yes", env=shipping)
    assert rows(stack) == {**expected, **{i: ("after-restore", f"메모 {i}") for i in range(2001, 2011)}}

    # What left the host is ciphertext only; the local copies are encrypted too.
    local = sorted(p.name for p in (stack.deploy_dir / "backups/prod/binlog").iterdir() if not p.name.startswith("."))
    copied = sorted(p.name for p in offsite.iterdir())  # the binary logs, and the pre-restore dump
    assert all(name.endswith(".age") for name in copied + local), (copied, local)
    copied_logs = [name for name in copied if name.startswith("binlog.")]
    assert copied_logs and set(copied_logs) <= set(local)
    assert b"pitr_probe" not in b"".join((offsite / name).read_bytes() for name in copied)
    mysql(stack, "DROP TABLE pitr_probe")
    summary.append(f"pitr: {len(expected)} rows before T (200 in the dump, 300 inserted and 50 updated after it), "
                   f"250 deleted and 50 inserted at T; restore --to T ({to}) replayed {replayed.group(1)} binary logs "
                   f"in {restore_seconds:.1f} s: {len(after)} rows, identical to T; again to a moment after that "
                   f"restore: {len(expected) + 10} rows; RPO {rpo.group(1)} s; "
                   f"{len(copied_logs)} encrypted binary logs off the host; {time.monotonic() - began:.0f} s in all")
