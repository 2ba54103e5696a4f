"""Host provisioning (deploy/provision/, Ansible): what every server gets, computed once.

The playbook, its inventory, `scripts/provision.sh` and the docs print these values; the live test
(tests/live/test_provision.py) checks a provisioned server against the same values.
"""

from __future__ import annotations

from collections.abc import Mapping

DOCKER_SOURCES = ("docker-ce", "debian")
# Debian 12's own docker-compose is 1.29 (Compose v1, `docker-compose`), which the scripts cannot
# use (`docker compose` v2: --wait, profiles, include); Debian 13 ships Compose v2 as the plugin.
DEBIAN_COMPOSE_V2_SINCE = 13
DOCKER_PACKAGES = {
    # Docker's apt repository: the current engine and its security fixes, Compose and buildx as
    # CLI plugins. The key is pinned to the file the repository signs with (signed-by).
    "docker-ce": ["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"],
    # Debian's archive only: for hosts that may install nothing else; security fixes by Debian.
    "debian": ["docker.io", "docker-compose"],
}
DOCKER_CE_REPOSITORY = "https://download.docker.com/linux/debian"
DOCKER_CE_KEY_URL = "https://download.docker.com/linux/debian/gpg"

# Docker's container log rotation, the same as compose.yaml's x-hardening logging: the default for
# any container started by hand too.
DOCKER_LOG_OPTIONS = {"max-size": "10m", "max-file": "5"}
DAEMON_JSON = {
    # A `ports:` entry without an address binds 127.0.0.1, not every interface: an accidental
    # publish stays local. The edge names 0.0.0.0 for 80/443 itself (compose.yaml).
    "ip": "127.0.0.1",
    "log-driver": "json-file",
    "log-opts": DOCKER_LOG_OPTIONS,
    # Containers keep running while the engine restarts (an upgrade of docker-ce, a daemon.json change).
    "live-restore": True,
}
# Docker forwards published ports from the host into its bridge networks: a hardening that turns
# forwarding off (CIS sysctl sets, devsec.hardening's default) cuts every container off.
SYSCTL = {"net.ipv4.ip_forward": "1"}
JOURNALD = {"SystemMaxUse": "1G", "MaxRetentionSec": "1month"}
# What sshd permits after provisioning. AllowTcpForwarding local: `make grafana`'s tunnel (-L);
# remote forwarding (-R) and agent forwarding stay off.
SSHD = {
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitRootLogin": "no",
    "PubkeyAuthentication": "yes",
    "AllowAgentForwarding": "no",
    "AllowTcpForwarding": "local",
    "X11Forwarding": "no",
    "MaxAuthTries": "3",
}
# The host firewall (role firewall, /usr/local/sbin/petory-firewall). Layer 1, INPUT: SSH (from
# the admin ranges, rate-limited per source), 80 and 443; everything else dropped. Layer 2,
# DOCKER-USER: traffic from the public interface to a container passes only when its original
# destination port (before Docker's DNAT: --ctorigdstport) is the edge's; an accidental
# `ports: ["3306:3306"]` stays unreachable. Layer 3 is daemon.json's "ip": 127.0.0.1. IPv6: the
# edge publishes on IPv4 only, so 80 and 443 are closed on IPv6 (SSH too, unless an admin range is
# IPv6). Docker's own chains are never flushed: only PETORY-INPUT and DOCKER-USER are written.
FIREWALL = {
    "public_tcp": [80, 443],
    "ssh_port": 22,
    # A source that opens more new SSH connections than this within the window is dropped until
    # the window passes: enough for an operator and CI (one connection per job), not for a guesser.
    "ssh_rate": {"hits": 20, "seconds": 60},
    # An applied rule set reverts itself unless it is confirmed within this time over a new SSH
    # connection (the dead-man switch): a rule that cuts SSH cannot lock the operator out.
    "confirm_within_seconds": 60,
}
BASE_PACKAGES = ["git", "unattended-upgrades", "systemd-timesyncd", "sudo", "ca-certificates", "python3", "iptables"]
# With the bundled MySQL: scripts/backup-db.sh encrypts each dump with age on the host, and
# scripts/restore-db.sh decrypts one there (a recovery onto a new server restores at once).
BACKUP_PACKAGES = ["age"]
ENV_FILE_MODE = "0600"
# The GitHub environments that scripts/github-setup.sh creates (make github ENV=<env>): the
# secrets deploy-environment.yml reads, and the release tags deploy-pipeline.yml runs on. A
# reviewed environment waits for a reviewer's approval and deploys only from `main` and release tags.
GITHUB = {"secrets": ["SSH_PRIVATE_KEY", "SSH_KNOWN_HOSTS"], "release_tags": "v*.*.*",
          "reviewed_refs": [{"name": "main", "type": "branch"}, {"name": "v*.*.*", "type": "tag"}]}
REVIEWED_ENVIRONMENTS = ("prod",)
# Ansible's virtualization_type facts of container servers (their clock is the host's).
CONTAINER_TYPES = ["docker", "container", "lxc", "podman", "openvz", "systemd-nspawn"]


def build(answers: Mapping, servers: list[str], sites: Mapping, project_slug: str, deploy_dir: str,
          backups: bool = False) -> dict | None:
    """deployment.provision: None without a server environment (dev only)."""
    if not servers:
        return None
    source = answers["docker_source"]
    admin = answers["admin_user"]
    hosts = []
    for env in servers:
        ssh = sites[env]["ssh"]
        hosts.append({
            "env": env,
            "name": f"{project_slug}-{env}",  # the inventory name: `make provision ENV=<env>` limits to it
            "host": ssh["host"],
            "deploy_user": ssh["user"],
            "checkout_dir": ssh["dir"],
            "deploy_dir": f"{ssh['dir']}/{deploy_dir}",
            # CI's deploy key pair on the operator's machine (.pub beside it): make provision
            # creates it and installs the public half, make github stores the private half.
            "ci_key": f"~/.ssh/{project_slug}-{env}-ci",
            "ci_key_shell": f"${{HOME}}/.ssh/{project_slug}-{env}-ci",  # the same path, as scripts expand it
            # The deploy user's read-only key for a repository over SSH (a deploy key of it).
            "repository_key": f"/home/{ssh['user']}/.ssh/{project_slug}-repository",
        })
    return {
        "docker_source": source,
        "docker_packages": DOCKER_PACKAGES[source],
        "docker_ce": {"repository": DOCKER_CE_REPOSITORY, "key_url": DOCKER_CE_KEY_URL},
        "debian_compose_v2_since": DEBIAN_COMPOSE_V2_SINCE,
        "daemon": DAEMON_JSON,
        "sysctl": SYSCTL,
        "journald": JOURNALD,
        "sshd": SSHD,
        "base_packages": BASE_PACKAGES + (BACKUP_PACKAGES if backups else []),
        "container_types": CONTAINER_TYPES,
        "admin_user": admin,
        "firewall": {**FIREWALL, "admin_cidrs_v4": [c for c in answers["admin_cidrs"] if ":" not in c],
                     "admin_cidrs_v6": [c for c in answers["admin_cidrs"] if ":" in c]},
        "hosts": hosts,
        "env_file_mode": ENV_FILE_MODE,
        "github": {**GITHUB, "reviewed": [env for env in servers if env in REVIEWED_ENVIRONMENTS]},
    }
