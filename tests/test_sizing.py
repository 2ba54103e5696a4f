"""Unit tests of the resource arithmetic (hooks/sizing.py) and of the comments that restate it."""

import re
from pathlib import Path

import jinja2
import pytest

import sizing

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cpus,memory_gb,replicas", [
    (2, 4, 1), (4, 8, 1), (4, 8, 2), (8, 16, 3), (6, 12, 3), (16, 64, 8), (3, 6, 2), (2, 5, 1),
])
def test_limits_plus_headroom_never_exceed_the_host(cpus, memory_gb, replicas):
    plan = sizing.plan(cpus, memory_gb, replicas)
    assert plan["total"]["memory_limit_mb"] + plan["host"]["os_headroom_mb"] <= memory_gb * 1024
    assert plan["total"]["cpus"] + plan["host"]["os_headroom_cpus"] <= cpus + 1e-9
    for service in plan["services"].values():
        assert service["memory_reservation_mb"] <= service["memory_limit_mb"]
        assert 0 < service["cpu_reservation"] <= service["cpus"]


def test_seed_budgets_are_respected():
    for name, (cpus, memory_gb, replicas) in sizing.PRESETS.items():
        plan = sizing.plan(cpus, memory_gb, replicas)
        services = plan["services"]
        assert 1024 <= services["backend"]["memory_limit_mb"] <= 2048, name
        assert 1024 <= services["mysql"]["memory_limit_mb"] <= 2048, name
        assert services["redis"]["memory_limit_mb"] == 512
        assert services["frontend"]["memory_limit_mb"] == 100


def test_recommended_host_gets_the_upper_budgets():
    plan = sizing.plan(4, 8, 2)
    assert plan["services"]["backend"]["memory_limit_mb"] == 2048
    assert plan["services"]["mysql"]["memory_limit_mb"] == 2048
    assert plan["total"]["memory_limit_mb"] == 128 + 100 + 128 + 32 + 2 * 2048 + 2048 + 512


def test_minimum_host_fits_one_replica_only_and_says_why():
    assert sizing.fit_error(2, 4, 1) == ""
    message = sizing.fit_error(2, 4, 2)
    assert "do not fit in 4096 MB" in message and "need 4996 MB" in message and "at most 1 replica" in message
    with pytest.raises(ValueError, match="do not fit"):
        sizing.plan(2, 4, 2)


def test_below_minimum_host_is_refused():
    assert "below the supported minimum" in sizing.fit_error(1, 8, 1)
    assert "below the supported minimum" in sizing.fit_error(4, 3, 1)


def test_external_services_free_their_budget():
    bundled = sizing.plan(2, 4, 1)
    external = sizing.plan(2, 4, 1, bundled_mysql=False, bundled_redis=False)
    assert "mysql" not in external["services"] and "redis" not in external["services"]
    assert external["services"]["backend"]["memory_limit_mb"] > bundled["services"]["backend"]["memory_limit_mb"]
    assert sizing.max_replicas(2, 4, False, False) > sizing.max_replicas(2, 4)


def test_mysql_memory_settings_fit_the_container():
    for cpus, memory_gb, replicas in sizing.PRESETS.values():
        plan = sizing.plan(cpus, memory_gb, replicas)
        limit = plan["services"]["mysql"]["memory_limit_mb"]
        mysql = plan["mysql"]
        used = mysql["innodb_buffer_pool_size_mb"] + sizing.MYSQL_BASE_OVERHEAD_MB \
            + mysql["max_connections"] * sizing.MYSQL_PER_CONNECTION_MB
        assert used <= limit
        # Every replica's pool in both colours (a deploy runs both), plus admin connections.
        assert mysql["max_connections"] == 2 * replicas * mysql["hikari_pool_size"] + sizing.ADMIN_CONNECTIONS
        assert mysql["innodb_buffer_pool_size_mb"] % 128 == 0


def test_redis_keeps_room_for_the_aof_fork_and_never_evicts_notifications():
    plan = sizing.plan(4, 8, 2)
    assert plan["redis"]["maxmemory_mb"] == 384
    assert plan["redis"]["maxmemory_policy"] in {"volatile-lru", "volatile-lfu", "volatile-ttl", "noeviction"}


def test_nginx_workers_follow_the_cpu_limit_and_file_limit_covers_connections():
    plan = sizing.plan(8, 16, 3)
    assert plan["nginx"]["worker_processes"] == 1  # 0.25 CPU, whatever the host has
    assert plan["nginx"]["worker_rlimit_nofile"] >= 2 * plan["nginx"]["worker_connections"]


def test_compose_resources_is_a_flow_mapping():
    import yaml

    plan = sizing.plan(4, 8, 2)
    resources = yaml.safe_load(sizing.compose_resources(plan, "backend"))
    assert resources == {"limits": {"cpus": "1.00", "memory": "2048M"},
                         "reservations": {"cpus": "0.50", "memory": "1024M"}}


MYSQL_CNF = ROOT / "template/deploy/docker/{% if deployment.flags.bundled_mysql %}mysql{% endif %}/conf.d/petory.cnf.jinja"


