"""scripts/apply.sh's planning without a Docker engine: the order of its actions, and the tables
scripts/lib/compose_snapshot.py builds from `docker compose config` and `docker inspect`. The
actions themselves run live (tests/live/test_deploy.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from script_helpers import bash, functions

MIB = 1 << 20


@pytest.fixture(scope="module")
def deploy(rendered):
    return rendered("servers-only") / "deploy"


def ordered(deploy, *actions: str) -> list[str]:
    code = functions(deploy / "scripts/apply.sh", "phase", "sorted_actions")
    listing = " ".join(f"'{action}'" for action in actions)
    return bash(deploy, f"{code}\nactions=({listing})\nsorted_actions").stdout.splitlines()


def test_a_larger_host_grows_mysql_limits_before_its_buffer_pool_and_connections(deploy):
    assert ordered(deploy, "recreate certbot x", "reload edge x", "redeploy backend 1 -> 3 replicas",
                   "set-global mysql max_connections 40 -> 80",
                   "set-global mysql innodb_buffer_pool_size 536870912 -> 1476395008",
                   "limits mysql 0.40 CPUs", "limits edge 0.10 CPUs") == [
        "limits mysql 0.40 CPUs",
        "set-global mysql max_connections 40 -> 80",  # before the apps' larger pools connect
        "set-global mysql innodb_buffer_pool_size 536870912 -> 1476395008",
        "redeploy backend 1 -> 3 replicas",
        "reload edge x", "limits edge 0.10 CPUs",
        "recreate certbot x"]


def test_a_restarted_data_service_is_ready_before_the_apps_and_the_edge_goes_after_them(deploy):
    assert ordered(deploy, "recreate edge x", "redeploy backend x", "recreate certbot x", "recreate mysql x") == [
        "recreate mysql x", "redeploy backend x", "recreate edge x", "recreate certbot x"]


def test_a_smaller_host_gives_memory_back_before_the_limit_and_connections_after_the_apps(deploy):
    assert ordered(deploy, "redeploy backend 2 -> 1 replicas", "set-global mysql max_connections 60 -> 40",
                   "limits mysql 0.65 CPUs", "set-global mysql innodb_buffer_pool_size 1476395008 -> 536870912") == [
        "set-global mysql innodb_buffer_pool_size 1476395008 -> 536870912",
        "limits mysql 0.65 CPUs",
        "redeploy backend 2 -> 1 replicas",  # both colours hold a pool while it switches
        "set-global mysql max_connections 60 -> 40"]


def container(service: str, cid: str, cpus: float, memory_mb: int, env: list[str] = ()) -> dict:
    return {"Id": cid * 64, "Config": {"Labels": {"com.docker.compose.service": service,
                                                 "com.docker.compose.config-hash": f"hash-{service}"},
                                      "Env": ["PATH=/bin", *env]},
            "HostConfig": {"NanoCpus": int(cpus * 1e9) - 24, "Memory": memory_mb * MIB,
                           "MemoryReservation": memory_mb // 2 * MIB, "MemorySwap": 2 * memory_mb * MIB}}


def test_the_snapshot_tables_and_the_creation_limits_override(deploy, tmp_path):
    work, created = tmp_path / "work", tmp_path / "created"
    work.mkdir()
    created.mkdir()
    (work / "config.json").write_text(json.dumps({"services": {
        "mysql": {"deploy": {"resources": {"limits": {"cpus": 0.4, "memory": "1073741824"},
                                           "reservations": {"memory": "536870912"}}}},
        "backend-blue": {"deploy": {"replicas": 2, "resources": {"limits": {"cpus": 1, "memory": "2147483648"}}}},
        "edge": {}}}))
    (work / "inspect.json").write_text(json.dumps([
        container("mysql", "a", 0.65, 2048, ["APP_DB_PASSWORD=old$pw", "MYSQL_ROOT_PASSWORD=root"]),
        container("backend-blue", "b", 1, 2048), container("backend-blue", "c", 1, 2048)]))
    (created / ("a" * 12)).write_text("65 2147483648 1073741824\n")  # docker update changed mysql's limits before
    (created / ("f" * 12)).write_text("10 1 1\n")  # a container that no longer exists
    subprocess.run(["python3", deploy / "scripts/lib/compose_snapshot.py", work, created, "mysql:APP_DB_PASSWORD"],
                   check=True)

    assert (work / "desired.tsv").read_text().splitlines() == [
        "mysql\t40\t1073741824\t536870912\t1", "backend-blue\t100\t2147483648\t0\t2", "edge\t0\t0\t0\t1"]
    assert (work / "running.tsv").read_text().splitlines()[0] == \
        f"mysql\t{'a' * 12}\t65\t{2048 * MIB}\t{1024 * MIB}\t{4096 * MIB}\thash-mysql"  # 0.65 CPUs despite float32
    override = json.loads((work / "running-limits.json").read_text())["services"]
    assert override["mysql"] == {
        "deploy": {"resources": {"limits": {"cpus": "0.65", "memory": "2147483648"},
                                 "reservations": {"cpus": "0.30", "memory": "1073741824"}}},
        "environment": {"APP_DB_PASSWORD": "old$$pw"}}  # only the init-only variable, escaped for Compose
    assert "environment" not in override["backend-blue"]
    assert sorted(path.name for path in created.iterdir()) == ["a" * 12]  # the stale record is gone


def test_the_snapshot_derives_the_cpu_reservation_as_sizing_does(deploy):
    """No container records `reservations.cpus` (Compose ignores it outside Swarm), yet it is part of
    the Compose hash: the snapshot must derive the one compose.yaml was written with."""
    import importlib.util

    import sizing

    spec = importlib.util.spec_from_file_location("compose_snapshot", deploy / "scripts/lib/compose_snapshot.py")
    snapshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snapshot)
    for preset in sizing.PRESETS.values():
        for service in sizing.plan(*preset)["services"].values():
            assert snapshot.cpu_reservation(service["cpus"]) == service["cpu_reservation"], service
