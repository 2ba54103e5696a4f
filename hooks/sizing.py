"""Resource plan for one Petory host: the arithmetic behind every limit in the generated files.

The seed's budgets (docs/01-overview): backend 1-2 GB per replica, MySQL 1-2 GB, Redis 512 MB,
frontend 100 MB, on a host of at least 2 cores / 4 GB. This module turns the host size and the
number of backend replicas into per-service limits and reservations, and the settings that must
agree with them (JVM heap share, InnoDB buffer pool, MySQL connections, Redis maxmemory, nginx
workers). Rule: the sum of all memory and CPU limits plus the OS headroom never exceeds the host;
`fit_error` explains, with the numbers, why a size is refused.
"""

from __future__ import annotations

import math

PRESETS = {
    # name: (cpus, memory_gb, default backend replicas)
    "small": (2, 4, 1),  # the seed's minimum
    "medium": (4, 8, 2),  # the seed's recommendation
    "large": (8, 16, 3),
}

MIN_HOST_CPUS = 2
MIN_HOST_MEMORY_MB = 4096
MAX_BACKEND_REPLICAS = 8

# Fixed memory budgets in MB (limits).
EDGE_MB = 128
FRONTEND_MB = 100
REDIS_MB = 512
CERTBOT_MB = 128  # Let's Encrypt client (idle between renewals); counted whatever the TLS mode
CERT_RELOAD_MB = 32  # reloads the edge after a renewal
# Ranges: each starts at the minimum and grows to the maximum when the host has room.
BACKEND_MB = (1024, 2048)
MYSQL_MB = (1024, 2048)

# Fixed CPU limits; MySQL and the backends share the rest by weight.
EDGE_CPUS = 0.25
FRONTEND_CPUS = 0.1
CERTBOT_CPUS = 0.1
CERT_RELOAD_CPUS = 0.05
REDIS_CPUS = 0.25
MYSQL_CPU_WEIGHT = 1.0
BACKEND_CPU_WEIGHT = 1.5
MAX_CPUS_PER_SERVICE = 2.0

HIKARI_POOL_SIZE = 10  # Spring Boot's default pool; MySQL connections are sized from it
ADMIN_CONNECTIONS = 20  # backups, migrations, an operator's shell, monitoring
MYSQL_BASE_OVERHEAD_MB = 320  # server buffers, data dictionary, performance_schema
MYSQL_PER_CONNECTION_MB = 3  # thread stack + sort/join/read buffers, conservatively
JVM_MAX_RAM_PERCENTAGE = 75  # heap share of the container limit; the rest is metaspace, threads, buffers
REDIS_MAXMEMORY_SHARE = 0.75  # room for the AOF-rewrite fork's copy-on-write pages
NGINX_WORKER_CONNECTIONS = 4096

