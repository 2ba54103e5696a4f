"""The deployment model (hooks/deployment.py): unit tests, and the rule that templates only print it."""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.meta
import pytest

import deployment

ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "project_slug": "petory",
    "layout": "app-repo",
    "app_repository": "petory-team/petory",
    "environments": ["dev", "staging", "prod"],
    "domain": "petory.example.com",
    "staging_domain": "staging.petory.example.com",
    "extra_server_names": [],
    "acme_email": "ops@petory.example.com",
    "acme_server": "https://acme-v02.api.letsencrypt.org/directory",
    "tls_mode_staging": "letsencrypt",
    "tls_mode_prod": "letsencrypt",
    "tls_provided_dir": "/etc/petory/tls",
    "certbot_image": "certbot/certbot:v4.0.0",
    "database": "bundled",
    "db_host": "mysql.petory.example.com",
    "db_port": 3306,
    "db_name": "petory",
    "db_tls": "verify-identity",
    "backup_age_recipient": "",
    "redis": "bundled",
    "redis_host": "redis.petory.example.com",
    "redis_port": 6379,
    "server_size": "medium",
    "host_cpus": 4,
    "host_memory_gb": 8,
    "backend_replicas": 2,
    "timezone": "Asia/Seoul",
    "backend_build": "ci-jar",
    "backend_dir": "backend",
    "backend_jar_glob": "backend/build/libs/*-SNAPSHOT.jar",
    "frontend_dir": "frontend",
    "frontend_build_dir": "frontend/build",
    "registry": "ghcr",
    "registry_host": "registry.example.com",
    "registry_owner": "petory-team",
    "backend_image": "ghcr.io/petory-team/petory-backend",
    "frontend_image": "ghcr.io/petory-team/petory-frontend",
    "edge_nginx_image": "nginx:1.28-alpine",
    "frontend_nginx_image": "nginx:1.28-alpine",
    "jre_image": "eclipse-temurin:17-jre",
    "jdk_image": "eclipse-temurin:17-jdk",
    "node_image": "node:20-alpine",
    "adminer_image": "adminer:6.1.1-standalone",
    "mysql_image": "mysql:8.0",
    "redis_image": "redis:7-alpine",
    "staging_ssh_host": "staging.petory.example.com",
    "staging_ssh_user": "deploy",
    "staging_deploy_dir": "/srv/petory",
    "prod_ssh_host": "petory.example.com",
    "prod_ssh_user": "deploy",
    "prod_deploy_dir": "/srv/petory",
    "docker_source": "docker-ce",
    "admin_user": "admin",
    "admin_cidrs": [],
    "proxy_read_timeout_seconds": 60,
    "tls_profile": "intermediate",
    "monitoring": "bundled",
    "remote_write_url": None,
    "loki_push_url": None,
    "alert_email": "",
    "alert_smtp_smarthost": "",
    "alert_webhook": False,
    "backend_port": 8080,
    "availability_target": 99.5,
}


def model(**changes):
    return deployment.build({**DEFAULTS, **changes})


def test_answers_from_context_reads_every_answer_build_needs():
    assert set(DEFAULTS) == deployment.COVERED | deployment.CONTEXT_EXTRA


def test_environments_are_in_canonical_order_and_dev_is_no_server():
    m = model(environments=["prod", "dev"])
    assert m["envs"] == ["dev", "prod"] and m["servers"] == ["prod"]
    assert [site["env"] for site in m["server_sites"]] == ["prod"]
    assert m["flags"]["dev"] and m["flags"]["prod"] and not m["flags"]["staging"]


def test_sites_carry_names_tls_certificate_path_ssh_and_url():
    m = model(extra_server_names=["www.petory.example.com"], tls_mode_staging="provided", prod_ssh_host="10.0.0.5")
    prod, staging, dev = m["sites"]["prod"], m["sites"]["staging"], m["sites"]["dev"]
    assert prod["names"] == ["petory.example.com", "www.petory.example.com"] and prod["primary"] == "petory.example.com"
    assert prod["cert_dir"] == "/etc/letsencrypt/live/petory.example.com" and prod["provided_dir"] is None
    assert prod["ssh"] == {"host": "10.0.0.5", "user": "deploy", "dir": "/srv/petory"}
    assert prod["public_url"] == "https://petory.example.com" and prod["log_level"] == "WARN"
    assert staging["tls"] == "provided" and staging["provided_dir"] == "/etc/petory/tls/staging.petory.example.com"
    assert staging["log_level"] == "INFO" and staging["compose_project"] == "petory-staging"
    assert dev["names"] == ["localhost"] and dev["tls"] == "self-signed" and dev["ssh"] is None
    assert dev["public_url"] == "https://localhost:8443" and dev["log_level"] == "DEBUG"


