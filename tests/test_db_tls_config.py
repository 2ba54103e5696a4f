"""TLS between the backend and MySQL (answer db_tls) and the MySQL 8.4 path, without Docker.

The live proofs (openssl s_client against the running server, plaintext refused, the backend not
ready with a wrong CA, rotation under load) are in tests/live/test_db_tls.py; the generated CI
starts mysql:8.0 and mysql:8.4 with deploy/scripts/ci/check-mysql.sh.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

import derived
from script_helpers import bash, functions, private_copy, run
from test_model import model

# Options and statements MySQL 8.4 no longer accepts (8.4.0 release notes; 8.2 and 8.3 removals
# that 8.0 still took): the generated configuration must not depend on any of them.
REMOVED_IN_84 = ("default_authentication_plugin", "default-authentication-plugin", "expire_logs_days",
                 "expire-logs-days", "have_ssl", "have_openssl", "binlog_transaction_dependency_tracking",
                 "avoid_temporal_upgrade", "admin-ssl", "master_info_repository", "relay_log_info_repository",
                 "log_bin_use_v1_row_events", "character-set-client-handshake", "skip-host-cache",
                 "mysql_native_password", "mysql-native-password")
# Statements MySQL 8.4 removed -> the name a script must use there (it may keep the old one for
# MySQL before 8.2 and MariaDB).
STATEMENTS_REMOVED_IN_84 = {
    "SHOW MASTER STATUS": "SHOW BINARY LOG STATUS", "SHOW MASTER LOGS": "SHOW BINARY LOGS",
    "RESET MASTER": "RESET BINARY LOGS AND GTIDS", "PURGE MASTER LOGS": "PURGE BINARY LOGS",
    "SHOW SLAVE STATUS": "SHOW REPLICA STATUS", "START SLAVE": "START REPLICA", "STOP SLAVE": "STOP REPLICA",
    "CHANGE MASTER TO": "CHANGE REPLICATION SOURCE TO",
}


def query(url: str) -> dict:
    return dict(parse_qsl(urlsplit(url.removeprefix("jdbc:")).query))


# --------------------------------------------------------------------------- the model


def test_default_follows_the_database_mode():
    assert derived.value("db_tls", {"database": "bundled"}) == "verify-identity"
    assert derived.value("db_tls", {"database": "external"}) == "required"


@pytest.mark.parametrize("mode,ssl_mode", [("off", "PREFERRED"), ("required", "REQUIRED"),
                                           ("verify-identity", "VERIFY_IDENTITY")])
def test_jdbc_url_states_the_ssl_mode(mode, ssl_mode):
    db = model(db_tls=mode)["db"]
    params = query(db["jdbc_url"])
    assert db["jdbc_url"].startswith("jdbc:mysql://mysql:3306/petory?")
    assert params["sslMode"] == ssl_mode and params["characterEncoding"] == "UTF-8"
    assert db["tls"]["server_certificate"] == (mode != "off")
    if mode == "verify-identity":
        assert params["trustCertificateKeyStoreUrl"] == "file:/etc/petory/db-tls/truststore.p12"
        assert params["trustCertificateKeyStoreType"] == "PKCS12"
        assert params["trustCertificateKeyStorePassword"] == db["tls"]["truststore_password"]
    else:
        assert not any(key.startswith("trustCertificate") for key in params)


def test_certificate_names_are_what_clients_connect_to():
    assert model()["db"]["tls"]["names"] == ["mysql", "localhost", "127.0.0.1"]
    external = model(database="external", db_tls="verify-identity")["db"]
    assert external["tls"]["names"] == ["mysql.petory.example.com"]
    assert not external["tls"]["server_certificate"] and external["tls"]["helper"]
    assert query(external["jdbc_url"])["sslMode"] == "VERIFY_IDENTITY"
    assert not model(database="external", db_tls="required")["flags"]["db_tls"]  # nothing to issue or trust


# --------------------------------------------------------------------------- renders


def compose(project):
    return yaml.safe_load((project / "deploy/compose.yaml").read_text())


def test_verify_identity_render(rendered):
    project = rendered("defaults")
    deploy = project / "deploy"
    services = compose(project)["services"]
    backend = services["backend-blue"]
    assert query(backend["environment"]["SPRING_DATASOURCE_URL"])["sslMode"] == "VERIFY_IDENTITY"
    assert "db-truststore:/etc/petory/db-tls:ro" in backend["volumes"]
    assert "mysql-tls:/etc/mysql/tls:ro" in services["mysql"]["volumes"]
    assert services["mysql"]["environment"]["APP_DB_REQUIRE_SSL"] == "true"
    helper = services["db-tls-init"]
    assert helper["profiles"] == ["tools"] and helper["network_mode"] == "none"
    tls_cnf = (deploy / "docker/mysql/conf.d/tls.cnf").read_text()
    assert re.search(r"^require_secure_transport = ON$", tls_cnf, re.M)
    assert "ssl_cert = /etc/mysql/tls/server-cert.pem" in tls_cnf and "ssl_key = /etc/mysql/tls/server-key.pem" in tls_cnf
    initdb = (deploy / "docker/mysql/initdb/10-app-user.sh").read_text()
    assert 'require="REQUIRE SSL"' in initdb and "${require};" in initdb
    assert '"${DEPLOY_DIR}/scripts/db-tls.sh" install' in (deploy / "scripts/init-certificates.sh").read_text()
    dev = (deploy / "compose.dev.yaml").read_text()  # Adminer connects without TLS
    assert "command: [mysqld, --require-secure-transport=OFF]" in dev and 'APP_DB_REQUIRE_SSL: "false"' in dev
    makefile = (deploy / "Makefile").read_text()
    assert "scripts/db-tls.sh rotate $(ENV)" in makefile and "scripts/db-tls.sh check $(ENV)" in makefile


def test_off_render_sets_nothing_up(rendered):
    project = rendered("size-small")
    deploy = project / "deploy"
    services = compose(project)["services"]
    assert query(services["backend-blue"]["environment"]["SPRING_DATASOURCE_URL"])["sslMode"] == "PREFERRED"
    assert "db-tls-init" not in services and "volumes" not in services["backend-blue"]
    assert not (deploy / "docker/mysql/conf.d/tls.cnf").exists()
    assert not (deploy / "scripts/db-tls.sh").exists() and not (deploy / "scripts/lib/db-tls.sh").exists()
    assert "APP_DB_REQUIRE_SSL" not in services["mysql"]["environment"]
    assert (deploy / "scripts/ci/check-mysql.sh").exists()  # the 8.0 and 8.4 check runs without TLS too


def test_external_verify_identity_render(rendered):
    project = rendered("external-db")
    deploy = project / "deploy"
    services = compose(project)["services"]
    url = services["backend-blue"]["environment"]["SPRING_DATASOURCE_URL"]
    assert url.startswith("jdbc:mysql://db.internal.example.com:3307/") and query(url)["sslMode"] == "VERIFY_IDENTITY"
    assert services["db-tls-init"]["volumes"] == ["db-truststore:/db-truststore"]
    script = (deploy / "scripts/db-tls.sh").read_text()
    assert "DB_HOST=db.internal.example.com" in script and ".deploy/<env>/db-tls/ca.pem" in script
    assert not (deploy / "scripts/lib/db-tls.sh").exists() and not (deploy / "scripts/ci/check-mysql.sh").exists()


def test_generated_ci_starts_mysql_80_and_84_with_the_configuration(rendered):
    workflow = yaml.safe_load((rendered("defaults") / ".github/workflows/deploy-ci.yml").read_text())
    job = workflow["jobs"]["mysql"]
    assert job["strategy"]["matrix"]["image"] == ["mysql:8.0", "mysql:8.4"]
    assert job["steps"][-1]["run"] == 'deploy/scripts/ci/check-mysql.sh "${IMAGE}"'
    external = yaml.safe_load((rendered("external-db") / ".github/workflows/deploy-ci.yml").read_text())
    assert "mysql" not in external["jobs"]


@pytest.mark.parametrize("name", ["defaults", "size-small"])
def test_mysql_configuration_needs_nothing_that_84_removed(rendered, name):
    deploy = rendered(name) / "deploy"
    config = [*sorted((deploy / "docker/mysql").rglob("*.cnf")), *sorted((deploy / "docker/mysql/initdb").iterdir())]
    mysql = yaml.safe_dump(compose(rendered(name))["services"]["mysql"])
    for text, where in [(path.read_text(), path.name) for path in config] + [(mysql, "compose.yaml mysql")]:
        found = [option for option in REMOVED_IN_84 if option in text]
        assert not found, f"{where} uses {found}, which MySQL 8.4 no longer accepts"
    for path in sorted((deploy / "scripts").rglob("*.sh")):
        text = path.read_text()
        for statement, replacement in STATEMENTS_REMOVED_IN_84.items():
            used = [line for line in text.splitlines() if re.search(rf"\b{statement}\b", line) and "(MASTER|" not in line]
            assert not used or replacement in text, f"{path.name} runs {statement} but never {replacement} (MySQL 8.4)"


# --------------------------------------------------------------------------- the scripts


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory):
    return private_copy(rendered, tmp_path_factory.mktemp("db-tls"), "defaults")


def test_db_tls_script_shape(deploy):
    path = deploy / "scripts/db-tls.sh"
    lines = path.read_text().rstrip("\n").splitlines()
    assert "set -Eeuo pipefail" in lines and lines[-1] == 'main "$@"' and "parse_args 2 2" in path.read_text()
    proc = run(deploy, "scripts/db-tls.sh", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: scripts/db-tls.sh <command> <env>")
    missing = run(deploy, "scripts/db-tls.sh", "rotate")
    assert missing.returncode == 2 and "missing <env>" in missing.stderr
    wrong = run(deploy, "scripts/db-tls.sh", "renew", "prod")
    assert wrong.returncode == 2 and "unknown command 'renew'" in wrong.stderr


def test_reload_statement_per_server(deploy):
    proc = bash(deploy, 'reload_tls_statement "8.4.3"; echo; reload_tls_statement "11.8.9-MariaDB-0+deb13u1"',
                libs=("common", "certificates", "db-tls"))
    assert proc.stdout.splitlines() == ["ALTER INSTANCE RELOAD TLS", "FLUSH SSL"], proc.stderr


def test_install_code_renames_each_file_into_place_readable_by_mysql(deploy):
    proc = bash(deploy, "mysql_tls_install_code /in /mysql-tls", libs=("common", "certificates", "db-tls"))
    code = proc.stdout
    assert "chown 999:999" in code and "chmod 600 server-key.pem" in code
    assert "mv -f ca.pem server-cert.pem server-key.pem /mysql-tls/" in code


def test_issued_certificate_verifies_for_the_service_name(deploy, tmp_path):
    proc = bash(deploy, f'issue_mysql_certificate prod "{tmp_path}/tls"', libs=("common", "certificates", "db-tls"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == ["ca.pem", "server-cert.pem", "server-key.pem"]
    for name, ok in (("mysql", True), ("localhost", True), ("db.example.com", False)):
        check = run(deploy, "openssl", "verify", "-CAfile", str(tmp_path / "tls/ca.pem"), "-verify_hostname", name,
                    str(tmp_path / "tls/server-cert.pem"))
        assert (check.returncode == 0) is ok, (name, check.stdout, check.stderr)


def one_liner(script, name: str) -> str:
    return re.search(rf"^{name}\(\) \{{.*\}}$", script.read_text(), re.M).group(0) + "\n"


UPGRADE_STUBS = """
sql() {{ case "$2" in "SELECT VERSION()") echo "{running}" ;; *mysql_native_password*) printf '%s' "{native}" ;; esac; }}
compose() {{ echo "{target}"; }}
"""


@pytest.mark.parametrize("running,target,native,message", [
    ("8.0.40", "mysql:8.4", "", ""),
    ("8.0.40", "mysql:8.0.41", "legacy@%", ""),  # 8.0 still loads it
    ("8.0.40", "mysql:8.4", "legacy@%", "MySQL 8.4 does not load mysql_native_password, used by: legacy@%"),
    ("8.4.3", "mysql:8.0", "", "MySQL 8.4 -> 8.0 is a downgrade"),
    ("11.8.9-MariaDB-0+deb13u1", "mysql:8.0", "", ""),
])
def test_upgrade_refuses_what_mysql_would_refuse(deploy, running, target, native, message):
    script = deploy / "scripts/upgrade-datastore.sh"
    code = UPGRADE_STUBS.format(running=running, target=target, native=native) + \
        one_liner(script, "major_minor") + functions(script, "check_mysql_path") + "check_mysql_path prod"
    proc = bash(deploy, code)
    if message:
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