# The monitoring stack (answer `monitoring`, compose.monitoring.yaml): service -> (memory limit MB,
# CPU limit, the modes that run it, the bundled service it watches or None). `bundled` runs the
# whole stack on the host; `remote` only the agents, which ship to an existing Prometheus and Loki.
# Prometheus: about 40 k series at a 15 s scrape (2 backends x ~500 Micrometer series, the
# exporters) stay under 300 MB of head block; Loki monolithic with small chunks; Alloy tails a few
# containers and, for `remote`, buffers the remote-write WAL; the exporters idle in 10-30 MB.
MONITORING_SERVICES = {
    "prometheus": (512, 0.2, ("bundled",), None),
    "alertmanager": (64, 0.05, ("bundled",), None),
    "grafana": (256, 0.1, ("bundled",), None),
    "loki": (384, 0.15, ("bundled",), None),
    "alloy": (192, 0.1, ("bundled", "remote"), None),
    "node_exporter": (48, 0.05, ("bundled", "remote"), None),
    "mysqld_exporter": (32, 0.05, ("bundled", "remote"), "mysql"),
    "redis_exporter": (32, 0.05, ("bundled", "remote"), "redis"),
    "edge_metrics": (64, 0.05, ("bundled", "remote"), None),  # mtail over the edge's JSON access log
    # Restarts from `docker inspect`: it runs the docker CLI, a 45 MB Go binary whose pages count
    # against the limit, twice per 30 s. At 32 MB and 0.05 CPU one `docker ps` took 70-110 s.
    "container_metrics": (64, 0.1, ("bundled", "remote"), None),
}
MONITORING_MODES = ("off", "bundled", "remote")
# Disk: the presets' disks are 12.5 GB per GB of memory (50/4, 100/8, 200/16); a custom host is
# assumed the same. Prometheus and Loki each get this share of it, whole GB, at least 1: Prometheus
# deletes the oldest blocks past --storage.tsdb.retention.size, Loki's compactor past the days.
DISK_GB_PER_MEMORY_GB = 12.5
MONITORING_DISK_SHARE = {"prometheus": 0.05, "loki": 0.05}
PROMETHEUS_RETENTION_DAYS = 30  # whichever of size and days comes first
LOKI_RETENTION_DAYS = 14  # the container logs on the host keep 50 MB each; Loki keeps two weeks
GRAFANA_DISK_GB = 0.1  # its SQLite database (users, sessions); dashboards come from files
ALLOY_WAL_GB = 0.5  # remote: the remote-write WAL and log positions while the remote is unreachable


def os_headroom_mb(memory_mb: int) -> int:
    """Memory left to the kernel, page cache, Docker and sshd: 1 GB or 1/8 of the host."""
    return max(1024, memory_mb // 8)


def os_headroom_cpus(cpus: float) -> float:
    return 0.25 if cpus <= 2 else 0.5


def _floor_to(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step


def monitoring_services(mode: str, bundled_mysql: bool = True, bundled_redis: bool = True) -> dict[str, tuple[int, float]]:
    """The monitoring services that `mode` runs on the host: name -> (memory limit MB, CPU limit)."""
    if mode not in MONITORING_MODES:
        raise ValueError(f"monitoring must be one of {', '.join(MONITORING_MODES)}, got {mode!r}")
    bundled = {"mysql": bundled_mysql, "redis": bundled_redis}
    return {name: (mb, cpus) for name, (mb, cpus, modes, watches) in MONITORING_SERVICES.items()
            if mode in modes and (watches is None or bundled[watches])}


def _monitoring_cpus(mode: str, bundled_mysql: bool, bundled_redis: bool) -> float:
    return round(sum(cpus for _, cpus in monitoring_services(mode, bundled_mysql, bundled_redis).values()), 2)


def _minimum_need_mb(replicas: int, bundled_mysql: bool, bundled_redis: bool, monitoring: str = "off") -> dict[str, int]:
    need = {"edge": EDGE_MB, "frontend": FRONTEND_MB, "certbot": CERTBOT_MB + CERT_RELOAD_MB,
            "backend": BACKEND_MB[0] * replicas}
    if bundled_mysql:
        need["mysql"] = MYSQL_MB[0]
    if bundled_redis:
        need["redis"] = REDIS_MB
    watchers = sum(mb for mb, _ in monitoring_services(monitoring, bundled_mysql, bundled_redis).values())
    if watchers:
        need["monitoring"] = watchers
    return need


def fit_error(
    cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool = True, bundled_redis: bool = True,
    monitoring: str = "off",
) -> str:
    """Empty when the host can hold the stack, else a sentence with the numbers."""
    return _fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, hint=True, monitoring=monitoring)


def _fit_error(cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool, bundled_redis: bool, hint: bool,
               monitoring: str = "off") -> str:
    memory_mb = int(memory_gb * 1024)
    if cpus < MIN_HOST_CPUS or memory_mb < MIN_HOST_MEMORY_MB:
        return (
            f"a host of {cpus:g} cores / {memory_mb} MB is below the supported minimum of "
            f"{MIN_HOST_CPUS} cores / {MIN_HOST_MEMORY_MB} MB (the 'small' preset)"
        )
    if not 1 <= replicas <= MAX_BACKEND_REPLICAS:
        return f"backend replicas must be between 1 and {MAX_BACKEND_REPLICAS}, got {replicas}"
    need = _minimum_need_mb(replicas, bundled_mysql, bundled_redis, monitoring)
    headroom = os_headroom_mb(memory_mb)
    total = sum(need.values()) + headroom
    if total > memory_mb:
        parts = " + ".join(f"{name} {mb}" for name, mb in need.items())
        advice = ""
        if hint and "monitoring" in need and not _fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, False):
            advice = f"; use monitoring={_fitting_monitoring(cpus, memory_gb, replicas, bundled_mysql, bundled_redis)} or a larger host"
        elif hint:
            most = max_replicas(cpus, memory_gb, bundled_mysql, bundled_redis, monitoring)
            advice = f"; use at most {most} replica(s) or a larger host" if most else "; use a larger host"
        what = f"monitoring={monitoring} and {replicas}" if "monitoring" in need else f"{replicas}"
        return (
            f"{what} backend replica(s) do not fit in {memory_mb} MB: the minimum limits "
            f"({parts}) plus {headroom} MB OS headroom need {total} MB{advice}"
        )
    fixed_cpus = _fixed_cpus(bundled_mysql, bundled_redis, monitoring)
    cpu_left = cpus - os_headroom_cpus(cpus) - fixed_cpus
    min_share = 0.1 * (replicas + (1 if bundled_mysql else 0))
    if cpu_left < min_share:
        return f"{replicas} backend replica(s) leave only {cpu_left:.2f} CPUs on {cpus:g} cores; use fewer replicas"
    return ""


