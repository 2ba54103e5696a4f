"""The deployment model: every fact that more than one generated file needs, computed once.

Templates print fields of `deployment` (this module's `build`) and `sizing` (hooks/sizing.py);
they never re-derive a fact from the raw answers. The raw answers this model covers are listed in
`COVERED`; tests/test_model.py checks that no file under template/ or partials/ reads one of them.

Layout: the generated files live in `deploy/` of the Petory application repository (the
design document's push -> build -> deploy flow), beside the application's own README.md,
Makefile, .gitignore and workflows, which Copier must never touch. GitHub reads workflows only
from `.github/workflows/`, so those files carry their own `deploy-` names there. With
`layout=deploy-repo` the same files live in `deploy/` of a separate repository, and CI checks the
application repository out into `app/` before building the images.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Mapping

if "sizing" not in globals():  # hooks/extensions.py injects this checkout's own copies
    import sizing
if "answers_rules" not in globals():
    import answers_rules
if "monitoring" not in globals():  # the alerting half of the monitoring model (hooks/monitoring.py)
    try:
        import monitoring
    except ImportError:
        monitoring = None
if "provisioning" not in globals():  # host provisioning (hooks/provisioning.py)
    import provisioning

ENVIRONMENTS = ("dev", "staging", "prod")
SERVER_ENVIRONMENTS = ("staging", "prod")
LOG_LEVEL = {"dev": "DEBUG", "staging": "INFO", "prod": "WARN"}
DEPLOY_DIR = "deploy"  # the folder of the generated files inside the repository
APP_CHECKOUT_DIR = "app"  # where CI checks out the application repository in layout=deploy-repo
REGISTRY_HOSTS = {"ghcr": "ghcr.io", "dockerhub": "docker.io"}
# Dev publishes the edge on these host ports (127.0.0.1 only); servers use 80/443.
DEV_HTTP_PORT = 8080
DEV_HTTPS_PORT = 8443
# Dev's tools, also on 127.0.0.1 only: the backend JVM's debug agent (JDWP, the port IDEs assume)
# and the database UI (Adminer; 8080 is the edge's).
DEV_DEBUG_PORT = 5005
DEV_ADMINER_PORT = 8081
# The template-drift workflow runs weekly at this local time in the `timezone` answer: (ISO weekday,
# hour, minute), off the full hour, when GitHub's runners are busiest.
DRIFT_CHECK_LOCAL = (1, 9, 17)
# Node.js major version of CI's frontend build when no dev image names one (the default node_image's).
DEFAULT_NODE_VERSION = "20"

# TLS between the backend and MySQL (answer db_tls). The default per database mode: a bundled
# server gets its certificate from the environment's local CA (scripts/db-tls.sh), so the backend
# verifies it at no cost; an external server's CA is its operator's (a managed database's bundle),
# unknown when rendering, so `required` encrypts and refuses plaintext from the first deploy, and
# verify-identity needs that CA file first (docs: 02-docker-configuration).
DB_TLS_DEFAULT = {"bundled": "verify-identity", "external": "required"}
# Connector/J's sslMode per answer; `off` writes the driver's default (PREFERRED) explicitly: TLS
# when the server offers it, else plaintext.
DB_SSL_MODE = {"off": "PREFERRED", "required": "REQUIRED", "verify-identity": "VERIFY_IDENTITY"}
MYSQL_TLS_DIR = "/etc/mysql/tls"  # in the mysql container: the mysql-tls volume
DB_TRUSTSTORE_DIR = "/etc/petory/db-tls"  # in the backend containers: the db-truststore volume
# A truststore holds public certificates only; PKCS12 still wants a password (its integrity
# check), so this is the JDK's well-known one for cacerts, not a secret.
DB_TRUSTSTORE_PASSWORD = "changeit"
# The generated CI starts these with the generated MySQL configuration (8.0: the design document's,
# 8.4: the LTS line to upgrade to, scripts/upgrade-datastore.sh).
MYSQL_CI_IMAGES = ("mysql:8.0", "mysql:8.4")

# How long the backend may wait for a dependency, so that a down or hung MySQL or Redis gives the
# application's own 503 before the edge gives up with its 504 (proxy_read_timeout_seconds). The
# waits of one request add up: acquiring a pooled MySQL connection, then a Redis connect and a
# command. Together they get at most half of the edge's wait, and never more than these defaults
# (Hikari waits 30 s for a connection by default, Lettuce 60 s for a command: both far past 504).
DEPENDENCY_WAIT_MS = {"db_acquire": 3000, "redis_command": 2000, "redis_connect": 1000}
HIKARI_MIN_TIMEOUT_MS = 250  # Hikari refuses a connectionTimeout below this

# Lifetime of a server certificate from an environment's local CA (scripts/lib/certificates.sh),
# per tls_profile: within what Mozilla's profile allows (366 days for intermediate, 90 for modern),
# which sslyze's profile check enforces.
LEAF_DAYS = {"intermediate": 365, "modern": 90}

# The age recipients of the database dumps (scripts/backup-db.sh), relative to deploy/.
BACKUP_RECIPIENTS_FILE = "backup/age-recipients.txt"

# Raw answers that templates read only through this model (or `sizing`). copier.yml and hooks/
# may read them; everything else gets `deployment.*`.
COVERED = frozenset({
    "environments", "domain", "staging_domain", "extra_server_names",
    "tls_mode_staging", "tls_mode_prod", "tls_provided_dir",
    "staging_ssh_host", "staging_ssh_user", "staging_deploy_dir",
    "prod_ssh_host", "prod_ssh_user", "prod_deploy_dir",
    "registry", "registry_host", "registry_owner", "backend_image", "frontend_image",
    "edge_nginx_image", "frontend_nginx_image", "jre_image", "jdk_image", "node_image",
    "mysql_image", "redis_image", "certbot_image", "adminer_image",
    "database", "db_host", "db_port", "db_name", "db_tls", "redis", "redis_host", "redis_port",
    "server_size", "host_cpus", "host_memory_gb", "backend_replicas",
    "backend_build", "backend_dir", "backend_jar_glob", "frontend_dir", "frontend_build_dir",
    "layout", "app_repository", "backup_age_recipient",
    "monitoring", "remote_write_url", "loki_push_url", "alert_email", "alert_smtp_smarthost", "alert_webhook",
    "availability_target", "proxy_read_timeout_seconds", "docker_source", "admin_user",
    "admin_cidrs",
})

# Metrics that the operator scripts export through node-exporter's textfile collector: one
# `<file>.prom` per script in TEXTFILE_DIR (Debian's prometheus-node-exporter reads it by
# default), written atomically. Name -> (type, labels, help). Alert rules and dashboards use
# exactly these names; docs/architecture.md of the template lists them.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
METRICS = {
    "petory_deploy_last_success_timestamp_seconds": ("gauge", ("env",), "End of the last successful deploy or rollback"),
    "petory_deploy_last_failure_timestamp_seconds": ("gauge", ("env",), "End of the last deploy that was refused or rolled back"),
    "petory_deploy_version_info": ("gauge", ("env", "app", "version", "colour"), "The version each app serves (value 1)"),
    "petory_backup_last_success_timestamp_seconds": ("gauge", ("env",), "End of the last backup whose dump restored with every table matching the source, and was kept"),
    "petory_backup_last_size_bytes": ("gauge", ("env",), "Size of the last verified dump file (encrypted, when it is)"),
    "petory_backup_last_duration_seconds": ("gauge", ("env",), "Duration of the last backup: dump, restore into the throwaway container, comparison"),
    "petory_backup_last_verified_rows": ("gauge", ("env",), "Rows of the last dump that restored and matched the source's snapshot"),
    "petory_backup_last_write_lock_seconds": ("gauge", ("env",), "How long writes to the application's tables waited while the last dump's snapshot began"),
    "petory_backup_last_copy_timestamp_seconds": ("gauge", ("env",), "When the last dump was copied off the host (BACKUP_COPY_COMMAND)"),
    "petory_backup_drill_last_success_timestamp_seconds": ("gauge", ("env",), "End of the last restore drill whose restore matched the dump's snapshot table by table"),
    "petory_backup_drill_last_restored_rows": ("gauge", ("env",), "Rows the last restore drill restored"),
    "petory_backup_drill_last_dump_timestamp_seconds": ("gauge", ("env",), "Snapshot time of the dump the last restore drill restored"),
    "petory_binlog_rpo_seconds": ("gauge", ("env",), "Recovery point objective at the last binary log shipping: the larger of its interval and the age of the newest binary log off the host"),
    "petory_binlog_last_shipped_timestamp_seconds": ("gauge", ("env",), "End of the newest binary log off the host (in backups/ when no copy command is set)"),
    "petory_certificate_expiry_timestamp_seconds": ("gauge", ("env", "name"), "notAfter of each certificate the scripts issue or install"),
    "petory_container_restarts_total": ("counter", ("env", "service", "container"), "Restarts of each container by its restart policy (docker inspect's RestartCount; a recreated container starts at 0)"),
}

# The monitoring stack (answer `monitoring`; compose.monitoring.yaml, deploy/monitoring/). Only
# production is watched; its budget is hooks/sizing.py's MONITORING_SERVICES.
MONITORED_ENV = "prod"
# The backend's actuator (health, info, prometheus) listens on this port in every environment
# (management.server.port): the edge proxies only to the server port, so nothing under /actuator
# is reachable from outside, whatever the edge's own rules say. The image's healthcheck, the
# deploy's smoke check (through the edge's preview server) and the scrape reach it inside Docker.
MANAGEMENT_PORT = 8081
METRICS_PATH = "/actuator/prometheus"
SCRAPE_INTERVAL = "15s"
EVALUATION_INTERVAL = "15s"
# Ports of the stack's services inside their containers (never published on the host).
MONITORING_PORTS = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000, "loki": 3100, "alloy": 12345,
                    "node_exporter": 9100, "mysqld_exporter": 9104, "redis_exporter": 9121, "edge_metrics": 3903}
# Grafana's datasources, provisioned from files with these fixed UIDs; dashboards reference only these.
GRAFANA_DATASOURCES = {"prometheus": "petory-prometheus", "loki": "petory-loki"}
# Debian 12's packages serve as the local stand-ins; these are the images on a server (pin a digest
# in production, as for every base image: `make validate` names the tags not pinned).
MONITORING_IMAGES = {
    "prometheus": "prom/prometheus:v3.5.0",
    "alertmanager": "prom/alertmanager:v0.28.1",
    "grafana": "grafana/grafana-oss:12.1.1",
    "loki": "grafana/loki:3.5.3",
    "alloy": "grafana/alloy:v1.10.1",
    "node_exporter": "prom/node-exporter:v1.9.1",
    "mysqld_exporter": "prom/mysqld-exporter:v0.17.2",
    "redis_exporter": "oliver006/redis_exporter:v1.75.0",
    "edge_metrics": "debian:12-slim",  # the base of docker/edge-metrics/Dockerfile (Debian's mtail)
    "container_metrics": "docker:28-cli",
}
EXPORTER_DB_USER = "exporter"

# Further answers `build` reads that templates may still print directly.
CONTEXT_EXTRA = frozenset({"project_slug", "acme_email", "acme_server", "timezone", "tls_profile", "backend_port"})

# Operator tasks of deploy/Makefile, in `make help` order: (name, takes ENV, help, flag that
# must be true for the task to exist). The help is also the English docs' sentence for the task
# (backticks mark code there); the Korean docs have their own (partials/docs/strings.ko.yaml).
TASKS = (
    ("help", False, "List the tasks", None),
    ("validate", False, "Fast checks of the deployment files (YAML, env files, compose configuration, nginx -t); `FULL=1` runs every linter", None),
    ("tools", False, "Install the validators into `.tools/` (a local venv) at the versions of `tools/requirements.txt`; `FULL=1` adds every linter", None),
    ("provision", True, "Provision the server of ENV with Ansible from this machine: Docker, accounts, sshd, firewall, checkout, env file, timers (`CHECK=1` shows the changes only; `ARGS=` go to provision.sh)", "servers"),
    ("host-audit", True, "Compare the server's live firewall rules with the provisioned ones; exits non-zero on any drift (`SSH=` is the ssh command)", "servers"),
    ("github", True, "Create the GitHub environment ENV with its deploy secrets: CI's key from `make provision` and the server's host key from your known_hosts (gh CLI; `ARGS=` go to github-setup.sh)", "servers"),
    ("recover", True, "Bring ENV back on a new server after `make provision` and `make github`: `VERSION`, the release it ran, deployed and smoke-checked; the bundled MySQL's newest off-site dump is restored first (`DUMP=` picks one, `IDENTITY=` the age key)", "servers"),
    ("env-sync", True, "Add keys that a template update introduced to the env file (new secrets generated)", None),
    ("config", True, "Print the resolved Compose configuration of ENV (changes nothing)", None),
    ("build", False, "Build both images tagged `VERSION` (default `sha-<commit>`), e.g. for `make deploy ... PULL=0`", None),
    ("certs", True, "Put a certificate in place so the edge can start (from the local CA until one is issued)", None),
    ("up", True, "Start ENV and wait until every service is healthy", None),
    ("down", True, "Stop ENV (volumes, and so the data, are kept)", None),
    ("ps", True, "Show the containers of ENV and their health", None),
    ("logs", True, "Follow the logs of ENV (`SERVICE=backend-blue` to narrow)", None),
    ("mysql-slow-log", True, "Show the last 100 lines of MySQL's slow query log", "bundled_mysql"),
    ("reload-edge", True, "Check the nginx configuration, then reload it without dropping connections", None),
    ("deploy", True, "Zero-downtime deploy of `VERSION` (default `sha-<commit>`) to ENV; `PULL=0` uses local images", None),
    ("rollback", True, "Go back to the previous version (or `ROLLBACK_TO=...`) without pulling", None),
    ("apply", True, "Apply changed env file, Compose, nginx, MySQL and Redis settings or limits to the running ENV without downtime (`RESTART=mysql` also restarts what needs it; `DRY_RUN=1` prints the plan)", "servers"),
    ("rotate-secret", True, "Rotate the secret `SECRET=jwt`, `redis` or `mysql` of ENV without signing anyone out or dropping a request (`OVERLAP=24h` for jwt)", "servers"),
    ("backup", True, "Dump the database of ENV to `backups/<env>/`, proven by a restore into a throwaway container, encrypted when recipients are set (with retention)", "bundled_mysql"),
    ("restore", True, "Restore `FILE=backups/<env>/....sql.gz` into ENV (asks first; current data backed up); `TO=\"YYYY-MM-DD HH:MM:SS+HH:MM\"` then replays the binary logs up to that instant", "bundled_mysql"),
    ("backup-timer", True, "Install the daily backup systemd timer for ENV (as root; checks the host first; `DRILL=1` adds a weekly restore drill; `DRY_RUN=1` prints what it would do)", "bundled_mysql"),
    ("restore-drill", True, "Restore the newest dump of ENV into a throwaway container and compare every table with production (`IDENTITY=<file>`, the age key, decrypts; `FILE=` picks a dump)", "bundled_mysql"),
    ("upgrade-mysql", True, "Back up, then move MySQL to the image in `compose.yaml`", "bundled_mysql"),
    ("upgrade-redis", True, "Snapshot, then move Redis to the image in `compose.yaml`", "bundled_redis"),
    ("maintenance-on", True, "Answer every request of ENV with the maintenance page (503) at once, no reload", None),
    ("maintenance-off", True, "Serve ENV normally again", None),
    ("db-tls-check", True, "Check MySQL's TLS as the backend sees it: certificate verified for its name, its expiry, plaintext refused", "db_tls"),
    ("db-tls-rotate", True, "Replace MySQL's TLS certificate (same CA) and load it without a restart", "db_tls"),
    ("monitoring", True, "Start or update the monitoring stack of ENV (`compose.monitoring.yaml`) and wait until it is healthy; `STOP=1` stops it (its data is kept)", "monitoring"),
    ("grafana", True, "Open Grafana of ENV on http://127.0.0.1:3000 through an SSH tunnel to the server (`GRAFANA_PORT=` picks the local port; Ctrl-C closes it)", "monitoring_bundled"),
    ("certs-renew", True, "Renew the Let's Encrypt certificate of ENV now if due (`FORCE=1` renews anyway); the edge reloads after `nginx -t`", "uses_letsencrypt"),
)


# From a fresh Debian server to live HTTPS, per server environment, once the generated files are
# committed and pushed and DNS points at the server: provision it, give GitHub its deploy
# secrets, release. CI builds and pushes the images and deploys; the first deploy issues the
# certificate. Commands as run in deploy/ (make) or anywhere in the repository (git).
RELEASE_TAG = "v1.0.0"
TAG_COMMANDS = [f'git tag -a {RELEASE_TAG} -m "Release {RELEASE_TAG[1:]}"', f"git push origin {RELEASE_TAG}"]
RELEASE_COMMANDS = {"staging": "git push origin main", "prod": " && ".join(TAG_COMMANDS)}


def _go_live(servers: list[str]) -> dict:
    """deployment.go_live: env -> its three steps, each {"step", "command"}; the docs' sentence for
    a step is strings.<lang>.yaml go_live.<step>."""
    return {env: [{"step": "provision", "command": f"make provision ENV={env}"},
                  {"step": "github", "command": f"make github ENV={env}"},
                  {"step": f"release_{env}", "command": RELEASE_COMMANDS[env]}]
            for env in servers}


def _recovery(servers: list[str]) -> dict:
    """deployment.recovery: env -> its three steps from a lost server to the site serving again on a
    new one (DNS and the new host key first, as for going live), each {"step", "command"}: the
    same provisioning and GitHub steps, then make recover; the docs' sentence for a step is
    strings.<lang>.yaml recovery.<step>."""
    go_live = _go_live(servers)
    return {env: [*go_live[env][:2], {"step": "recover", "command": f"make recover ENV={env} VERSION={RELEASE_TAG}"}]
            for env in servers}


def servers_of(answers: Mapping) -> list[str]:
    """The environments that run on a server of their own (provisioned, deployed over SSH)."""
    return [env for env in environments_of(answers) if env in SERVER_ENVIRONMENTS]


def environments_of(answers: Mapping) -> list[str]:
    """The chosen environments in their canonical order (dev, staging, prod)."""
    return [env for env in ENVIRONMENTS if env in answers["environments"]]


def tls_mode(answers: Mapping, env: str) -> str:
    """How the environment gets its certificate; dev always uses the local CA."""
    return "self-signed" if env == "dev" else answers[f"tls_mode_{env}"]


def uses_tls_mode(answers: Mapping, mode: str) -> bool:
    return any(tls_mode(answers, env) == mode for env in environments_of(answers) if env != "dev")


def uses_letsencrypt(answers: Mapping) -> bool:
    return uses_tls_mode(answers, "letsencrypt")


def node_version(node_image: str | None) -> str:
    """Node.js major version CI builds the frontend with: the dev image's (node:20-alpine -> 20)."""
    tag = (node_image or "").rpartition(":")[2].split("-")[0].split(".")[0]
    return tag if tag.isdigit() else DEFAULT_NODE_VERSION


