"""scripts/backup-db.sh, scripts/restore-drill.sh and scripts/offsite-sftp.sh on a running stack.

One module, its tests in file order on the shared database stack: an encrypted backup taken while
rows are written, proven against its own snapshot and copied to a real SFTP server (a container
built from tests/live/sftp/: OpenSSH, a chroot account that can only transfer files); the restore
drill where the key lives (this host with --identity, then "off the server": a checkout without
env file, restoring the copy fetched back from the SFTP server) and on the server without a key;
an unencrypted dump that must not leave the host; and the disk: too little space refused up front,
a full disk (a small tmpfs mounted over backups/prod/, as root) reported with the directory and
its free bytes, nothing partial left, older dumps kept. The MySQL of the stack is whatever the
base images are (the MariaDB stand-in here).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sftp_target import SftpTarget
from stack import Stack, render

HERE = Path(__file__).resolve().parent
ROWS = 20_000
DUMP = re.compile(r"petory-\d{8}T\d{6}Z\.sql\.gz(\.age)?")
DUMP_TIME = re.compile(r"\d{8}T\d{6}Z")


def sh(*cmd, check: bool = True, text: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=text, **kwargs)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr[-3000:]!s}")
    return proc


def lines(proc) -> list[str]:
    """stderr without log()'s time of day."""
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in proc.stderr.splitlines()]


@pytest.fixture(scope="module")
def db(request, base_images, tmp_path_factory):
    """(stack, age identity file) of the shared database stack, or until it exists of a prod stack
    of our own with only MySQL running."""
    try:
        shared = request.getfixturevalue("database_stack")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared.stack, Path(shared.age_identity)
        return
    folder = tmp_path_factory.mktemp("backups")
    sh("age-keygen", "-o", folder / "key.txt")
    recipient = sh("age-keygen", "-y", folder / "key.txt").stdout.strip()
    project = render(folder / "petory-deploy", {"environments": ["prod"], "tls_mode_prod": "self-signed",
                                                "advanced": True, "backup_age_recipient": recipient, **base_images})
    stack = Stack(project, "prod", "petory.example.com")
    try:
        stack.compose("up", "-d", "--wait", "mysql", timeout=600)
        yield stack, folder / "key.txt"
    finally:
        stack.down(volumes=True)


def mysql(stack: Stack, sql: str) -> str:
    proc = stack.compose("exec", "-T", "mysql", "sh", "-c",
                         'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B -e "$1" "$MYSQL_DATABASE"', "sh", sql)
    return proc.stdout.decode()


@pytest.fixture(scope="module")
def probe(db):
    """Tables of every kind a dump must carry faithfully: multi-byte text, binary, exact and float
    numbers, microsecond times, a view, a trigger; ROWS rows in backup_probe. Dropped afterwards,
    with the dumps this module made, so the tests after it see the stack as it was."""
    stack, _ = db
    backups = stack.deploy_dir / "backups" / stack.env
    before = set(backups.glob("*.sql.gz*"))
    digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " \
             "UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
    mysql(stack, f"""
        DROP TABLE IF EXISTS backup_probe, backup_probe_writes, backup_probe_counter;
        CREATE TABLE backup_probe (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, payload VARBINARY(32),
            amount DECIMAL(12, 2), ratio DOUBLE, at DATETIME(6)) ENGINE=InnoDB;
        CREATE TABLE backup_probe_writes (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB;
        CREATE TABLE backup_probe_counter (id INT PRIMARY KEY, writes INT NOT NULL) ENGINE=InnoDB;
        INSERT INTO backup_probe_counter VALUES (1, 0);
        CREATE TRIGGER backup_probe_count AFTER INSERT ON backup_probe_writes FOR EACH ROW
            UPDATE backup_probe_counter SET writes = writes + 1 WHERE id = 1;
        CREATE OR REPLACE VIEW backup_probe_view AS SELECT id, name FROM backup_probe WHERE id % 2 = 0;
        INSERT INTO backup_probe
            SELECT n, CONCAT('초코-🐶-', n), UNHEX(SHA2(CONCAT(n, RAND()), 256)), n / 7, n / 3e0, NOW(6) - INTERVAL n SECOND
            FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 1 AS n
                  FROM {digits} a, {digits} b, {digits} c, {digits} e, {digits} f) numbers WHERE n <= {ROWS};
    """)
    yield "backup_probe"
    mysql(stack, "DROP VIEW backup_probe_view; DROP TABLE backup_probe, backup_probe_writes, backup_probe_counter")
    for dump in set(backups.glob("*.sql.gz*")) - before:
        dump.unlink()


