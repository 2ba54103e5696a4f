"""Live: the bundled monitoring stack (compose.monitoring.yaml) beside a running prod stack.

Prometheus, Alertmanager, node-exporter, mysqld-exporter, redis-exporter, mtail (edge-metrics) and
the restart collector run as generated, on Debian-built stand-ins (tests/live/standins.py) set by
a test-only Compose override. That override also leaves out Grafana, Loki and Alloy: no Debian
package exists for them, so they run only in the generated repository's CI (deploy-ci.yml, job
monitoring). A test-only prometheus.yml shortens the scrape and evaluation intervals and nothing
else; the rule files are mounted as shipped. Alertmanager uses the shipped alertmanager.yml with
its Slack-compatible webhook receiver, whose URL points at tests/live/webhook_receiver.py running on
127.0.0.1 inside Alertmanager's own network namespace.

Proves: every scrape target is up; every metric the rules read is in a live scrape; the loaded
rules are the shipped files; stopping the backend delivers BackendDown through Alertmanager
(latency printed against for + scrape + evaluation + group_wait); a 27-hour-old backup
timestamp fires BackupTooOld; no monitoring container exceeds or hits its memory limit; from a
namespace outside the host (tests/live/outside.py), a scan of all 65,535 TCP ports of the address
the edge publishes on finds the edge's two ports and no container's other port, and a neighbour
that routes straight to the containers' addresses reaches none of their listening ports.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import LIVE_ANSWERS
from outside import Outside
from ssh_server import LABEL, SERVER_IMAGE, Server, server_base_image, sh
from sample_app import build_backend_jar, build_frontend
from stack import ROOT, Stack, free_port, render
from standins import MONITORING_STANDINS, ensure_tool_images

sys.path.insert(0, str(ROOT / "hooks"))
import monitoring as alerting  # noqa: E402  (hooks/monitoring.py: the alerts and their metrics' sources)

INTERVAL_SECONDS = 5  # the test's scrape and evaluation interval (shipped: deployment.SCRAPE_INTERVAL)
WITHOUT_STAND_IN = ("grafana", "loki", "alloy")
DOMAIN = "petory.example.com"
BACKUP_METRIC = "petory_backup_last_success_timestamp_seconds"


@dataclass
class MonitoredStack(Stack):
    """A prod stack whose scripts write their textfile metrics where node-exporter of the test reads."""

    textfile_dir: str = ""

    @property
    def environ(self) -> dict[str, str]:
        return {**super().environ, "METRICS_TEXTFILE_DIR": self.textfile_dir}


class Monitoring:
    """The monitoring project of a stack, driven through the generated scripts/monitoring.sh."""

    def __init__(self, stack: MonitoredStack, override: Path):
        self.stack = stack
        self.override = override
        self.project = f"{stack.name}-monitoring"

    def compose(self, *args: str, **kwargs):
        return self.stack.run("scripts/monitoring.sh", "prod", "-f", str(self.override), *args, **kwargs)

    def container(self, service: str) -> dict:
        ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}",
                              "--filter", f"label=com.docker.compose.service={service}"],
                             capture_output=True, text=True, check=True).stdout.split()
        assert len(ids) == 1, f"{service}: {ids}"
        return json.loads(subprocess.run(["docker", "inspect", ids[0]], capture_output=True, text=True,
                                         check=True).stdout)[0]

    def api(self, path: str) -> dict:
        """Prometheus's HTTP API, from inside its container (it publishes no port)."""
        out = subprocess.run(["docker", "exec", self.container("prometheus")["Id"], "wget", "-q", "-O", "-",
                              f"http://127.0.0.1:9090{path}"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        body = json.loads(out.stdout)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        from urllib.parse import quote

        return self.api(f"/api/v1/query?query={quote(promql)}")["result"]


class Receiver:
    """tests/live/webhook_receiver.py in a network namespace, its notifications collected."""

    def __init__(self, pid: int, port: int):
        self.proc = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable,
                                      str(Path(__file__).with_name("webhook_receiver.py")), str(port)],
                                     stdout=subprocess.PIPE, text=True)
        self.notifications: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.notifications.append(json.loads(line))

    def first(self, alertname: str, status: str = "firing") -> dict | None:
        for note in self.notifications:
            text = json.dumps(note["body"])
            if alertname in text and f"[{status.upper()}" in text:
                return note
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _test_only_files(project: Path, work: Path) -> Path:
    """The override (stand-ins, no Grafana/Loki/Alloy, the test's prometheus.yml) and that prometheus.yml."""
    config = yaml.safe_load((project / "deploy/monitoring/prometheus/prometheus.yml").read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = f"{INTERVAL_SECONDS}s"
    prometheus_dir = work / "prometheus"
    prometheus_dir.mkdir()
    (prometheus_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    prometheus_dir.chmod(0o755)
    services = {service: {"image": tag} for service, (_, tag) in MONITORING_STANDINS.items()}
    services["prometheus"]["volumes"] = [f"{prometheus_dir}:/etc/prometheus/config:ro"]
    # rslave needs / to be a shared mount, as systemd makes it on a server; this machine's is private.
    services["node-exporter"]["volumes"] = ["/:/host:ro"]
    for service in WITHOUT_STAND_IN:
        services[service] = {"profiles": ["without-stand-in"]}
    override = work / "monitoring.test-override.yaml"
    override.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return override


@pytest.fixture(scope="module")
def monitored(base_images, tmp_path_factory, summary):
    ensure_tool_images([role for role, _ in MONITORING_STANDINS.values()])
    work = tmp_path_factory.mktemp("monitoring")
    project = render(work / "petory-deploy", {**LIVE_ANSWERS, **base_images, "alert_webhook": True})
    build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
    build_frontend(project / "frontend/build", "1.0.0")
    textfiles = work / "metrics"
    textfiles.mkdir(mode=0o755)
    textfiles.chmod(0o755)  # node-exporter reads it as nobody
    outside = Outside().__enter__()  # the edge publishes on the host's end of its link, as on a public address
    stack = MonitoredStack(project, "prod", DOMAIN, textfile_dir=str(textfiles), bind_address=outside.host_address)
    receiver_port = free_port()
    stack.run("python3", "scripts/env_files.py", "--env", "prod", "--set",
              f"ALERT_WEBHOOK_URL=http://127.0.0.1:{receiver_port}/alerts")
    mon = Monitoring(stack, _test_only_files(project, work))
    receiver = None
    try:
        stack.up()
        began = time.monotonic()
        mon.compose("up", "-d", "--wait", "--wait-timeout", "180", timeout=400)
        summary.append(f"monitoring: Prometheus, Alertmanager and 5 exporters (stand-ins) up in "
                       f"{time.monotonic() - began:.1f} s beside prod; Grafana, Loki, Alloy left out (no stand-in)")
        receiver = Receiver(mon.container("alertmanager")["State"]["Pid"], receiver_port)
        yield stack, mon, receiver, textfiles, outside
    finally:
        if receiver:
            receiver.stop()
        mon.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
        stack.down(volumes=True)
        outside.__exit__()
        left = {**stack.leftovers(), **{f"monitoring {k}": v for k, v in
                                        Stack(project, "prod", DOMAIN, name=mon.project).leftovers().items()}}
        assert not left, f"teardown left {left} behind"


def wait_for(what: str, check, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def test_every_target_is_up_and_every_rule_metric_is_scraped(monitored, summary):
    stack, mon, _, textfiles, _ = monitored
    for _ in range(5):  # edge and backend traffic: the request counters and histograms get series
        assert stack.request("GET", "/api/version").status == 200

    def all_up():
        targets = mon.api("/api/v1/targets")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_for("every target up", all_up, timeout=60)
    jobs = sorted({t["labels"]["job"] for t in targets})
    assert jobs == sorted(["alertmanager", "backend", "edge", "mysql", "node", "prometheus", "redis"]), jobs
    backends = [t for t in targets if t["labels"]["job"] == "backend"]
    assert len(backends) == 2 and all(t["scrapeUrl"].endswith(":8081/actuator/prometheus") for t in backends)
    summary.append("monitoring: targets up: " + ", ".join(
        f"{job} x{sum(t['labels']['job'] == job for t in targets)}" for job in jobs))

    # Each metric the rules read exists in this live scrape (the backend's from the sample app,
    # whose names the committed Spring Boot exposition vouches for), but the backup's: it exists
    # after the first backup; the next test writes it and checks that it is scraped.
    wanted = [name for name in alerting.SOURCES if name != BACKUP_METRIC]

    def missing():
        absent = [name for name in wanted if not mon.query(f'count({{__name__="{name}"}})')]
        return absent or None

    def logs(service: str) -> str:
        return subprocess.run(["docker", "logs", "--tail", "20", mon.container(service)["Id"]],
                              capture_output=True, text=True).stderr[-1000:]

    deadline = time.monotonic() + 60
    while (absent := missing()) and time.monotonic() < deadline:
        time.sleep(INTERVAL_SECONDS)
    assert not absent, (f"metrics the rules read but no target exports: {absent}; textfiles: "
                        + "; ".join(f"{p.name}: {p.read_text()[-600:]!r}" for p in textfiles.glob("*.prom"))
                        + f"; textfile errors: {mon.query('node_textfile_scrape_error')}"
                        + f"; restart collector's log: {logs('container-metrics')!r}")
    # The exporters reach their servers (mysqld-exporter through its 0.15 interface and my.cnf).
    for up in ("mysql_up", "redis_up"):
        assert [r["value"][1] for r in mon.query(up)] == ["1"], up


def test_the_shipped_rule_files_are_loaded_unchanged(monitored):
    stack, mon, *_ = monitored
    shipped = sorted((stack.deploy_dir / "monitoring/rules").glob("*.yml"))
    prometheus = mon.container("prometheus")["Id"]
    for path in shipped:
        loaded = subprocess.run(["docker", "exec", prometheus, "cat", f"/etc/prometheus/rules/{path.name}"],
                                capture_output=True, check=True).stdout
        assert hashlib.sha256(loaded).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest(), path.name
    expected = {rule["alert"] for path in shipped for group in yaml.safe_load(path.read_text())["groups"]
                for rule in group["rules"]}
    loaded = {rule["name"] for group in mon.api("/api/v1/rules")["groups"] for rule in group["rules"]}
    assert loaded == expected and len(expected) == len(alerting.alerts({**LIVE_ANSWERS}))


def test_backend_down_and_an_old_backup_reach_the_webhook_through_alertmanager(monitored, summary):
    stack, mon, receiver, textfiles, _ = monitored
    # A verified backup 27 hours ago, as scripts/backup-db.sh writes it (the rule allows 26 h).
    stale = time.time() - 27 * 3600
    prom = textfiles / "backup-prod.prom"
    prom.write_text("# HELP petory_backup_last_success_timestamp_seconds End of the last verified backup\n"
                    "# TYPE petory_backup_last_success_timestamp_seconds gauge\n"
                    f'petory_backup_last_success_timestamp_seconds{{env="prod"}} {stale:.0f}\n')
    prom.chmod(0o644)
    backup_written = stopped = time.time()  # the receiver stamps with the same clock
    stack.compose("stop", "backend-blue")
    stop_took = time.time() - stopped

    routing = alerting.ROUTING
    group_wait = int(routing["group_wait"].rstrip("s"))
    for_seconds = 60  # BackendDown's `for: 1m` (hooks/monitoring.py)
    budget = for_seconds + INTERVAL_SECONDS + INTERVAL_SECONDS + group_wait
    down = wait_for("BackendDown delivered", lambda: receiver.first("BackendDown"), timeout=budget + 60)
    latency = down["received"] - stopped
    backup = wait_for("BackupTooOld delivered", lambda: receiver.first("BackupTooOld"), timeout=60)
    assert mon.query(f'{BACKUP_METRIC}{{job="node", env="prod"}}'), "the backup's timestamp is not scraped"
    backup_latency = backup["received"] - backup_written
    summary.append(
        f"monitoring: BackendDown reached the webhook {latency:.0f} s after `stop backend-blue` "
        f"(stop itself {stop_took:.0f} s); budget for {for_seconds} + scrape {INTERVAL_SECONDS} + evaluation "
        f"{INTERVAL_SECONDS} + Alertmanager group_wait {group_wait} = {budget} s")
    summary.append(f"monitoring: BackupTooOld (backup 27 h old, no `for`) reached the webhook {backup_latency:.0f} s "
                   f"after the textfile was written (scrape + evaluation + group_wait = "
                   f"{2 * INTERVAL_SECONDS + group_wait} s)")
    assert latency <= budget + 15, f"BackendDown took {latency:.0f} s, budget {budget} s"
    text = json.dumps(down["body"])
    assert alerting.RUNBOOK_DOC in text and "critical" in text


# Where the engine keeps a container's memory accounting: cgroup v1 (this machine), v2 with the
# cgroupfs driver, v2 with systemd's; the key is the anonymous memory (page cache can be reclaimed,
# so it never makes a container hit its limit).
CGROUP_MEMORY_STATS = (("/sys/fs/cgroup/memory/docker/{id}/memory.stat", "total_rss"),
                       ("/sys/fs/cgroup/docker/{id}/memory.stat", "anon"),
                       ("/sys/fs/cgroup/system.slice/docker-{id}.scope/memory.stat", "anon"))


def _anonymous_memory(container_id: str) -> int:
    """The container's anonymous memory in bytes, from its cgroup (`docker stats` reads 0 B here)."""
    for pattern, key in CGROUP_MEMORY_STATS:
        path = Path(pattern.format(id=container_id))
        if path.is_file():
            stats = dict(line.split() for line in path.read_text().splitlines())
            return int(stats[key])
    raise AssertionError(f"no memory accounting for container {container_id[:12]} in "
                         + ", ".join(pattern for pattern, _ in CGROUP_MEMORY_STATS))


def test_monitoring_stays_under_its_memory_limits(monitored, summary):
    _, mon, *_ = monitored
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={mon.project}"],
                         capture_output=True, text=True, check=True).stdout.split()
    rows = []
    for doc in json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                         check=True).stdout):
        service = doc["Config"]["Labels"]["com.docker.compose.service"]
        limit = doc["HostConfig"]["Memory"]
        usage = _anonymous_memory(doc["Id"])
        rows.append((service, usage / 2**20, limit / 2**20))
        assert limit > 0, f"{service} has no memory limit"
        # A running process has some anonymous memory: 0 means the reading is wrong, not the service.
        assert 0 < usage < limit, f"{service} uses {usage / 2**20:.1f} of {limit / 2**20:.0f} MiB"
        assert not doc["State"]["OOMKilled"] and doc["RestartCount"] == 0, f"{service} was restarted or OOM-killed"
    summary.append("monitoring: memory (MiB used / limit): " + ", ".join(
        f"{service} {use:.1f}/{limit:.0f}" for service, use, limit in sorted(rows)))


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports a container listens on, from its network namespace's /proc/net/tcp (any image)."""
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_no_monitoring_or_internal_port_is_reachable_from_outside(monitored, summary):
    stack, mon, _, _, outside = monitored
    # Every container of the engine; one that goes away between `ps` and `inspect` (another test's,
    # run beside this one) is left out of inspect's answer.
    containers = json.loads(subprocess.run(
        ["docker", "inspect", *subprocess.run(["docker", "ps", "-q"], capture_output=True, text=True,
                                              check=True).stdout.split()],
        capture_output=True, text=True).stdout or "[]")
    ours = [c for c in containers if c["Config"]["Labels"].get("com.docker.compose.project") in (stack.name, mon.project)]
    monitoring = [c for c in ours if c["Config"]["Labels"]["com.docker.compose.project"] == mon.project]
    assert len(monitoring) == len(MONITORING_STANDINS), [c["Name"] for c in monitoring]
    for container in monitoring:
        assert not any(container["HostConfig"]["PortBindings"].values()), f"{container['Name']} publishes a port"

    # 1. The host's public address: every port. Open are the edge's two and whatever the machine
    #    itself serves outside Docker (this CI machine's own services); no other container's.
    began = time.monotonic()
    open_ports = outside.scan(outside.host_address)
    scan_seconds = time.monotonic() - began
    published = {int(binding["HostPort"]): c["Config"]["Labels"]["com.docker.compose.service"]
                 for c in containers for bindings in c["HostConfig"]["PortBindings"].values() for binding in bindings or ()}
    edge = {stack.http_port, stack.https_port}
    assert edge <= open_ports, f"the scan missed the edge's ports {sorted(edge - open_ports)}: it cannot be trusted"
    by_containers = {port: published[port] for port in open_ports if port in published}
    assert by_containers == {port: "edge" for port in edge}, by_containers

    # 2. A neighbour that routes the containers' subnets through the host (a LAN peer, a cloud
    #    VPC route): the listening ports of every container of both projects, at their own addresses.
    targets = {}
    for container in ours:
        for network in container["NetworkSettings"]["Networks"].values():
            if not network["IPAddress"]:  # network_mode: none (the restart collector)
                continue
            subnet = f"{network['IPAddress']}/{network['IPPrefixLen']}"
            targets.setdefault(str(ipaddress.ip_interface(subnet).network), {})[network["IPAddress"]] = (
                container["Config"]["Labels"]["com.docker.compose.service"], _listening_ports(container["State"]["Pid"]))
    reached, probed = [], 0
    for subnet, addresses in targets.items():
        outside.route(subnet)
        for address, (service, ports) in addresses.items():
            probed += len(ports)
            for port in sorted(outside.scan(address, ",".join(map(str, sorted(ports))))):
                reached.append(f"{service} {address}:{port}")
    # Docker accepts forwarded traffic only to a published port's container side: the edge's.
    edge_side = {f"edge {network['IPAddress']}:{port.split('/')[0]}" for c in ours
                 if c["Config"]["Labels"]["com.docker.compose.service"] == "edge"
                 for network in c["NetworkSettings"]["Networks"].values() for port in c["HostConfig"]["PortBindings"]}
    assert edge_side and set(reached) <= edge_side, reached
    summary.append(f"monitoring: outside scan of {outside.host_address}, 65,535 TCP ports in {scan_seconds:.1f} s: "
                   f"open {sorted(open_ports)} (edge: {sorted(edge)}; the rest is this machine's own, no container's); "
                   f"routed to {sum(map(len, targets.values()))} container addresses: {probed} listening ports probed, "
                   f"reached only {sorted(reached)}")