@pytest.mark.parametrize(("environments", "staging", "prod", "expected"), [
    (["dev", "staging", "prod"], "letsencrypt", "self-signed", True),
    (["dev", "prod"], "letsencrypt", "self-signed", False),  # staging's answer does not count without staging
    (["dev"], "letsencrypt", "letsencrypt", False),  # dev never uses Let's Encrypt
    (["staging", "prod"], "provided", "letsencrypt", True),
])
def test_lets_encrypt_is_used_only_by_a_chosen_server_environment(environments, staging, prod, expected):
    answers = {**DEFAULTS, "environments": environments, "tls_mode_staging": staging, "tls_mode_prod": prod}
    assert deployment.uses_letsencrypt(answers) is expected
    m = deployment.build(answers)
    assert m["flags"]["uses_letsencrypt"] is expected
    assert (m["images"]["certbot"] is not None) is expected and (m["acme"] is not None) is expected
    assert ("certs-renew" in [t["name"] for t in m["tasks"]]) is expected


@pytest.mark.parametrize(("registry", "host", "image"), [
    ("ghcr", None, "ghcr.io/petory-team/petory-backend"),
    ("dockerhub", None, "docker.io/petory-team/petory-backend"),
    ("other", "registry.internal:5000", "registry.internal:5000/petory-team/petory-backend"),
])
def test_default_images_carry_the_registry_prefix(registry, host, image):
    answers = {**DEFAULTS, "registry": registry, "registry_host": host}
    assert deployment.default_image(answers, "backend") == image
    assert deployment.build(answers)["registry"]["login_host"] == ("" if registry == "dockerhub" else image.split("/")[0])


@pytest.mark.parametrize(("size", "cpus", "memory", "replicas"), [
    ("small", 2, 4, 1), ("medium", 4, 8, 2), ("large", 8, 16, 3),
    ("custom", 2, 4, 1), ("custom", 6, 12, 2), ("custom", 16, 64, 2),
])
def test_default_replicas_follow_the_preset_or_what_fits_at_most_two(size, cpus, memory, replicas):
    assert deployment.default_replicas({**DEFAULTS, "server_size": size, "host_cpus": cpus,
                                        "host_memory_gb": memory}) == replicas


def test_external_services_give_their_addresses_and_drop_their_tasks():
    m = model(database="external", db_host="db.internal.example.com", db_port=3307, redis="external",
              redis_host="cache.internal.example.com")
    assert m["db"]["address"] == "db.internal.example.com:3307" and not m["db"]["bundled"]
    assert m["cache"] == {"bundled": False, "host": "cache.internal.example.com", "port": 6379,
                          "address": "cache.internal.example.com:6379"}
    assert m["images"]["mysql"] is None and m["images"]["redis"] is None and not m["flags"]["data_services"]
    names = [t["name"] for t in m["tasks"]]
    assert not {"backup", "restore", "backup-timer", "mysql-slow-log", "upgrade-mysql", "upgrade-redis"} & set(names)
    bundled = model()
    assert bundled["db"]["address"] == "mysql:3306" and bundled["db"]["app_user"] == "petory_app"
    assert bundled["cache"]["address"] == "redis:6379"


def test_layouts_place_the_application_paths():
    app_repo = model()["layout"]
    assert app_repo["deploy_dir"] == "deploy" and app_repo["app_root"] == ""
    assert app_repo["jar_glob"] == "backend/build/libs/*-SNAPSHOT.jar"
    assert app_repo["from_deploy"]["frontend_dir"] == "../frontend"
    assert app_repo["jar_glob_in_backend"] == "build/libs/*-SNAPSHOT.jar" and app_repo["app_repository"] is None
    separate = model(layout="deploy-repo", frontend_build_dir="frontend/dist")["layout"]
    assert separate["app_root"] == "app/" and separate["app_repository"] == "petory-team/petory"
    assert separate["backend_dir"] == "app/backend" and separate["frontend_build_dir"] == "app/frontend/dist"
    assert separate["from_deploy"]["backend_dir"] == "../app/backend"
    assert model(backend_jar_glob="out/app.jar")["layout"]["jar_glob_in_backend"] == "build/libs/*.jar"