@pytest.mark.parametrize("cpus,memory_gb,replicas", [(2, 4, 1), (4, 8, 2), (8, 16, 3), (16, 64, 8)])
def test_mysql_comments_state_the_formulas_with_the_settings_numbers(cpus, memory_gb, replicas):
    plan = sizing.plan(cpus, memory_gb, replicas)
    text = jinja2.Template(MYSQL_CNF.read_text()).render(sizing=plan, project_name="Petory", timezone="UTC")
    setting = re.search(
        r"^max_connections = (\d+) # 2 colours x (\d+) replicas? x pool (\d+) \+ (\d+) admin$", text, re.M)
    assert setting, text
    total, shown_replicas, pool, admin = map(int, setting.groups())
    assert total == 2 * shown_replicas * pool + admin == plan["mysql"]["max_connections"]
    assert shown_replicas == replicas and pool == plan["mysql"]["hikari_pool_size"]

    memory = re.search(r"^# Memory: buffer pool (\d+) MB \+ (\d+) connections x (\d+) MB \+ (\d+) MB server overhead\n"
                       r"# stay under the container's (\d+) MB limit\.$", text, re.M)
    assert memory, text
    pool_mb, connections, per_connection, overhead, limit = map(int, memory.groups())
    assert f"innodb_buffer_pool_size = {pool_mb}M" in text and connections == total
    assert pool_mb + connections * per_connection + overhead <= limit == plan["services"]["mysql"]["memory_limit_mb"]

    binlog = re.search(r"^binlog_expire_logs_seconds = (\d+) # keep (\d+) days", text, re.M)
    assert binlog and int(binlog.group(1)) == int(binlog.group(2)) * 86400
    assert int(binlog.group(2)) == sizing.BINLOG_DAYS


def test_redis_comment_states_the_settings_numbers():
    plan = sizing.plan(4, 8, 2)
    conf = next((ROOT / "template/deploy/docker").glob("*redis*/redis.conf.jinja"))
    text = jinja2.Template(conf.read_text()).render(sizing=plan, project_name="Petory")
    shown = re.search(r"^# Memory: (\d+) MB of a (\d+) MB limit", text, re.M)
    assert shown and f"maxmemory {shown.group(1)}mb" in text
    assert int(shown.group(2)) == plan["services"]["redis"]["memory_limit_mb"] > int(shown.group(1))


# -- Monitoring (issue 13) -------------------------------------------------------------------------

@pytest.mark.parametrize("cpus,memory_gb,replicas,mode", [
    (4, 8, 2, "bundled"), (8, 16, 3, "bundled"), (3, 6, 1, "bundled"), (4, 8, 2, "remote"), (16, 64, 8, "bundled"),
])
def test_monitoring_fits_inside_the_host_with_the_apps(cpus, memory_gb, replicas, mode):
    plan = sizing.plan(cpus, memory_gb, replicas, monitoring=mode)
    assert plan["total"]["memory_limit_mb"] + plan["host"]["os_headroom_mb"] <= memory_gb * 1024
    assert plan["total"]["cpus"] + plan["host"]["os_headroom_cpus"] <= cpus + 1e-9
    assert set(sizing.monitoring_services(mode)) <= set(plan["services"])
    assert plan["services"]["backend"]["memory_limit_mb"] >= sizing.BACKEND_MB[0]


def test_bundled_monitoring_takes_its_memory_from_the_growth_of_the_apps():
    off, bundled = sizing.plan(4, 8, 2), sizing.plan(4, 8, 2, monitoring="bundled")
    stack = sum(mb for mb, _ in sizing.monitoring_services("bundled").values())
    assert stack == 1648
    assert bundled["services"]["backend"]["memory_limit_mb"] == 1536 < off["services"]["backend"]["memory_limit_mb"]
    assert "prometheus" not in off["services"] and off["monitoring"]["disk_gb"] == 0


def test_monitoring_that_does_not_fit_is_refused_with_the_numbers():
    message = sizing.fit_error(2, 4, 1, monitoring="bundled")
    assert "monitoring=bundled and 1 backend replica(s) do not fit in 4096 MB" in message
    assert "monitoring 1648" in message and "need 5620 MB" in message and "use monitoring=off" in message
    assert "need 4404 MB" in sizing.fit_error(2, 4, 1, monitoring="remote")
    assert sizing.short_monitoring_error(2, 4, 1, True, True, "bundled") == "needs 5.5 of 4 GB; use off"
    assert sizing.short_monitoring_error(4, 8, 2, True, True, "bundled") == ""
    with pytest.raises(ValueError, match="monitoring=bundled"):
        sizing.plan(2, 4, 1, monitoring="bundled")
    with pytest.raises(ValueError, match="monitoring must be one of"):
        sizing.monitoring_services("agent")


def test_retention_comes_from_the_disk_budget_and_counts_in_the_disk_rule():
    medium = sizing.monitoring_plan(8, "bundled")
    assert (medium["prometheus_retention_size_gb"], medium["loki_disk_gb"]) == (5, 5)
    assert medium["prometheus_retention_days"] == 30 and medium["loki_retention_days"] == 14
    assert sizing.monitoring_plan(16, "bundled")["prometheus_retention_size_gb"] == 10
    assert sizing.monitoring_plan(8, "remote")["disk_gb"] == sizing.ALLOY_WAL_GB
    with_stack, without = sizing.disk_plan(100, monitoring="bundled"), sizing.disk_plan(100)
    assert with_stack["metrics_retention_gb"] == 10.6 and without["metrics_retention_gb"] == 0
    assert with_stack["max_database_gb"] < without["max_database_gb"]


def test_defaults_per_size_and_why():
    assert [sizing.default_monitoring(c, m, r) for c, m, r in sizing.PRESETS.values()] == ["off", "bundled", "bundled"]
    # remote is never a default: it needs addresses; on small even the agents do not fit.
    assert sizing.fit_error(2, 4, 1, monitoring="remote")
