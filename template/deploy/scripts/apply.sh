#!/usr/bin/env bash
# Applies changed configuration (env file, compose*.yaml, nginx/, MySQL and Redis settings, the
# limits of a new host size) to a running server environment, each change the cheapest way that
# does not interrupt it:
#   backend, frontend         a blue-green redeploy of the version they run (scripts/deploy.sh)
#   nginx/                    nginx -t, then a graceful reload
#   CPU and memory limits     docker update on the running container (edge, MySQL, Redis)
#   MySQL buffer pool and max_connections (docker/mysql/conf.d/petory.cnf): SET GLOBAL, online
# What only a restart applies (another image, volume or port of the edge, MySQL or Redis; Redis'
# maxmemory, since CONFIG is disabled) is listed and done only when named with --restart.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/apply.sh <env> [options]

Compares what runs in <env> with the configuration on disk and applies every difference without
downtime: the backend and frontend through a blue-green redeploy of their running version, nginx
by a graceful reload, limits with docker update, the MySQL buffer pool and connection limit online.
Changes that need a restart of the edge, MySQL or Redis are listed, with their cost, and applied
only with --restart; until then the command exits with status 3.

Options:
  --restart SERVICE   also recreate SERVICE (edge, mysql or redis) if its definition changed;
                      repeat for several. The edge refuses connections for about 2 s, MySQL and
                      Redis are unavailable until healthy again
  --dry-run           print what would be applied, change nothing
  --wait-lock SECONDS wait that long for a deploy of <env> to finish (default: refuse)
  -h, --help          this help
USAGE
}

restart=()
dry_run=0
wait_lock=0
OPTIONS=(--restart= --dry-run --wait-lock=)

option() {
    case "$1" in
        --restart)
            [[ "$2" =~ ^(edge|mysql|redis)$ ]] || usage_error "--restart takes edge, mysql or redis"
            restart+=("$2")
            ;;
        --dry-run) dry_run=1 ;;
        --wait-lock) require_number "$1" "$2"; wait_lock="$2" ;;
    esac
}

# Services with no traffic of their own (certificate renewal): recreated whenever they changed.
HELPERS=(certbot cert-reload)
# SERVICE:VARIABLE read only when the data directory is initialised: a new value (a rotated
# password, scripts/rotate-secret.sh) needs no new container.
INIT_ONLY_ENV=(mysql:APP_DB_PASSWORD)
MIB=$((1024 * 1024))

declare -a actions=() # "KIND SERVICE DETAIL" in the order they are applied
declare -a pending=() # restarts not asked for
work=""               # the snapshot of what runs and what is wanted (snapshot)

# --- what runs, what is wanted ---------------------------------------------------------------------
# Read once into ${work}: the desired configuration and hashes, and what every running container has.

compose_active() { COMPOSE_PROFILES="$(active_profiles "${env}")" compose "${env}" "$@"; }