def registry_host(registry: str, other_host: str | None) -> str:
    return REGISTRY_HOSTS.get(registry) or other_host or ""


def default_image(answers: Mapping, app: str) -> str:
    """Default repository of the backend or frontend image: <registry host>/<owner>/<slug>-<app>."""
    host = registry_host(answers["registry"], answers.get("registry_host"))
    return f"{host}/{answers['registry_owner']}/{answers['project_slug']}-{app}"


def default_replicas(answers: Mapping) -> int:
    """The preset's replica count, or for a custom host the most that fit, at most 2."""
    if answers["server_size"] != "custom":
        return sizing.preset(answers["server_size"])[2]
    most = sizing.max_replicas(answers["host_cpus"], answers["host_memory_gb"],
                               answers["database"] == "bundled", answers["redis"] == "bundled")
    return max(1, min(2, most))


def server_names(answers: Mapping, env: str) -> list[str]:
    if env == "prod":
        return [answers["domain"], *answers["extra_server_names"]]
    if env == "staging":
        return [answers["staging_domain"]]
    return ["localhost"]


def _site(answers: Mapping, env: str) -> dict:
    names = server_names(answers, env)
    server = env in SERVER_ENVIRONMENTS
    mode = tls_mode(answers, env)
    site = {
        "env": env,
        "server": server,
        "names": names,
        "primary": names[0],
        "tls": mode,
        # Every mode puts the files where certbot would: the server block reads one path.
        "cert_dir": f"/etc/letsencrypt/live/{names[0]}",
        # 'provided': the operator's directory on the host, mounted over cert_dir.
        "provided_dir": f"{answers['tls_provided_dir']}/{names[0]}" if mode == "provided" else None,
        "public_url": f"https://{names[0]}" if server else f"https://localhost:{DEV_HTTPS_PORT}",
        "log_level": LOG_LEVEL[env],
        "compose_project": f"{answers['project_slug']}-{env}",
        "ssh": None,
    }
    if server:
        site["ssh"] = {
            "host": answers[f"{env}_ssh_host"],
            "user": answers[f"{env}_ssh_user"],
            "dir": answers[f"{env}_deploy_dir"],
        }
    return site


