"""The generated staging and prod stacks, started for real and checked from the host."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hooks"))
import sizing  # noqa: E402

SERVICES = {"edge", "frontend", "backend", "mysql", "redis"}


def plan_of(project: Path) -> dict:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    cpus, memory_gb, replicas = sizing.PRESETS[answers["server_size"]]
    # The monitoring stack's budget comes out of the applications' (hooks/sizing.py).
    monitoring = answers.get("monitoring", "off") if "prod" in answers["environments"] else "off"
    return sizing.plan(cpus, memory_gb, answers.get("backend_replicas", replicas), answers["database"] == "bundled",
                       answers["redis"] == "bundled", monitoring)


def by_service(stack) -> dict[str, list[dict]]:
    """Containers grouped by service, colours folded: backend-blue -> backend."""
    grouped: dict[str, list[dict]] = {}
    for name, docs in stack.containers().items():
        grouped.setdefault(name.removesuffix("-blue").removesuffix("-green"), []).extend(docs)
    return grouped


def test_every_service_is_healthy(stack):
    services = by_service(stack)
    assert set(services) == SERVICES
    assert len(services["backend"]) == plan_of(stack.project_dir)["backend_replicas"] == 2
    for name, containers in services.items():
        for doc in containers:
            assert doc["State"]["Health"]["Status"] == "healthy", (name, doc["State"]["Health"])


def test_frontend_and_api_answer_through_nginx(stack, summary):
    page = stack.request("GET", "/")
    assert page.status == 200 and 'name="petory-version" content="1.0.0"' in page.text
    roundtrip = stack.request("GET", "/api/roundtrip")
    assert roundtrip.status == 200, roundtrip.text
    data = roundtrip.json()
    assert data["mysql"] is True and data["redis"] is True and data["version"] == "1.0.0"
    summary.append(f"live {stack.env}: database engine that ran: {data['db']}")


def test_spa_route_and_hashed_asset_caching(stack):
    route = stack.request("GET", "/pets/42/profile")
    assert route.status == 200 and "petory-version" in route.text
    assert route.headers["cache-control"] == "no-cache"
    asset = next(line.split('"')[1] for line in stack.request("GET", "/").text.split()
                 if line.startswith('src="/static/js/'))
    cached = stack.request("GET", asset, headers={"Accept-Encoding": "gzip"})
    assert cached.status == 200
    assert cached.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert cached.headers.get("content-encoding") == "gzip"


def test_http_redirects_to_https_and_unknown_hosts_are_dropped(stack):
    redirect = stack.request("GET", "/pets?x=1", scheme="http")
    assert redirect.status == 308
    assert redirect.headers["location"] == f"https://{stack.domain}/pets?x=1"
    challenge = stack.request("GET", "/.well-known/acme-challenge/missing", scheme="http")
    assert challenge.status == 404  # served from the webroot, not redirected
    try:
        stack.request("GET", "/", host="attacker.example", scheme="http")
    except (ConnectionError, OSError) as err:  # nginx 444: connection closed without a response
        assert "closed" in str(err).lower() or "reset" in str(err).lower() or isinstance(err, ConnectionError)
    else:
        raise AssertionError("a request for an unknown host was answered")


def test_security_headers_and_no_server_version(stack):
    for path in ("/", "/api/does-not-exist", "/.env"):
        resp = stack.request("GET", path)
        assert resp.headers.get("strict-transport-security", "").startswith("max-age=63072000"), path
        assert resp.headers.get("x-content-type-options") == "nosniff", path
        assert resp.headers.get("server") == "nginx", path
    assert stack.request("GET", "/.env").status == 404
    assert stack.request("GET", "/actuator/health").status == 404  # actuator is not public


def test_only_the_edge_publishes_ports_and_data_services_are_internal(stack):
    services = by_service(stack)
    for name, containers in services.items():
        for doc in containers:
            bindings = {port: b for port, b in (doc["HostConfig"]["PortBindings"] or {}).items() if b}
            if name == "edge":
                assert set(bindings) == {"8080/tcp", "8443/tcp"}
                assert {b[0]["HostIp"] for b in bindings.values()} == {"127.0.0.1"}
            else:
                assert bindings == {}, (name, bindings)
    data_network = f"{stack.name}_data"
    network = json.loads(subprocess.run(["docker", "network", "inspect", data_network], capture_output=True,
                                        text=True, check=True).stdout)[0]
    assert network["Internal"] is True
    members = {c["Name"].removeprefix(stack.name + "-").split("-")[0] for c in network["Containers"].values()}
    assert members == {"backend", "mysql", "redis"}
    for name in ("mysql", "redis"):
        networks = set(services[name][0]["NetworkSettings"]["Networks"])
        assert networks == {data_network}, (name, networks)


def test_rows_survive_down_and_up(stack):
    name = f"초코-{uuid.uuid4().hex[:6]}"
    created = stack.request("POST", "/api/pets", body=json.dumps({"name": name}).encode(),
                            headers={"Content-Type": "application/json"})
    assert created.status == 201, created.text
    stack.down()
    stack.up()
    pets = stack.request("GET", "/api/pets").json()
    assert name in [p["name"] for p in pets["pets"]]
    assert pets["notifications"] >= 1  # the Redis list survived too (AOF on the redis-data volume)


def test_staging_has_test_data_and_prod_has_none(stack):
    names = [p["name"] for p in stack.request("GET", "/api/pets").json()["pets"]]
    assert ("초코 (staging)" in names) == (stack.env == "staging")


def test_memory_and_cpu_limits_equal_the_sizing_plan(stack):
    plan = plan_of(stack.project_dir)
    for name, containers in by_service(stack).items():
        expected = plan["services"][name]
        for doc in containers:
            host = doc["HostConfig"]
            assert host["Memory"] == expected["memory_limit_mb"] * 1024 * 1024, name
            assert host["MemoryReservation"] == expected["memory_reservation_mb"] * 1024 * 1024, name
            # Compose parses `cpus` as a 32-bit float: 1.05 arrives as 1.049999936.
            assert abs(host["NanoCpus"] - expected["cpus"] * 1e9) < 1e3, name


def test_services_run_as_intended_non_root_users(stack):
    # mariadbd: the MySQL stand-in's server binary (the official image runs mysqld).
    expected = {"edge": (("nginx",), "101"), "frontend": (("nginx",), "101"), "backend": (("java",), "10001"),
                "mysql": (("mysqld", "mariadbd"), "999"), "redis": (("redis-server",), "999")}
    for name, containers in by_service(stack).items():
        commands, uid = expected[name]
        for doc in containers:
            top = subprocess.run(["docker", "top", doc["Id"], "-eo", "pid,uid,comm"], capture_output=True, text=True,
                                 check=True).stdout.splitlines()[1:]
            uids = {line.split()[1] for line in top if line.split()[2].startswith(commands)}
            assert uids == {uid}, (name, top)


def test_log_rotation_init_and_hardening(stack):
    for name, containers in by_service(stack).items():
        for doc in containers:
            host = doc["HostConfig"]
            assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}, name
            assert host["Init"] is True, name
            assert "no-new-privileges:true" in host["SecurityOpt"], name
            assert host["ReadonlyRootfs"] is (name != "mysql"), name


def test_edge_configuration_passes_nginx_t_inside_the_container(stack):
    result = stack.compose("exec", "-T", "edge", "nginx", "-t", check=False)
    assert result.returncode == 0, result.stderr.decode()
