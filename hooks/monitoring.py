"""The alerts of the monitoring stack: one table, printed into the rules, their tests' labels and the runbooks.

`ALERTS` is the only place an alert is defined: its name, severity, `for`, expression, the metrics
the expression reads (each named in `SOURCES`, where it comes from), and the runbook's first
commands. `build(answers)` turns it into `deployment.monitoring`'s alert fields (hooks/deployment.py
merges them): deploy/monitoring/rules/petory.yml prints `alerts`, rules/tests/ checks each alert
at its threshold and `for` boundary with `promtool test rules`, deploy/docs/08-alert-runbooks.md
has one heading per alert that its `runbook_url` points to, and alertmanager/alertmanager.yml
routes them by `severity` and `component`.

The error-budget alerts follow the Google SRE workbook ("Alerting on SLOs", multiwindow,
multi-burn-rate): page when the 1 h and the 5 min error ratio both burn the budget 14.4 times
too fast (2 % of a 30-day budget in an hour), or the 6 h and 30 min ratios 6 times (5 % in 6 h).
The short window makes the alert stop soon after the errors do.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

AVAILABILITY_TARGET_DEFAULT = 99.5  # percent of the edge's requests answered without a 5xx, over 30 days
# Google SRE workbook, table 5-8: (long window, short window, burn rate, `for`).
BURN_RATES = {"fast": ("1h", "5m", 14.4, "2m"), "slow": ("6h", "30m", 6, "15m")}
P99_LATENCY_SECONDS = 1  # the backend's p99 over 5 minutes (Micrometer's histogram, all replicas)
RATIO_5XX = 0.05  # the backend's own share of 5xx answers over 5 minutes
HEAP_RATIO = 0.9  # JVM heap used / max, per replica
POOL_RATIO = 0.9  # Hikari connections in use / pool size, per replica
MYSQL_CONNECTIONS_RATIO = 0.8  # threads connected / max_connections
REDIS_MEMORY_RATIO = 0.9  # used / maxmemory (volatile-lru evicts only keys with a TTL)
DISK_FREE_RATIO = 0.25  # predict_linear only counts while less than this share is free
CERTIFICATE_DAYS = 21  # Let's Encrypt renews 30 days ahead: 21 means renewal failed for 9 days
BACKUP_AGE_HOURS = 26  # the daily backup plus two hours of slack
RESTARTS_15M = 3  # this many restarts within 15 minutes: a crash loop (Docker backs off up to a minute)

# The runbooks: deploy/docs/08-alert-runbooks.md, one heading per alert (GitHub's anchor: the
# name in lower case). The path is from the repository root, as GitHub's file view resolves it.
RUNBOOK_DOC = "deploy/docs/08-alert-runbooks.md"
# Alertmanager reads the webhook URL from this file: a Compose secret from env/prod.env
# (ALERT_WEBHOOK_URL), since the URL is the credential of a Slack-compatible incoming webhook.
WEBHOOK_URL_FILE = "/run/secrets/alert-webhook-url"
ROUTING = {
    "group_by": ["alertname", "env", "component"],
    "group_wait": "30s",  # one notification for alerts that start together
    "group_interval": "5m",
    "repeat_interval": {"critical": "1h", "warning": "12h"},
    # A critical alert of a component silences that component's warnings (the backend down
    # explains its latency and its pool), within one environment.
    "inhibit_equal": ["env", "component"],
}

# Where every metric a rule or the dashboard reads comes from: (scrape job, what produces it). The backend's
# Micrometer names are checked against a real Spring Boot 3 exposition sample
# (tests/fixtures/spring_boot_prometheus/); the petory_* names against deployment.METRICS.
_MICROMETER = "Spring Boot Actuator + Micrometer (micrometer-registry-prometheus), /actuator/prometheus on the management port"
_TEXTFILE = "node-exporter's textfile collector"
SOURCES = {
    "up": ("prometheus", "Prometheus itself, one series per scrape target"),
    "http_server_requests_seconds_count": ("backend", _MICROMETER),
    "http_server_requests_seconds_bucket": ("backend", _MICROMETER + " (percentiles-histogram on)"),
    "jvm_memory_used_bytes": ("backend", _MICROMETER),
    "jvm_memory_max_bytes": ("backend", _MICROMETER),
    "hikaricp_connections_active": ("backend", _MICROMETER),
    "hikaricp_connections_max": ("backend", _MICROMETER),
    "nginx_http_requests_total": ("edge", "the edge's JSON access log, counted by status"),
    "nginx_http_request_duration_seconds_bucket": ("edge", "the edge's JSON access log, request_time in a histogram (dashboard)"),
    "mysql_up": ("mysql", "mysqld-exporter"),
    "mysql_global_status_threads_connected": ("mysql", "mysqld-exporter (SHOW GLOBAL STATUS)"),
    "mysql_global_variables_max_connections": ("mysql", "mysqld-exporter (SHOW GLOBAL VARIABLES)"),
    "redis_up": ("redis", "redis-exporter"),
    "redis_memory_used_bytes": ("redis", "redis-exporter (INFO memory)"),
    "redis_memory_max_bytes": ("redis", "redis-exporter (INFO memory: maxmemory)"),
    "node_filesystem_avail_bytes": ("node", "node-exporter"),
    "node_filesystem_size_bytes": ("node", "node-exporter"),
    "node_filesystem_readonly": ("node", "node-exporter"),
    "petory_certificate_expiry_timestamp_seconds": ("node", _TEXTFILE + ": scripts/certificates.sh and the certificate scripts"),
    "petory_backup_last_success_timestamp_seconds": ("node", _TEXTFILE + ": scripts/backup-db.sh"),
    "petory_container_restarts_total": ("node", _TEXTFILE + ": the container restart counts (docker inspect)"),
}

# Filesystems that are not the host's disks: node-exporter reports them too.
_PSEUDO_FS = 'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|autofs|fuse.*"'
_NOT_ACTUATOR = 'uri!~"/actuator.*"'  # the scrapes themselves are requests too


def _edge_error_ratio(window: str) -> str:
    return (f'sum by (env) (rate(nginx_http_requests_total{{job="edge", status=~"5.."}}[{window}]))\n'
            f'  / sum by (env) (rate(nginx_http_requests_total{{job="edge"}}[{window}]))')


def _burn(kind: str, budget: str) -> str:
    long, short, rate, _ = BURN_RATES[kind]
    return (f"(\n  {_edge_error_ratio(long)}\n) > ({rate} * {budget})\nand\n"
            f"(\n  {_edge_error_ratio(short)}\n) > ({rate} * {budget})")


def error_budget(target: float) -> str:
    """The share of requests that may fail, as PromQL prints it: 99.5 -> '0.005'."""
    budget = (Decimal(100) - Decimal(str(target))) / 100
    return format(budget.normalize(), "f")


# (name, severity, component, for, metrics, summary, commands): the expression follows from
# `_expressions`. Commands take {env}; each one exists in the generated repository. Summaries are
# plain text: the alert's labels (instance, service, name, mountpoint) travel beside them.
ALERTS = (
    ("BackendDown", "critical", "backend", "1m", ("up",),
     "No backend replica answers Prometheus's scrape",
     ("make ps ENV={env}", "make logs ENV={env} SERVICE=backend-blue", "make rollback ENV={env}")),
    ("BackendHigh5xxRatio", "warning", "backend", "5m", ("http_server_requests_seconds_count",),
     "More than 5% of the backend's requests answer 5xx",
     ("make logs ENV={env} SERVICE=backend-blue", "make ps ENV={env}", "make rollback ENV={env}")),
    ("BackendHighLatencyP99", "warning", "backend", "10m", ("http_server_requests_seconds_bucket",),
     "The backend's p99 latency is above 1 s",
     ("make ps ENV={env}", "{slow_log}", "make logs ENV={env} SERVICE=backend-blue")),
    ("BackendHeapHigh", "warning", "backend", "10m", ("jvm_memory_used_bytes", "jvm_memory_max_bytes"),
     "A backend replica uses more than 90% of its JVM heap",
     ("make ps ENV={env}", "docker stats --no-stream", "make logs ENV={env} SERVICE=backend-blue")),
    ("BackendConnectionPoolSaturated", "warning", "backend", "5m", ("hikaricp_connections_active", "hikaricp_connections_max"),
     "A backend replica has more than 90% of its MySQL connections in use",
     ("{slow_log}", "make logs ENV={env} SERVICE=backend-blue", "make ps ENV={env}")),
    ("ErrorBudgetBurnFast", "critical", "edge", BURN_RATES["fast"][3], ("nginx_http_requests_total",),
     "The edge's 5xx ratio burns the 30-day error budget 14.4 times too fast (1 h and 5 min)",
     ("make ps ENV={env}", "make logs ENV={env} SERVICE=edge", "make rollback ENV={env}")),
    ("ErrorBudgetBurnSlow", "critical", "edge", BURN_RATES["slow"][3], ("nginx_http_requests_total",),
     "The edge's 5xx ratio burns the 30-day error budget 6 times too fast (6 h and 30 min)",
     ("make ps ENV={env}", "make logs ENV={env} SERVICE=edge", "make logs ENV={env} SERVICE=backend-blue")),
    ("MySQLDown", "critical", "mysql", "1m", ("mysql_up",),
     "MySQL does not answer its exporter",
     ("make ps ENV={env}", "make logs ENV={env} SERVICE=mysql", "df -h")),
    ("MySQLTooManyConnections", "warning", "mysql", "5m", ("mysql_global_status_threads_connected", "mysql_global_variables_max_connections"),
     "MySQL uses more than 80% of max_connections",
     ("make mysql-slow-log ENV={env}", "make logs ENV={env} SERVICE=mysql", "make ps ENV={env}")),
    ("RedisDown", "critical", "redis", "1m", ("redis_up",),
     "Redis does not answer its exporter",
     ("make ps ENV={env}", "make logs ENV={env} SERVICE=redis", "journalctl -k --since -1h --grep oom")),
    ("RedisMemoryHigh", "warning", "redis", "5m", ("redis_memory_used_bytes", "redis_memory_max_bytes"),
     "Redis uses more than 90% of its maxmemory",
     ("make logs ENV={env} SERVICE=redis", "make ps ENV={env}", "make apply ENV={env} DRY_RUN=1")),
    ("DiskWillFillIn24h", "warning", "host", "30m", ("node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_filesystem_readonly"),
     "A filesystem will be full within 24 hours at the rate of the last 6",
     ("df -h", "docker system df", "journalctl --disk-usage")),
    ("CertificateExpiresSoon", "warning", "certificates", "0s", ("petory_certificate_expiry_timestamp_seconds",),
     "A certificate expires within 21 days",
     ("grep -h petory_certificate_expiry {textfile_dir}/*.prom", "{renew} ENV={env}", "make reload-edge ENV={env}")),
    ("BackupTooOld", "critical", "backups", "0s", ("petory_backup_last_success_timestamp_seconds",),
     "The last verified backup is older than 26 hours",
     ("systemctl status {project}-backup.timer", "journalctl -u {project}-backup.service -n 50", "make backup ENV={env}")),
    ("ContainerRestarting", "warning", "containers", "0s", ("petory_container_restarts_total",),
     "A container restarted 3 times or more in 15 minutes",
     ("make ps ENV={env}", "make logs ENV={env} SERVICE=<service>", "docker events --since 30m --filter event=die")),
    ("MonitoringTargetDown", "warning", "monitoring", "5m", ("up",),
     "Prometheus cannot scrape a target",
     ("scripts/monitoring.sh {env} ps", "scripts/monitoring.sh {env} logs --tail 100 <service>", "make monitoring ENV={env}")),
)


# A line of why above an alert in the rules file, where the expression alone does not say it.
NOTES = {
    "BackendDown": "No replica up, or no target left: one expression, so the alert keeps its `for` when stopped targets vanish.",
    "BackendHigh5xxRatio": "The backend's own view, without the scrapes; the edge's error budget pages.",
    "BackendHighLatencyP99": "The buckets of all replicas are summed first: the service's p99, not a replica's.",
    "ErrorBudgetBurnFast": "2 % of the 30-day error budget in an hour; the 5 min window ends the alert soon after the errors.",
    "ErrorBudgetBurnSlow": "5 % of the 30-day error budget in 6 hours.",
    "BackendHeapHigh": "G1 reports no maximum (-1) for eden and survivor: the old generation's is the heap's.",
    "RedisMemoryHigh": "maxmemory 0 means no limit: nothing to compare with.",
    "DiskWillFillIn24h": "Only while a quarter or less is free, so one large write on an empty disk does not alert.",
    "CertificateExpiresSoon": "Renewal is due 30 days ahead: at 21 it has failed for 9 days.",
    "BackupTooOld": "The daily backup plus two hours. No series before the first backup (make backup-timer).",
    "ContainerRestarting": "Docker's restart count, read by the restart collector; increase() counts across recreations.",
    "MonitoringTargetDown": "An exporter that is down hides its own alerts (mysql_up, redis_up): this says so.",
}


def _expressions(budget: str) -> dict[str, str]:
    """Each alert's PromQL (kept valid for Prometheus 2.x and 3.x: no new functions, UTF-8 names or `info`)."""
    heap = 'area="heap", job="backend"'
    return {
        "BackendDown": '(sum by (env) (up{job="backend"}) or on() vector(0)) == 0',
        "BackendHigh5xxRatio": (
            f'sum by (env) (rate(http_server_requests_seconds_count{{job="backend", status=~"5..", {_NOT_ACTUATOR}}}[5m]))\n'
            f'  / sum by (env) (rate(http_server_requests_seconds_count{{job="backend", {_NOT_ACTUATOR}}}[5m]))\n'
            f"> {RATIO_5XX}"),
        "BackendHighLatencyP99": (
            "histogram_quantile(0.99,\n"
            f'  sum by (env, le) (rate(http_server_requests_seconds_bucket{{job="backend", {_NOT_ACTUATOR}}}[5m])))\n'
            f"> {P99_LATENCY_SECONDS}"),
        "ErrorBudgetBurnFast": _burn("fast", budget),
        "ErrorBudgetBurnSlow": _burn("slow", budget),
        "BackendHeapHigh": (
            f"sum by (env, instance) (jvm_memory_used_bytes{{{heap}}})\n"
            f"  / sum by (env, instance) (jvm_memory_max_bytes{{{heap}}} > 0)\n"
            f"> {HEAP_RATIO}"),
        "BackendConnectionPoolSaturated": (
            'hikaricp_connections_active{job="backend"} / hikaricp_connections_max{job="backend"}\n'
            f"> {POOL_RATIO}"),
        "MySQLDown": 'mysql_up{job="mysql"} == 0',
        "MySQLTooManyConnections": (
            'mysql_global_status_threads_connected{job="mysql"}\n'
            '  / mysql_global_variables_max_connections{job="mysql"}\n'
            f"> {MYSQL_CONNECTIONS_RATIO}"),
        "RedisDown": 'redis_up{job="redis"} == 0',
        "RedisMemoryHigh": (
            'redis_memory_used_bytes{job="redis"}\n'
            '  / (redis_memory_max_bytes{job="redis"} > 0)\n'
            f"> {REDIS_MEMORY_RATIO}"),
        "DiskWillFillIn24h": (
            f"predict_linear(node_filesystem_avail_bytes{{{_PSEUDO_FS}}}[6h], 24 * 3600) < 0\n"
            f"and\n  node_filesystem_avail_bytes{{{_PSEUDO_FS}}}\n"
            f"    / node_filesystem_size_bytes{{{_PSEUDO_FS}}}\n  < {DISK_FREE_RATIO}\n"
            f"and node_filesystem_readonly{{{_PSEUDO_FS}}} == 0"),
        "CertificateExpiresSoon": f"petory_certificate_expiry_timestamp_seconds - time() < {CERTIFICATE_DAYS} * 86400",
        "BackupTooOld": f"time() - petory_backup_last_success_timestamp_seconds > {BACKUP_AGE_HOURS} * 3600",
        "ContainerRestarting": f"increase(petory_container_restarts_total[15m]) >= {RESTARTS_15M}",
        "MonitoringTargetDown": 'up{job!="backend"} == 0',
    }


