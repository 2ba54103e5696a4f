"""Live: `make provision ENV=prod` (deploy/provision/, Ansible) applied to a fresh server.

The server is tests/live/fresh_server.py's container: Debian 13 with systemd and sshd, root's login
open to the operator's key, no Docker. The operator's side is a rendered repository committed to a
git repository that the server clones from (a bare repository mounted into the server), its
env/prod.env, an operator key and a CI key; an ssh configuration names the server as the answers
do. The playbook installs Debian's docker.io and docker-compose (answer docker_source=debian:
Docker's apt repository cannot be reached from here; docker-ce runs only on real servers).

Proves: after the first run the server has Docker with Compose v2 active, the deploy user with
only CI's key, sshd without passwords and root login (root is refused, the operator's account gets
in), unattended upgrades, the model's daemon.json, ip_forward=1, the env file 0600 owned by the
deploy user and unchanged, and the backup timers; a second run and `CHECK=1` report changed=0; an
unreachable server and missing local files stop with one line and leave the server as it was.
The firewall: scans of all TCP ports from this machine (outside the server) find exactly SSH and
the edge's 80/443, with ports 3306 and 0.0.0.0:6379 published on the server's engine, after a
Docker restart and after a firewall reload; rules that cut SSH revert by themselves within the
switch's time plus 10 s; `make host-audit` passes, then names an added rule; SSH connections
above the rate limit are dropped. The Docker 28/29 chain layout runs only in the generated CI.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LIVE_ANSWERS
from fresh_server import FreshServer
from ssh_server import sh
from stack import ROOT, render

sys.path.insert(0, str(ROOT / "hooks"))
import provisioning  # noqa: E402  (hooks/provisioning.py: what every server gets)

pytestmark = pytest.mark.live

ANSWERS = {**LIVE_ANSWERS, "environments": ["prod"], "docker_source": "debian", "monitoring": "off"}
DOMAIN = "petory.example.com"
ORIGIN_ON_SERVER = "/srv/git/petory-deploy.git"
# To compare around a refused run: the netfilter rules without the dates and counters that traffic
# changes, and every file of /etc.
SNAPSHOT = ("{ iptables-save; ip6tables-save; } | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//';"
            " find /etc -type f -exec sha256sum {} + | sort")
RECAP = re.compile(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Operator:
    """The operator's machine: the rendered checkout, keys, and an ssh configuration for the server."""

    def __init__(self, work: Path):
        self.work = work
        self.project = render(work / "petory-deploy", ANSWERS)
        self.deploy = self.project / "deploy"
        self.home = work / "home"
        (self.home / ".ssh").mkdir(parents=True, mode=0o700)
        self.admin_key = self.home / ".ssh/id_ed25519"
        self.ci_key = self.home / ".ssh/petory-prod-ci"
        for key in (self.admin_key, self.ci_key):
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", key)
        self.origin = work / "origin.git"
        git = ["git", "-c", "user.name=Operator", "-c", "user.email=ops@petory.example.com"]
        sh(*git, "init", "-q", "-b", "main", cwd=self.project)
        sh(*git, "add", "-A", cwd=self.project)
        sh(*git, "commit", "-q", "-m", "Generated deployment", cwd=self.project)
        sh("git", "clone", "-q", "--bare", self.project, self.origin)
        # Where the server sees it (Debian 13 mounts a tmpfs over /tmp, hiding a mount there).
        sh("git", "remote", "add", "origin", ORIGIN_ON_SERVER, cwd=self.project)
        self.ssh_config = self.home / ".ssh/config"
        self.known_hosts = self.home / ".ssh/known_hosts"

    def point_at(self, server: FreshServer) -> None:
        address = server.address
        self.known_hosts.write_text(server.host_key_line(address) + "\n")
        self.ssh_config.write_text(
            f"Host {DOMAIN}\n  HostName {address}\n  IdentityFile {self.admin_key}\n  IdentitiesOnly yes\n"
            f"  StrictHostKeyChecking yes\n  UserKnownHostsFile {self.known_hosts}\n  ConnectTimeout 5\n")

    def provision(self, *args: str, timeout: int = 900, **environ: str) -> subprocess.CompletedProcess:
        """make provision ENV=prod, with this operator's keys and ssh configuration."""
        make_args = f"--admin-key {self.admin_key}.pub --ci-key {self.ci_key}.pub"
        env = {**os.environ, "HOME": str(self.home), "ANSIBLE_SSH_COMMON_ARGS": f"-F {self.ssh_config}",
               "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"), "ANSIBLE_FORCE_COLOR": "0",
               "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **environ}
        return subprocess.run(["make", "provision", "ENV=prod", f"ARGS={make_args}", *args], cwd=self.deploy,
                              env=env, capture_output=True, text=True, timeout=timeout)


