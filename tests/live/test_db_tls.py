"""MySQL over verified TLS on the database stack (db_tls=verify-identity), proven from outside the
sample backend: openssl s_client against the running server with the generated CA, a plaintext
login refused, the backend not ready with a wrong CA, the certificate rotated under load without a
failed request or a restart, and its expiry exported.

Here the server is the MariaDB stand-in, so the reload statement that runs is FLUSH SSL; MySQL's
ALTER INSTANCE RELOAD TLS runs in the generated CI (deploy/scripts/ci/check-mysql.sh starts
mysql:8.0 and mysql:8.4). The sample backend's driver is MariaDB Connector/J 2.7: its
Database.java maps Connector/J 8's sslMode and truststore options to 2.7's.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from cryptography import x509

from load import Load
from stack import KeepAliveClient, Stack

CA = ".deploy/prod/ca"
APP_USER = "petory_app"


@pytest.fixture(scope="module")
def db(database_stack) -> Stack:
    return database_stack.stack


def docker(*args: str, check: bool = True, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {proc.stderr[-2000:]}")
    return proc


def mysql_container(stack: Stack) -> dict:
    return stack.containers()["mysql"][0]


def client(stack: Stack, *command: str, mounts: dict[Path, str] | None = None) -> subprocess.CompletedProcess:
    """COMMAND in a throwaway container of the MySQL image on the stack's data network: a client
    of its own, not the backend."""
    volumes = [arg for host, inside in (mounts or {}).items() for arg in ("-v", f"{host}:{inside}:ro")]
    return docker("run", "--rm", "-i", "--network", f"{stack.name}_data", *volumes,
                  mysql_container(stack)["Config"]["Image"], *command, check=False, input="")


def handshake(stack: Stack, ca_file: Path, name: str, strict: bool = True) -> subprocess.CompletedProcess:
    """openssl s_client as a verifying client of mysql:3306 for NAME, trusting CA_FILE only;
    strict=False reports a failed verification but completes the handshake (to see the certificate)."""
    return client(stack, "openssl", "s_client", "-starttls", "mysql", "-connect", "mysql:3306",
                  "-CAfile", f"/ca/{ca_file.name}", "-verify_hostname", name,
                  *(["-verify_return_error"] if strict else []), mounts={ca_file.parent: "/ca"})


def presented(proc: subprocess.CompletedProcess) -> x509.Certificate:
    return x509.load_pem_x509_certificate(proc.stdout[proc.stdout.index("-----BEGIN CERTIFICATE-----"):].encode())


def root_sql(stack: Stack, statement: str) -> str:
    proc = stack.compose("exec", "-T", "mysql", "sh", "-c",
                         'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B -e "$1"', "sh", statement)
    return proc.stdout.decode().strip()


def env_value(stack: Stack, key: str) -> str:
    lines = (stack.deploy_dir / "env/prod.env").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in reversed(lines) if line.startswith(f"{key}="))


def foreign_ca(directory: Path) -> Path:
    """A CA that signed nothing of the stack's."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem"), "-days", "30",
                    "-subj", "/CN=not the stack's CA"], check=True, capture_output=True)
    return directory / "ca.pem"