def _applies(component: str, answers: Mapping) -> bool:
    """MySQL's and Redis's alerts exist where the stack runs them; backups are of the bundled MySQL."""
    if component in ("mysql", "backups"):
        return answers.get("database", "bundled") == "bundled"
    if component == "redis":
        return answers.get("redis", "bundled") == "bundled"
    return True


def anchor(name: str) -> str:
    """GitHub's anchor of the runbook heading `### <name>`."""
    return name.lower()


def _renew_task(answers: Mapping) -> str:
    """What renews the edge's certificate: certbot with Let's Encrypt, else the local CA (or the operator's files)."""
    letsencrypt = any(answers.get(f"tls_mode_{env}") == "letsencrypt"
                      for env in ("staging", "prod") if env in answers.get("environments", ()))
    return "make certs-renew" if letsencrypt else "make certs"


def alerts(answers: Mapping) -> list[dict]:
    """The alerts of this deployment. Commands keep {env}, {project} and {textfile_dir} for the
    docs to fill with the environment their examples use."""
    target = answers.get("availability_target") or AVAILABILITY_TARGET_DEFAULT
    expressions = _expressions(error_budget(target))
    renew = _renew_task(answers)
    # MySQL's slow query log is the host's only with the bundled MySQL; else the replicas' usage.
    slow_log = "make mysql-slow-log ENV={env}" if answers.get("database", "bundled") == "bundled" else "docker stats --no-stream"
    out = []
    for name, severity, component, for_, metrics, summary, commands in ALERTS:
        if not _applies(component, answers):
            continue
        out.append({
            "name": name,
            "severity": severity,
            "component": component,
            "for": for_,
            "expr": expressions[name],
            "metrics": [{"name": m, "job": SOURCES[m][0], "source": SOURCES[m][1]} for m in metrics],
            "summary": summary,
            "note": NOTES.get(name, ""),
            "runbook_anchor": anchor(name),
            "runbook_url": f"{RUNBOOK_DOC}#{anchor(name)}",
            "commands": [command.replace("{renew}", renew).replace("{slow_log}", slow_log) for command in commands],
        })
    return out


def build(answers: Mapping) -> dict:
    """The alerting part of `deployment.monitoring` (hooks/deployment.py merges it)."""
    target = answers.get("availability_target") or AVAILABILITY_TARGET_DEFAULT
    listed = alerts(answers)
    groups: dict[str, list[dict]] = {}
    for alert in listed:
        groups.setdefault(alert["component"], []).append(alert)
    return {
        "alerts": listed,
        # Prometheus evaluates each group on its own: one per component, in the table's order.
        "rule_groups": [{"component": component, "alerts": members} for component, members in groups.items()],
        "error_budget": error_budget(target),
        "burn_rates": {kind: {"long": long, "short": short, "rate": rate, "for": for_}
                       for kind, (long, short, rate, for_) in BURN_RATES.items()},
        "runbook_doc": RUNBOOK_DOC,
        "routing": ROUTING,
        "secrets": {"webhook_url_file": WEBHOOK_URL_FILE},
    }