def _fixed_cpus(bundled_mysql: bool, bundled_redis: bool, monitoring: str) -> float:
    return (EDGE_CPUS + FRONTEND_CPUS + CERTBOT_CPUS + CERT_RELOAD_CPUS + (REDIS_CPUS if bundled_redis else 0)
            + _monitoring_cpus(monitoring, bundled_mysql, bundled_redis))


def _fitting_monitoring(cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool, bundled_redis: bool) -> str:
    """The most complete monitoring mode that fits beside the apps (`off` always does once they fit)."""
    return next(mode for mode in ("bundled", "remote", "off")
                if not _fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, False, mode))


def default_monitoring(cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool = True,
                       bundled_redis: bool = True) -> str:
    """The default of the answer `monitoring`: the bundled stack where it fits beside the apps, else off.

    `remote` is never a default: it needs the addresses of an existing Prometheus and Loki. On the
    small preset the apps leave 124 MB, less than even the agents need, so small gets `off`.
    """
    mode = _fitting_monitoring(cpus, memory_gb, replicas, bundled_mysql, bundled_redis)
    return "bundled" if mode == "bundled" else "off"


def short_monitoring_error(cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool, bundled_redis: bool,
                           monitoring: str) -> str:
    """Why `monitoring` does not fit, in at most 35 characters (the questionnaire's room); "" when it does."""
    if not _fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, False, monitoring):
        return ""
    memory_mb = int(memory_gb * 1024)
    need = sum(_minimum_need_mb(replicas, bundled_mysql, bundled_redis, monitoring).values()) + os_headroom_mb(memory_mb)
    fits = _fitting_monitoring(cpus, memory_gb, replicas, bundled_mysql, bundled_redis)
    if need > memory_mb:
        return f"needs {need / 1024:.1f} of {memory_mb / 1024:g} GB; use {fits}"
    return f"too little CPU; use {fits}"