snapshot() {
    local -a ids
    compose_active config --format json >"${work}/config.json"
    compose_active config --hash '*' >"${work}/desired.hash"
    compose_active ps --format '{{.ID}}' >"${work}/ids"
    mapfile -t ids <"${work}/ids"
    ((${#ids[@]})) || die "${env} is not running; start it with its first deploy (make deploy ENV=${env})"
    docker inspect "${ids[@]}" >"${work}/inspect.json"
    mkdir -p "$(state_dir "${env}")/created-limits"
    python3 "${DEPLOY_DIR}/scripts/lib/compose_snapshot.py" "${work}" "$(state_dir "${env}")/created-limits" "${INIT_ONLY_ENV[@]}"
    # The desired hashes once more, with the limits each container was created with (and INIT_ONLY_ENV).
    compose_active -f "${work}/running-limits.json" config --hash '*' >"${work}/running-limits.hash"
}

# containers SERVICE: ids of the service's running containers.
containers() { awk -F'\t' -v s="$1" '$1 == s { print $2 }' "${work}/running.tsv"; }

# desired SERVICE FIELD: cpus (hundredths), memory, reservation (bytes) or replicas.
desired() {
    awk -F'\t' -v s="$1" -v f="$2" '$1 == s { print (f == "cpus") ? $2 : (f == "memory") ? $3 : (f == "reservation") ? $4 : $5 }' "${work}/desired.tsv"
}

# running SERVICE: "CPUs memory reservation swap hash" of its (first) running container.
running() { awk -F'\t' -v s="$1" '$1 == s { print $3, $4, $5, $6, $7; exit }' "${work}/running.tsv"; }

# hash_of FILE SERVICE: the service's hash in a `config --hash` listing.
hash_of() { awk -v s="$2" '$1 == s { print $2 }' "${work}/$1"; }

cpus_text() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 100 }'; }

# --- planning --------------------------------------------------------------------------------------

plan_app() {
    local app="$1" colour service wanted id
    colour="$(state_get "${env}" "${app^^}_ACTIVE")"
    service="${app}-${colour}"
    [[ -n "$(containers "${service}")" ]] || die "${service} does not run in ${env}; deploy a version first (make deploy ENV=${env})"
    wanted="$(hash_of desired.hash "${service}")"
    local -a ids
    mapfile -t ids < <(containers "${service}")
    if ((${#ids[@]} != $(desired "${service}" replicas))); then
        actions+=("redeploy ${app} ${#ids[@]} -> $(desired "${service}" replicas) replicas")
        return
    fi
    for id in "${ids[@]}"; do
        if [[ "$(awk -F'\t' -v i="${id}" '$2 == i { print $7 }' "${work}/running.tsv")" != "${wanted}" ]]; then
            actions+=("redeploy ${app} its environment or Compose settings changed")
            return
        fi
    done
}

# plan_service SERVICE: limits to update in place, and whether only a new container applies the rest.
plan_service() {
    local service="$1" cpus memory reservation hash
    [[ -n "$(containers "${service}")" ]] || return 0
    read -r cpus memory reservation _ hash < <(running "${service}")
    # The desired definition with today's limits hashes like the container: only the limits differ.
    [[ "$(hash_of running-limits.hash "${service}")" == "${hash}" ]] || plan_restart "${service}" "its Compose definition changed (image, environment, volumes, ports or command)"
    [[ "${cpus} ${memory} ${reservation}" != "$(desired "${service}" cpus) $(desired "${service}" memory) $(desired "${service}" reservation)" ]] || return 0
    if [[ " ${pending[*]} ${actions[*]} " == *" ${service}: "* || " ${actions[*]} " == *" recreate ${service} "* ]] &&
        (($(desired "${service}" memory) < memory)); then
        # A smaller limit under settings that only the restart changes (Redis' maxmemory) could be
        # too small for them: the new container gets both together.
        log "apply: ${service}: the smaller limit waits for its restart"
        return 0
    fi
    actions+=("limits ${service} $(limits_text "${service}")")
}

# plan_restart SERVICE REASON: helpers are recreated at once; the edge, MySQL and Redis only when asked.
plan_restart() {
    if [[ " ${HELPERS[*]} " == *" $1 "* || " ${restart[*]} " == *" $1 "* ]]; then
        [[ " ${actions[*]} " == *" recreate $1 "* ]] || actions+=("recreate $1 $2")
    else
        [[ " ${pending[*]} " == *" $1:"* ]] || pending+=("$1: $2")
    fi
}

limits_text() {
    local cpus memory reservation
    read -r cpus memory reservation _ _ < <(running "$1")
    printf '%s CPUs / %s MB -> %s CPUs / %s MB (reservation %s -> %s MB)' \
        "$(cpus_text "${cpus}")" "$((memory / MIB))" "$(cpus_text "$(desired "$1" cpus)")" "$(($(desired "$1" memory) / MIB))" \
        "$((reservation / MIB))" "$(($(desired "$1" reservation) / MIB))"
}

plan_edge_reload() {
    [[ "$(cat "$(state_dir "${env}")/edge/loaded.sha256" 2>/dev/null)" == "$(edge_files_sum)" ]] ||
        actions+=("reload edge nginx/ changed since the edge last loaded it")
}

# mysql_sql SQL: run SQL as root inside the mysql container (the password stays there).
mysql_sql() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    compose "${env}" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B -e "$1"' sh "$1"
}

# mysql_setting NAME: the value of NAME in docker/mysql/conf.d/petory.cnf, sizes in bytes.
mysql_setting() {
    local value
    value="$(sed -n "s/^$1 *= *\([0-9]*[KMG]\{0,1\}\).*/\1/p" "${DEPLOY_DIR}/docker/mysql/conf.d/petory.cnf" | tail -n 1)"
    case "${value}" in
        *K) echo $((${value%K} * 1024)) ;;
        *M) echo $((${value%M} * MIB)) ;;
        *G) echo $((${value%G} * 1024 * MIB)) ;;
        *) echo "${value}" ;;
    esac
}