@pytest.fixture(scope="module")
def sftp(tmp_path_factory):
    target = SftpTarget(tmp_path_factory.mktemp("sftp"))
    try:
        target.start()
        yield target
    finally:
        target.stop()


@pytest.fixture
def metrics(tmp_path) -> Path:
    folder = tmp_path / "textfile"
    folder.mkdir()
    return folder


def run(stack: Stack, *command: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd or stack.deploy_dir, env={**stack.environ, **(env or {})},
                          capture_output=True, text=True, timeout=600)


def scratch_containers(stack: Stack) -> list[str]:
    """The throwaway containers of this stack's backups and drills (other stacks may run theirs)."""
    return [cid for owner in ("backup", "drill") for cid in sh(
        "docker", "ps", "-aq", "--filter", f"label=org.petory.scratch-mysql={owner}-{stack.name}").stdout.split()]


class Writer:
    """One row into backup_probe_writes every 10 ms through one client session, while it runs."""

    def __init__(self, stack: Stack):
        self.proc = subprocess.Popen(
            ["scripts/compose.sh", stack.env, "exec", "-T", "mysql", "sh", "-c",
             'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot "$MYSQL_DATABASE"'],
            cwd=stack.deploy_dir, env=stack.environ, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.write, daemon=True)

    def write(self):
        while not self.stop.is_set():
            self.proc.stdin.write("INSERT INTO backup_probe_writes (at) VALUES (NOW(6));\n")
            self.proc.stdin.flush()
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0, self.proc.stderr.read()


def manifest(plain: bytes) -> dict[str, str]:
    """The "-- petory-backup" record at the end of a dump: rows per table, and the other fields."""
    record = {}
    for line in plain.decode().splitlines():
        if line.startswith("-- petory-backup "):
            fields = line.removeprefix("-- petory-backup ").split("\t")
            if fields[:2] == ["stats", "rows"]:
                record[f"rows {fields[2]}"] = fields[3]
            elif fields[0] != "stats":
                record[fields[0]] = "\t".join(fields[1:])
    return record