def test_make_grafana_tunnels_over_ssh_to_grafanas_container_and_says_when_it_is_missing(monitored, tmp_path, summary):
    """`make grafana ENV=prod` as an operator runs it, against sshd in the host's network namespace
    (as on the server). Grafana has no stand-in: a small HTTP server answers /api/health in its place,
    under the container name and on the internal network Compose gives Grafana."""
    stack, mon, *_ = monitored
    answers = yaml.safe_load((stack.project_dir / ".copier-answers.yml").read_text())
    target = f"{answers['prod_ssh_user']}@{answers['prod_ssh_host']}"
    container = f"{answers['project_slug']}-prod-monitoring-grafana-1"  # the model's compose_project
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    key = home / ".ssh/id_ed25519"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    server = Server(None, key.with_suffix(".pub").read_text().strip(), server_base_image(), host_network=True,
                    sshd_options=("AllowTcpForwarding=local",))
    compose = yaml.safe_load((stack.deploy_dir / "compose.monitoring.yaml").read_text())
    grafana_port = int(compose["services"]["grafana"]["environment"]["GF_SERVER_HTTP_PORT"])
    local_port = free_port()
    config = home / ".ssh/config"
    # ssh reads ~/.ssh of the passwd entry, not $HOME: the test's configuration goes through SSH=.
    make = ["make", "grafana", "ENV=prod", f"GRAFANA_PORT={local_port}", f"SSH=ssh -F {config}"]
    tunnel = None
    try:
        server.start()
        (home / ".ssh/known_hosts").write_text(server.known_hosts() + "\n")
        # The operator's ssh configuration names the server; here it points at the test's sshd.
        config.write_text(
            f"Host {answers['prod_ssh_host']}\n  HostName 127.0.0.1\n  Port {server.port}\n  IdentityFile {key}\n"
            f"  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {home / '.ssh/known_hosts'}\n")
        environ = stack.environ
        missing = subprocess.run(make, cwd=stack.deploy_dir, env=environ, capture_output=True, text=True, timeout=60)
        errors = [line for line in missing.stderr.splitlines() if not line.startswith(("make:", "Error: No such"))]
        assert missing.returncode != 0 and errors == [
            f"Grafana ({container}) is not running on {target}; start it there: make monitoring ENV=prod"], missing.stderr

        site = tmp_path / "grafana"
        (site / "api").mkdir(parents=True)
        (site / "api/health").write_text('{"database": "ok"}')
        site.chmod(0o755)
        sh("docker", "run", "-d", "--name", container, "--network", f"{mon.project}_monitoring", "--label", LABEL,
           "-v", f"{site}:/srv:ro", "-w", "/srv", "--entrypoint", "python3", SERVER_IMAGE,
           "-m", "http.server", str(grafana_port))
        began = time.monotonic()
        tunnel = subprocess.Popen(make, cwd=stack.deploy_dir, env=environ, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)

        def health():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local_port}/api/health", timeout=2) as response:
                    return response.read().decode()
            except OSError:
                assert tunnel.poll() is None, f"make grafana exited: {tunnel.communicate()}"
                return None

        body = wait_for("Grafana through the tunnel", health, timeout=30, interval=0.5)
        assert json.loads(body) == {"database": "ok"}
        summary.append(f"monitoring: make grafana: /api/health through the SSH tunnel to the internal "
                       f"monitoring network in {time.monotonic() - began:.1f} s; without Grafana one line, exit "
                       f"{missing.returncode}")
    finally:
        if tunnel:
            close(tunnel)
        sh("docker", "rm", "-f", container, check=False)
        server.stop()


def close(tunnel: subprocess.Popen) -> None:
    """Ctrl-C, as the operator ends `make grafana`: to make and its ssh, one process group."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(tunnel.pid, sig)
        except ProcessLookupError:
            break
        try:
            tunnel.wait(timeout=10)
            break
        except subprocess.TimeoutExpired:
            continue
    tunnel.wait()
