#!/usr/bin/env bash
# Zero-downtime deploy of one version of the backend and frontend images (blue-green).
#
# For each app: start the idle colour with the new image, wait for its health check, send a smoke
# request to it through the edge's preview server, switch the edge to it (nginx -t, then a
# graceful reload), let the old nginx workers finish their requests, then stop the old colour
# gracefully. If anything fails before the switch, the new colour is removed and traffic never
# left the old one. MySQL and Redis are never touched.
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: scripts/deploy.sh <env> <version> [options]

Deploys image tag <version> (immutable: sha-<commit> or a release tag, never 'latest') of the
backend and frontend to <env> with zero downtime, and rolls back automatically on failure.

Options:
  --only backend|frontend   deploy one app only (default: both, backend first)
  --no-pull                 use images already on this host (rollback, locally built images)
  --wait-lock SECONDS       wait that long for another deploy of <env> to finish (default: refuse)
  --drain-timeout SECONDS   longest time old nginx workers may need to finish requests (default 90)
  --keep-images N           previous versions kept on the host for rollback (default 5, minimum 3)
  --force                   replace the apps even if they already run <version> (applies changed
                            env files or compose settings with zero downtime)
  -h, --help                this help
USAGE
}

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

apps=(backend frontend)
pull=1
wait_lock=0
drain_timeout=90
keep_images=5
previous_idle_tag=""
force=0
pending_service=""  # started, not yet receiving traffic: removed if the script stops early
draining_service="" # no longer receiving traffic, not yet stopped: stopped if the script stops early
switched=0          # apps switched to the new version (recorded in the history even on a later failure)
positional=()
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --only) [[ "${2:-}" =~ ^(backend|frontend)$ ]] || die "--only takes backend or frontend"; apps=("$2"); shift ;;
        --no-pull) pull=0 ;;
        --wait-lock) wait_lock="${2:?--wait-lock needs seconds}"; shift ;;
        --drain-timeout) drain_timeout="${2:?--drain-timeout needs seconds}"; shift ;;
        --keep-images) keep_images="${2:?--keep-images needs a number}"; shift ;;
        --force) force=1 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) positional+=("$1") ;;
    esac
    shift
