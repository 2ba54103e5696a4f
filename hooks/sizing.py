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


def os_headroom_mb(memory_mb: int) -> int:
    """Memory left to the kernel, page cache, Docker and sshd: 1 GB or 1/8 of the host."""
    return max(1024, memory_mb // 8)


def os_headroom_cpus(cpus: float) -> float:
    return 0.25 if cpus <= 2 else 0.5


def _floor_to(value: float, step: float) -> float:
    return math.floor(value / step + 1e-9) * step


def _minimum_need_mb(replicas: int, bundled_mysql: bool, bundled_redis: bool) -> dict[str, int]:
    need = {"edge": EDGE_MB, "frontend": FRONTEND_MB, "certbot": CERTBOT_MB + CERT_RELOAD_MB,
            "backend": BACKEND_MB[0] * replicas}
    if bundled_mysql:
        need["mysql"] = MYSQL_MB[0]
    if bundled_redis:
        need["redis"] = REDIS_MB
    return need


def fit_error(
    cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool = True, bundled_redis: bool = True
) -> str:
    """Empty when the host can hold the stack, else a sentence with the numbers."""
    return _fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis, hint=True)


def _fit_error(cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool, bundled_redis: bool, hint: bool) -> str:
    memory_mb = int(memory_gb * 1024)
    if cpus < MIN_HOST_CPUS or memory_mb < MIN_HOST_MEMORY_MB:
        return (
            f"a host of {cpus:g} cores / {memory_mb} MB is below the supported minimum of "
            f"{MIN_HOST_CPUS} cores / {MIN_HOST_MEMORY_MB} MB (the 'small' preset)"
        )
    if not 1 <= replicas <= MAX_BACKEND_REPLICAS:
        return f"backend replicas must be between 1 and {MAX_BACKEND_REPLICAS}, got {replicas}"
    need = _minimum_need_mb(replicas, bundled_mysql, bundled_redis)
    headroom = os_headroom_mb(memory_mb)
    total = sum(need.values()) + headroom
    if total > memory_mb:
        parts = " + ".join(f"{name} {mb}" for name, mb in need.items())
        advice = ""
        if hint:
            most = max_replicas(cpus, memory_gb, bundled_mysql, bundled_redis)
            advice = f"; use at most {most} replica(s) or a larger host" if most else "; use a larger host"
        return (
            f"{replicas} backend replica(s) do not fit in {memory_mb} MB: the minimum limits "
            f"({parts}) plus {headroom} MB OS headroom need {total} MB{advice}"
        )
    fixed_cpus = EDGE_CPUS + FRONTEND_CPUS + CERTBOT_CPUS + CERT_RELOAD_CPUS + (REDIS_CPUS if bundled_redis else 0)
    cpu_left = cpus - os_headroom_cpus(cpus) - fixed_cpus
    min_share = 0.1 * (replicas + (1 if bundled_mysql else 0))
    if cpu_left < min_share:
        return f"{replicas} backend replica(s) leave only {cpu_left:.2f} CPUs on {cpus:g} cores; use fewer replicas"
    return ""


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


def max_replicas(cpus: float, memory_gb: float, bundled_mysql: bool = True, bundled_redis: bool = True) -> int:
    """The largest replica count that fits (0 when not even one does)."""
    fitting = [
        n
        for n in range(1, MAX_BACKEND_REPLICAS + 1)
        if not _fit_error(cpus, memory_gb, n, bundled_mysql, bundled_redis, hint=False)
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


def plan(
    cpus: float, memory_gb: float, replicas: int, bundled_mysql: bool = True, bundled_redis: bool = True
) -> dict:
    """The full resource plan. Raises ValueError (with fit_error's message) when it cannot fit."""
    error = fit_error(cpus, memory_gb, replicas, bundled_mysql, bundled_redis)
    if error:
        raise ValueError(error)
    memory_mb = int(memory_gb * 1024)
    headroom_mb = os_headroom_mb(memory_mb)
    need = _minimum_need_mb(replicas, bundled_mysql, bundled_redis)
    spare = memory_mb - headroom_mb - sum(need.values())

    # Grow MySQL and each backend from their minimum towards their maximum, equally, in 64 MB steps.
    growers = replicas + (1 if bundled_mysql else 0)
    growth = min(BACKEND_MB[1] - BACKEND_MB[0], int(_floor_to(spare / growers, 64)))
    backend_mb = BACKEND_MB[0] + growth
    mysql_mb = MYSQL_MB[0] + growth if bundled_mysql else 0

    headroom_cpus = os_headroom_cpus(cpus)
    fixed_cpus = EDGE_CPUS + FRONTEND_CPUS + CERTBOT_CPUS + CERT_RELOAD_CPUS + (REDIS_CPUS if bundled_redis else 0)
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
    "metrics_retention": 0.0,  # no bundled monitoring yet
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


def disk_plan(disk_gb: float, bundled_mysql: bool = True) -> dict:
    """How the disk is spent, and the largest database it holds under the rule above."""
    fixed = sum(DISK_FIXED_GB.values())
    usable = disk_gb * (1 - FREE_DISK_SHARE) - fixed
    per_db = sum(DISK_PER_DATABASE_GB.values()) if bundled_mysql else 0
    max_db = round(usable / per_db, 1) if per_db else None
    return {"disk_gb": disk_gb, "fixed_gb": round(fixed, 2), "free_gb": round(disk_gb * FREE_DISK_SHARE, 1),
            "per_database_gb": round(per_db, 2), "max_database_gb": max_db,
            "fits": usable > 0 and (max_db is None or max_db >= MIN_DATABASE_GB)}


def admission(cpus: float, memory_gb: float, replicas: int, disk_gb: float,
              bundled_mysql: bool = True, bundled_redis: bool = True) -> dict:
    """The rule applied to one host: each resource's need against what the host offers."""
    plan_ = plan(cpus, memory_gb, replicas, bundled_mysql, bundled_redis)
    host = plan_["host"]
    steady = plan_["total"]["memory_limit_mb"]
    peak = deploy_peak_mb(plan_)
    peak_room = host["memory_mb"] - host["os_headroom_mb"] // 2
    disk = disk_plan(disk_gb, bundled_mysql)
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
    """The feature x host-size matrix for the presets, as a Markdown table (docs/architecture.md)."""
    rows = ["| size | memory steady MB (limits + OS) / host | deploy peak MB (both colours) / host - half the OS headroom "
            "| CPUs (limits + OS) / host | disk GB: fixed + free | largest database GB | admitted |",
            "|---|---|---|---|---|---|---|"]
    for name, (cpus, memory_gb, replicas) in PRESETS.items():
        a = admission(cpus, memory_gb, replicas, DISK_GB[name])
        verdict = ", ".join(k for k, ok in a["fits"].items() if not ok)
        rows.append(
            f"| {name} ({cpus} cores / {memory_gb} GB / {DISK_GB[name]} GB, {replicas} replica(s)) "
            f"| {a['memory_steady'][0]} / {a['memory_steady'][1]} | {a['memory_peak'][0]} / {a['memory_peak'][1]} "
            f"| {a['cpus'][0]:g} / {a['cpus'][1]} | {a['disk']['fixed_gb']:g} + {a['disk']['free_gb']:g} "
            f"| {a['disk']['max_database_gb']:g} | {'yes' if not verdict else 'no: ' + verdict} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(size_matrix())