def test_task_list_is_ordered_unique_and_explains_every_task():
    names = [t["name"] for t in model()["tasks"]]
    assert names[0] == "help" and len(names) == len(set(names)) == len(deployment.TASKS)
    assert all(t["help"] and t["help"][0].isupper() for t in model()["tasks"])


@pytest.mark.parametrize("read_seconds", [5, 6, 10, 12, 30, 60, 300, 3600])
def test_a_down_dependency_is_answered_by_the_backend_before_the_edge_gives_up(read_seconds):
    """A request that waits for a MySQL connection, a Redis connect and a Redis command still ends
    inside the edge's read timeout, so a client gets the application's 503, never the edge's 504."""
    waits = model(proxy_read_timeout_seconds=read_seconds)["timeouts"]
    assert waits["edge_read_seconds"] == read_seconds
    one_request_ms = waits["db_acquire_ms"] + waits["redis_connect_ms"] + waits["redis_command_ms"]
    assert one_request_ms <= read_seconds * 1000 // 2
    assert deployment.HIKARI_MIN_TIMEOUT_MS <= waits["db_validation_ms"] < waits["db_acquire_ms"]
    assert all(ms >= deployment.HIKARI_MIN_TIMEOUT_MS for name, ms in waits.items() if name.endswith("_ms"))
    if read_seconds >= 12:  # room for the defaults: they are kept as they are
        assert {name: waits[f"{name}_ms"] for name in deployment.DEPENDENCY_WAIT_MS} == deployment.DEPENDENCY_WAIT_MS


def test_the_backend_gets_the_models_waits_and_the_edge_its_read_timeout(rendered_with):
    project = rendered_with({"advanced": True, "proxy_read_timeout_seconds": 10, "environments": ["prod"]})
    waits = model(proxy_read_timeout_seconds=10)["timeouts"]
    compose = (project / "deploy/compose.yaml").read_text()
    assert f'SPRING_DATASOURCE_HIKARI_CONNECTION_TIMEOUT: "{waits["db_acquire_ms"]}"' in compose
    assert f'SPRING_DATASOURCE_HIKARI_VALIDATION_TIMEOUT: "{waits["db_validation_ms"]}"' in compose
    assert f"SPRING_DATA_REDIS_TIMEOUT: {waits['redis_command_ms']}ms" in compose
    assert f"SPRING_DATA_REDIS_CONNECT_TIMEOUT: {waits['redis_connect_ms']}ms" in compose
    proxy = (project / "deploy/nginx/snippets/proxy.conf").read_text()
    assert "proxy_read_timeout 10s;" in proxy
    # Only transport failures move a request to another replica and count against max_fails.
    assert "proxy_next_upstream error timeout;" in proxy and "http_503" not in proxy


def test_metric_names_follow_prometheus_conventions():
    metrics = model()["metrics"]
    assert metrics["textfile_dir"].startswith("/var/lib/")
    for name, spec in metrics["names"].items():
        assert name.startswith("petory_") and spec["type"] in {"gauge", "counter"}
        assert name.endswith(("_seconds", "_bytes", "_info", "_total", "_rows")), name  # a unit, plural
        assert "env" in spec["labels"]


# -- templates only print the model -------------------------------------------------------------

def _jinja_sources():
    for base in ("template", "partials"):
        for path in sorted((ROOT / base).rglob("*")):
            rel = path.relative_to(ROOT)
            if "{" in str(rel):  # a templated path name
                yield f"{rel} (name)", str(rel)
            if path.is_file() and not path.is_symlink() and (path.suffix == ".jinja" or base == "partials"):
                yield str(rel), path.read_text(encoding="utf-8")


