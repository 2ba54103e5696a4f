"""scripts/deploy.sh, rollback.sh, backup-db.sh and restore-db.sh on a live prod stack under load.

The tests run in file order on one stack (module fixture): first deploy v1, then v1 -> v2 for
the backend and the frontend under constant load, a broken v3, a rollback with the registry
down, two concurrent deploys, and a backup/destroy/restore cycle. Images come from a real
registry on 127.0.0.1, so deploys pull; load goes through the edge on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from load import Load
from registry import LocalRegistry
from sample_app import build_backend_jar, build_frontend
from stack import KeepAliveClient, Stack, render

# All test traffic arrives from one address (docker-proxy on loopback), so the per-client API
# limit is raised for this stack, as an operator would behind a known load balancer.
ANSWERS = {"environments": ["prod"], "tls_mode_prod": "self-signed", "server_size": "medium", "api_rate_limit": 1000}
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
    project = render(workdir / "petory-deploy", {**ANSWERS, **base_images})
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
    summary.append(f"deploy: broken v3 refused after {took:.1f} s (health timeout {timeout:.0f} s); "
                   f"{len(load.samples)} requests, {len(load.failures)} failed")
    stderr = proc.stderr.decode()
    assert proc.returncode != 0
    assert "health check did not pass" in stderr and "Traffic stayed on backend-" in stderr
    assert "last log lines" in stderr  # the failing container's logs are shown
    assert took <= timeout + 10 + 10  # the script's own margin is 10 s; 10 s more for pulling and startup
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