def short_fit_error(
    cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool = True, bundled_redis: bool = True
) -> str:
    """fit_error in at most 29 characters (the questionnaire's room for it); "" when it fits.

    The breakdown per container is in the template's docs/architecture.md (the size matrix).
    """
    memory_mb = int(memory_gb * 1024)
    if cpus < MIN_HOST_CPUS or memory_mb < MIN_HOST_MEMORY_MB:
        return f"host below {MIN_HOST_CPUS} cores / {MIN_HOST_MEMORY_MB // 1024} GB"
    if not 1 <= replicas <= MAX_BACKEND_REPLICAS:
        return "give at least 1" if replicas < 1 else f"give 1 to {MAX_BACKEND_REPLICAS}"
    if not _fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, hint=False):
        return ""
    need = sum(_minimum_need_mb(replicas, bundled_mysql, bundled_redis).values()) + os_headroom_mb(memory_mb)
    most = max_replicas(cpus, memory_gb, bundled_mysql, bundled_redis)
    fix = f"at most {most} fit" if most else "host too small"
    if need > memory_mb:
        return f"needs {need / 1024:.1f} GB; {fix}"
    return f"too little CPU; {fix}"


def max_replicas(cpus: float, memory_gb: float, bundled_mysql: bool = True, bundled_redis: bool = True,
                 monitoring: str = "off") -> int:
    """The largest replica count that fits (0 when not even one does)."""
    fitting = [
        n
        for n in range(1, MAX_BACKEND_REPLICAS + 1)
        if not _fit_error(cpus, memory_gb, n, bundled_mysql, bundled_redis, hint=False, monitoring=monitoring)
    ]
    return max(fitting, default=0)


def _service(memory_mb: int, cpus: float) -> dict:
    return {
        "memory_limit_mb": memory_mb,
        # Reservations are what Docker keeps for the service under memory pressure.
        "memory_reservation_mb": int(_floor_to(memory_mb / 2, 16)),
        "cpus": round(cpus, 2),
        # Half the limit, in steps of 0.05 (scripts/lib/compose_snapshot.py derives it the same way).
        "cpu_reservation": cpu_reservation(cpus),
    }


def cpu_reservation(cpus: float) -> float:
    return round(_floor_to(cpus / 2, 0.05), 2) or 0.05


def monitoring_plan(memory_gb: float, mode: str) -> dict:
    """Retention and disk of the monitoring stack: each store's share of the host's (assumed) disk."""
    disk_gb = memory_gb * DISK_GB_PER_MEMORY_GB
    bundled = mode == "bundled"
    prometheus_gb = max(1, int(disk_gb * MONITORING_DISK_SHARE["prometheus"])) if bundled else 0
    loki_gb = max(1, int(disk_gb * MONITORING_DISK_SHARE["loki"])) if bundled else 0
    disk = prometheus_gb + loki_gb + (GRAFANA_DISK_GB if bundled else 0) + (ALLOY_WAL_GB if mode != "off" else 0)
    return {
        "mode": mode,
        "prometheus_retention_size_gb": prometheus_gb,
        "prometheus_retention_days": PROMETHEUS_RETENTION_DAYS if bundled else 0,
        "loki_disk_gb": loki_gb,
        "loki_retention_days": LOKI_RETENTION_DAYS if bundled else 0,
        "disk_gb": round(disk, 2),
    }


