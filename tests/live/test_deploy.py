"""scripts/deploy.sh, rollback.sh, backup-db.sh, restore-db.sh, apply.sh and rotate-secret.sh on a
live prod stack under load.

The tests run in file order on one stack (module fixture): first deploy v1, then v1 -> v2 for
the backend and the frontend under constant load, a broken v3, a rollback with the registry
down, two concurrent deploys, a backup/destroy/restore cycle, one fault at a time under strict load
(tests/live/faults.py: a MySQL restart at a new address, a Redis restart, an edge crash, a crashed
backend replica), then changes to the running
installation: edited env file, Compose and nginx settings together with a smaller host size
(`copier update`, then `make apply`), and the rotation of the JWT key and the Redis and MySQL
passwords, each under strict load (a new connection per request, no retries). Images come from a real
registry on 127.0.0.1, so deploys pull; load goes through the edge on 127.0.0.1 only.
"""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from faults import NOISE, RestartAtANewAddress, kill_container_process, under_strict_load
from load import Load
from registry import LocalRegistry
from sample_app import build_backend_jar, build_frontend
from stack import KeepAliveClient, Stack, render, template_snapshot

# All test traffic arrives from one address (docker-proxy on loopback), so the per-client API
# limit is raised for this stack, as an operator would behind a known load balancer.
# monitoring off: the resize test shrinks medium to small, where monitoring does not fit, and is
# about the application's limits only (the monitoring stack has its own test, test_monitoring.py).
ANSWERS = {"environments": ["prod"], "tls_mode_prod": "self-signed", "server_size": "medium", "api_rate_limit": 1000,
           "monitoring": "off"}
JAR = "backend/build/libs/petory-0.0.1-SNAPSHOT.jar"
MIN_RATE = 50.0