def keytool_truststore(ca_file: Path, directory: Path) -> Path:
    """A PKCS12 truststore made as scripts/db-tls.sh makes it (keytool, never openssl pkcs12)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "db-ca", "-file", str(ca_file), "-keystore",
                    str(directory / "truststore.p12"), "-storetype", "PKCS12", "-storepass", "changeit"],
                   check=True, capture_output=True)
    directory.chmod(0o755)
    (directory / "truststore.p12").chmod(0o644)
    return directory


def db_tls(stack: Stack, command: str, metrics: Path | None = None) -> subprocess.CompletedProcess:
    env = {**stack.environ, **({"METRICS_TEXTFILE_DIR": str(metrics)} if metrics else {})}
    return subprocess.run(["scripts/db-tls.sh", command, "prod"], cwd=stack.deploy_dir, env=env,
                          capture_output=True, text=True, timeout=300)


# --------------------------------------------------------------------------- the server


def test_the_generated_ca_verifies_the_service_name_and_nothing_else_does(db, tmp_path):
    ca = db.deploy_dir / CA / "ca.pem"
    ok = handshake(db, ca, "mysql")
    assert ok.returncode == 0 and "Verify return code: 0 (ok)" in ok.stdout, ok.stdout[-1500:] + ok.stderr
    names = presented(ok).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mysql" in names.get_values_for_type(x509.DNSName)
    other = handshake(db, ca, "db.other.example")
    assert other.returncode != 0 and "hostname mismatch" in other.stdout + other.stderr
    stranger = handshake(db, foreign_ca(tmp_path / "foreign"), "mysql")
    assert stranger.returncode != 0 and "certificate verify failed" in stranger.stdout + stranger.stderr


def test_a_certificate_without_the_name_fails_and_rotation_repairs_it(db, tmp_path):
    """The server presents what is in the mysql-tls volume: a certificate from the right CA that
    lacks the name mysql fails verification; `db-tls.sh rotate` puts a good one back, live."""
    ca_dir = db.deploy_dir / CA
    work = tmp_path / "nameless"
    work.mkdir()
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    str(work / "server-key.pem"), "-out", str(work / "request.csr"), "-subj", "/CN=db.other.example"],
                   check=True, capture_output=True)
    (work / "ext.cnf").write_text("subjectAltName = DNS:db.other.example\nextendedKeyUsage = serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(work / "request.csr"), "-CA", str(ca_dir / "ca.pem"),
                    "-CAkey", str(ca_dir / "ca.key"), "-set_serial", "0x1d", "-days", "2", "-extfile",
                    str(work / "ext.cnf"), "-out", str(work / "server-cert.pem")], check=True, capture_output=True)
    (work / "ca.pem").write_bytes((ca_dir / "ca.pem").read_bytes())
    for path in work.iterdir():
        path.chmod(0o644)
    work.chmod(0o755)
    install = subprocess.run(["bash", "-c", "source scripts/lib/common.sh; source scripts/lib/certificates.sh; "
                              "source scripts/lib/db-tls.sh; mysql_tls_install_code /in /mysql-tls"],
                             cwd=db.deploy_dir, capture_output=True, text=True, check=True).stdout
    try:
        db.compose("run", "--rm", "--no-deps", "-T", "-v", f"{work}:/in:ro", "db-tls-init", install)
        root_sql(db, "FLUSH SSL")  # what db-tls.sh runs on MariaDB (ALTER INSTANCE RELOAD TLS on MySQL)
        nameless = handshake(db, ca_dir / "ca.pem", "mysql")
        assert nameless.returncode != 0 and "hostname mismatch" in nameless.stdout + nameless.stderr
        assert presented(handshake(db, ca_dir / "ca.pem", "mysql", strict=False)).serial_number == 0x1d
    finally:
        repaired = db_tls(db, "rotate")
    assert repaired.returncode == 0, repaired.stderr
    good = handshake(db, ca_dir / "ca.pem", "mysql")
    assert good.returncode == 0 and presented(good).serial_number != 0x1d


def test_plaintext_is_refused_and_the_account_requires_tls(db):
    assert root_sql(db, "SELECT @@GLOBAL.require_secure_transport") == "1"
    assert root_sql(db, f"SELECT ssl_type FROM mysql.user WHERE user = '{APP_USER}' AND host = '%'") == "ANY"
    mariadb = "MariaDB" in client(db, "mysql", "--version").stdout
    password = env_value(db, "MYSQL_PASSWORD")
    login = ["mysql", "-h", "mysql", "-u", APP_USER, f"-p{password}", "-N", "-B", "-e", "SHOW STATUS LIKE 'Ssl_version'"]
    plaintext = client(db, *login, "--skip-ssl" if mariadb else "--ssl-mode=DISABLED")
    assert plaintext.returncode != 0 and "3159" in plaintext.stderr, plaintext.stderr
    verified = ["--ssl-verify-server-cert"] if mariadb else ["--ssl-mode=VERIFY_IDENTITY"]
    over_tls = client(db, *login, *verified, "--ssl-ca=/ca/ca.pem", mounts={db.deploy_dir / CA: "/ca"})
    assert over_tls.returncode == 0 and "TLSv1.3" in over_tls.stdout, over_tls.stderr


# --------------------------------------------------------------------------- the backend


def test_backend_is_not_ready_with_a_wrong_ca(db, tmp_path, summary):
    """Two probes of the running backend's image and environment on the data network, one trusting
    a foreign CA and one the generated CA (each truststore made by keytool): only the second gets
    ready, and the first says why in its log."""
    blue = db.containers()["backend-blue"][0]
    env = [arg for pair in blue["Config"]["Env"] for arg in ("-e", pair)]
    truststores = {"wrong": keytool_truststore(foreign_ca(tmp_path / "foreign"), tmp_path / "wrong"),
                   "right": keytool_truststore(db.deploy_dir / CA / "ca.pem", tmp_path / "right")}
    names = {label: f"{db.name}-probe-{label}-{uuid.uuid4().hex[:6]}" for label in truststores}
    try:
        for label, directory in truststores.items():
            docker("run", "-d", "--name", names[label], "--network", f"{db.name}_data", *env,
                   "-v", f"{directory}:/etc/petory/db-tls:ro", blue["Config"]["Image"])
        status: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and status.get("right") != 200:
            time.sleep(1)
            for label, name in names.items():
                probe = docker("exec", name, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "http://127.0.0.1:8081/actuator/health/readiness", check=False)
                status[label] = int(probe.stdout or 0)
        time.sleep(3)  # the wrong one had as long as the right one, and more
        wrong = docker("exec", names["wrong"], "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                       "http://127.0.0.1:8081/actuator/health/readiness", check=False)
        logs = docker("logs", names["wrong"]).stdout + docker("logs", names["wrong"]).stderr
    finally:
        docker("rm", "-f", *names.values(), check=False)
    summary.append(f"db tls: backend readiness with the generated CA {status.get('right')}, with a foreign CA {wrong.stdout}")
    assert status["right"] == 200
    assert wrong.stdout == "503", wrong.stdout
    assert "Waiting for backing services" in logs and ("SSL" in logs or "certificat" in logs), logs[-2000:]


def test_rotation_under_load_has_no_failed_request(db, tmp_path, summary):
    ca = db.deploy_dir / CA / "ca.pem"
    started = mysql_container(db)["State"]["StartedAt"]
    before = presented(handshake(db, ca, "mysql")).serial_number
    api = KeepAliveClient(db)

    def list_pets():  # a new MySQL connection (and TLS handshake) per request in the sample backend
        resp = api.request("GET", "/api/pets")
        return resp.status, ""

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    with Load(list_pets, rate=60, threads=6, max_seconds=120) as load:
        time.sleep(3)
        began = time.monotonic()
        proc = db_tls(db, "rotate", metrics)
        took = time.monotonic() - began
        time.sleep(3)
    after_rotation = load.between(began + took, float("inf"))
    summary.append(f"db tls: rotation under load: {len(load.samples)} requests at {load.achieved_rate():.0f}/s, "
                   f"{len(load.failures)} failed, {len(after_rotation)} after the reload; rotate took {took:.1f} s")
    assert proc.returncode == 0, proc.stderr
    assert not load.failures, load.failures[:5]
    # Each request opens a new MySQL connection in the sample backend (a TLS handshake, about
    # 0.2 s on two cores), so the rate is low but every request after the reload met the new certificate.
    assert load.achieved_rate() >= 10 and len(after_rotation) >= 30
    after = handshake(db, ca, "mysql")
    assert after.returncode == 0 and presented(after).serial_number != before
    rotated = re.search(r"serial \w* -> (\w+)", proc.stderr)  # the script checked what the server presents
    assert rotated and int(rotated.group(1), 16) == presented(after).serial_number, proc.stderr
    assert mysql_container(db)["State"]["StartedAt"] == started  # reloaded, not restarted

    # The expiry, under the agreed metric name, is the presented certificate's.
    sample = next(line for line in (metrics / "petory_certificates_prod.prom").read_text().splitlines()
                  if line.startswith("petory_certificate_expiry_timestamp_seconds{"))
    assert sample.startswith('petory_certificate_expiry_timestamp_seconds{env="prod",name="mysql"} ')
    not_after = presented(after).not_valid_after_utc
    assert int(sample.rsplit(" ", 1)[1]) == int(not_after.timestamp())
    assert not_after - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=360)  # 365 (intermediate)


def test_check_reports_what_the_backend_would_see(db, tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    proc = db_tls(db, "check", metrics)
    assert proc.returncode == 0, proc.stderr
    assert "verified for the name mysql" in proc.stderr and "require_secure_transport=ON" in proc.stderr
    assert f"{APP_USER} REQUIRE SSL" in proc.stderr
    assert (metrics / "petory_certificates_prod.prom").exists()
