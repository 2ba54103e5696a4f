#!/usr/bin/env bash
# Shared helpers for the scripts in scripts/: logging, failing with a reason, the Compose call,
# and the deploy state of each environment (.deploy/<env>/, gitignored, owned by these scripts).
# Source it; it defines functions only.

# shellcheck disable=SC2034 # REPO_ROOT and ENVIRONMENTS are used by the scripts that source this file
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENVIRONMENTS=(dev staging prod)
COLOURS=(blue green)

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

state_dir() { printf '%s/.deploy/%s' "${REPO_ROOT}" "$1"; }

# ensure_state ENV: create the deploy state on first use (blue active, nothing deployed yet).
ensure_state() {
    local dir
    dir="$(state_dir "$1")"
    mkdir -p "${dir}/edge"
    [[ -f "${dir}/edge/active.conf" ]] || cp "${REPO_ROOT}/nginx/initial-state/active.conf" "${dir}/edge/active.conf"
    if [[ ! -f "${dir}/colours.env" ]]; then
        cat >"${dir}/colours.env" <<STATE
# Deploy state of $1, written by scripts/deploy.sh: the active colour of each app and the image
# tag each colour runs (empty = APP_VERSION from env/$1.env). Do not edit while a deploy runs.
BACKEND_ACTIVE=blue
FRONTEND_ACTIVE=blue
BACKEND_BLUE_TAG=
BACKEND_GREEN_TAG=
FRONTEND_BLUE_TAG=
FRONTEND_GREEN_TAG=
STATE
    fi
}

# state_get ENV KEY: a value from .deploy/<env>/colours.env (empty when unset).
state_get() {
    sed -n "s/^$2=//p" "$(state_dir "$1")/colours.env" | tail -n 1
}

# state_set ENV KEY VALUE: replace KEY's line atomically (write a new file, then rename it).
state_set() {
    local file tmp
    file="$(state_dir "$1")/colours.env"
    tmp="$(mktemp "${file}.XXXXXX")"
    grep -v "^$2=" "${file}" >"${tmp}" || true
    printf '%s=%s\n' "$2" "$3" >>"${tmp}"
    mv "${tmp}" "${file}"
}

other_colour() { [[ "$1" == blue ]] && echo green || echo blue; }

# active_profiles ENV: the Compose profiles of the colours that serve traffic.
active_profiles() {
    printf 'backend-%s,frontend-%s' "$(state_get "$1" BACKEND_ACTIVE)" "$(state_get "$1" FRONTEND_ACTIVE)"
}

# compose ENV ARGS...: docker compose with the environment's env file, deploy state and override.
# COMPOSE_PROFILES may be set by the caller (deploy.sh starts the idle colour that way).
compose() {
    local env="$1"
    shift
    ensure_state "${env}"
    COMPOSE_PROFILES="${COMPOSE_PROFILES:-$(active_profiles "${env}")}" \
        docker compose --project-directory "${REPO_ROOT}" \
        --env-file "${REPO_ROOT}/env/${env}.env" --env-file "$(state_dir "${env}")/colours.env" \
        -f "${REPO_ROOT}/compose.yaml" -f "${REPO_ROOT}/compose.${env}.yaml" "$@"
}

# parse_confirmable_args MIN MAX ARGS...: the options of a script that asks before acting: -h/--help
# (calls the script's usage), --yes (no confirmation); sets POSITIONAL to the other arguments,
# of which there must be MIN to MAX.
parse_confirmable_args() {
    local min="$1" max="$2"
    shift 2
    POSITIONAL=()
    while (($#)); do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --yes) export ASSUME_YES=1 ;;
            -*) usage >&2; die "unknown option $1" ;;
            *) POSITIONAL+=("$1") ;;
        esac
        shift
    done
    ((${#POSITIONAL[@]} >= min && ${#POSITIONAL[@]} <= max)) || { usage >&2; exit 2; }
}

# take_lock ENV WAIT_SECONDS WHAT: one deploy, restore or upgrade per environment at a time. The
# lock is released when the calling script exits (the descriptor closes).
take_lock() {
    local dir
    dir="$(state_dir "$1")"
    exec 9>"${dir}/deploy.lock"
    if ! flock -w "$2" 9; then
        die "another deploy of $1 holds ${dir}/deploy.lock ($(cat "${dir}/deploy.owner" 2>/dev/null || echo unknown)); retry later or pass --wait-lock SECONDS"
    fi
    printf 'pid %s: %s, since %s\n' "$$" "$3" "$(date -u +%FT%TZ)" >"${dir}/deploy.owner"
}

# confirm QUESTION: ask on the terminal; --yes (ASSUME_YES=1) answers for non-interactive use.
confirm() {
    [[ "${ASSUME_YES:-0}" == 1 ]] && return 0
    [[ -t 0 ]] || die "$1 -- refusing without a terminal; pass --yes to confirm"
    local answer
    read -r -p "$1 [y/N] " answer
    [[ "${answer}" == [yY] || "${answer}" == [yY][eE][sS] ]]
}
