#!/usr/bin/env bash
# Shared helpers for the scripts in scripts/: logging, failing with a reason, the option parser,
# the Compose call, and the deploy state of each environment (.deploy/<env>/, gitignored, owned
# by these scripts). Source it; it defines functions only.

# shellcheck disable=SC2034 # DEPLOY_DIR and ENVIRONMENTS are used by the scripts that source this file
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)" # the folder that holds compose.yaml
ENVIRONMENTS=(dev staging prod)
# Environments that run on a server: their env file holds the secrets the data volumes were
# created with, so it is copied from the secret store, never generated anew (scripts/env_files.py
# has the same list).
SERVER_ENVIRONMENTS=(staging prod)
# The image tags a deploy takes: sha-<commit> (what CI pushes for every commit) or a release
# MAJOR.MINOR.PATCH with an optional "v". Other tags (latest, main, stable) can be moved to
# another image, so neither a deploy nor a rollback would know what it runs.
IMMUTABLE_TAG='^(sha-[0-9a-f]{7,40}|v?[0-9]+\.[0-9]+\.[0-9]+)$'

log() { printf '%s %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# usage_error MESSAGE: a mistake in the command line (exit 2, as getopt does); nothing was done.
usage_error() {
    log "ERROR: $*; see scripts/${0##*/} --help"
    exit 2
}

# parse_args MIN MAX ARGS...: the option loop every script shares. -h/--help prints the script's
# usage; any other option must be listed in the script's OPTIONS array ("--name" for a flag,
# "--name=" for one that takes a value, given as `--name VALUE` or `--name=VALUE`) and is handed
# to the script's `option NAME [VALUE]` function, a `case` that sets its variables (`--yes` sets
# ASSUME_YES for `confirm` itself, so a script that takes only --yes needs no option()). The other
# words go to POSITIONAL, MIN to MAX of them; MAX "rest" stops at the MIN-th word and passes all
# later words on as they are (compose.sh hands them to docker compose). `--` ends the options.
# A missing word is named as the first line of the usage names it (`<env>`, `<version>`).
parse_args() {
    # Locals start with "_": bash scopes variables dynamically, and the script's option() must not
    # assign parse_args' own by accident.
    local _min="$1" _max="$2" _name _value _known
    shift 2
    _known=" ${OPTIONS[*]-} "
    POSITIONAL=()
    while (($#)); do
        if [[ "${_max}" == rest ]] && ((${#POSITIONAL[@]} == _min)); then
            POSITIONAL+=("$@")
            break
        fi
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --) shift; POSITIONAL+=("$@"); break ;;
            -?*)
                _name="${1%%=*}"
                if [[ "${_known}" == *" ${_name}= "* ]]; then
                    if [[ "$1" == *=* ]]; then
                        _value="${1#*=}"
                    else
                        # The next word is the value, unless it is one of the options itself
                        # (`--wait-lock --force` forgot the number).
                        if (($# < 2)) || is_option "$2"; then usage_error "${_name} needs a value"; fi
                        _value="$2"
                        shift
                    fi
                    [[ -n "${_value}" ]] || usage_error "${_name} needs a value"
                    option "${_name}" "${_value}"
                elif [[ "${_known}" == *" ${_name} "* && "$1" != *=* ]]; then
                    if [[ "${_name}" == --yes ]]; then
                        ASSUME_YES=1 # the shared answer to `confirm`
                    else
                        option "${_name}"
                    fi
                elif [[ "${_known}" == *" ${_name} "* ]]; then
                    usage_error "${_name} takes no value"
                else
                    usage_error "unknown option $1"
                fi
                ;;
            *) POSITIONAL+=("$1") ;;
        esac
        shift
    done
    [[ "${_max}" == rest ]] && _max="${#POSITIONAL[@]}"
    if ((${#POSITIONAL[@]} < _min)); then
        log "ERROR: missing $(usage_word "${#POSITIONAL[@]}")"
        usage >&2
        exit 2
    fi
    ((${#POSITIONAL[@]} <= _max)) || usage_error "unexpected argument '${POSITIONAL[_max]}'"
}

# is_option WORD: WORD is -h/--help or one of the options of the script (a flag or --name=).
is_option() {
    [[ "$1" == -h || "$1" == --help || " ${OPTIONS[*]-} " == *" ${1%%=*} "* || " ${OPTIONS[*]-} " == *" ${1%%=*}= "* ]]
}

# usage_word INDEX: the INDEX-th argument as the first line of the usage names it ("Usage:
# scripts/x.sh <env> <version> [options]" -> <env>, <version>), with the choices for <env>.
usage_word() {
    local line
    local -a words
    line="$(usage)"
    read -r -a words <<<"${line%%$'\n'*}"
    words=("${words[@]:2}") # "Usage:" and the script's path
    local word="${words[$1]:-}"
    case "${word}" in
        "" | \[* | -*) word="an argument" ;; # the options come after the arguments
        "<env>") word="<env> (one of: $(generated_environments))" ;;
    esac
    printf '%s' "${word}"
}

# require_number OPTION VALUE [MIN]: VALUE is a whole number (at least MIN), else a usage error.
require_number() {
    [[ "$2" =~ ^[0-9]+$ ]] || usage_error "$1 takes a whole number, not '$2'"
    (($2 >= ${3:-0})) || usage_error "$1 must be at least ${3:-0}"
}

# generated_environments: the environments of this repository (those with a compose file).
generated_environments() {
    local env found=()
    for env in "${ENVIRONMENTS[@]}"; do
        [[ ! -f "${DEPLOY_DIR}/compose.${env}.yaml" ]] || found+=("${env}")
    done
    printf '%s' "${found[*]}"
}

# require_known_env NAME: NAME is an environment of this repository (its compose file exists).
require_known_env() {
    local env="${1:-}"
    [[ -n "${env}" ]] || usage_error "no environment given; use one of: $(generated_environments)"
    [[ "${env}" =~ ^[a-z]+$ && -f "${DEPLOY_DIR}/compose.${env}.yaml" ]] ||
        usage_error "unknown environment '${env}'; use one of: $(generated_environments)"
}

# require_env NAME: NAME is a generated environment with its env file present. A server's env file
# holds the secrets its database was created with: new ones (make env-sync) would lock it out.
require_env() {
    require_known_env "${1:-}"
    [[ ! -f "${DEPLOY_DIR}/env/$1.env" ]] || return 0
    if [[ " ${SERVER_ENVIRONMENTS[*]} " == *" $1 "* ]]; then
        die "env/$1.env is missing: copy it from the secret store (new secrets would not match the $1 database)"
    fi
    die "env/$1.env is missing: create it with make env-sync ENV=$1"
}

# require_tag TAG ALLOW_MUTABLE: TAG is an image tag a deploy may run (IMMUTABLE_TAG); with
# ALLOW_MUTABLE=1 (--allow-mutable-tag) any valid tag is taken, with a warning.
require_tag() {
    [[ -n "$1" ]] || usage_error "no version given"
    [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || usage_error "'$1' is not a valid image tag"
    [[ ! "$1" =~ ${IMMUTABLE_TAG} ]] || return 0
    ((${2:-0})) || usage_error "refusing the mutable tag '$1': deploy sha-<commit> or a release MAJOR.MINOR.PATCH, or pass --allow-mutable-tag"
    log "WARNING: '$1' is a mutable tag (--allow-mutable-tag): the image behind it may change, so a later rollback to it may not bring back what runs now"
}

# require_docker: the Docker engine answers and the Compose plugin is installed; called by every
# script that needs them before anything touches Docker, so that an engine that is down is
# reported as such rather than as a missing service.
require_docker() {
    local error
    command -v docker >/dev/null || die "docker is not installed; install Docker Engine and its Compose plugin"
    if ! error="$(docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null)"; then
        die "cannot reach the Docker engine (docker info failed: ${error%%$'\n'*}); start it or check DOCKER_HOST"
    fi
    docker compose version >/dev/null 2>&1 || die "the Docker Compose plugin is missing (docker compose version failed); install docker-compose-plugin"
}

# env_file_value ENV KEY: KEY's value in env/<env>.env, as written (no quote removal; empty when unset).
env_file_value() {
    sed -n "s/^$2=//p" "${DEPLOY_DIR}/env/$1.env" | tail -n 1
}

state_dir() { printf '%s/.deploy/%s' "${DEPLOY_DIR}" "$1"; }

other_colour() { [[ "$1" == blue ]] && echo green || echo blue; }

# edge_state BACKEND_COLOUR FRONTEND_COLOUR: the edge's blue-green state (nginx maps); the preview
# server sends its requests to the idle colours. The one definition of the active.conf format:
# nginx/initial-state/active.conf is `edge_state blue blue`.
edge_state() {
    cat <<MAPS
# Active and preview colours of the apps. Written by scripts/deploy.sh (also for rollback.sh) to
# .deploy/<env>/edge/active.conf, mounted at /etc/nginx-state/; do not edit by hand. The copy in
# nginx/initial-state/ is the state before the first deploy, which validate.py tests with nginx -t.
# A map with an empty source always yields its default: nginx's only way to set a variable at
# http level (https://nginx.org/en/docs/http/ngx_http_map_module.html).
map "" \$backend_upstream { default backend_$1; }
map "" \$frontend_upstream { default frontend_$2; }
map "" \$backend_preview_upstream { default backend_$(other_colour "$1"); }
map "" \$frontend_preview_upstream { default frontend_$(other_colour "$2"); }
MAPS
}

# write_edge_state ENV BACKEND_COLOUR FRONTEND_COLOUR: replace .deploy/<env>/edge/active.conf
# atomically. The new inode in the mounted directory is what nginx reads at its next reload.
write_edge_state() {
    local dir tmp
    dir="$(state_dir "$1")/edge"
    tmp="$(mktemp "${dir}/.active.XXXXXX")"
    edge_state "$2" "$3" >"${tmp}"
    chmod 644 "${tmp}" # the edge runs as uid 101
    mv "${tmp}" "${dir}/active.conf"
}

# initial_colours ENV: the deploy state before the first deploy (blue active, nothing deployed yet).
initial_colours() {
    cat <<STATE
# Deploy state of $1, written by scripts/deploy.sh: the active colour of each app and the image
# tag each colour runs (empty = APP_VERSION from env/$1.env). Do not edit while a deploy runs.
BACKEND_ACTIVE=blue
FRONTEND_ACTIVE=blue
BACKEND_BLUE_TAG=
BACKEND_GREEN_TAG=
FRONTEND_BLUE_TAG=
FRONTEND_GREEN_TAG=
STATE
}

# edge_files_sum: one checksum over nginx/, the files the edge reads from this checkout.
edge_files_sum() {
    (cd "${DEPLOY_DIR}" && find nginx -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# record_edge_files ENV: the edge has just (re)loaded nginx/; apply.sh reloads it when they differ.
record_edge_files() { edge_files_sum >"$(state_dir "$1")/edge/loaded.sha256"; }

# ensure_state ENV: create the deploy state on first use.
ensure_state() {
    local dir
    dir="$(state_dir "$1")"
    mkdir -p "${dir}/edge"
    [[ -f "${dir}/edge/active.conf" ]] || write_edge_state "$1" blue blue
    [[ -f "${dir}/colours.env" ]] || initial_colours "$1" >"${dir}/colours.env"
}

# state_get ENV KEY: a value from .deploy/<env>/colours.env (empty when unset).
state_get() {
    local file
    file="$(state_dir "$1")/colours.env"
    if [[ -f "${file}" ]]; then sed -n "s/^$2=//p" "${file}"; else initial_colours "$1" | sed -n "s/^$2=//p"; fi | tail -n 1
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

# active_profiles ENV: the Compose profiles of the colours that serve traffic.
active_profiles() {
    printf 'backend-%s,frontend-%s' "$(state_get "$1" BACKEND_ACTIVE)" "$(state_get "$1" FRONTEND_ACTIVE)"
}

# Compose commands that only read: they must not create the deploy state (`make config` on a fresh
# checkout changes nothing); without a state they see the initial one.
READ_ONLY_COMPOSE=(config ps logs images top port ls version)

# compose ENV ARGS...: docker compose with the environment's env file, deploy state and override.
# COMPOSE_PROFILES may be set by the caller (deploy.sh starts the idle colour that way).
compose() {
    local env="$1" colours
    shift
    colours="$(state_dir "${env}")/colours.env"
    if [[ ! -f "${colours}" && " ${READ_ONLY_COMPOSE[*]} " == *" ${1:-} "* ]]; then
        compose_files "${env}" <(initial_colours "${env}") "$@"
    else
        ensure_state "${env}"
        compose_files "${env}" "${colours}" "$@"
    fi
}

# compose_files ENV STATE_FILE ARGS...: the docker compose call (STATE_FILE holds the colours).
compose_files() {
    COMPOSE_PROFILES="${COMPOSE_PROFILES:-$(active_profiles "$1")}" \
        docker compose --project-directory "${DEPLOY_DIR}" \
        --env-file "${DEPLOY_DIR}/env/$1.env" --env-file "$2" \
        -f "${DEPLOY_DIR}/compose.yaml" -f "${DEPLOY_DIR}/compose.$1.yaml" "${@:3}"
}

# redeploy_running ENV APP: a blue-green redeploy of the version APP runs, so that a new colour
# picks up a changed env file or Compose setting (apply.sh, rotate-secret.sh).
redeploy_running() {
    local colour tag
    local -a extra=()
    colour="$(state_get "$1" "${2^^}_ACTIVE")"
    tag="$(state_get "$1" "${2^^}_${colour^^}_TAG")"
    [[ -n "${tag}" ]] || tag="$(env_file_value "$1" APP_VERSION)"
    # The version already runs here: redeploying it adds no risk that a mutable tag would.
    [[ "${tag}" =~ ${IMMUTABLE_TAG} ]] || extra=(--allow-mutable-tag)
    "${DEPLOY_DIR}/scripts/deploy.sh" "$1" "${tag}" --only "$2" --force --no-pull "${extra[@]}"
}

# take_lock ENV WAIT_SECONDS WHAT: one deploy, apply, rotation, restore or upgrade per environment at a
# time. The lock is released when the calling script exits (the descriptor closes).
take_lock() {
    local dir
    # A script started by the holder (apply.sh runs deploy.sh) inherits the locked descriptor.
    [[ "${DEPLOY_LOCK_HELD:-}" != "$1" ]] || return 0
    dir="$(state_dir "$1")"
    exec 9>"${dir}/deploy.lock"
    if ! flock -w "$2" 9; then
        die "another deploy of $1 holds ${dir}/deploy.lock ($(cat "${dir}/deploy.owner" 2>/dev/null || echo unknown)); retry later or pass --wait-lock SECONDS"
    fi
    printf 'pid %s: %s, since %s\n' "$$" "$3" "$(date -u +%FT%TZ)" >"${dir}/deploy.owner"
    export DEPLOY_LOCK_HELD="$1"
}

# confirm QUESTION: ask on the terminal; --yes (ASSUME_YES=1) answers for non-interactive use.
confirm() {
    [[ "${ASSUME_YES:-0}" == 1 ]] && return 0
    [[ -t 0 ]] || die "$1 -- refusing without a terminal; pass --yes to confirm"
    local answer
    read -r -p "$1 [y/N] " answer
    [[ "${answer}" == [yY] || "${answer}" == [yY][eE][sS] ]]
}