def plan(
    cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool = True, bundled_redis: bool = True,
    monitoring: str = "off",
) -> dict:
    """The full resource plan. Raises ValueError (with fit_error's message) when it cannot fit."""
    error = fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, monitoring)
    if error:
        raise ValueError(error)
    memory_mb = int(memory_gb * 1024)
    headroom_mb = os_headroom_mb(memory_mb)
    need = _minimum_need_mb(replicas, bundled_mysql, bundled_redis, monitoring)
    spare = memory_mb - headroom_mb - sum(need.values())

    # Grow MySQL and each backend from their minimum towards their maximum, equally, in 64 MB steps.
    growers = replicas + (1 if bundled_mysql else 0)
    growth = min(BACKEND_MB[1] - BACKEND_MB[0], int(_floor_to(spare / growers, 64)))
    backend_mb = BACKEND_MB[0] + growth
    mysql_mb = MYSQL_MB[0] + growth if bundled_mysql else 0

    headroom_cpus = os_headroom_cpus(cpus)
    fixed_cpus = _fixed_cpus(bundled_mysql, bundled_redis, monitoring)
    share = (cpus - headroom_cpus - fixed_cpus) / (
        BACKEND_CPU_WEIGHT * replicas + (MYSQL_CPU_WEIGHT if bundled_mysql else 0)
    )
    backend_cpus = min(MAX_CPUS_PER_SERVICE, _floor_to(share * BACKEND_CPU_WEIGHT, 0.05))
    mysql_cpus = min(MAX_CPUS_PER_SERVICE, _floor_to(share * MYSQL_CPU_WEIGHT, 0.05))

    services = {
        "edge": _service(EDGE_MB, EDGE_CPUS),
        "frontend": _service(FRONTEND_MB, FRONTEND_CPUS),
        "certbot": _service(CERTBOT_MB, CERTBOT_CPUS),
        "cert_reload": _service(CERT_RELOAD_MB, CERT_RELOAD_CPUS),
        "backend": _service(backend_mb, backend_cpus),
    }
    if bundled_mysql:
        services["mysql"] = _service(mysql_mb, mysql_cpus)
    if bundled_redis:
        services["redis"] = _service(REDIS_MB, REDIS_CPUS)
    for name, (mb, service_cpus) in monitoring_services(monitoring, bundled_mysql, bundled_redis).items():
        services[name] = _service(mb, service_cpus)

    total_mb = sum(s["memory_limit_mb"] for s in services.values()) + backend_mb * (replicas - 1)
    total_cpus = sum(s["cpus"] for s in services.values()) + backend_cpus * (replicas - 1)

    # One pool per backend replica of each colour: both colours run during a blue-green deploy.
    max_connections = 2 * replicas * HIKARI_POOL_SIZE + ADMIN_CONNECTIONS
    buffer_pool_mb = 0
    if bundled_mysql:
        room = mysql_mb - MYSQL_BASE_OVERHEAD_MB - MYSQL_PER_CONNECTION_MB * max_connections
        buffer_pool_mb = max(128, int(_floor_to(min(room, mysql_mb * 0.7), 128)))

    edge_workers = max(1, math.ceil(EDGE_CPUS))
    return {
        "host": {
            "cpus": cpus,
            "memory_mb": memory_mb,
            "os_headroom_mb": headroom_mb,
            "os_headroom_cpus": headroom_cpus,
        },
        "backend_replicas": replicas,
        "services": services,
        "total": {"memory_limit_mb": total_mb, "cpus": round(total_cpus, 2)},
        "jvm": {"max_ram_percentage": JVM_MAX_RAM_PERCENTAGE},
        "mysql": {
            "innodb_buffer_pool_size_mb": buffer_pool_mb,
            "max_connections": max_connections,
            # The terms of the two sums above, so that comments beside the settings print them.
            "hikari_pool_size": HIKARI_POOL_SIZE,
            "admin_connections": ADMIN_CONNECTIONS,
            "base_overhead_mb": MYSQL_BASE_OVERHEAD_MB,
            "per_connection_mb": MYSQL_PER_CONNECTION_MB,
            "binlog_days": BINLOG_DAYS,
        },
        "redis": {
            "maxmemory_mb": int(_floor_to(REDIS_MB * REDIS_MAXMEMORY_SHARE, 16)),
            # Only keys with a TTL (the cache) are evicted; buffered notifications carry no TTL,
            # so they are never evicted: when memory is full of them, writes fail loudly instead.
            "maxmemory_policy": "volatile-lru",
        },
        "monitoring": monitoring_plan(memory_gb, monitoring),
        "nginx": {
            # `auto` would count the host's cores, not the container's CPU limit.
            "worker_processes": edge_workers,
            "worker_connections": NGINX_WORKER_CONNECTIONS,
            # Gixy: the open-file limit must cover two descriptors per proxied connection.
            "worker_rlimit_nofile": NGINX_WORKER_CONNECTIONS * 2,
        },
    }


