"""Fault injection on a live stack under strict load, with the data services' own downtime measured.

Strict load: every request on a new TLS connection and never retried, readers on `/api/pets` (MySQL
and Redis behind it) and `/` (the frontend only), and a writer POSTing pets with unique names whose
acknowledged writes must all be in MySQL at the end. A `Probe` asks MySQL or Redis every 100 ms, from
a container of its own on the stack's data network, whether it answers at all: that is the service's
own downtime, which the application's error window is compared with. All traffic stays on 127.0.0.1
and the stack's own networks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

from load import Load, Sample
from stack import Stack

# The answer of a data service, from a client on the data network: any reply (even "access denied"
# or NOAUTH) means it is up; only a refused or timed-out connection means down.
PROBES = {
    "mysql": "mysqladmin --skip-ssl --connect-timeout=1 -h mysql ping",
    "redis": "timeout 1 redis-cli -h redis ping",
}


def answered_by(resp) -> str:
    """Who produced a response: the application's JSON, or the edge's own page."""
    return "app" if resp.headers.get("content-type", "").startswith("application/json") else "edge"


def strict_get(stack: Stack, path: str):
    def send() -> tuple[int, str]:
        resp = stack.request("GET", path, timeout=10)
        return resp.status, answered_by(resp)
    return send


@dataclass
class Writer:
    """POSTs pets named `<run>-<n>`; `acknowledged` holds the names the application answered 201 for."""

    stack: Stack
    run: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:6]}")
    acknowledged: list[str] = field(default_factory=list)
    _count: int = 0

    def send(self) -> tuple[int, str]:
        self._count += 1
        name = f"{self.run}-{self._count}"
        resp = self.stack.request("POST", "/api/pets", body=json.dumps({"name": name}).encode(),
                                  headers={"Content-Type": "application/json"}, timeout=10)
        if resp.status == 201:
            self.acknowledged.append(name)
        return resp.status, answered_by(resp)

    def stored(self) -> set[str]:
        sql = f"SELECT name FROM pets WHERE name LIKE '{self.run}-%'"
        out = self.stack.compose("exec", "-T", "mysql", "sh", "-c",
                                 f'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot -N -B -e "{sql}" "$MYSQL_DATABASE"')
        return set(out.stdout.decode().split())


class Probe:
    """`docker run` of a loop that prints `<epoch seconds> up|down` every 100 ms for one service."""

    def __init__(self, stack: Stack, service: str):
        self.stack, self.service = stack, service
        image = stack.containers()[service][0]["Config"]["Image"]
        loop = (f'while :; do if {PROBES[service]} >/dev/null 2>&1; then s=up; else s=down; fi; '
                'echo "$(date +%s.%N) $s"; sleep 0.1; done')
        self.container = subprocess.run(
            ["docker", "run", "-d", "--rm", "--network", f"{stack.name}_data", "--entrypoint", "sh", image, "-c", loop],
            capture_output=True, text=True, check=True).stdout.strip()
        self.offset = time.time() - time.monotonic()  # probe lines are wall clock; samples are monotonic

    def samples(self) -> list[tuple[float, bool]]:
        out = subprocess.run(["docker", "logs", self.container], capture_output=True, text=True).stdout
        return [(float(at) - self.offset, state == "up") for at, state in (line.split() for line in out.splitlines())]

    def stop(self) -> list[tuple[float, bool]]:
        samples = self.samples()
        subprocess.run(["docker", "rm", "-f", self.container], capture_output=True)
        return samples


class EdgeProbe:
    """A TLS handshake with the edge every 50 ms from this host: the edge's own downtime."""

    def __init__(self, stack: Stack):
        self._samples: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # up or down is all it asks

        def handshake() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", stack.https_port), timeout=1) as raw:
                    with context.wrap_socket(raw, server_hostname=stack.domain):
                        return True
            except OSError:
                return False

        def loop() -> None:
            while not self._stop.is_set():
                self._samples.append((time.monotonic(), handshake()))
                time.sleep(0.05)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def samples(self) -> list[tuple[float, bool]]:
        return list(self._samples)

    def stop(self) -> list[tuple[float, bool]]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples()