done
((${#positional[@]} == 2)) || { usage >&2; exit 2; }
env="${positional[0]}"
version="${positional[1]}"
require_env "${env}"
[[ "${version}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'${version}' is not a valid image tag"
[[ "${version}" != latest ]] || die "refusing the mutable tag 'latest': deploy an immutable tag (sha-<commit> or a release)"
((keep_images >= 3)) || die "--keep-images must be at least 3, so that rollback has versions to go back to"

ensure_state "${env}"
state="$(state_dir "${env}")"

# --- one deploy per environment at a time ------------------------------------------------------
take_lock "${env}" "${wait_lock}" "deploy of ${version}"

env_value() { sed -n "s/^$1=//p" "${REPO_ROOT}/env/${env}.env" | tail -n 1; }
image_of() {
    local app="$1" repo
    repo="${BACKEND_IMAGE:-}"
    [[ "${app}" == frontend ]] && repo="${FRONTEND_IMAGE:-}"
    if [[ -z "${repo}" ]]; then
        repo="$(COMPOSE_PROFILES="${app}-blue" compose "${env}" config --format json 2>/dev/null | python3 -c "
import json, sys
print(json.load(sys.stdin)['services']['${app}-blue']['image'].rsplit(':', 1)[0])")" ||
            die "cannot read the ${app} image from the Compose configuration"
    fi
    printf '%s:%s' "${repo}" "${version}"
}

# health_timeout IMAGE: seconds to wait for a new container: start period + retries x (interval + timeout).
health_timeout() {
    local seconds
    seconds="$(docker image inspect --format '{{json .Config.Healthcheck}}' "$1" | python3 -c '
import json, sys
hc = json.load(sys.stdin) or {}
ns = lambda key, default: hc.get(key) or default * 10**9
print(int((ns("StartPeriod", 0) + hc.get("Retries", 3) * (ns("Interval", 30) + ns("Timeout", 30))) / 10**9) + 10)')"
    printf '%s' "${seconds}"
}

edge_running() { [[ -n "$(compose "${env}" ps -q edge 2>/dev/null)" ]]; }
edge_exec() { compose "${env}" exec -T edge "$@"; }

# write_edge_state BACKEND_ACTIVE FRONTEND_ACTIVE: the nginx maps; the preview is the idle colour.
write_edge_state() {
    local file="${state}/edge/active.conf" tmp
    tmp="$(mktemp "${state}/edge/.active.XXXXXX")"
    cat >"${tmp}" <<MAPS
# Written by scripts/deploy.sh at $(date -u +%FT%TZ) for version ${version}. Do not edit by hand:
# use scripts/deploy.sh or scripts/rollback.sh.
map "" \$backend_upstream { default backend_$1; }
map "" \$frontend_upstream { default frontend_$2; }
map "" \$backend_preview_upstream { default backend_$(other_colour "$1"); }
map "" \$frontend_preview_upstream { default frontend_$(other_colour "$2"); }
MAPS
    chmod 644 "${tmp}"
    mv "${tmp}" "${file}" # a new inode in the mounted directory: nginx sees it at the next reload
}

# old_workers: nginx workers still finishing requests after a reload ("[s]" keeps grep's own
# command line, which contains the pattern, from matching).
old_workers() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    edge_exec sh -c 'n=0; for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f" 2>/dev/null | grep -q "[s]hutting down" && n=$((n+1)); done; echo $n' || echo 0
}

smoke() { # smoke APP: one request through the edge's preview server to the idle colour
    local path=/
    [[ "$1" == backend ]] && path=/actuator/health
    local deadline=$((SECONDS + 20)) # the preview upstream re-resolves names every 10 s
    until edge_exec curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:8082${path}" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

fail_idle() { # fail_idle APP COLOUR REASON: remove the new colour, keep traffic where it is, exit 1
    local service="$1-$2"
    log "deploy: ${service} failed: $3; last log lines:"
    compose "${env}" logs --no-color --tail 30 "${service}" >&2 || true
    COMPOSE_PROFILES="$(active_profiles "${env}"),${service}" compose "${env}" rm -s -f "${service}" >/dev/null 2>&1 || true
    state_set "${env}" "${1^^}_${2^^}_TAG" "${previous_idle_tag}"
    pending_service=""
    die "deploy of ${version} to ${env} aborted: $3. Traffic stayed on $1-$(other_colour "$2"); no ${service} container remains"
}

deploy_app() {
    local app="$1" image active idle service timeout upper="${1^^}"
    image="$(image_of "${app}")"
    active="$(state_get "${env}" "${upper}_ACTIVE")"
    idle="$(other_colour "${active}")"
    service="${app}-${idle}"
    if ((!force)) && [[ "$(state_get "${env}" "${upper}_${active^^}_TAG")" == "${version}" ]] &&
        [[ -n "$(compose "${env}" ps -q "${app}-${active}")" ]]; then
        log "deploy: ${app} already runs ${version} (${active}); nothing to do (--force replaces it anyway)"
        return
    fi
    timeout="$(health_timeout "${image}")"
    log "deploy: ${app}: starting ${service} with ${image} (health timeout ${timeout}s)"
    previous_idle_tag="$(state_get "${env}" "${upper}_${idle^^}_TAG")" # restored if this colour fails
    state_set "${env}" "${upper}_${idle^^}_TAG" "${version}"
    pending_service="${service}"
    if ! COMPOSE_PROFILES="$(active_profiles "${env}"),${service}" \
        compose "${env}" up -d --no-deps --wait --wait-timeout "${timeout}" "${service}" >/dev/null 2>&1; then
        fail_idle "${app}" "${idle}" "health check did not pass within ${timeout}s"
    fi
    log "deploy: ${app}: ${service} is healthy; smoke request through the edge preview"
    smoke "${app}" || fail_idle "${app}" "${idle}" "smoke request through nginx failed"

    log "deploy: ${app}: switching the edge from ${active} to ${idle}"
    local backend_colour frontend_colour
    backend_colour="$(state_get "${env}" BACKEND_ACTIVE)"
    frontend_colour="$(state_get "${env}" FRONTEND_ACTIVE)"
    [[ "${app}" == backend ]] && backend_colour="${idle}" || frontend_colour="${idle}"
    cp "${state}/edge/active.conf" "${state}/edge/active.conf.previous"
    write_edge_state "${backend_colour}" "${frontend_colour}"
    if ! edge_exec nginx -t -q; then
        mv "${state}/edge/active.conf.previous" "${state}/edge/active.conf"
        fail_idle "${app}" "${idle}" "nginx -t refused the switched configuration"
    fi
    if ! edge_exec nginx -s reload; then
        mv "${state}/edge/active.conf.previous" "${state}/edge/active.conf"
        fail_idle "${app}" "${idle}" "nginx -s reload failed"
    fi
    state_set "${env}" "${upper}_ACTIVE" "${idle}"
    pending_service=""
    draining_service="${app}-${active}"
    switched=$((switched + 1))

    log "deploy: ${app}: draining ${app}-${active} (waiting for old nginx workers, at most ${drain_timeout}s)"
    local deadline=$((SECONDS + drain_timeout))
    sleep 1 # the reload is asynchronous: give the master a moment to start the new workers
    while (($(old_workers) > 0)) && ((SECONDS < deadline)); do sleep 1; done
    # SIGTERM: Spring Boot finishes in-flight requests within its shutdown phase (stop_grace_period).
    COMPOSE_PROFILES="$(active_profiles "${env}"),${app}-${active}" compose "${env}" stop "${app}-${active}" >/dev/null 2>&1
    COMPOSE_PROFILES="$(active_profiles "${env}"),${app}-${active}" compose "${env}" rm -f "${app}-${active}" >/dev/null 2>&1
    draining_service=""
    log "deploy: ${app}: ${version} is live on ${idle}"
}

first_deploy() {
    log "deploy: first deploy of ${env}: starting the whole stack with ${version}"
    # (Also after `make down`: the colours that were active start again, with the new version.)
    for app in backend frontend; do
        state_set "${env}" "${app^^}_$(state_get "${env}" "${app^^}_ACTIVE" | tr '[:lower:]' '[:upper:]')_TAG" "${version}"
    done
    switched=2
    "${REPO_ROOT}/scripts/init-certificates.sh" "${env}"
    if ! compose "${env}" up -d --wait --wait-timeout 600; then
        compose "${env}" logs --no-color --tail 30 >&2 || true
        die "first deploy of ${version} to ${env} failed: services did not become healthy (logs above)"
    fi
}

prune_images() {
    # Remove images of versions deployed here before but older than the last N; never an image
    # that was not deployed by this script (it may be pre-pulled for the next deploy).
    local versions keep
    [[ -f "${state}/history" ]] || return 0
    versions="$(awk '{print $3}' "${state}/history" | tac | awk '!seen[$0]++')"
    keep="$(head -n "${keep_images}" <<<"${versions}" | tr '\n' ' ')"
    for app in backend frontend; do
        local repo
        repo="$(image_of "${app}")"
        repo="${repo%:*}"
        while read -r tag; do
            [[ -z "${tag}" || " ${keep} " == *" ${tag} "* ]] && continue
            if docker image rm "${repo}:${tag}" >/dev/null 2>&1; then log "deploy: pruned ${repo}:${tag}"; fi
        done <<<"${versions}"
    done
}

# --- main ------------------------------------------------------------------------------------------
log "deploy: ${env} -> ${version} ($(IFS=,; echo "${apps[*]}"))"
log "deploy: validating the configuration"
compose "${env}" config --quiet || die "docker compose config failed for ${env}"
if edge_running; then
    edge_exec nginx -t -q || die "nginx -t fails on the running edge; fix the configuration before deploying"
fi
if ((pull)); then
    for app in "${apps[@]}"; do
        log "deploy: pulling $(image_of "${app}")"
        docker pull --quiet "$(image_of "${app}")" >/dev/null || die "cannot pull $(image_of "${app}"); nothing was changed"
    done
else
    for app in "${apps[@]}"; do
        docker image inspect "$(image_of "${app}")" >/dev/null 2>&1 ||
            die "$(image_of "${app}") is not on this host (--no-pull); nothing was changed"
    done
fi

record_history() { # record_history NOTE: the version is (at least partly) live
    printf '%s %s %s backend=%s frontend=%s%s\n' "$(date -u +%FT%TZ)" "${env}" "${version}" \
        "$(state_get "${env}" BACKEND_ACTIVE)" "$(state_get "${env}" FRONTEND_ACTIVE)" "$1" >>"${state}/history"
    printf '%s\n' "${version}" >"${state}/current"
}

# On any exit: never leave a half-started or half-stopped colour behind, and record what went live.
finish() {
    if [[ -n "${pending_service}" ]]; then
        log "deploy: interrupted: removing ${pending_service}, which never received traffic"
        COMPOSE_PROFILES="$(active_profiles "${env}"),${pending_service}" compose "${env}" rm -s -f "${pending_service}" >/dev/null 2>&1 || true
    fi
    if [[ -n "${draining_service}" ]]; then
        log "deploy: interrupted: stopping ${draining_service}, which no longer receives traffic"
        COMPOSE_PROFILES="$(active_profiles "${env}"),${draining_service}" compose "${env}" rm -s -f "${draining_service}" >/dev/null 2>&1 || true
    fi
    if ((switched > 0)); then
        record_history " partial" # one app switched before a later step failed
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

if edge_running; then
    for app in "${apps[@]}"; do deploy_app "${app}"; done
else
    first_deploy
fi
if ((switched > 0)); then
    record_history ""
    switched=0
fi
prune_images
log "deploy: done: ${env} runs ${version}"