def test_templates_read_no_raw_answer_that_the_model_covers():
    env = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])
    env.filters.update({name: (lambda *a, **k: "") for name in ("to_nice_yaml", "to_yaml", "to_json", "ans_random")})
    offenders = {}
    for name, source in _jinja_sources():
        used = jinja2.meta.find_undeclared_variables(env.parse(source))
        covered = sorted(used & deployment.COVERED)
        if covered:
            offenders[name] = covered
    assert not offenders, f"read these through `deployment`: {offenders}"


# -- dev tools, the drift schedule ---------------------------------------------------------------

def test_dev_tools_have_their_own_loopback_ports_and_image_only_with_dev():
    m = model()
    ports = m["dev_ports"]
    assert ports["debug"] == 5005 and ports["adminer"] not in (ports["http"], ports["https"], ports["debug"], 3306, 6379)
    assert m["images"]["adminer"] == "adminer:6.1.1-standalone"
    assert model(environments=["staging", "prod"])["images"]["adminer"] is None


@pytest.mark.parametrize(("timezone", "cron", "utc", "summer"), [
    ("Asia/Seoul", "17 0 * * 1", "Mondays 00:17 UTC", None),
    ("Asia/Kolkata", "47 3 * * 1", "Mondays 03:47 UTC", None),  # a half-hour offset
    ("UTC", "17 9 * * 1", "Mondays 09:17 UTC", None),
    ("America/New_York", "17 14 * * 1", "Mondays 14:17 UTC", "Mondays 10:17"),
    ("Australia/Sydney", "17 23 * * 0", "Sundays 23:17 UTC", "Mondays 10:17"),  # the day before in UTC
    ("Europe/Dublin", "17 9 * * 1", "Mondays 09:17 UTC", "Mondays 10:17"),  # Irish "standard" time is the summer one
])
def test_drift_check_runs_at_the_same_local_time_written_in_utc(timezone, cron, utc, summer):
    drift = model(timezone=timezone)["drift_check"]
    assert drift == {"cron": cron, "timezone": timezone, "local": "Mondays 09:17", "utc": utc, "summer_local": summer}


def test_the_drift_workflow_prints_the_models_schedule(rendered):
    workflow = (rendered("defaults") / ".github/workflows/deploy-template-drift.yml").read_text()
    assert '    - cron: "17 0 * * 1" # Mondays 00:17 UTC\n' in workflow
    assert "# Mondays 09:17 Asia/Seoul, written in UTC" in workflow


# -- Monitoring (issue 13): the stack's model, the job names the rules use ------------------------

def test_monitoring_flags_and_the_scrape_jobs_the_rules_use():
    m = model()
    assert m["flags"]["monitoring"] and m["flags"]["monitoring_bundled"] and not m["flags"]["monitoring_remote"]
    mon = m["monitoring"]
    assert mon["env"] == "prod" and mon["mode"] == "bundled"
    assert mon["jobs"] == ["backend", "edge", "node", "mysql", "redis", "prometheus", "alertmanager"]
    backend = mon["scrape_targets"][0]
    assert backend["dns"] == ["backend-blue", "backend-green"]
    assert (backend["port"], backend["path"]) == (8081, "/actuator/prometheus")
    assert mon["rule_files"] == "/etc/prometheus/rules/*.yml"
    assert {"grafana", "loki", "prometheus", "alertmanager"} <= set(mon["images"])
    assert "monitoring" in [t["name"] for t in m["tasks"]] and "grafana" in [t["name"] for t in m["tasks"]]


def test_remote_monitoring_runs_only_the_agents_and_names_the_remote():
    m = model(monitoring="remote", remote_write_url="https://prom.example.com/api/v1/write",
              loki_push_url="https://loki.example.com/loki/api/v1/push")
    mon = m["monitoring"]
    assert not m["flags"]["monitoring_bundled"] and m["flags"]["monitoring_remote"]
    assert "prometheus" not in mon["jobs"] and "alertmanager" not in mon["jobs"]
    assert not {"prometheus", "grafana", "loki", "alertmanager"} & set(mon["images"])
    assert mon["remote"]["remote_write_url"].endswith("/api/v1/write")
    assert "grafana" not in [t["name"] for t in m["tasks"]]