def recap(proc: subprocess.CompletedProcess) -> dict[str, int]:
    found = RECAP.findall(proc.stdout)
    assert len(found) == 1, f"no PLAY RECAP line: {proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, found[0])))


def changed_tasks(proc: subprocess.CompletedProcess) -> list[str]:
    names, current = [], None
    for line in proc.stdout.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            current = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:") and current:
            names.append(current)
    return names


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory, summary):
    operator = Operator(tmp_path_factory.mktemp("provision"))
    server = FreshServer(operator.admin_key.with_suffix(".pub").read_text().strip(),
                         mounts=((operator.origin, ORIGIN_ON_SERVER, "ro"),))
    try:
        server.start()
        # The origin is a path owned by root here; git refuses another user's repository unless named safe.
        server.exec("sh", "-c", f"printf '[safe]\\n\\tdirectory = {ORIGIN_ON_SERVER}\\n' >/etc/gitconfig")
        operator.point_at(server)
        began = time.monotonic()
        first = operator.provision()
        took = time.monotonic() - began
        assert first.returncode == 0, f"{first.stdout[-4000:]}\n{first.stderr[-2000:]}"
        counts = recap(first)
        summary.append(f"provision: first run on a fresh Debian 13 server took {took:.0f} s "
                       f"({counts['ok']} ok, {counts['changed']} changed)")
        yield operator, server, first
    finally:
        server.stop()