# The server settings that follow the host size and change online.
MYSQL_ONLINE=(innodb_buffer_pool_size max_connections)

plan_mysql_settings() {
    local name wanted now
    [[ -n "$(containers mysql)" ]] || return 0
    for name in "${MYSQL_ONLINE[@]}"; do
        wanted="$(mysql_setting "${name}")"
        [[ -n "${wanted}" ]] || continue
        now="$(mysql_sql "SELECT @@GLOBAL.${name}")"
        # InnoDB rounds the buffer pool up to whole chunks: within a chunk of the file's value is equal.
        if [[ "${name}" == innodb_buffer_pool_size ]] && ((now >= wanted && now - wanted < 128 * MIB)); then continue; fi
        [[ "${now}" == "${wanted}" ]] || actions+=("set-global mysql ${name} ${now} -> ${wanted}")
    done
}

plan_redis_settings() {
    local wanted now
    [[ -n "$(containers redis)" ]] || return 0
    wanted="$(sed -n 's/^maxmemory \([0-9]*\)mb.*/\1/p' "${DEPLOY_DIR}/docker/redis/redis.conf")"
    # shellcheck disable=SC2016 # expanded by the container's shell
    now="$(compose "${env}" exec -T redis sh -c 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli info memory' | tr -d '\r' | sed -n 's/^maxmemory://p')"
    [[ -z "${wanted}" || "${now}" == "$((wanted * MIB))" ]] ||
        plan_restart redis "maxmemory $((now / MIB)) MB -> ${wanted} MB in docker/redis/redis.conf (CONFIG is disabled, so only a restart reads it)"
}

# --- applying --------------------------------------------------------------------------------------

update_limits() {
    local service="$1" id cpus memory reservation swap record new_memory new_swap
    new_memory="$(desired "${service}" memory)"
    for id in $(containers "${service}"); do
        read -r cpus memory reservation swap < <(awk -F'\t' -v i="${id}" '$2 == i { print $3, $4, $5, $6 }' "${work}/running.tsv")
        # What the container was created with: its Compose hash stays reproducible (lib/compose_snapshot.py).
        record="$(state_dir "${env}")/created-limits/${id}"
        [[ -f "${record}" ]] || echo "${cpus} ${memory} ${reservation}" >"${record}"
        # Keep the container's swap allowance in the same proportion (Docker's default is 2x memory).
        new_swap=-1
        if ((swap > 0 && memory > 0)); then new_swap=$((new_memory * swap / memory)); fi
        docker update --cpus "$(cpus_text "$(desired "${service}" cpus)")" \
            --memory "${new_memory}" --memory-swap "${new_swap}" \
            --memory-reservation "$(desired "${service}" reservation)" "${id}" >/dev/null ||
            die "docker update of ${service} failed; its old limits stay in force"
    done
}

set_global() {
    local started=${SECONDS}
    mysql_sql "SET GLOBAL $1 = $2" || die "SET GLOBAL $1 = $2 failed on MySQL; the old value stays in force"
    if [[ "$1" == innodb_buffer_pool_size ]]; then
        # The resize runs in the background in chunks; wait until the server reports the new size.
        until (($(mysql_sql "SELECT @@GLOBAL.innodb_buffer_pool_size") >= $2)); do
            ((SECONDS - started < 600)) || die "the buffer pool resize did not finish within 600 s; see SHOW STATUS LIKE 'Innodb_buffer_pool_resize%'"
            sleep 1
        done
    fi
    log "apply: mysql: $1 = $2 ($((SECONDS - started)) s)"
}

reload_edge() {
    compose "${env}" exec -T edge nginx -t -q || die "nginx -t fails with the new nginx/ files; the edge keeps its configuration"
    compose "${env}" exec -T edge nginx -s reload || die "nginx did not reload"
    record_edge_files "${env}"
}

