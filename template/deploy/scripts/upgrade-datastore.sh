#!/usr/bin/env bash
# The one way to upgrade MySQL or Redis: back up first, then replace the container with the image
# now named in compose.yaml, and wait for its health check. Deploys never touch these services.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/upgrade-datastore.sh <env> <mysql|redis> [--yes]

Before: change the image (copier update --data mysql_image=... or edit compose.yaml) and commit.
Steps: backup (mysqldump, or a Redis BGSAVE copied to backups/<env>/), pull the new image,
recreate only that service, wait until healthy. Data volumes are kept.
USAGE
}

OPTIONS=(--yes) # confirmation, handled by parse_args

# backup_first ENV SERVICE: a copy of the data to go back to if the new version misbehaves.
backup_first() {
    local dir="${DEPLOY_DIR}/backups/$1"
    if [[ "$2" == mysql ]]; then
        log "upgrade: backing up MySQL first"
        "${DEPLOY_DIR}/scripts/backup-db.sh" "$1" --label "pre-upgrade" >/dev/null
    else
        log "upgrade: saving a Redis snapshot first"
        mkdir -p "${dir}"
        # shellcheck disable=SC2016 # expanded by the container's shell
        compose "$1" exec -T redis sh -c 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli SAVE' >/dev/null
        compose "$1" exec -T redis cat /data/dump.rdb >"${dir}/redis-$(date -u +%Y%m%dT%H%M%SZ)-pre-upgrade.rdb"
    fi
}

main() {
    local env service
    parse_args 2 2 "$@"
    env="${POSITIONAL[0]}"
    service="${POSITIONAL[1]}"
    require_env "${env}"
    [[ "${service}" == mysql || "${service}" == redis ]] || usage_error "the service must be mysql or redis, not '${service}'"
    require_docker
    [[ -n "$(compose "${env}" ps -q "${service}")" ]] || die "${service} of ${env} is not running"

    ensure_state "${env}"
    take_lock "${env}" 0 "upgrade of ${service}"
    confirm "Upgrade ${service} of ${env}? The service is unavailable while it restarts." || die "cancelled"
    backup_first "${env}" "${service}"
    log "upgrade: pulling and recreating ${service}"
    compose "${env}" pull "${service}" || log "upgrade: pull failed; using the local image if present"
    compose "${env}" up -d --no-deps --wait --wait-timeout 300 "${service}" || die "${service} did not become healthy; restore from backups/${env}/"
    log "upgrade: ${service} of ${env} is healthy"
}

main "$@"