@dataclass
class Outage:
    """What one fault cost: the service's own downtime and what the clients saw."""

    name: str
    down_from: float  # last probe answer before the outage (monotonic); 0 without a probe
    down_until: float  # first probe answer after it
    loads: dict[str, Load]
    began: float

    @property
    def downtime(self) -> float:
        return self.down_until - self.down_from

    def failures(self, load: str) -> list[Sample]:
        return self.loads[load].failures

    def after_fault(self, load: str) -> list[Sample]:
        return self.loads[load].between(self.began, float("inf"))

    def report(self) -> str:
        parts = [f"fault: {self.name}:"]
        if self.down_until:
            parts.append(f"service down {self.downtime:.1f} s;")
        for name, load in self.loads.items():
            parts.append(f"{name} {len(load.failures)}/{len(self.after_fault(name))} failed at {load.achieved_rate():.0f}/s "
                         f"(window {load.longest_error_window():.1f} s, statuses "
                         f"{sorted({(s.status, s.version) for s in load.failures})});")
        return " ".join(parts)


def outage_of(samples: list[tuple[float, bool]], began: float) -> tuple[float, float]:
    """(last `up` at or before the first `down` after `began`, first `up` after that `down`)."""
    first_down = next((i for i, (at, up) in enumerate(samples) if at >= began - 0.2 and not up), None)
    assert first_down is not None, "the probe never saw the service down"
    last_up = max((at for at, up in samples[:first_down] if up), default=began)
    back = next((at for at, up in samples[first_down:] if up), None)
    assert back is not None, "the service did not come back within the measurement"
    return last_up, back


# This shared 2-core machine's scheduling jitter on a measured window. A load's own resolution
# (the gap between two of its requests) is added where a window is compared.
NOISE = 1.0


def under_strict_load(stack: Stack, name: str, fault, *, probe: str | None = None, settle: float = 4.0,
                      rate: float = 40.0) -> tuple[Outage, Writer]:
    """Run `fault()` under strict load (`rate`/s split over /api/pets and /, plus 5 writes/s),
    then keep the load up until `settle` seconds after the probed service (or the fault) is back."""
    writer = Writer(stack)
    loads = {"/api/pets": Load(strict_get(stack, "/api/pets"), rate=rate / 2, threads=4, max_seconds=300),
             "/": Load(strict_get(stack, "/"), rate=rate / 2, threads=4, max_seconds=300),
             "POST /api/pets": Load(writer.send, rate=5, threads=1, max_seconds=300)}
    watcher = (EdgeProbe(stack) if probe == "edge" else Probe(stack, probe)) if probe else None
    try:
        for load in loads.values():
            load.__enter__()
        time.sleep(3)
        began = time.monotonic()
        fault()
        if watcher:  # wait until the service answers again, then a little longer
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not _down_and_back(watcher.samples()):
                time.sleep(0.2)
        time.sleep(settle)
    finally:
        for load in loads.values():
            load.__exit__(None, None, None)
        samples = watcher.stop() if watcher else []
    down_from, down_until = outage_of(samples, began) if watcher else (0.0, 0.0)
    return Outage(name, down_from, down_until, loads, began), writer


def _down_and_back(samples: list[tuple[float, bool]]) -> bool:
    """The probe has seen the service down and, after that, answering again."""
    states = [up for _, up in samples]
    return False in states and states[-1]


def address(container_id: str, network: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                           container_id], capture_output=True, text=True, check=True).stdout.strip()


@dataclass
class RestartAtANewAddress:
    """The restart clients find hardest: the service stops, another container takes its address on
    the data network, and the service comes back under a new one, as after a recreate. Clients that
    cached the old answer of Docker's DNS would keep calling a stranger."""

    stack: Stack
    service: str
    old: str = ""
    new: str = ""
    placeholder: str = ""

    def __call__(self) -> None:
        network = f"{self.stack.name}_data"
        doc = self.stack.containers()[self.service][0]
        self.old = address(doc["Id"], network)
        subprocess.run(["docker", "stop", doc["Id"]], capture_output=True, check=True)
        self.placeholder = subprocess.run(
            ["docker", "run", "-d", "--rm", "--network", network, "--entrypoint", "sleep", doc["Config"]["Image"], "600"],
            capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run(["docker", "start", doc["Id"]], capture_output=True, check=True)
        self.new = address(doc["Id"], network)

    def cleanup(self) -> None:
        if self.placeholder:
            subprocess.run(["docker", "rm", "-f", self.placeholder], capture_output=True)


def kill_container_process(container_id: str) -> None:
    """SIGKILL of the container's PID 1 from the host: a crash, as the kernel's OOM killer or a
    segfault would cause, which Docker's restart policy answers (`docker kill` would be an operator's stop)."""
    pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container_id],
                             capture_output=True, text=True, check=True).stdout)
    os.kill(pid, signal.SIGKILL)