def preset(name: str) -> tuple[int, int, int]:
    return PRESETS[name]


def compose_resources(plan_: dict, service: str) -> str:
    """The `deploy.resources` mapping of one service as a flow-style YAML string for compose.yaml."""
    s = plan_["services"][service]
    return (
        f'{{limits: {{cpus: "{s["cpus"]:.2f}", memory: {s["memory_limit_mb"]}M}}, '
        f'reservations: {{cpus: "{s["cpu_reservation"]:.2f}", memory: {s["memory_reservation_mb"]}M}}}}'
    )


# -- The feature x host-size matrix ---------------------------------------------------------------
# One rule admits or refuses every feature on a host (docs/architecture.md of the template):
#   memory: the limits of everything that runs, plus the OS headroom, fit the host, in steady state
#           and at the deploy peak (both colours run while the edge switches; the peak may borrow
#           half of the headroom for those minutes);
#   CPU:    the CPU limits plus the OS headroom fit the host's cores;
#   disk:   the fixed budgets below, plus what grows with the database, leave room for a database
#           of at least MIN_DATABASE_GB with FREE_DISK_SHARE of the disk still free.
# A feature adds its services to `plan` (and so to the memory and CPU sums) and its disk to
# DISK_FIXED_GB or DISK_PER_DATABASE_GB; nothing else decides whether it fits.

DISK_GB = {"small": 50, "medium": 100, "large": 200}  # the seed's 50 GB / 100 GB; large assumed
FREE_DISK_SHARE = 0.15  # ext4's reserved blocks plus room to pull the next version's images
MIN_DATABASE_GB = 2
KEPT_VERSIONS = 5  # scripts/deploy.sh --keep-images default: previous versions kept for rollback
APP_IMAGES_GB = 0.45  # one version of the backend (JRE + jar) and frontend images
DISK_FIXED_GB = {
    "os_and_engine": 10.0,  # Debian, Docker's own state, the build-free server
    "images_for_rollback": round((KEPT_VERSIONS + 1) * APP_IMAGES_GB + 1.0, 2),  # + base images
    "container_logs": 0.5,  # json-file: 10 MB x 5 files per container (compose.yaml x-hardening)
    # The local CAs, the edge's and MySQL's certificates and the backend's truststore are a few KB
    # each; certbot keeps every renewal in its archive: 10 MB covers years of them.
    "certificates": 0.01,
}
BACKUP_RETENTION_DAYS = 14  # scripts/backup-db.sh --retention-days default
BINLOG_DAYS = 7  # docker/mysql/conf.d/petory.cnf binlog_expire_logs_seconds
DUMP_RATIO = 0.25  # a gzipped logical dump against the data's size on disk
DAILY_WRITES_RATIO = 0.05  # binlog written per day against the data's size (assumed low churn)
DISK_PER_DATABASE_GB = {
    "data": 1.1,  # InnoDB files plus temporary tables
    "dumps": BACKUP_RETENTION_DAYS * DUMP_RATIO + DUMP_RATIO,  # daily dumps + the pre-restore dump
    "binlogs": BINLOG_DAYS * DAILY_WRITES_RATIO,  # on the server, for binlog_expire_logs_seconds
    # Their shipped copies in backups/<env>/binlog/ (scripts/ship-binlogs.sh), kept as long; age
    # encryption adds a few hundred bytes per file.
    "shipped_binlogs": BINLOG_DAYS * DAILY_WRITES_RATIO,
}