def _address(bundled: bool, service: str, default_port: int, host: str | None, port: int | None) -> dict:
    if bundled:
        return {"bundled": True, "host": service, "port": default_port, "address": f"{service}:{default_port}"}
    return {"bundled": False, "host": host, "port": port, "address": f"{host}:{port}"}


def default_db_tls(answers: Mapping) -> str:
    return DB_TLS_DEFAULT[answers["database"]]


def _db(answers: Mapping, bundled: bool) -> dict:
    """The database: where it is, its JDBC URL, and how TLS protects the connection."""
    name = answers["db_name"]
    db = {**_address(bundled, "mysql", 3306, answers.get("db_host"), answers.get("db_port")),
          "name": name, "app_user": f"{name}_app"}
    mode = answers.get("db_tls") or default_db_tls(answers)
    verify = mode == "verify-identity"
    tls = {
        "mode": mode,
        # The template issues and installs the server certificate (bundled MySQL only).
        "server_certificate": bundled and mode != "off",
        # The backend verifies the server against a truststore built from the CA.
        "truststore": verify,
        # The names the server certificate carries: what clients connect to (the service, and
        # 127.0.0.1/localhost for the container's own clients), or the external host.
        "names": ["mysql", "localhost", "127.0.0.1"] if bundled else [db["host"]],
        "server_dir": MYSQL_TLS_DIR,
        "truststore_dir": DB_TRUSTSTORE_DIR,
        "truststore_password": DB_TRUSTSTORE_PASSWORD,
        "ssl_mode": DB_SSL_MODE[mode],
    }
    tls["helper"] = tls["server_certificate"] or verify  # scripts/db-tls.sh and its container
    params = [("characterEncoding", "UTF-8"), ("serverTimezone", answers["timezone"]), ("sslMode", tls["ssl_mode"])]
    if verify:
        params += [("trustCertificateKeyStoreUrl", f"file:{DB_TRUSTSTORE_DIR}/truststore.p12"),
                   ("trustCertificateKeyStoreType", "PKCS12"),
                   ("trustCertificateKeyStorePassword", DB_TRUSTSTORE_PASSWORD)]
    db["jdbc_url"] = f"jdbc:mysql://{db['address']}/{name}?" + "&".join(f"{k}={v}" for k, v in params)
    db["tls"] = tls
    db["ci_images"] = list(MYSQL_CI_IMAGES)
    return db