class Deployment:
    """The stack under test plus helpers to build, publish and deploy versions."""

    def __init__(self, stack: Stack, registry: LocalRegistry):
        self.stack = stack
        self.registry = registry
        self.client = KeepAliveClient(stack)

    def publish(self, version: str, healthy: bool = True) -> None:
        project = self.stack.project_dir
        build_backend_jar(project / JAR, version, healthy=healthy)
        build_frontend(project / "frontend/build", version)
        for app in ("backend", "frontend"):
            local = f"petory-deploy-test/{app}:{version}"
            subprocess.run(["docker", "build", "-q", "-f", f"deploy/docker/{app}/Dockerfile", "--build-arg",
                            f"APP_VERSION={version}", "-t", local, "."], cwd=project, check=True,
                           capture_output=True, env={"PATH": "/usr/bin:/bin:/usr/local/bin", "DOCKER_BUILDKIT": "0"})
            self.registry.push(local, f"{self.registry.host}/petory/{app}:{version}")
            subprocess.run(["docker", "image", "rm", local], capture_output=True)

    def deploy(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        proc = self.stack.run("scripts/deploy.sh", "prod", *args, check=False, timeout=timeout)
        if check and proc.returncode:
            raise AssertionError(f"deploy {args} failed:\n{proc.stderr.decode()[-4000:]}")
        return proc

    def popen(self, script: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen([f"scripts/{script}", "prod", *args], cwd=self.stack.deploy_dir,
                                env=self.stack.environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def api_version(self) -> tuple[int, str]:
        resp = self.client.request("GET", "/api/version")
        return resp.status, resp.json().get("version", "") if resp.status == 200 else ""

    def page_version(self) -> tuple[int, str]:
        resp = self.client.request("GET", "/")
        match = re.search(r'name="petory-version" content="([^"]+)"', resp.text)
        return resp.status, match.group(1) if match else ""

    def data_containers(self) -> dict[str, tuple[str, str]]:
        services = self.stack.containers()
        return {name: (docs[0]["Id"], docs[0]["State"]["StartedAt"]) for name, docs in services.items()
                if name in ("mysql", "redis")}

    def state(self, name: str) -> str:
        return (self.stack.deploy_dir / ".deploy" / "prod" / name).read_text()


@pytest.fixture(scope="module")
def deployment(base_images, tmp_path_factory, summary):
    workdir = tmp_path_factory.mktemp("deploy")
    # From a committed snapshot of the template, so the resize test can `copier update` it.
    project = render(workdir / "petory-deploy", {**ANSWERS, **base_images}, template_snapshot(workdir / "template"))
    registry = LocalRegistry(workdir)
    registry.start()
    stack = Stack(project, "prod", "petory.example.com", version=None,
                  backend_image=f"{registry.host}/petory/backend", frontend_image=f"{registry.host}/petory/frontend")
    deployment = Deployment(stack, registry)
    try:
        for version, healthy in (("1.0.1", True), ("1.0.2", True), ("1.0.3", False)):
            deployment.publish(version, healthy)
        yield deployment
    finally:
        try:
            stack.down(volumes=True)
            assert not stack.leftovers(), stack.leftovers()
        finally:
            registry.stop()
            images = subprocess.run(["docker", "image", "ls", "-q", f"{registry.host}/petory/*"],
                                    capture_output=True, text=True).stdout.split()
            if images:
                subprocess.run(["docker", "image", "rm", "-f", *set(images)], capture_output=True)


def test_first_deploy_starts_the_stack(deployment, summary):
    began = time.monotonic()
    deployment.deploy("1.0.1")
    summary.append(f"deploy: first deploy of v1 (whole stack) took {time.monotonic() - began:.1f} s")
    assert deployment.api_version() == (200, "1.0.1")
    assert deployment.page_version() == (200, "1.0.1")
    assert deployment.state("current").strip() == "1.0.1"


def deploy_under_load(deployment, send, app: str, version: str, summary, slow_version: str) -> Load:
    before = deployment.data_containers()
    slow: dict = {}

    def slow_request():
        resp = deployment.stack.request("GET", "/api/slow?ms=6000", timeout=30)
        slow.update(status=resp.status, version=resp.json().get("version"))

    with Load(send, rate=64, threads=16, max_seconds=300) as load:
        time.sleep(3)
        in_flight = threading.Thread(target=slow_request)
        in_flight.start()
        time.sleep(0.5)
        began = time.monotonic()
        deployment.deploy(version, "--only", app)
        finished = time.monotonic()
        time.sleep(3)
        in_flight.join(timeout=60)
    summary.append(f"deploy: {app} v1 -> {version} under load: {len(load.samples)} requests at "
                   f"{load.achieved_rate():.0f}/s, {len(load.failures)} failed, deploy took {finished - began:.1f} s")
    assert not load.failures, load.failures[:5]
    assert load.achieved_rate() >= MIN_RATE
    after = load.between(finished, float("inf"))
    assert after and {s.version for s in after} == {version}
    assert slow == {"status": 200, "version": slow_version}  # the API request in flight at the switch completed
    assert deployment.data_containers() == before  # MySQL and Redis were not touched
    return load


def test_backend_deploy_under_load_has_no_failed_request(deployment, summary):
    deploy_under_load(deployment, deployment.api_version, "backend", "1.0.2", summary, slow_version="1.0.1")
    assert deployment.api_version() == (200, "1.0.2")


def test_frontend_deploy_under_load_has_no_failed_request(deployment, summary):
    deploy_under_load(deployment, deployment.page_version, "frontend", "1.0.2", summary, slow_version="1.0.2")
    assert deployment.page_version() == (200, "1.0.2")
    history = deployment.state("history").splitlines()
    assert [line.split()[2] for line in history] == ["1.0.1", "1.0.2", "1.0.2"]
    assert deployment.state("current").strip() == "1.0.2"


def test_broken_version_is_rolled_back_automatically(deployment, summary):
    image = f"{deployment.registry.host}/petory/backend:1.0.3"
    subprocess.run(["docker", "pull", "-q", image], check=True, capture_output=True)
    healthcheck = json.loads(subprocess.run(["docker", "image", "inspect", "--format",
                                             "{{json .Config.Healthcheck}}", image], capture_output=True,
                                            text=True, check=True).stdout)
    timeout = (healthcheck["StartPeriod"] + healthcheck["Retries"] * (healthcheck["Interval"] + healthcheck["Timeout"])) / 1e9
    with Load(deployment.api_version, rate=64, threads=16, max_seconds=400) as load:
        began = time.monotonic()
        proc = deployment.deploy("1.0.3", "--only", "backend", check=False)
        took = time.monotonic() - began
    interval = healthcheck["Interval"] / 1e9
    summary.append(f"deploy: broken v3 refused after {took:.1f} s (health checks every {interval:.0f} s; the "
                   f"health timeout, {timeout:.0f} s, is not waited out); {len(load.samples)} requests, "
                   f"{len(load.failures)} failed")
    stderr = proc.stderr.decode()
    assert proc.returncode != 0
    assert "answers its health check with an HTTP error" in stderr and "Traffic stayed on backend-" in stderr
    assert "last log lines" in stderr  # the failing container's logs are shown
    # Refused two checks after its first unhealthy answer (the first check runs one interval after
    # the start), inside the start period; 10 s more for pulling and startup.
    assert took <= 3 * interval + 10 < timeout
    assert not load.failures and {s.version for s in load.samples} == {"1.0.2"}
    running = subprocess.run(["docker", "ps", "-a", "--filter", f"ancestor={image}", "-q"], capture_output=True,
                             text=True).stdout.split()
    assert running == []
    assert deployment.api_version() == (200, "1.0.2")


def test_rollback_works_without_a_registry(deployment, summary):
    deployment.registry.stop()
    began = time.monotonic()
    proc = deployment.stack.run("scripts/rollback.sh", "prod", "--yes", check=False, timeout=600)
    summary.append(f"rollback: v2 -> v1 with the registry down took {time.monotonic() - began:.1f} s")
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert deployment.api_version() == (200, "1.0.1") and deployment.page_version() == (200, "1.0.1")
    deployment.registry.start()


def test_previous_images_are_kept_for_rollback(deployment):
    for app in ("backend", "frontend"):
        tags = subprocess.run(["docker", "image", "ls", "--format", "{{.Tag}}",
                               f"{deployment.registry.host}/petory/{app}"], capture_output=True, text=True).stdout.split()
        assert {"1.0.1", "1.0.2"} <= set(tags), (app, tags)


def test_two_deploys_started_together_do_not_overlap(deployment):
    first = deployment.popen("deploy.sh", "1.0.2")
    second = deployment.popen("deploy.sh", "1.0.2")
    results = [(p.wait(timeout=600), p.stderr.read().decode()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    refused = next(err for code, err in results if code != 0)
    assert "another deploy of prod holds" in refused
    assert deployment.api_version() == (200, "1.0.2")


def test_backup_destroy_restore_gives_identical_rows(deployment, summary):
    stack = deployment.stack
    for name in ("초코", "보리", f"Mango-{uuid.uuid4().hex[:4]}"):
        assert stack.request("POST", "/api/pets", body=json.dumps({"name": name}).encode(),
                             headers={"Content-Type": "application/json"}).status == 201
    before = stack.request("GET", "/api/pets").json()["pets"]
    backup = stack.run("scripts/backup-db.sh", "prod").stdout.decode().strip().splitlines()[-1]
    assert Path(backup).exists() and Path(backup).stat().st_mode & 0o777 == 0o600
    stack.compose("exec", "-T", "mysql", "sh", "-c",
                  'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot -e "DROP TABLE pets" "$MYSQL_DATABASE"')
    assert stack.request("GET", "/api/pets").status != 200  # the data is really gone
    refused = stack.run("scripts/restore-db.sh", "prod", backup, check=False, input=b"")
    assert refused.returncode != 0 and b"--yes" in refused.stderr  # no terminal, no --yes: nothing done
    stack.run("scripts/restore-db.sh", "prod", backup, "--yes")
    assert stack.request("GET", "/api/pets").json()["pets"] == before
    summary.append(f"backup: {Path(backup).name}, {Path(backup).stat().st_size} bytes, restored {len(before)} rows")


# --- faults under strict load ----------------------------------------------------------------------
# Each fault runs under strict load (tests/live/faults.py: new TLS connection per request, no retry,
# readers on /api/pets and /, a writer); the data services' own downtime is measured by a probe.
# The reference figures are those of the first fault run (docs: 06-deployment-process, faults).
REDIS_RESTART_WINDOW = 1.2  # seconds of failed requests
EDGE_CRASH_WINDOW = 1.6


def test_mysql_restart_costs_only_mysqls_own_downtime_even_at_a_new_address(deployment, summary):
    """The application answers its own JSON 503 while MySQL is down, the edge never adds a 502 or
    504 (an answered 503 is no replica failure), and requests work again as soon as MySQL does,
    although it came back under a new address (the backend caches name lookups for 1 s only)."""
    stack = deployment.stack
    fault = RestartAtANewAddress(stack, "mysql")
    try:
        outage, writer = under_strict_load(stack, "MySQL restart at a new address", fault, probe="mysql")
    finally:
        fault.cleanup()
    summary.append(outage.report() + f" address {fault.old} -> {fault.new}")
    assert fault.new != fault.old
    for name in ("/api/pets", "POST /api/pets"):
        failures = outage.failures(name)
        assert all((s.status, s.version) == (503, "app") for s in failures), failures[:5]
        assert all(outage.down_from - NOISE <= s.at <= outage.down_until + 2 for s in failures), \
            (name, [round(s.at - outage.down_until, 2) for s in failures][-5:])
        assert outage.loads[name].longest_error_window() <= outage.downtime + 2
    assert not outage.failures("/")  # the frontend does not depend on MySQL
    assert writer.acknowledged and set(writer.acknowledged) <= writer.stored()  # 0 acknowledged writes lost
    assert stack.request("GET", "/api/pets").status == 200


def test_redis_restart_fails_requests_only_while_redis_is_down(deployment, summary):
    stack = deployment.stack
    outage, writer = under_strict_load(stack, "Redis restart", lambda: stack.compose("restart", "redis"), probe="redis")
    summary.append(outage.report() + f" (first fault run: {REDIS_RESTART_WINDOW} s)")
    for name in ("/api/pets", "POST /api/pets"):
        failures = outage.failures(name)
        assert all((s.status, s.version) == (503, "app") for s in failures), failures[:5]
        assert outage.loads[name].longest_error_window() <= max(REDIS_RESTART_WINDOW, outage.downtime) + NOISE
    assert not outage.failures("/")
    assert set(writer.acknowledged) <= writer.stored()


def test_an_edge_crash_costs_only_the_time_docker_needs_to_restart_it(deployment, summary):
    """SIGKILL of nginx's master: Docker's restart policy brings the edge back; a single edge cannot
    hide the seconds that takes (docs: what one edge survives)."""
    stack = deployment.stack
    edge = stack.containers()["edge"][0]
    outage, writer = under_strict_load(stack, "edge crash", lambda: kill_container_process(edge["Id"]), probe="edge",
                                       settle=4)
    summary.append(outage.report() + f" (first fault run: {EDGE_CRASH_WINDOW} s)")
    for name, load in outage.loads.items():
        # Refused or reset while nginx is down; the edge's own 502 only in its first moment back, before
        # `resolve` has found the apps' containers. Never the application's status: no request got that far.
        assert all(s.status == 0 or (s.status, s.version) == (502, "edge") for s in load.failures), (name, load.failures[:5])
        # Clients lose the time Docker needs to restart the edge, nothing more (that time itself is
        # the machine's: the report compares it with the first fault run's).
        assert load.longest_error_window() <= outage.downtime + NOISE + load.resolution(), name
        assert all(outage.down_from - NOISE <= s.at <= outage.down_until + NOISE for s in load.failures), name
    assert stack.containers()["edge"][0]["RestartCount"] == edge["RestartCount"] + 1
    assert set(writer.acknowledged) <= writer.stored()


def test_a_crashed_backend_replica_costs_no_request(deployment, summary):
    stack = deployment.stack
    colour = deployment.state("colours.env").split("BACKEND_ACTIVE=")[1].split()[0]
    replicas = stack.containers()[f"backend-{colour}"]
    assert len(replicas) >= 2
    outage, writer = under_strict_load(stack, "backend replica crash", lambda: kill_container_process(replicas[0]["Id"]),
                                       settle=8)
    summary.append(outage.report())
    assert not outage.failures("/api/pets") and not outage.failures("/")  # retried on the other replica
    # A POST that had reached the killed replica may have been applied: nginx never sends it again
    # (only a POST that could not be sent moves on), so the one in flight may fail, with the edge's 502.
    posts = outage.failures("POST /api/pets")
    assert len(posts) <= 1 and all((s.status, s.version) == (502, "edge") for s in posts), posts
    assert set(writer.acknowledged) <= writer.stored()


# --- changing the running installation -------------------------------------------------------------

def strict(stack: Stack, path: str) -> callable:
    """A request on a new connection each time, never retried: every refused connection counts."""
    def send() -> tuple[int, str]:
        resp = stack.request("GET", path, timeout=10)
        return resp.status, resp.json().get("version", "") if path == "/api/version" and resp.status == 200 else ""
    return send


class StrictLoad:
    """/api/version (edge and backend) and /api/roundtrip (a new MySQL and Redis connection per
    request, with the colour's credentials) under strict load while an operator command runs."""

    def __init__(self, deployment: Deployment):
        self.stack = deployment.stack
        self.api = Load(strict(self.stack, "/api/version"), rate=30, threads=6, max_seconds=400)
        self.roundtrip = Load(strict(self.stack, "/api/roundtrip"), rate=10, threads=2, max_seconds=400)
        self.wall_offset = time.time() - time.monotonic()  # Sample.at + offset = the scripts' clock

    def run(self, *cmd: str) -> tuple[subprocess.CompletedProcess, float]:
        with self.api, self.roundtrip:
            time.sleep(2)
            began = time.monotonic()
            proc = self.stack.run(*cmd, check=False, timeout=600)
            took = time.monotonic() - began
            time.sleep(2)
        return proc, took

    def report(self, what: str, took: float) -> str:
        return (f"{what}: took {took:.1f} s; {len(self.api.samples)} + {len(self.roundtrip.samples)} requests "
                f"(/api/version + /api/roundtrip, new connection each, no retry), "
                f"{len(self.api.failures)} + {len(self.roundtrip.failures)} failed")

    def logged_at(self, stderr: str, text: str) -> float:
        """The monotonic time of the script's log line containing `text` (its HH:MM:SS, local time)."""
        line = next(line for line in stderr.splitlines() if text in line)
        clock = time.strftime("%Y-%m-%d ") + line.split()[0]
        return time.mktime(time.strptime(clock, "%Y-%m-%d %H:%M:%S")) - self.wall_offset


def mysql_value(stack: Stack, expression: str) -> str:
    return stack.compose("exec", "-T", "mysql", "sh", "-c",
                         f'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot -N -B -e "SELECT {expression}"').stdout.decode().strip()


def redis_maxmemory(stack: Stack) -> int:
    info = stack.compose("exec", "-T", "redis", "sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli info memory').stdout
    return int(re.search(rb"^maxmemory:(\d+)", info, re.MULTILINE).group(1))


def test_config_changes_and_a_smaller_host_are_applied_with_one_command(deployment, summary):
    """An operator edits the env file, a Compose setting and nginx, and resizes medium -> small with
    `copier update`; `make apply` brings all of it to the running installation, 0 failed."""
    import sizing
    from update_helpers import copier, git, output

    stack, deploy = deployment.stack, deployment.stack.deploy_dir
    pets = stack.request("GET", "/api/pets").json()["pets"]
    data = deployment.data_containers()
    git(stack.project_dir, "init", "-q")
    git(stack.project_dir, "add", "-A")
    git(stack.project_dir, "commit", "-q", "-m", "Deployment at medium")
    env_file = deploy / "env/prod.env"
    env_file.write_text(re.sub(r"(?m)^PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL=.*$",
                               "PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL=2001-01-01T00:00:00Z", env_file.read_text()))
    override = deploy / "compose.prod.yaml"
    override.write_text(override.read_text().replace("LOGGING_LEVEL_ROOT: WARN", "LOGGING_LEVEL_ROOT: INFO"))
    with (deploy / "nginx/snippets/security-headers.conf").open("a") as snippet:
        snippet.write('add_header X-Petory-Change "applied" always; # operator edit\n')
    git(stack.project_dir, "commit", "-q", "-am", "Operator: INFO logs in prod, a response header")
    updated = copier(stack.project_dir, "update", "--trust", "--defaults", "--skip-tasks", "--data", "server_size=small")
    assert updated.returncode == 0, output(updated)

    plan = stack.run("scripts/apply.sh", "prod", "--dry-run").stderr.decode()
    assert "would redeploy backend" in plan and "would reload edge" in plan and "would limits mysql" in plan, plan
    assert deployment.data_containers() == data and "would redeploy frontend" not in plan  # printed only

    load = StrictLoad(deployment)
    proc, took = load.run("make", "apply", "ENV=prod")
    stderr = proc.stderr.decode()
    resize = re.search(r"innodb_buffer_pool_size = \d+ \((\d+) s\)", stderr)
    summary.append(load.report("apply: env + compose + nginx edits and medium -> small", took)
                   + f"; buffer pool shrink took {resize.group(1) if resize else '?'} s")
    assert proc.returncode == 0, stderr[-3000:]
    assert not load.api.failures and not load.roundtrip.failures, (load.api.failures[:3], load.roundtrip.failures[:3])

    small = sizing.plan(*sizing.PRESETS["small"])
    services = stack.containers()
    colour = deployment.state("colours.env").split("BACKEND_ACTIVE=")[1].split()[0]
    backends = services[f"backend-{colour}"]
    assert len(backends) == small["backend_replicas"]
    for name, docs in services.items():
        key = "cert_reload" if name == "cert-reload" else name.rsplit("-", 1)[0] if name.startswith(("backend-", "frontend-")) else name
        want = small["services"][key]
        for doc in docs:
            host = doc["HostConfig"]
            assert (round(host["NanoCpus"] / 1e7), host["Memory"], host["MemoryReservation"]) == (
                round(want["cpus"] * 100), want["memory_limit_mb"] << 20, want["memory_reservation_mb"] << 20), name
    environment = dict(item.split("=", 1) for item in backends[0]["Config"]["Env"])
    assert environment["LOGGING_LEVEL_ROOT"] == "INFO"
    assert environment["PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL"] == "2001-01-01T00:00:00Z"
    info = subprocess.run(["docker", "exec", backends[0]["Id"], "curl", "-fsS", "http://127.0.0.1:8081/actuator/info"],
                          capture_output=True, check=True).stdout  # /actuator is not served through the edge
    heap = json.loads(info)["jvm"]["max_heap_bytes"]
    share = small["jvm"]["max_ram_percentage"] / 100 * (small["services"]["backend"]["memory_limit_mb"] << 20)
    assert 0.85 * share <= heap <= share, (heap, share)  # the heap follows the new limit (one survivor space less)
    assert int(mysql_value(stack, "@@GLOBAL.innodb_buffer_pool_size")) == small["mysql"]["innodb_buffer_pool_size_mb"] << 20
    assert int(mysql_value(stack, "@@GLOBAL.max_connections")) == small["mysql"]["max_connections"]
    assert redis_maxmemory(stack) == small["redis"]["maxmemory_mb"] << 20
    deadline = time.monotonic() + 10  # the reload is graceful: new workers take over within moments
    while "x-petory-change" not in stack.request("GET", "/").headers and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.request("GET", "/").headers.get("x-petory-change") == "applied"
    assert deployment.data_containers() == data  # MySQL and Redis were changed in place, not restarted
    assert stack.request("GET", "/api/pets").json()["pets"] == pets
    again = stack.run("scripts/apply.sh", "prod", "--dry-run").stderr.decode()
    assert "nothing to do" in again and "needs a restart" not in again, again


def test_a_setting_only_a_restart_applies_waits_for_consent(deployment, summary):
    """Redis' maxmemory (CONFIG is disabled): `make apply` names the restart and exits 3 without
    doing it; RESTART=redis does it."""
    stack = deployment.stack
    conf = stack.deploy_dir / "docker/redis/redis.conf"
    wanted = redis_maxmemory(stack) // 2
    conf.write_text(re.sub(r"(?m)^maxmemory \d+mb", f"maxmemory {wanted >> 20}mb", conf.read_text()))
    data = deployment.data_containers()
    pending = stack.run("make", "apply", "ENV=prod", check=False)
    stderr = pending.stderr.decode()
    assert pending.returncode != 0 and "needs a restart: redis: maxmemory" in stderr, stderr[-2000:]
    assert "scripts/apply.sh prod --restart redis" in stderr and deployment.data_containers() == data
    load = StrictLoad(deployment)
    proc, took = load.run("make", "apply", "ENV=prod", "RESTART=redis")
    summary.append(load.report("apply: RESTART=redis for a new maxmemory", took)
                   + f"; the restart failed {len(load.roundtrip.failures)} /api/roundtrip requests over "
                   f"{load.roundtrip.longest_error_window():.1f} s")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert not load.api.failures and redis_maxmemory(stack) == wanted
    assert deployment.data_containers()["mysql"] == data["mysql"]  # only Redis was restarted


# The overlap runs from the rotation's start: longer than its blue-green restart takes on a busy machine.
JWT_OVERLAP = 90


def test_jwt_key_rotation_keeps_tokens_valid_for_the_overlap_only(deployment, summary):
    stack = deployment.stack

    def me(token: str):
        return stack.request("GET", "/api/auth/me", headers={"Authorization": f"Bearer {token}"})

    old = stack.request("POST", "/api/auth/token", body=b'{"user": "choco"}',
                        headers={"Content-Type": "application/json"}).json()["token"]
    assert me(old).json()["key"] == "current"
    load = StrictLoad(deployment)
    proc, took = load.run("scripts/rotate-secret.sh", "prod", "jwt", "--overlap", f"{JWT_OVERLAP}s")
    summary.append(load.report("rotate: jwt", took))
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert not load.api.failures and not load.roundtrip.failures
    assert me(old).json() == {"user": "choco", "key": "previous"}  # still signed in
    new = stack.request("POST", "/api/auth/token", body=b'{"user": "bori"}',
                        headers={"Content-Type": "application/json"}).json()["token"]
    assert me(new).json()["key"] == "current"
    until = re.search(r"(?m)^PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL=(.+)$",
                      (stack.deploy_dir / "env/prod.env").read_text()).group(1)
    ends = calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ"))
    assert 0 < ends - time.time() <= JWT_OVERLAP
    env_file = (stack.deploy_dir / "env/prod.env").read_bytes()
    early = stack.run("scripts/rotate-secret.sh", "prod", "jwt", check=False)  # would sign out `old` at once
    assert early.returncode == 1 and b"accepted until" in early.stderr and b"--force" in early.stderr
    assert (stack.deploy_dir / "env/prod.env").read_bytes() == env_file
    time.sleep(max(0.0, ends - time.time()) + 1.5)
    assert me(old).status == 401 and me(new).status == 200  # the window is over; new tokens unaffected


def test_redis_password_rotation_never_breaks_the_serving_colour(deployment, summary):
    stack = deployment.stack
    before = re.search(r"(?m)^REDIS_PASSWORD=(.+)$", (stack.deploy_dir / "env/prod.env").read_text()).group(1)
    load = StrictLoad(deployment)
    proc, took = load.run("scripts/rotate-secret.sh", "prod", "redis")
    stderr = proc.stderr.decode()
    assert proc.returncode == 0, stderr[-3000:]
    restart = load.logged_at(stderr, "recreating Redis") - 1  # the log has whole seconds
    during = [s for s in load.roundtrip.failures if s.at >= restart]
    summary.append(load.report("rotate: redis", took) + f"; the Redis restart at the end failed {len(during)} "
                   f"/api/roundtrip requests over {load.roundtrip.longest_error_window():.1f} s")
    assert not load.api.failures
    assert all(s.at >= restart for s in load.roundtrip.failures), load.roundtrip.failures[:3]  # none before it
    after = re.search(r"(?m)^REDIS_PASSWORD=(.+)$", (stack.deploy_dir / "env/prod.env").read_text()).group(1)
    assert after != before
    refused = stack.compose("exec", "-T", "-e", f"REDISCLI_AUTH={before}", "redis", "redis-cli", "ping", check=False)
    assert b"PONG" not in refused.stdout  # the old password no longer works
    assert stack.request("GET", "/api/roundtrip").status == 200
    assert not list((stack.deploy_dir / ".deploy/prod").glob("env.before-rotation"))


def test_mysql_password_rotation_needs_dual_passwords(deployment, summary):
    stack = deployment.stack
    env_before = (stack.deploy_dir / "env/prod.env").read_bytes()
    version = mysql_value(stack, "VERSION()")
    if "MariaDB" not in version:  # a real MySQL 8 (PETORY_BASE_IMAGES=official)
        load = StrictLoad(deployment)
        proc, took = load.run("scripts/rotate-secret.sh", "prod", "mysql")
        summary.append(load.report("rotate: mysql", took))
        assert proc.returncode == 0 and not load.api.failures and not load.roundtrip.failures, proc.stderr.decode()
        assert (stack.deploy_dir / "env/prod.env").read_bytes() != env_before
        return
    # The MariaDB stand-in has no RETAIN CURRENT PASSWORD: the rotation refuses before changing anything.
    proc = stack.run("scripts/rotate-secret.sh", "prod", "mysql", check=False)
    stderr = proc.stderr.decode()
    summary.append(f"rotate: mysql on the stand-in ({version}): refused, nothing changed")
    assert proc.returncode == 1 and "has no dual passwords" in stderr and "nothing was changed" in stderr
    assert len([line for line in stderr.splitlines() if "ERROR" in line]) == 1 and "Traceback" not in stderr
    assert (stack.deploy_dir / "env/prod.env").read_bytes() == env_before
    assert stack.request("GET", "/api/roundtrip").status == 200