def test_the_first_run_leaves_the_server_as_the_model_says(provisioned):
    operator, server, first = provisioned
    p = provisioning
    assert server.exec("systemctl", "is-active", "docker").stdout.strip() == "active"
    assert "Docker Compose version v2" in server.exec("docker", "compose", "version").stdout.replace("version 2", "version v2")
    daemon = json.loads(server.exec("cat", "/etc/docker/daemon.json").stdout)
    assert daemon == p.DAEMON_JSON
    assert server.exec("docker", "info", "--format", "{{.LiveRestoreEnabled}}").stdout.strip() == "true"
    assert server.exec("sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"

    keys = server.exec("cat", "/home/deploy/.ssh/authorized_keys").stdout.split("\n")
    assert [line.split()[:2] for line in keys if line] == [operator.ci_key.with_suffix(".pub").read_text().split()[:2]]
    assert "docker" in server.exec("id", "-nG", "deploy").stdout.split()

    effective = dict(line.split(" ", 1) for line in server.exec("sshd", "-T").stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no" and effective["permitrootlogin"] == "no"
    assert effective["allowtcpforwarding"] == "local"

    upgrades = server.exec("apt-config", "dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in upgrades
    assert server.exec("systemctl", "is-enabled", "systemd-timesyncd").stdout.strip() == "enabled"

    env_file = "/srv/petory/deploy/env/prod.env"
    assert server.exec("stat", "-c", "%a %U", env_file).stdout.split() == ["600", "deploy"]
    assert server.exec("cat", env_file).stdout == (operator.deploy / "env/prod.env").read_text()
    head = sh("git", "rev-parse", "HEAD", cwd=operator.project).stdout.strip()
    assert server.exec("git", "-C", "/srv/petory", "rev-parse", "HEAD", user="deploy").stdout.strip() == head
    assert server.exec("systemctl", "is-enabled", "petory-prod-backup.timer").stdout.strip() == "enabled"


def test_root_is_refused_and_the_operator_gets_in_with_sudo(provisioned):
    operator, server, _ = provisioned
    ssh = ["ssh", "-F", str(operator.ssh_config), "-o", "BatchMode=yes"]
    root = subprocess.run([*ssh, f"root@{DOMAIN}", "true"], capture_output=True, text=True, timeout=30)
    assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr
    admin = subprocess.run([*ssh, f"admin@{DOMAIN}", "sudo", "-n", "id", "-u"], capture_output=True, text=True, timeout=30)
    assert admin.returncode == 0 and admin.stdout.strip() == "0", admin.stderr


def test_a_second_run_and_a_check_run_change_nothing(provisioned, summary):
    operator, server, _ = provisioned
    began = time.monotonic()
    second = operator.provision()
    took = time.monotonic() - began
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second)["changed"] == 0, changed_tasks(second)
    assert "provision prod: as admin" in second.stderr  # root's login is closed: the operator's account
    check = operator.provision("CHECK=1")
    assert check.returncode == 0, check.stdout[-3000:]
    assert recap(check)["changed"] == 0, changed_tasks(check)
    summary.append(f"provision: second run {took:.0f} s, changed=0; CHECK=1 (--check --diff) changed=0")


def test_bad_input_stops_with_one_line_and_changes_nothing_on_the_server(provisioned, tmp_path):
    operator, server, _ = provisioned
    before = server.exec("sh", "-c", SNAPSHOT).stdout

    def one_line(proc, *expected):
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("make:")]
        errors = [line for line in lines if "ERROR" in line]
        assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert all(part in errors[0] for part in expected), errors[0]

    env_file = operator.deploy / "env/prod.env"
    env_file.rename(tmp_path / "prod.env")
    try:
        one_line(operator.provision(), "env/prod.env is missing")
    finally:
        (tmp_path / "prod.env").rename(env_file)

    ci_key = operator.ci_key.with_suffix(".pub")
    ci_key.rename(tmp_path / "ci.pub")
    try:
        one_line(operator.provision(), str(ci_key), "is missing")
    finally:
        (tmp_path / "ci.pub").rename(ci_key)

    # Another firewall manager: a unit named firewalld.service runs (a runtime unit, so /etc stays as
    # it was; what the check reads is the unit's state).
    server.exec("sh", "-c", "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' >/run/systemd/system/firewalld.service"
                " && systemctl daemon-reload && systemctl start firewalld.service")
    try:
        one_line(operator.provision(), f"{DOMAIN} runs firewalld (logged in as admin with {operator.admin_key})",
                 "nothing was changed", "systemctl disable --now firewalld")
        assert server.exec("sh", "-c", SNAPSHOT).stdout == before
    finally:
        server.exec("sh", "-c", "systemctl stop firewalld.service; rm /run/systemd/system/firewalld.service"
                    " && systemctl daemon-reload")

    config = operator.ssh_config.read_text()
    # A new SSH connection: the earlier runs' master connection (ControlPersist) would let it in.
    fresh = {"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}
    try:
        wrong = tmp_path / "wrong"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", wrong)
        operator.ssh_config.write_text(config.replace(str(operator.admin_key), str(wrong)))
        one_line(operator.provision(**fresh), f"cannot log in to {DOMAIN} as admin or root with {wrong}",
                 "Permission denied")
        # Unreachable: a port of the server that its firewall drops (ssh's ConnectTimeout, 5 s).
        operator.ssh_config.write_text(config.replace("  IdentityFile", "  Port 2\n  IdentityFile"))
        one_line(operator.provision(**fresh), f"cannot log in to {DOMAIN}", "port 2: Connection timed out")
    finally:
        operator.ssh_config.write_text(config)
    after = server.exec("sh", "-c", SNAPSHOT).stdout
    assert after == before


# -- the host firewall (role firewall, petory-firewall) ------------------------------------------

PORT_RE = re.compile(r"(\d+)/open/tcp")
EDGE_PORTS = {80, 443}


def scan(address: str) -> set[int]:
    """Every TCP port of the server that accepts a connection from this machine (outside the server)."""
    proc = subprocess.run(["nmap", "-sT", "-Pn", "-n", "-p", "1-65535", "--max-retries", "1", "--min-rate", "5000",
                           "--max-rtt-timeout", "200ms", "-oG", "-", address],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "# Nmap done" in proc.stdout, proc.stderr
    return {int(port) for line in proc.stdout.splitlines() if line.startswith("Host:") for port in PORT_RE.findall(line)}


def assert_open(address: str, ports: set[int]) -> None:
    """Each port accepts a connection from this machine. The scans and the module's earlier SSH
    logins count against SSH's per-source rate limit, which drops new connections to 22 until its
    window has passed: port 22 is given that window before it counts as closed."""
    window = provisioning.FIREWALL["ssh_rate"]["seconds"]
    for port in sorted(ports):
        deadline = time.monotonic() + (window + 10 if port == 22 else 6)
        while True:
            try:
                socket.create_connection((address, port), timeout=3).close()
                break
            except OSError as error:
                assert time.monotonic() < deadline, f"port {port} of the server does not answer from outside: {error}"
                time.sleep(1)


@pytest.fixture(scope="module")
def listening(provisioned):
    """Containers on the provisioned server's own engine: an edge stand-in publishing 80 and 443 on
    0.0.0.0 as compose.yaml does, and the accidents: `ports: ["3306:3306"]` (no address: daemon.json
    binds it to 127.0.0.1) and `ports: ["0.0.0.0:6379:6379"]` (an address: DOCKER-USER stops it)."""
    operator, server, _ = provisioned
    image = "petory-test/fresh-server:trixie"  # python3, for a listener
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", server.name, "docker", "load", "-q"], stdin=save.stdout, check=True,
                   capture_output=True, timeout=300)
    save.wait()
    listener = ["python3", "-m", "http.server", "8000"]
    for name, ports in (("edge", ["-p", "0.0.0.0:80:8000", "-p", "0.0.0.0:443:8000"]),
                        ("accidental-mysql", ["-p", "3306:8000"]), ("accidental-redis", ["-p", "0.0.0.0:6379:8000"])):
        server.exec("docker", "run", "-d", "--restart", "unless-stopped", "--name", name, *ports, "--entrypoint",
                    listener[0], image, *listener[1:])
    deadline = time.monotonic() + 120  # a busy machine: the nested engine starts four containers
    while server.exec("sh", "-c", "for p in 80 443 3306 6379; do python3 -c \"import socket; "
                      "socket.create_connection(('127.0.0.1', $p), 1)\" || exit 1; done", check=False).returncode:
        assert time.monotonic() < deadline, "the listeners did not come up"
        time.sleep(0.5)
    return server


def test_from_outside_only_ssh_and_the_edges_ports_answer_even_after_docker_and_firewall_restarts(listening, summary):
    server = listening
    address = server.address
    found = {}
    began = time.monotonic()
    found["provisioned, with ports 3306 and 0.0.0.0:6379 published"] = scan(address)
    assert_open(address, {22} | EDGE_PORTS)
    server.exec("systemctl", "restart", "docker")
    deadline = time.monotonic() + 120
    while server.exec("docker", "inspect", "-f", "{{.State.Running}}", "edge", check=False).stdout.strip() != "true":
        assert time.monotonic() < deadline, "the edge stand-in did not run again after the Docker restart"
        time.sleep(0.5)
    found["after a Docker engine restart"] = scan(address)
    assert_open(address, {22} | EDGE_PORTS)
    assert server.exec("petory-firewall", "apply").stdout.strip() == "rules: as before"
    server.exec("systemctl", "restart", "petory-firewall")
    found["after a firewall reload"] = scan(address)
    assert_open(address, {22} | EDGE_PORTS)
    for when, ports in found.items():
        # The scan's timeouts are short (a busy machine can miss a slow answer): what it found open
        # must be expected, and each expected port is then proven open by its own connection.
        assert ports <= {22} | EDGE_PORTS, f"{when}: {sorted(ports)}"
    # From inside the server both accidents answer, so the scans' closed ports were the firewall's doing.
    assert server.exec("python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 6379), 2)").returncode == 0
    v6 = server.exec("ip6tables", "-S", "PETORY-INPUT").stdout
    assert "--dport 80" not in v6 and v6.rstrip().endswith("-A PETORY-INPUT -j DROP")
    summary.append(f"firewall: 3 scans of 65,535 TCP ports from outside ({time.monotonic() - began:.0f} s with the "
                   f"restarts) found open {[sorted(ports) for ports in found.values()]}; 22, 80 and 443 each "
                   "accepted a connection every time; 3306 and 6379 published but closed; "
                   "IPv6: 80/443 closed (the edge publishes IPv4 only)")


def test_rules_that_cut_ssh_revert_by_themselves_and_ssh_comes_back(provisioned, summary):
    operator, server, _ = provisioned
    window = 15
    ssh = ["ssh", "-F", str(operator.ssh_config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", f"admin@{DOMAIN}", "true"]
    cut = "/run/cut-ssh"
    server.exec("sh", "-c", f"mkdir -p {cut} && cp /etc/petory/firewall/rules.v6 {cut}/ && "
                f"sed '/--dport 22 /d' /etc/petory/firewall/rules.v4 > {cut}/rules.v4")
    applied = server.exec("env", f"PETORY_FIREWALL_RULES={cut}", "petory-firewall", "apply", "--revert-after", str(window))
    assert applied.stdout.strip() == "rules: changed"
    began = time.monotonic()
    assert subprocess.run(ssh, capture_output=True, timeout=30).returncode == 255  # locked out, and no confirm
    while subprocess.run(ssh, capture_output=True, timeout=30).returncode != 0:
        assert time.monotonic() - began < window + 10, "SSH did not come back after the revert"
        time.sleep(1)
    back = time.monotonic() - began
    assert server.exec("petory-firewall", "audit").returncode == 0
    summary.append(f"firewall: a rule set without SSH, not confirmed: SSH back {back:.1f} s after the apply "
                   f"(switch {window} s; bound {window + 10} s)")


def test_host_audit_passes_then_names_a_drift(provisioned):
    operator, server, _ = provisioned
    env = {**os.environ, "HOME": str(operator.home)}
    make = ["make", "host-audit", "ENV=prod", f"SSH=ssh -F {operator.ssh_config} -o BatchMode=yes"]
    clean = subprocess.run(make, cwd=operator.deploy, env=env, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0 and "the live rules are the rules files" in clean.stdout, clean.stdout + clean.stderr
    server.exec("iptables", "-I", "DOCKER-USER", "1", "-p", "tcp", "-m", "conntrack", "--ctorigdstport", "6379", "-j", "RETURN")
    try:
        drift = subprocess.run(make, cwd=operator.deploy, env=env, capture_output=True, text=True, timeout=60)
        assert drift.returncode != 0
        assert "unexpected (v4): -A DOCKER-USER -p tcp -m conntrack --ctorigdstport 6379 -j RETURN" in drift.stdout, drift.stdout
    finally:
        server.exec("petory-firewall", "apply")


def test_the_generated_ci_firewall_check_passes_on_this_servers_engine(listening, provisioned, summary):
    """deploy/scripts/ci/check-firewall.sh, the generated CI's firewall job, run for real on the
    provisioned server (Debian 13's Docker 26 here; the CI job runs it on Docker 28 and 29). It re-applies the
    role with its own public interface, so it runs after the module's other firewall tests."""
    server, operator = listening, provisioned[0]
    # Its listeners take 80, 443, 3306 and 6379: the fixture's go first.
    server.exec("docker", "rm", "-f", "edge", "accidental-mysql", "accidental-redis")
    image = "petory-standin/nginx:alpine"  # serves on 80, as the edge image does
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    subprocess.run(["docker", "exec", "-i", server.name, "docker", "load", "-q"], stdin=save.stdout, check=True,
                   capture_output=True, timeout=300)
    save.wait()
    # What the CI job installs on its runner: Ansible with its collections, and nmap (Debian's here).
    server.exec("sh", "-c", "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                "--no-install-recommends ansible nmap")
    subprocess.run(["docker", "cp", f"{operator.project}/.", f"{server.name}:/root/ci-checkout"], check=True,
                   capture_output=True, timeout=120)
    began = time.monotonic()
    proc = server.exec("env", f"EDGE_IMAGE={image}", "/root/ci-checkout/deploy/scripts/ci/check-firewall.sh",
                       "--engine", "runner", check=False)
    took = time.monotonic() - began
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    scans = [line.split("firewall: ", 1)[1] for line in proc.stderr.splitlines() if "open from outside" in line]
    assert [scan.split(":", 1)[0] for scan in scans] == [
        "after provisioning", "after a Docker engine restart", "after a firewall reload"]
    # 22 is the admin ranges' (any here); a busy machine's short scan timeouts can miss its answer,
    # which the script leaves out of its comparison for that reason too.
    assert all(scan.endswith(("IPv4 22 80 443, IPv6 none", "IPv4 80 443, IPv6 none")) for scan in scans), scans
    assert "audit: the live rules are the rules files" in proc.stdout
    engine = next(line.split("firewall: ", 1)[1] for line in proc.stderr.splitlines() if "firewall: Docker " in line)
    summary.append(f"firewall: the generated CI's check-firewall.sh on the server's {engine} passed in {took:.0f} s: "
                   + "; ".join(scans))


def test_ssh_connections_above_the_rate_limit_are_dropped(provisioned):
    """Last in this module: afterwards this machine's address may not open SSH connections for a minute."""
    _, server, _ = provisioned
    rate = provisioning.FIREWALL["ssh_rate"]
    outcomes = []
    for _ in range(rate["hits"] + 5):
        try:
            socket.create_connection((server.address, 22), timeout=2).close()
            outcomes.append("accepted")
        except OSError:
            outcomes.append("dropped")
    assert outcomes[-1] == "dropped" and outcomes.count("accepted") <= rate["hits"], outcomes
