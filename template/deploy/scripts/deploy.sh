#!/usr/bin/env bash
# Zero-downtime deploy of one version of the backend and frontend images (blue-green).
#
# For each app: start the idle colour with the new image, wait for its health check, send a smoke
# request to it through the edge's preview server, switch the edge to it (nginx -t, then a
# graceful reload), let the old nginx workers finish their requests, then stop the old colour
# gracefully. If anything fails before the switch, the new colour is removed and traffic never
# left the old one. MySQL and Redis are never touched.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/metrics.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/metrics.sh"

usage() {
    cat <<USAGE
Usage: scripts/deploy.sh <env> <version> [options]

Deploys image tag <version> of the backend and frontend to <env> with zero downtime, and rolls
back automatically on failure. <version> is an immutable tag: sha-<commit> (7 to 40 hex digits)
or a release MAJOR.MINOR.PATCH (v1.2.3 or 1.2.3); tags such as latest or main are refused.

Options:
  --only backend|frontend   deploy one app only (default: both, backend first)
  --no-pull                 use images already on this host (rollback, locally built images)
  --wait-lock SECONDS       wait that long for another deploy of <env> to finish (default: refuse)
  --drain-timeout SECONDS   longest time old nginx workers may need to finish requests (default 90)
  --keep-images N           previous versions kept on the host for rollback (default 5, minimum 3)
  --force                   replace the apps even if they already run <version> (applies changed
                            env files or compose settings with zero downtime)
  --allow-mutable-tag       deploy any other valid tag, with a warning (what runs can then change
                            under the same tag, and a rollback to it may not restore it)
  -h, --help                this help
USAGE
}

# --- options -------------------------------------------------------------------------------------
apps=(backend frontend)
pull=1
wait_lock=0
drain_timeout=90
keep_images=5
force=0
allow_mutable_tag=0
OPTIONS=(--only= --no-pull --wait-lock= --drain-timeout= --keep-images= --force --allow-mutable-tag)

option() {
    case "$1" in
        --only) [[ "$2" =~ ^(backend|frontend)$ ]] || usage_error "--only takes backend or frontend"; apps=("$2") ;;
        --no-pull) pull=0 ;;
        --wait-lock) require_number "$1" "$2"; wait_lock="$2" ;;
        --drain-timeout) require_number "$1" "$2"; drain_timeout="$2" ;;
        --keep-images) require_number "$1" "$2" 3; keep_images="$2" ;; # rollback needs versions to go back to
        --force) force=1 ;;
        --allow-mutable-tag) allow_mutable_tag=1 ;;
    esac
}

# --- what the exit trap cleans up or records -----------------------------------------------------
pending_service=""   # started, not yet receiving traffic: removed if the script stops early
draining_service=""  # no longer receiving traffic, not yet stopped: stopped if the script stops early
switched=0           # apps switched to the new version (recorded in the history even on a later failure)
previous_idle_tag="" # the idle colour's tag before this deploy: restored if the new colour fails
declare -A repos=()  # app -> image repository (no tag), from the Compose configuration

# --- Compose and the edge ------------------------------------------------------------------------

# compose_with SERVICE ARGS...: compose with SERVICE's profile added to the active colours'.
compose_with() {
    COMPOSE_PROFILES="$(active_profiles "${env}"),$1" compose "${env}" "${@:2}"
}

# image_repo APP: the app's image repository as Compose resolves it (env file, BACKEND_IMAGE...).
# `config --images` also lists the images of the service's dependencies, in no fixed order: a tag
# that no other image has picks out the service's line.
image_repo() {
    local probe=deploy-sh-probe
    declare -x "${1^^}_BLUE_TAG=${probe}" # the environment wins over --env-file in Compose
    COMPOSE_PROFILES="$1-blue" compose "${env}" config --images "$1-blue" | sed -n "s/:${probe}\$//p"
}

image_of() { printf '%s:%s' "${repos[$1]}" "${version}"; }