def timeouts(answers: Mapping) -> dict:
    """The edge's wait for the backend and, below it, the backend's waits for its dependencies."""
    read_ms = answers["proxy_read_timeout_seconds"] * 1000
    budget = min(sum(DEPENDENCY_WAIT_MS.values()), read_ms // 2)
    scale = budget / sum(DEPENDENCY_WAIT_MS.values())
    waits = {name: max(HIKARI_MIN_TIMEOUT_MS, int(ms * scale)) for name, ms in DEPENDENCY_WAIT_MS.items()}
    # Hikari checks a connection it hands out within validation-timeout, which must stay below
    # connection-timeout (its default, 5 s, would exceed the acquire wait).
    waits["db_validation"] = max(HIKARI_MIN_TIMEOUT_MS, waits["db_acquire"] // 2)
    return {"edge_read_seconds": answers["proxy_read_timeout_seconds"], **{f"{k}_ms": v for k, v in waits.items()}}


def _backup(answers: Mapping) -> dict:
    """Backups of the bundled database: the age recipients the dumps are encrypted to (none: the
    dumps stay on the host), in a tracked file beside the scripts that the operator may extend."""
    recipient = answers.get("backup_age_recipient") or ""
    return {"age_recipients": [recipient] if recipient else [], "recipients_file": BACKUP_RECIPIENTS_FILE}


def _layout(answers: Mapping) -> dict:
    mode = answers.get("layout") or "app-repo"
    app_root = "" if mode == "app-repo" else f"{APP_CHECKOUT_DIR}/"

    def app(path: str) -> str:  # a path of the application, relative to the repository root
        return f"{app_root}{path}"

    backend_dir = answers["backend_dir"]
    jar_glob = answers["backend_jar_glob"]
    repo_paths = {
        "backend_dir": app(backend_dir),
        "frontend_dir": app(answers["frontend_dir"]),
        "jar_glob": app(jar_glob),
        "frontend_build_dir": app(answers["frontend_build_dir"]),
    }
    return {
        "mode": mode,
        "deploy_dir": DEPLOY_DIR,
        # From deploy/ to the repository root: the build context of both images.
        "repo_root_from_deploy": "..",
        "app_root": app_root,
        "app_repository": answers.get("app_repository") if mode == "deploy-repo" else None,
        **repo_paths,
        # The same paths seen from deploy/ (Compose bind mounts in dev).
        "from_deploy": {name: f"../{path}" for name, path in repo_paths.items()},
        # The glob inside the backend project (for the source build in Docker).
        "jar_glob_in_backend": jar_glob[len(backend_dir) + 1:] if jar_glob.startswith(backend_dir + "/") else "build/libs/*.jar",
    }


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def drift_schedule(timezone: str) -> dict:
    """The drift workflow's weekly schedule: DRIFT_CHECK_LOCAL in `timezone`, as GitHub's UTC cron.

    A cron fires at one UTC time all year, so where the clocks change the local time moves with
    them: the cron keeps the local time of the zone's smaller offset (winter, or standard time),
    and `summer_local` says when it runs while the clocks are ahead (None where they never are).
    A Monday in January and one in July of a fixed year stand for the seasons, so a render gives
    the same file every year.
    """
    weekday, hour, minute = DRIFT_CHECK_LOCAL
    zone = zoneinfo.ZoneInfo(timezone)
    seasons = [datetime.datetime(2025, month, day + weekday - 1, hour, minute, tzinfo=zone)
               for month, day in ((1, 6), (7, 7))]  # 2025-01-06 and 2025-07-07 are Mondays
    base = min(seasons, key=lambda moment: moment.utcoffset())
    ahead = max(seasons, key=lambda moment: moment.utcoffset()).utcoffset() - base.utcoffset()
    utc = base.astimezone(datetime.timezone.utc)

    def when(moment: datetime.datetime) -> str:
        return f"{_WEEKDAYS[moment.weekday()]}s {moment:%H:%M}"

    return {
        "cron": f"{utc.minute} {utc.hour} * * {utc.isoweekday() % 7}",  # cron's weekdays: 0 = Sunday
        "timezone": timezone,
        "local": when(base),
        "utc": f"{when(utc)} UTC",
        "summer_local": when(base + ahead) if ahead else None,
    }


def monitoring_mode(answers: Mapping) -> str:
    """What watches production: the answer, or `off` where there is no production."""
    if MONITORED_ENV not in answers["environments"]:
        return "off"
    return answers.get("monitoring") or "off"


def default_monitoring(answers: Mapping) -> str:
    """The default of the answer `monitoring`: the bundled stack where it fits beside the apps."""
    if answers["server_size"] == "custom":
        cpus, memory_gb = answers["host_cpus"], answers["host_memory_gb"]
    else:  # host_cpus and host_memory_gb are not asked (nor recorded) for a preset
        cpus, memory_gb, _ = sizing.preset(answers["server_size"])
    replicas = answers.get("backend_replicas") or default_replicas(answers)
    return sizing.default_monitoring(cpus, memory_gb, replicas, answers["database"] == "bundled",
                                     answers["redis"] == "bundled")


def _scrape_targets(mode: str, flags: Mapping[str, bool]) -> list[dict]:
    """The scrape jobs (Prometheus's in `bundled`, Alloy's in `remote`): the job names the rules use."""
    ports = MONITORING_PORTS
    jobs = [
        # One target per running replica of either colour, by Docker's DNS: a stopped colour has none.
        {"job": "backend", "dns": ["backend-blue", "backend-green"], "port": MANAGEMENT_PORT, "path": METRICS_PATH},
        {"job": "edge", "targets": [f"edge-metrics:{ports['edge_metrics']}"], "path": "/metrics"},
        {"job": "node", "targets": [f"node-exporter:{ports['node_exporter']}"], "path": "/metrics"},
    ]
    if flags["bundled_mysql"]:
        jobs.append({"job": "mysql", "targets": [f"mysqld-exporter:{ports['mysqld_exporter']}"], "path": "/metrics"})
    if flags["bundled_redis"]:
        jobs.append({"job": "redis", "targets": [f"redis-exporter:{ports['redis_exporter']}"], "path": "/metrics"})
    if mode == "bundled":
        jobs.append({"job": "prometheus", "targets": [f"localhost:{ports['prometheus']}"], "path": "/metrics"})
        jobs.append({"job": "alertmanager", "targets": [f"alertmanager:{ports['alertmanager']}"], "path": "/metrics"})
    return jobs


# mysqld-exporter's TLS to the bundled MySQL, as the backend connects (go-sql-driver's `tls`):
# off -> TLS when offered; required -> TLS without checking the certificate; verify-identity ->
# the certificate checked against the CA of the backend's truststore volume, for the name `mysql`.
EXPORTER_TLS = {"off": "preferred", "required": "skip-verify", "verify-identity": "custom"}


def _exporter_tls(db: Mapping) -> dict:
    mode = db["tls"]["mode"]
    return {"tls": EXPORTER_TLS[mode],
            "ssl_ca": f"{DB_TRUSTSTORE_DIR}/ca.pem" if db["tls"]["truststore"] else None,
            "truststore_volume": "db-truststore" if db["tls"]["truststore"] else None,
            "truststore_dir": DB_TRUSTSTORE_DIR}


def _monitoring(answers: Mapping, flags: Mapping[str, bool], domain: str, db: Mapping) -> dict | None:
    """The monitoring stack of production, or None when `monitoring` is off."""
    mode = monitoring_mode(answers)
    if mode == "off":
        return None
    email = answers.get("alert_email") or "" if mode == "bundled" else ""
    webhook = bool(answers.get("alert_webhook")) and mode == "bundled"
    model = {
        "mode": mode,
        "env": MONITORED_ENV,
        "availability_target": float(answers.get("availability_target") or 99.5),
        "receivers": {
            "email": {"to": email, "smarthost": answers.get("alert_smtp_smarthost") or "",
                      "from": f"alertmanager@{domain}"} if email else None,
            # The URL is a credential: the operator puts it into env/prod.env (ALERT_WEBHOOK_URL),
            # and it reaches Alertmanager as a Compose secret, never through a tracked file.
            "webhook": webhook,
        },
        "remote": {"remote_write_url": answers.get("remote_write_url"), "loki_push_url": answers.get("loki_push_url")}
        if mode == "remote" else None,
        "scrape_interval": SCRAPE_INTERVAL,
        "evaluation_interval": EVALUATION_INTERVAL,
        "scrape_targets": _scrape_targets(mode, flags),
        "jobs": [job["job"] for job in _scrape_targets(mode, flags)],
        "management_port": MANAGEMENT_PORT,
        "metrics_path": METRICS_PATH,
        "ports": dict(MONITORING_PORTS),
        "images": {name: image for name, image in MONITORING_IMAGES.items()
                   if name in sizing.monitoring_services(mode, flags["bundled_mysql"], flags["bundled_redis"])},
        "datasources": dict(GRAFANA_DATASOURCES),
        "exporter_db_user": EXPORTER_DB_USER,
        "exporter_tls": _exporter_tls(db) if flags["bundled_mysql"] else None,
        "textfile_dir": TEXTFILE_DIR,
        "rule_files": "/etc/prometheus/rules/*.yml",
        "alertmanager_config": "/etc/alertmanager/alertmanager.yml",
        "compose_file": "compose.monitoring.yaml",
    }
    if monitoring is not None:
        model.update(monitoring.build(answers))
    return model


def _tasks(flags: Mapping[str, bool]) -> list[dict]:
    return [
        {"name": name, "env": takes_env, "help": text}
        for name, takes_env, text, flag in TASKS
        if flag is None or flags[flag]
    ]


def build(answers: Mapping) -> dict:
    """The model as plain data (it travels through Copier as JSON)."""
    envs = environments_of(answers)
    servers = servers_of(answers)
    sites = {env: _site(answers, env) for env in envs}
    flags = {
        "dev": "dev" in envs,
        "staging": "staging" in envs,
        "prod": "prod" in envs,
        "servers": bool(servers),
        "uses_letsencrypt": uses_letsencrypt(answers),
        "uses_self_signed": "dev" in envs or uses_tls_mode(answers, "self-signed"),
        "uses_provided": uses_tls_mode(answers, "provided"),
        "bundled_mysql": answers["database"] == "bundled",
        "bundled_redis": answers["redis"] == "bundled",
        "source_build": answers["backend_build"] == "source",
        "separate_repo": (answers.get("layout") or "app-repo") == "deploy-repo",
    }
    flags["data_services"] = flags["bundled_mysql"] or flags["bundled_redis"]
    mode = monitoring_mode(answers)
    flags["monitoring"] = mode != "off"
    flags["monitoring_bundled"] = mode == "bundled"
    flags["monitoring_remote"] = mode == "remote"
    db = _db(answers, flags["bundled_mysql"])
    flags["db_tls"] = db["tls"]["helper"]  # scripts/db-tls.sh exists
    host = registry_host(answers["registry"], answers.get("registry_host"))
    images = {
        "backend": answers["backend_image"],
        "frontend": answers["frontend_image"],
        "edge": answers["edge_nginx_image"],
        "frontend_nginx": answers["frontend_nginx_image"],
        "jre": answers["jre_image"],
        "jdk": answers["jdk_image"] if flags["source_build"] or flags["dev"] else None,
        "node": answers["node_image"] if flags["dev"] else None,
        "adminer": answers["adminer_image"] if flags["dev"] else None,
        "mysql": answers["mysql_image"] if flags["bundled_mysql"] else None,
        "redis": answers["redis_image"] if flags["bundled_redis"] else None,
        "certbot": answers["certbot_image"] if flags["uses_letsencrypt"] else None,
    }
    return {
        "envs": envs,
        "servers": servers,
        "sites": sites,
        "server_sites": [sites[env] for env in servers],
        "flags": flags,
        "registry": {
            "kind": answers["registry"],
            "host": host,
            # Where `docker login` goes: GHCR and other hosts by name; Docker Hub needs none.
            "login_host": "" if answers["registry"] == "dockerhub" else host,
            "owner": answers["registry_owner"],
        },
        "images": images,
        # Apps that CI builds into images: one matrix entry each.
        "apps": ["backend", "frontend"],
        "node_version": node_version(answers.get("node_image")),
        "db": db,
        "cache": _address(flags["bundled_redis"], "redis", 6379, answers.get("redis_host"), answers.get("redis_port")),
        "backup": _backup(answers),
        "timeouts": timeouts(answers),
        "tls": {"profile": answers["tls_profile"], "leaf_days": LEAF_DAYS[answers["tls_profile"]]},
        "backend": {"port": answers["backend_port"], "management_port": MANAGEMENT_PORT,
                    "health_path": "/actuator/health"},
        "layout": _layout(answers),
        "acme": {"email": answers["acme_email"], "server": answers["acme_server"]} if flags["uses_letsencrypt"] else None,
        "tasks": _tasks(flags),
        "monitoring": _monitoring(answers, flags, answers["domain"], db),
        "provision": provisioning.build(answers, servers, sites, answers["project_slug"], DEPLOY_DIR,
                                        backups=flags["bundled_mysql"]),
        "go_live": _go_live(servers),
        "recovery": _recovery(servers),
        "release": {"tag": RELEASE_TAG, "commands": TAG_COMMANDS},
        "metrics": {
            "textfile_dir": TEXTFILE_DIR,
            "names": {name: {"type": kind, "labels": list(labels), "help": text}
                      for name, (kind, labels, text) in METRICS.items()},
        },
        "dev_ports": {"http": DEV_HTTP_PORT, "https": DEV_HTTPS_PORT, "debug": DEV_DEBUG_PORT,
                      "adminer": DEV_ADMINER_PORT},
        "drift_check": drift_schedule(answers["timezone"]),
    }


def answers_from_context(context) -> dict:
    """The answers `build` reads, taken from a Jinja context (Copier's render context), normalised."""
    return answers_rules.normalized({name: context.get(name) for name in COVERED | CONTEXT_EXTRA})
