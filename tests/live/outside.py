"""A machine outside the host, made by the test: a network namespace linked to the host by a veth pair.

The host's end of the link gets an address from 198.18.0.0/15 (RFC 2544, benchmarking: never a real
network's), the namespace's end the next one; `route()` sends more ranges from the namespace through
the host (a neighbour on the LAN that routes the container subnets through the host). A stack
that publishes on `host_address` is then reached from the namespace as the internet would reach a
server's public address: through the host's INPUT and FORWARD chains, never through loopback.

Scans are nmap's connect scan (`-sT`) run inside the namespace: the ports that complete a TCP
handshake are what an outside client can reach.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shutil
import subprocess

LINKS = ipaddress.ip_network("198.18.0.0/15")
PORT_RE = re.compile(r"(\d+)/open/tcp")


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")


class Outside:
    """`with Outside() as outside:` a namespace and its link; `outside.scan(address)` the open TCP ports."""

    def __init__(self):
        tag = secrets.token_hex(3)
        self.netns = f"petory-outside-{tag}"
        self.host_link, self.ns_link = f"po{tag}h", f"po{tag}n"  # interface names: 15 characters at most
        # A random /30 of the range, so parallel machines' leftovers never collide.
        subnet = list(LINKS.subnets(new_prefix=30))[secrets.randbelow(2 ** 15)]
        self.host_address, self.ns_address = (str(address) for address in list(subnet.hosts())[:2])
        self.routes: list[str] = []  # added by route()

    def __enter__(self) -> Outside:
        if not shutil.which("nmap"):
            raise RuntimeError("nmap is not installed (tests/run.sh installs it)")
        _ip("netns", "add", self.netns)
        try:
            _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.ns_link)
            _ip("link", "set", self.ns_link, "netns", self.netns)
            _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
            _ip("link", "set", self.host_link, "up")
            _ip("addr", "add", f"{self.ns_address}/30", "dev", self.ns_link, netns=self.netns)
            _ip("link", "set", self.ns_link, "up", netns=self.netns)
            _ip("link", "set", "lo", "up", netns=self.netns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True)  # takes its peer with it
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)

    def route(self, network: str) -> None:
        """Route `network` from the namespace through the host (once)."""
        if network not in self.routes:
            _ip("route", "add", network, "via", self.host_address, netns=self.netns)
            self.routes.append(network)

    def scan(self, address: str, ports: str = "1-65535") -> set[int]:
        """The TCP ports of `address` that accept a connection from the namespace (nmap -sT)."""
        # -Pn: no ping first (a host that drops ICMP is still scanned); --max-retries 1 and a short
        # RTT timeout suit a link with no loss; a filtered port costs one timeout, not a retry storm.
        cmd = ["ip", "netns", "exec", self.netns, "nmap", "-sT", "-Pn", "-n", "-p", ports, "--max-retries", "1",
               "--min-rate", "5000", "--max-rtt-timeout", "200ms", "-oG", "-", address]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode or "# Nmap done" not in proc.stdout:
            raise RuntimeError(f"nmap failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
        return {int(port) for line in proc.stdout.splitlines() if line.startswith("Host:")
                for port in PORT_RE.findall(line)}