# health_timeout IMAGE: seconds to wait for a new container: start period + retries x (interval +
# timeout) of the image's HEALTHCHECK (Docker's defaults where unset), plus 10 s.
health_timeout() {
    local start=0 interval=0 timeout=0 retries=0
    read -r start interval timeout retries < <(docker image inspect --format \
        '{{with .Config.Healthcheck}}{{printf "%d %d %d %d" .StartPeriod .Interval .Timeout .Retries}}{{end}}' "$1") || true
    ((interval)) || interval=30000000000 # durations are in nanoseconds
    ((timeout)) || timeout=30000000000
    ((retries)) || retries=3
    printf '%d' $(((start + retries * (interval + timeout)) / 1000000000 + 10))
}

# wait_ready SERVICE TIMEOUT: wait until every container of SERVICE is healthy. Gives up at once
# when one exits or restarts, and when its health check got an HTTP error twice in a row: the
# application is up and says it is not well, so waiting out the start period would change nothing
# (curl -f exits 22 on an HTTP error; a refused connection, 7, means it is still starting).
# Prints the reason and returns 1 on failure.
wait_ready() {
    local service="$1" deadline=$((SECONDS + $2)) id status code restarts health checks ready
    local -a ids
    while :; do
        mapfile -t ids < <(compose_with "${service}" ps -a -q "${service}" 2>/dev/null)
        ready=$((${#ids[@]} > 0))
        for id in "${ids[@]}"; do
            read -r status code restarts health checks < <(docker inspect --format \
                '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}} {{with .State.Health}}{{.Status}} {{range .Log}}{{.ExitCode}},{{end}}{{else}}none -{{end}}' \
                "${id}" 2>/dev/null) || { ready=0; continue; }
            if [[ "${status}" == exited || "${status}" == dead || "${status}" == restarting ]] || ((restarts > 0)); then
                printf 'a container exited with status %s' "${code}"
                return 1
            fi
            if [[ "${health}" == unhealthy || "${checks}" == *22,22, ]]; then
                printf 'it answers its health check with an HTTP error (it runs, but reports itself unhealthy)'
                return 1
            fi
            [[ "${status}" == running && ( "${health}" == healthy || "${health}" == none ) ]] || ready=0
        done
        ((ready)) && return 0
        if ((SECONDS >= deadline)); then
            printf 'health check did not pass within %ss' "$2"
            return 1
        fi
        sleep 1
    done
}

edge_running() { [[ -n "$(compose "${env}" ps -q edge 2>/dev/null)" ]]; }
edge_exec() { compose "${env}" exec -T edge "$@"; }

# old_workers: nginx workers still finishing requests after a reload ("[s]" keeps grep's own
# command line, which contains the pattern, from matching).
old_workers() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    edge_exec sh -c 'n=0; for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f" 2>/dev/null | grep -q "[s]hutting down" && n=$((n+1)); done; echo $n' || echo 0
}

# smoke APP: one request through the edge's preview server to the idle colour.
smoke() {
    local path=/ deadline=$((SECONDS + 20)) # the preview upstream re-resolves names every 10 s
    [[ "$1" == backend ]] && path=/actuator/health
    until edge_exec curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:8082${path}" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

# switch_edge APP COLOUR: point the edge's APP traffic at COLOUR (nginx -t, then a graceful
# reload); on failure the previous active.conf is put back.
switch_edge() {
    local backend frontend previous="${state}/edge/active.conf.previous"
    backend="$(state_get "${env}" BACKEND_ACTIVE)"
    frontend="$(state_get "${env}" FRONTEND_ACTIVE)"
    if [[ "$1" == backend ]]; then backend="$2"; else frontend="$2"; fi
    cp "${state}/edge/active.conf" "${previous}"
    write_edge_state "${env}" "${backend}" "${frontend}"
    if ! edge_exec nginx -t -q; then
        mv "${previous}" "${state}/edge/active.conf"
        return 1
    fi
    if ! edge_exec nginx -s reload; then
        mv "${previous}" "${state}/edge/active.conf"
        return 1
    fi
    record_edge_files "${env}"
}

# --- one app ---------------------------------------------------------------------------------------

# fail_idle APP COLOUR REASON: remove the new colour, keep traffic where it is, exit 1.
fail_idle() {
    local service="$1-$2"
    log "deploy: ${service} failed: $3; last log lines:"
    compose "${env}" logs --no-color --tail 30 "${service}" >&2 || true
    compose_with "${service}" rm -s -f "${service}" >/dev/null 2>&1 || true
    state_set "${env}" "${1^^}_${2^^}_TAG" "${previous_idle_tag}"
    pending_service=""
    die "deploy of ${version} to ${env} aborted: $3. Traffic stayed on $1-$(other_colour "$2"); no ${service} container remains"
}

# drain APP COLOUR: wait for the old nginx workers, then stop the colour that no longer serves.
drain() {
    local service="$1-$2" deadline=$((SECONDS + drain_timeout))
    draining_service="${service}"
    log "deploy: $1: draining ${service} (waiting for old nginx workers, at most ${drain_timeout}s)"
    sleep 1 # the reload is asynchronous: give the master a moment to start the new workers
    while (($(old_workers) > 0)) && ((SECONDS < deadline)); do sleep 1; done
    # SIGTERM: Spring Boot finishes in-flight requests within its shutdown phase (stop_grace_period).
    compose_with "${service}" stop "${service}" >/dev/null 2>&1
    compose_with "${service}" rm -f "${service}" >/dev/null 2>&1
    draining_service=""
}

deploy_app() {
    local app="$1" image active idle service timeout reason upper="${1^^}"
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
    previous_idle_tag="$(state_get "${env}" "${upper}_${idle^^}_TAG")"
    state_set "${env}" "${upper}_${idle^^}_TAG" "${version}"
    pending_service="${service}"
    compose_with "${service}" up -d --no-deps "${service}" >/dev/null 2>&1 ||
        fail_idle "${app}" "${idle}" "Compose could not start it"
    if ! reason="$(wait_ready "${service}" "${timeout}")"; then
        fail_idle "${app}" "${idle}" "${reason}"
    fi
    log "deploy: ${app}: ${service} is healthy; smoke request through the edge preview"
    smoke "${app}" || fail_idle "${app}" "${idle}" "smoke request through nginx failed"

    log "deploy: ${app}: switching the edge from ${active} to ${idle}"
    switch_edge "${app}" "${idle}" || fail_idle "${app}" "${idle}" "nginx refused the switched configuration (nginx -t or reload)"
    state_set "${env}" "${upper}_ACTIVE" "${idle}"
    pending_service=""
    switched=$((switched + 1))
    drain "${app}" "${active}"
    log "deploy: ${app}: ${version} is live on ${idle}"
}

# --- whole stack -----------------------------------------------------------------------------------

# first_deploy: no edge runs yet (also after `make down`): start everything, the colours that
# were active last time with the new version.
first_deploy() {
    local app colour
    log "deploy: first deploy of ${env}: starting the whole stack with ${version}"
    for app in backend frontend; do
        colour="$(state_get "${env}" "${app^^}_ACTIVE")"
        state_set "${env}" "${app^^}_${colour^^}_TAG" "${version}"
    done
    switched=2
    "${DEPLOY_DIR}/scripts/init-certificates.sh" "${env}"
    if ! compose "${env}" up -d --wait --wait-timeout 600; then
        compose "${env}" logs --no-color --tail 30 >&2 || true
        die "first deploy of ${version} to ${env} failed: services did not become healthy (logs above)"
    fi
    record_edge_files "${env}"
}

# preflight: refuse before anything changes: a broken configuration, an image that cannot be had.
preflight() {
    local app
    log "deploy: validating the configuration"
    compose "${env}" config --quiet || die "docker compose config failed for ${env}"
    if edge_running; then
        edge_exec nginx -t -q || die "nginx -t fails on the running edge; fix the configuration before deploying"
    fi
    for app in backend frontend; do
        repos[${app}]="$(image_repo "${app}")" && [[ -n "${repos[${app}]}" ]] ||
            die "cannot read the ${app} image from the Compose configuration"
    done
    for app in "${apps[@]}"; do
        if ((pull)); then
            log "deploy: pulling $(image_of "${app}")"
            docker pull --quiet "$(image_of "${app}")" >/dev/null || die "cannot pull $(image_of "${app}"); nothing was changed"
        else
            docker image inspect "$(image_of "${app}")" >/dev/null 2>&1 ||
                die "$(image_of "${app}") is not on this host (--no-pull); nothing was changed"
        fi
    done
}

# prune_images: remove images of versions deployed here before but older than the last N; never
# an image that this script did not deploy (it may be pre-pulled for the next deploy).
prune_images() {
    local versions keep app tag
    [[ -f "${state}/history" ]] || return 0
    versions="$(awk '{print $3}' "${state}/history" | tac | awk '!seen[$0]++')"
    keep="$(head -n "${keep_images}" <<<"${versions}" | tr '\n' ' ')"
    for app in backend frontend; do
        while read -r tag; do
            [[ -z "${tag}" || " ${keep} " == *" ${tag} "* ]] && continue
            if docker image rm "${repos[${app}]}:${tag}" >/dev/null 2>&1; then log "deploy: pruned ${repos[${app}]}:${tag}"; fi
        done <<<"${versions}"
    done
}

# record_history NOTE: the version is (at least partly) live.
record_history() {
    printf '%s %s %s backend=%s frontend=%s%s\n' "$(date -u +%FT%TZ)" "${env}" "${version}" \
        "$(state_get "${env}" BACKEND_ACTIVE)" "$(state_get "${env}" FRONTEND_ACTIVE)" "$1" >>"${state}/history"
    printf '%s\n' "${version}" >"${state}/current"
}

# export_metrics STATUS: the deploy metrics of the environment (lib/metrics.sh): this run's
# outcome, the previous run's other timestamp, and the version and colour each app serves.
export_metrics() {
    local now app colour tag success failure
    local -a samples=()
    now="$(date +%s)"
    success="$(metrics_value deploy "${env}" petory_deploy_last_success_timestamp_seconds)"
    failure="$(metrics_value deploy "${env}" petory_deploy_last_failure_timestamp_seconds)"
    if (($1 == 0)); then success="${now}"; else failure="${now}"; fi
    [[ -z "${success}" ]] || samples+=("$(metric petory_deploy_last_success_timestamp_seconds "${success}" env="${env}")")
    [[ -z "${failure}" ]] || samples+=("$(metric petory_deploy_last_failure_timestamp_seconds "${failure}" env="${env}")")
    for app in backend frontend; do
        colour="$(state_get "${env}" "${app^^}_ACTIVE")"
        tag="$(state_get "${env}" "${app^^}_${colour^^}_TAG")"
        [[ -z "${tag}" ]] || samples+=("$(metric petory_deploy_version_info 1 env="${env}" app="${app}" version="${tag}" colour="${colour}")")
    done
    metrics_write deploy "${env}" "${samples[@]}"
}

# finish: on any exit, never leave a half-started or half-stopped colour behind, record what went
# live, and export the outcome.
finish() {
    local status=$?
    if [[ -n "${pending_service}" ]]; then
        log "deploy: interrupted: removing ${pending_service}, which never received traffic"
        compose_with "${pending_service}" rm -s -f "${pending_service}" >/dev/null 2>&1 || true
    fi
    if [[ -n "${draining_service}" ]]; then
        log "deploy: interrupted: stopping ${draining_service}, which no longer receives traffic"
        compose_with "${draining_service}" rm -s -f "${draining_service}" >/dev/null 2>&1 || true
    fi
    if ((switched > 0)); then
        record_history " partial" # one app switched before a later step failed
    fi
    export_metrics "${status}" || true
}

main() {
    parse_args 2 2 "$@"
    env="${POSITIONAL[0]}"
    version="${POSITIONAL[1]}"
    require_env "${env}"
    require_tag "${version}" "${allow_mutable_tag}"
    require_docker
    ensure_state "${env}"
    state="$(state_dir "${env}")"
    take_lock "${env}" "${wait_lock}" "deploy of ${version}" # one deploy per environment at a time
    trap finish EXIT
    trap 'exit 130' INT TERM

    log "deploy: ${env} -> ${version} ($(IFS=,; echo "${apps[*]}"))"
    preflight
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
}

main "$@"