def test_an_encrypted_backup_is_proven_against_its_snapshot_under_writes_and_copied_off_the_host(
        db, probe, sftp, metrics, summary, tmp_path):
    stack, identity = db
    backups = stack.deploy_dir / "backups" / stack.env
    backups.mkdir(parents=True, exist_ok=True)
    expired = backups / "petory-20200101T000000Z.sql.gz.age"  # older than the 14 days kept
    expired.write_bytes(b"old")
    os.utime(expired, (time.time() - 30 * 86400,) * 2)
    kept = {p.name for p in backups.iterdir()} - {expired.name}  # what other tests left: not expired
    with Writer(stack):
        time.sleep(1)
        before = int(mysql(stack, "SELECT COUNT(*) FROM backup_probe_writes"))
        began = time.monotonic()
        proc = run(stack, "scripts/backup-db.sh", stack.env, env={**sftp.settings, "METRICS_TEXTFILE_DIR": str(metrics)})
        took = time.monotonic() - began
        after = int(mysql(stack, "SELECT COUNT(*) FROM backup_probe_writes"))
        time.sleep(0.5)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = lines(proc)
    dump = Path(proc.stdout.strip().splitlines()[-1])
    assert DUMP.fullmatch(dump.name) and dump.name.endswith(".age") and dump.stat().st_mode & 0o777 == 0o600
    assert {p.name for p in backups.iterdir()} == kept | {dump.name}  # the expired one gone, nothing partial
    assert f"backup: expired {expired}" in log
    assert scratch_containers(stack) == []
    assert any(re.fullmatch(r"backup: \d+ tables, \d+ rows restored; every table matches the snapshot "
                            r"\(rows and CHECKSUM TABLE\)", line) for line in log), log
    # Only ciphertext on disk and off the host, and the copy is the file.
    assert dump.read_bytes().startswith(b"age-encryption.org/v1\n")
    assert sftp.files() == {dump.name: hashlib.sha256(dump.read_bytes()).hexdigest()}
    assert any(line == f"offsite: copied {dump.name} ({dump.stat().st_size} bytes) to "
               f"sftp://offsite@127.0.0.1:{sftp.port}/petory" for line in log), log
    # The snapshot fell between the writes before and after: its rows are the source's at one instant.
    began_decrypt = time.monotonic()
    compressed = sh("age", "--decrypt", "--identity", identity, dump, text=False).stdout
    decrypt_seconds = time.monotonic() - began_decrypt
    plain = gzip.decompress(compressed)
    record = manifest(plain)
    assert record["rows backup_probe"] == str(ROWS)
    assert before <= int(record["rows backup_probe_writes"]) <= after and before < after
    counter = re.search(rb"INSERT INTO `backup_probe_counter` VALUES\s*\(1,(\d+)\)", plain)
    assert counter and counter.group(1).decode() == record["rows backup_probe_writes"]  # the trigger's count agrees
    # Writes went on: no gap between consecutive rows of the writer longer than a second.
    gap = float(mysql(stack, "SELECT MAX(TIMESTAMPDIFF(MICROSECOND, a.at, b.at)) / 1e6 FROM backup_probe_writes a "
                             "JOIN backup_probe_writes b ON b.id = a.id + 1"))
    assert gap < 1.0
    prom = (metrics / "petory_backup_prod.prom").read_text()
    for name in ("last_success_timestamp_seconds", "last_verified_rows", "last_write_lock_seconds",
                 "last_copy_timestamp_seconds", "last_size_bytes"):
        assert re.search(rf'^petory_backup_{name}{{env="prod"}} [0-9.]+$', prom, re.M), (name, prom)
    # What encryption costs, measured apart from the stream it runs in.
    recipients = stack.deploy_dir / "backup/age-recipients.txt"
    began_encrypt = time.monotonic()
    sh("age", "--encrypt", "--recipients-file", recipients, "-o", tmp_path / "again.age", input=compressed, text=False)
    encrypt_seconds = time.monotonic() - began_encrypt
    timing = dict(re.findall(r"(ready|written and restored|compared) in ([0-9.]+) s", proc.stderr))
    lock_ms = re.search(r"writes waited (\d+) ms", proc.stderr).group(1)
    summary.append(
        f"backups: {dump.stat().st_size} bytes encrypted ({len(compressed)} gzip, {len(plain)} SQL), "
        f"{sum(int(v) for k, v in record.items() if k.startswith('rows '))} rows; whole run {took:.1f} s: "
        f"throwaway container {timing['ready']} s, dump+restore+encrypt stream {timing['written and restored']} s, "
        f"comparison {timing['compared']} s; writes waited {lock_ms} ms (largest gap between writer rows {gap:.3f} s); "
        f"age alone: encrypt {encrypt_seconds:.2f} s, decrypt {decrypt_seconds:.2f} s; SFTP copy verified by sha256")


