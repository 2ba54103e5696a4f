#!/usr/bin/env bash
# Shared helpers for the scripts in scripts/: logging, failing with a reason, repository paths.
# Source it; it defines functions only.

# shellcheck disable=SC2034 # REPO_ROOT is used by the scripts that source this file
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENVIRONMENTS=(dev staging prod)

log() { printf '%s %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# require_env NAME: NAME is a generated environment with its env file present.
require_env() {
    local env="${1:-}"
    [[ -n "${env}" ]] || die "no environment given; use one of: ${ENVIRONMENTS[*]}"
    [[ -f "${REPO_ROOT}/compose.${env}.yaml" ]] || die "unknown environment '${env}': compose.${env}.yaml does not exist"
    [[ -f "${REPO_ROOT}/env/${env}.env" ]] || die "env/${env}.env is missing: copy it from the secure store, or run make env-sync ENV=${env}"
}

# compose ENV ARGS...: docker compose with the environment's env file and override.
compose() {
    local env="$1"
    shift
    docker compose --project-directory "${REPO_ROOT}" --env-file "${REPO_ROOT}/env/${env}.env" \
        -f "${REPO_ROOT}/compose.yaml" -f "${REPO_ROOT}/compose.${env}.yaml" "$@"
}