recreate() {
    compose "${env}" up -d --no-deps --force-recreate --wait --wait-timeout 300 "$1" >/dev/null ||
        die "$1 did not become healthy after being recreated; see make logs ENV=${env} SERVICE=$1"
}

# apply KIND SERVICE DETAIL...
apply() {
    log "apply: $2: $1 (${*:3})"
    case "$1" in
        limits) update_limits "$2" ;;
        set-global) set_global "$3" "$6" ;;
        redeploy) redeploy_running "${env}" "$2" || die "the redeploy of $2 failed (traffic stayed on its running colour); the actions after it were not applied" ;;
        reload) reload_edge ;;
        recreate) recreate "$2" ;;
    esac
}

# phase ACTION: when an action runs (1 to 6). Memory is given back before it is taken: on a smaller host
# the buffer pool shrinks before MySQL's limit does, on a larger one the limit grows first. Fewer
# MySQL connections only after the apps were redeployed with smaller pools (both colours hold a
# pool while a deploy switches), more of them before.
phase() {
    local kind service name now wanted
    read -r kind service name now _ wanted <<<"$1"
    case "${kind}" in
        set-global)
            if [[ "${name}" == innodb_buffer_pool_size ]]; then
                ((wanted < now)) && echo 1 || echo 3
            else
                ((wanted < now)) && echo 5 || echo 3
            fi
            ;;
        limits) [[ "${service}" == edge ]] && echo 5 || echo 2 ;;
        redeploy) echo 4 ;;
        reload) echo 5 ;;
        # A restarted MySQL or Redis serves the new apps (a new TLS setting, say); the edge goes
        # after the apps, the certificate helpers last.
        recreate)
            case "${service}" in
                mysql | redis) echo 2 ;;
                edge) echo 5 ;;
                *) echo 6 ;;
            esac
            ;;
    esac
}

sorted_actions() {
    local action
    for action in "${actions[@]}"; do printf '%s %s\n' "$(phase "${action}")" "${action}"; done | sort -s -n -k1,1 | cut -d' ' -f2-
}

main() {
    local service action
    parse_args 1 1 "$@"
    env="${POSITIONAL[0]}"
    require_env "${env}"
    [[ " ${SERVER_ENVIRONMENTS[*]} " == *" ${env} "* ]] || die "${env} is not a server environment; make up ENV=${env} applies changes there"
    require_docker
    ensure_state "${env}"
    ((dry_run)) || take_lock "${env}" "${wait_lock}" "apply"

    log "apply: ${env}: validating the configuration"
    compose "${env}" config --quiet || die "docker compose config fails for ${env}; nothing was applied"
    work="$(mktemp -d)"
    trap 'rm -rf "${work}"' EXIT
    snapshot
    [[ -n "$(containers edge)" ]] || die "the edge of ${env} is not running; start ${env} with make deploy ENV=${env}"
    compose "${env}" exec -T edge nginx -t -q || die "nginx -t fails with the new nginx/ files; nothing was applied"

    plan_mysql_settings
    plan_redis_settings
    for service in mysql redis; do plan_service "${service}"; done
    for service in backend frontend; do plan_app "${service}"; done
    plan_service edge
    plan_edge_reload
    for service in "${HELPERS[@]}"; do plan_service "${service}"; done
    for service in "${restart[@]}"; do
        [[ " ${actions[*]} " == *" recreate ${service} "* ]] || log "apply: ${service}: nothing that needs a restart changed; not restarted"
    done

    if ((${#actions[@]} == 0)); then
        log "apply: ${env} already runs its configuration; nothing to do"
    fi
    local -a ordered words
    mapfile -t ordered < <(sorted_actions) # read before acting: the actions' own commands read stdin
    for action in "${ordered[@]}"; do
        [[ -n "${action}" ]] || continue
        if ((dry_run)); then log "apply: would ${action}"; else read -r -a words <<<"${action}"; apply "${words[@]}"; fi
    done

    if ((${#pending[@]})); then
        for action in "${pending[@]}"; do log "apply: needs a restart: ${action}"; done
        log "apply: apply them with: scripts/apply.sh ${env} $(printf -- '--restart %s ' "${pending[@]%%:*}")(interrupts those services briefly)"
        exit 3
    fi
    ((dry_run)) || log "apply: done: ${env} runs its configuration"
}

main "$@"