def test_the_restore_drill_where_the_key_lives_reports_every_table_against_production(
        db, probe, sftp, metrics, summary, tmp_path):
    stack, identity = db
    mysql(stack, "INSERT INTO backup_probe_writes (at) VALUES (NOW(6))")  # production moved on
    began = time.monotonic()
    proc = run(stack, "scripts/restore-drill.sh", stack.env, "--identity", str(identity),
               env={"METRICS_TEXTFILE_DIR": str(metrics)})
    on_host = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = proc.stdout.splitlines()
    assert report[0].split() == ["table", "snapshot", "rows", "restored", "rows", "production", "now", "result"]
    table = {line.split()[0]: line.split()[1:] for line in report[1:-1]}
    assert table["backup_probe"] == [str(ROWS), str(ROWS), str(ROWS), "ok"]
    snapshot, restored, now, verdict = table["backup_probe_writes"]
    assert snapshot == restored and int(now) > int(snapshot) and verdict == "ok"
    assert "backup_probe_view" not in table  # a view has no rows of its own
    assert re.fullmatch(r"\d+ tables, \d+ rows restored; every table matches the snapshot \(rows and CHECKSUM TABLE\)",
                        report[-1])
    prom = (metrics / "petory_restore_drill_prod.prom").read_text()
    assert re.search(r'^petory_backup_drill_last_restored_rows\{env="prod"\} \d+$', prom, re.M), prom

    # Off the server: a checkout without env file, the copy fetched back from the SFTP server.
    away = tmp_path / "elsewhere"
    shutil.copytree(stack.deploy_dir, away / "deploy", symlinks=True,
                    ignore=shutil.ignore_patterns("env", "backups", ".deploy"))
    # The newest dump by its name's time (what a recovery onto a new server restores), size-checked.
    offsite = sftp.files()
    newest = max(offsite, key=lambda name: DUMP_TIME.search(name).group())
    fetch = ["scripts/offsite-sftp.sh", "--fetch-latest", str(tmp_path), "--env", stack.env]
    proc = run(stack, *fetch, env=sftp.settings)
    assert proc.returncode == 0, proc.stderr[-2000:]
    copy = Path(proc.stdout.strip())
    assert copy == tmp_path / newest and hashlib.sha256(copy.read_bytes()).hexdigest() == offsite[newest]
    assert copy.stat().st_mode & 0o777 == 0o600 and not list(tmp_path.glob("*.partial"))
    again = run(stack, *fetch, env=sftp.settings)  # never over a file that is there
    assert again.returncode == 1 and lines(again)[-1] == f"ERROR: {copy} exists already; nothing fetched (remove it, or use it)", again.stderr
    began = time.monotonic()
    proc = run(stack, "scripts/restore-drill.sh", stack.env, "--dump", str(copy), cwd=away / "deploy",
               env={"BACKUP_AGE_IDENTITY": str(identity), "METRICS_TEXTFILE_DIR": str(metrics)})
    off_host = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = proc.stdout.splitlines()
    assert report[0].split() == ["table", "snapshot", "rows", "restored", "rows", "result"]  # no production here
    assert report[-1].endswith("every table matches the snapshot (rows and CHECKSUM TABLE)")
    summary.append(f"backups: restore drill with the key {on_host:.1f} s on the server, {off_host:.1f} s off it "
                   f"(the SFTP copy, no env file)")


def test_the_drill_on_the_server_without_a_key_proves_a_fresh_snapshot(db, probe, metrics, summary):
    stack, _ = db
    began = time.monotonic()
    proc = run(stack, "scripts/restore-drill.sh", stack.env, env={"METRICS_TEXTFILE_DIR": str(metrics),
                                                                   "BACKUP_AGE_IDENTITY": ""})
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert any(re.fullmatch(rf"restore drill: {DUMP.pattern} is encrypted and this host has no key \(--identity\); "
                            r"proving a fresh snapshot of production instead, as every backup does before it encrypts",
                            line) for line in lines(proc)), proc.stderr
    assert proc.stdout.splitlines()[-1].endswith("every table matches the snapshot (rows and CHECKSUM TABLE)")
    assert scratch_containers(stack) == []
    summary.append(f"backups: restore drill on the server without the key (fresh snapshot, nothing kept) {took:.1f} s")


