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

MySQL 8.0 -> 8.4 LTS (8.0's support ended in April 2026): answer mysql_image=mysql:8.4, then
run this. The generated configuration is valid for both; 8.4 upgrades the data directory on its
first start. Refused before anything changes: accounts on mysql_native_password (8.4 no longer
loads it; move them with ALTER USER ... IDENTIFIED WITH caching_sha2_password BY '...'), and
any downgrade (8.4 -> 8.0 cannot reuse the data directory: restore the pre-upgrade dump into an
empty 8.0 instead).
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

# sql ENV STATEMENT: STATEMENT as root over the socket in the mysql container; rows, no header.
sql() {
    # shellcheck disable=SC2016 # expanded by the container's shell; the password stays in there
    compose "$1" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B -e "$1"' sh "$2"
}

# major_minor VERSION: "8.4" of 8.4.3, 8.4-oraclelinux9 or mysql:8.4 (empty when there is none).
major_minor() { [[ "${1##*:}" =~ ^([0-9]+)\.([0-9]+) ]] && printf '%s' "${BASH_REMATCH[0]}"; }

# check_mysql_path ENV: refuse what MySQL itself would refuse after the restart, while nothing
# has changed yet.
check_mysql_path() {
    local version running target accounts
    version="$(sql "$1" 'SELECT VERSION()')"
    [[ "${version}" != *MariaDB* ]] || return 0 # MariaDB numbers its versions apart from MySQL's
    running="$(major_minor "${version}")"
    target="$(major_minor "$(compose "$1" config --images mysql)")"
    [[ -n "${running}" && -n "${target}" ]] || return 0 # an image by digest: nothing to compare
    if [[ "$(printf '%s\n' "${running}" "${target}" | sort -V | head -n 1)" != "${running}" ]]; then
        die "MySQL ${running} -> ${target} is a downgrade, which cannot reuse the data directory: restore the pre-upgrade dump from backups/$1/ into an empty ${target} instead"
    fi
    [[ "$(printf '%s\n' 8.4 "${target}" | sort -V | head -n 1)" == 8.4 ]] || return 0
    accounts="$(sql "$1" "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE plugin = 'mysql_native_password'" | tr '\n' ' ')"
    [[ -z "${accounts// /}" ]] ||
        die "MySQL ${target} does not load mysql_native_password, used by: ${accounts% }; first ALTER USER each IDENTIFIED WITH caching_sha2_password BY '<its password>'"
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
    [[ "${service}" != mysql ]] || check_mysql_path "${env}"
    confirm "Upgrade ${service} of ${env}? The service is unavailable while it restarts." || die "cancelled"
    backup_first "${env}" "${service}"
    log "upgrade: pulling and recreating ${service}"
    compose "${env}" pull "${service}" || log "upgrade: pull failed; using the local image if present"
    # The TLS files the new configuration may name (db_tls), before the server reads it.
    if [[ "${service}" == mysql && -x "${DEPLOY_DIR}/scripts/db-tls.sh" ]]; then "${DEPLOY_DIR}/scripts/db-tls.sh" install "${env}"; fi
    compose "${env}" up -d --no-deps --wait --wait-timeout 300 "${service}" || die "${service} did not become healthy; restore from backups/${env}/"
    log "upgrade: ${service} of ${env} is healthy"
    # Once the server refuses plaintext, the application's account needs TLS too (REQUIRE SSL).
    if [[ "${service}" == mysql && -x "${DEPLOY_DIR}/scripts/db-tls.sh" ]]; then "${DEPLOY_DIR}/scripts/db-tls.sh" install "${env}"; fi
}

main "$@"