def deploy_peak_mb(plan_: dict) -> int:
    """Memory limits while both colours run: the steady state plus a second set of apps."""
    services = plan_["services"]
    second_colour = services["backend"]["memory_limit_mb"] * plan_["backend_replicas"] + services["frontend"]["memory_limit_mb"]
    return plan_["total"]["memory_limit_mb"] + second_colour


def disk_plan(disk_gb: float, bundled_mysql: bool = True, monitoring: str = "off") -> dict:
    """How the disk is spent, and the largest database it holds under the rule above.

    The metrics and logs retention (monitoring_plan) is a fixed budget too, sized from this disk.
    """
    metrics = monitoring_plan(disk_gb / DISK_GB_PER_MEMORY_GB, monitoring)["disk_gb"]
    fixed = sum(DISK_FIXED_GB.values()) + metrics
    usable = disk_gb * (1 - FREE_DISK_SHARE) - fixed
    per_db = sum(DISK_PER_DATABASE_GB.values()) if bundled_mysql else 0
    max_db = round(usable / per_db, 1) if per_db else None
    return {"disk_gb": disk_gb, "fixed_gb": round(fixed, 2), "metrics_retention_gb": metrics, "free_gb": round(disk_gb * FREE_DISK_SHARE, 1),
            "per_database_gb": round(per_db, 2), "max_database_gb": max_db,
            "fits": usable > 0 and (max_db is None or max_db >= MIN_DATABASE_GB)}


def admission(cpus: float, memory_gb: float, replicas: int, disk_gb: float,
              bundled_mysql: bool = True, bundled_redis: bool = True, monitoring: str = "off") -> dict:
    """The rule applied to one host: each resource's need against what the host offers."""
    plan_ = plan(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, monitoring)
    host = plan_["host"]
    steady = plan_["total"]["memory_limit_mb"]
    peak = deploy_peak_mb(plan_)
    peak_room = host["memory_mb"] - host["os_headroom_mb"] // 2
    disk = disk_plan(disk_gb, bundled_mysql, monitoring)
    return {
        "memory_steady": (steady + host["os_headroom_mb"], host["memory_mb"]),
        "memory_peak": (peak, peak_room),
        "cpus": (round(plan_["total"]["cpus"] + host["os_headroom_cpus"], 2), cpus),
        "disk": disk,
        "fits": {"memory_steady": steady + host["os_headroom_mb"] <= host["memory_mb"],
                 "memory_peak": peak <= peak_room,
                 "cpus": plan_["total"]["cpus"] + host["os_headroom_cpus"] <= cpus + 1e-9,
                 "disk": disk["fits"]},
    }


def size_matrix() -> str:
    """The feature x host-size matrix for the presets with their default monitoring, as a Markdown
    table (docs/architecture.md)."""
    rows = ["| size | monitoring | memory steady MB (limits + OS) / host | deploy peak MB (both colours) / host - half the OS headroom "
            "| CPUs (limits + OS) / host | disk GB: fixed + free | largest database GB | admitted |",
            "|---|---|---|---|---|---|---|---|"]
    for name, (cpus, memory_gb, replicas) in PRESETS.items():
        monitoring = default_monitoring(cpus, memory_gb, replicas)
        a = admission(cpus, memory_gb, replicas, DISK_GB[name], monitoring=monitoring)
        verdict = ", ".join(k for k, ok in a["fits"].items() if not ok)
        rows.append(
            f"| {name} ({cpus} cores / {memory_gb} GB / {DISK_GB[name]} GB, {replicas} replica(s)) | {monitoring} "
            f"| {a['memory_steady'][0]} / {a['memory_steady'][1]} | {a['memory_peak'][0]} / {a['memory_peak'][1]} "
            f"| {a['cpus'][0]:g} / {a['cpus'][1]} | {a['disk']['fixed_gb']:g} + {a['disk']['free_gb']:g} "
            f"| {a['disk']['max_database_gb']:g} | {'yes' if not verdict else 'no: ' + verdict} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(size_matrix())