@pytest.fixture
def unencrypted(db):
    """The recipients file with no recipient, for one test."""
    stack, _ = db
    recipients = stack.deploy_dir / "backup/age-recipients.txt"
    saved = recipients.read_text()
    recipients.write_text("".join(line for line in saved.splitlines(keepends=True) if line.startswith("#")))
    yield
    recipients.write_text(saved)


def test_an_unencrypted_dump_never_leaves_the_host(db, probe, sftp, unencrypted):
    stack, _ = db
    backups = stack.deploy_dir / "backups" / stack.env
    offsite_before, local_before = sftp.files(), set(backups.iterdir())
    proc = run(stack, "scripts/backup-db.sh", stack.env, env=sftp.settings)
    assert proc.returncode == 1
    (dump,) = set(backups.iterdir()) - local_before
    assert DUMP.fullmatch(dump.name) and dump.name.endswith(".sql.gz")
    assert lines(proc)[-1] == (
        "ERROR: not copied off the host: backup/age-recipients.txt names no recipient, and unencrypted dumps never "
        f"leave the host (BACKUP_COPY_COMMAND is set); the local dump {dump} is kept")
    assert sftp.files() == offsite_before
    assert dump.stat().st_mode & 0o777 == 0o600 and manifest(gzip.decompress(dump.read_bytes()))["rows backup_probe"] == str(ROWS)
    dump.unlink()


@pytest.fixture
def small_disk(db):
    """mount_tmpfs(size) mounts a tmpfs of that size over backups/<env>/ (as root); unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem over backups/ needs root")
    stack, _ = db
    folder = stack.deploy_dir / "backups" / stack.env
    folder.mkdir(parents=True, exist_ok=True)
    mounted = []

    def mount(size: str) -> Path:
        sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", folder)
        mounted.append(folder)
        return folder

    yield mount
    for path in mounted:
        sh("umount", path)


def free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def test_too_little_space_is_refused_before_anything_is_written(db, small_disk):
    stack, _ = db
    folder = small_disk("1m")
    previous = folder / "petory-20260101T000000Z.sql.gz.age"
    previous.write_bytes(os.urandom(800 * 1024))
    proc = run(stack, "scripts/backup-db.sh", stack.env)
    assert (proc.returncode, lines(proc)) == (1, [
        f"ERROR: not enough free space for a new dump: {folder} has {free_bytes(folder)} bytes free, less than 1.5 x "
        f"the previous dump ({previous.name}, {800 * 1024} bytes); nothing written"])
    assert [p.name for p in folder.iterdir()] == [previous.name] and scratch_containers(stack) == []


def test_a_full_disk_is_reported_with_the_directory_and_its_free_bytes(db, probe, small_disk):
    stack, _ = db
    folder = small_disk("64k")
    older = folder / "petory-20260101T000000Z.sql.gz.age"  # past the retention days: kept all the same
    older.write_bytes(os.urandom(1000))
    os.utime(older, (time.time() - 30 * 86400,) * 2)
    proc = run(stack, "scripts/backup-db.sh", stack.env)
    assert proc.returncode == 1
    last = lines(proc)[-1]
    match = re.fullmatch(rf"ERROR: the disk is full: writing {DUMP.pattern} failed \(age: error: [^()]*: no space left "
                         rf"on device\); {re.escape(str(folder))} has (\d+) bytes free; nothing of this backup is kept, "
                         r"older dumps are untouched", last)
    assert match, last
    assert int(match.group(2)) < 4096  # what was left when the write failed
    assert [p.name for p in folder.iterdir()] == [older.name] and scratch_containers(stack) == []