def test_monitoring_is_off_without_production_and_follows_external_services():
    assert model(environments=["staging"])["monitoring"] is None
    assert not model(environments=["dev", "staging"])["flags"]["monitoring"]
    assert model(monitoring="off")["monitoring"] is None
    external = model(database="external", redis="external")["monitoring"]
    assert "mysql" not in external["jobs"] and "redis" not in external["jobs"]
    assert "mysqld_exporter" not in external["images"]


def test_alert_receivers_come_from_the_answers_and_the_webhook_stays_out_of_tracked_files():
    m = model(alert_email="oncall@petory.example.com", alert_smtp_smarthost="smtp.example.com:587",
              alert_webhook=True)["monitoring"]
    assert m["receivers"]["email"] == {"to": "oncall@petory.example.com", "smarthost": "smtp.example.com:587",
                                       "from": "alertmanager@petory.example.com"}
    assert m["receivers"]["webhook"] is True
    assert model()["monitoring"]["receivers"] == {"email": None, "webhook": False}


def test_container_restarts_are_a_textfile_counter():
    kind, labels, _ = deployment.METRICS["petory_container_restarts_total"]
    assert kind == "counter" and labels == ("env", "service", "container")


@pytest.mark.parametrize("size,cpus,memory,replicas,expected", [
    ("small", 2, 4, 1, "off"), ("medium", 4, 8, 2, "bundled"), ("large", 8, 16, 3, "bundled"),
    ("custom", 3, 6, 1, "bundled"), ("custom", 2, 5, 1, "off"),
])
def test_default_monitoring_is_the_bundled_stack_where_it_fits(size, cpus, memory, replicas, expected):
    answers = {**DEFAULTS, "server_size": size, "host_cpus": cpus, "host_memory_gb": memory, "backend_replicas": replicas}
    assert deployment.default_monitoring(answers) == expected


def test_mysqld_exporter_connects_to_mysql_the_way_the_backend_does():
    tls = {mode: model(db_tls=mode)["monitoring"]["exporter_tls"] for mode in deployment.DB_SSL_MODE}
    assert tls["off"]["tls"] == "preferred" and tls["required"]["tls"] == "skip-verify"
    # verify-identity: the CA of the backend's truststore volume, the name checked by the driver.
    assert tls["verify-identity"]["ssl_ca"] == f"{deployment.DB_TRUSTSTORE_DIR}/ca.pem"
    assert tls["verify-identity"]["truststore_volume"] == "db-truststore"
    assert tls["off"]["truststore_volume"] is None and tls["required"]["ssl_ca"] is None
    assert model(database="external", db_host="db.example.com", db_port=3306)["monitoring"]["exporter_tls"] is None


def test_the_actuator_has_its_own_port_which_the_scrape_uses():
    m = model()
    assert m["backend"]["management_port"] == deployment.MANAGEMENT_PORT != m["backend"]["port"]
    backend = next(t for t in m["monitoring"]["scrape_targets"] if t["job"] == "backend")
    assert backend["port"] == m["backend"]["management_port"]


@pytest.mark.parametrize("environments", [["dev"], ["dev", "staging", "prod"], ["prod"], ["staging"]])
def test_the_copy_message_tells_dev_to_start_locally_and_each_server_its_three_steps(environments):
    import yaml

    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    built = model(environments=environments)
    message = jinja2.Environment().from_string(config["_message_after_copy"]).render(
        deployment=built, layout="app-repo", _copier_conf={"dst_path": "petory"})
    lines = [line.strip() for line in message.splitlines()]
    assert ("make -C deploy up ENV=dev         # dev on this machine, with hot reload" in lines) == ("dev" in environments)
    # A server environment is never told to start locally: it goes live through its three steps.
    assert not [line for line in lines if "up ENV=" in line and "ENV=dev" not in line]
    for env in built["servers"]:
        start = lines.index(f"{env}, from a fresh Debian server (DNS pointing at it is the only precondition):")
        assert lines[start + 1:start + 4] == [
            f"make -C deploy provision ENV={env}", f"make -C deploy github ENV={env}",
            "git push origin main" if env == "staging" else 'git tag -a v1.0.0 -m "Release 1.0.0" && git push origin v1.0.0']
    assert sum(line.endswith("(DNS pointing at it is the only precondition):") for line in lines) == len(built["servers"])
