#!/usr/bin/env python3
"""The tables scripts/apply.sh compares: what Compose wants and what every container has.

Usage: compose_snapshot.py WORK CREATED_LIMITS_DIR [SERVICE:VARIABLE...]

Reads WORK/config.json (`docker compose config --format json`) and WORK/inspect.json (`docker
inspect` of the running containers), and writes:
  desired.tsv          service, CPUs in hundredths, memory, memory reservation (bytes), replicas
  running.tsv          service, container id, CPUs in hundredths, memory, reservation, swap, config hash
  running-limits.json  a Compose override that gives every service the limits its container was
                       created with: those it has now, unless apply.sh's `docker update` changed
                       them (CREATED_LIMITS_DIR/<id> holds the originals), and the values of the
                       SERVICE:VARIABLE pairs read only at initialisation. With it, `config --hash`
                       reproduces a container's own hash exactly when nothing else changed.
Compose stores CPUs as a float32 times 1e9 (0.65 -> 649999976), hence the rounding to hundredths.
"""

from __future__ import annotations

import json
import math
import os
import sys


def cpu_reservation(cpus: float) -> float:
    """The `reservations.cpus` compose.yaml gives a CPU limit (hooks/sizing.py of the template):
    Compose ignores it outside Swarm, so no container records it, yet it is part of the hash."""
    return round(math.floor(cpus / 2 / 0.05 + 1e-9) * 0.05, 2) or 0.05


def main(work: str, created: str, init_only: list[str]) -> None:
    kept_variables = [entry.partition(":") for entry in init_only]
    config = json.load(open(os.path.join(work, "config.json")))
    with open(os.path.join(work, "desired.tsv"), "w") as out:
        for name, service in config["services"].items():
            deploy = service.get("deploy") or {}
            resources = deploy.get("resources") or {}
            limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
            print(name, round(float(limits.get("cpus") or 0) * 100), limits.get("memory") or 0,
                  reservations.get("memory") or 0, deploy.get("replicas") or 1, sep="\t", file=out)
    override, running_ids = {}, set()
    with open(os.path.join(work, "running.tsv"), "w") as out:
        for container in json.load(open(os.path.join(work, "inspect.json"))):
            host, labels, short_id = container["HostConfig"], container["Config"]["Labels"], container["Id"][:12]
            name = labels["com.docker.compose.service"]
            running_ids.add(short_id)
            print(name, short_id, round(host["NanoCpus"] / 1e7), host["Memory"], host["MemoryReservation"],
                  host["MemorySwap"], labels.get("com.docker.compose.config-hash", ""), sep="\t", file=out)
            record = os.path.join(created, short_id)
            cpus, memory, reservation = (open(record).read().split() if os.path.exists(record) else
                                         (round(host["NanoCpus"] / 1e7), host["Memory"], host["MemoryReservation"]))
            definition: dict = {"deploy": {"resources": {
                "limits": {"cpus": f"{int(cpus) / 100:.2f}", "memory": str(memory)},
                "reservations": {"cpus": f"{cpu_reservation(int(cpus) / 100):.2f}", "memory": str(reservation)}}}}
            environment = dict(item.split("=", 1) for item in container["Config"]["Env"])
            kept = {variable: environment[variable].replace("$", "$$")  # $$: no interpolation by Compose
                    for owner, _, variable in kept_variables if owner == name and variable in environment}
            if kept:
                definition["environment"] = kept
            override[name] = definition
    # JSON is YAML. WORK is apply.sh's mktemp directory (mode 0700): the file may hold a password.
    with open(os.path.join(work, "running-limits.json"), "w") as out:
        json.dump({"services": override}, out)
    for stale in set(os.listdir(created)) - running_ids:  # records of containers that are gone
        os.remove(os.path.join(created, stale))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
