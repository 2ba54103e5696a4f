#!/usr/bin/env bash
# Restores a dump made by scripts/backup-db.sh into the running MySQL of an environment.
# The current data is dumped first (label pre-restore), so a wrong restore can be undone.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/restore-db.sh <env> <backup.sql.gz> [--yes]

Replaces the application database of <env> with the dump. Asks for confirmation unless --yes.
USAGE
}

OPTIONS=(--yes) # confirmation, handled by parse_args

main() {
    local env dump
    parse_args 2 2 "$@"
    env="${POSITIONAL[0]}"
    dump="${POSITIONAL[1]}"
    require_env "${env}"
    [[ -f "${dump}" && -r "${dump}" ]] || die "cannot read ${dump}"
    gzip -t "${dump}" 2>/dev/null || die "${dump} is not a valid gzip file"
    require_docker

    ensure_state "${env}"
    take_lock "${env}" 0 "restore of ${dump}" # no deploy may start while the data is replaced
    confirm "Replace the ${env} database with ${dump}? Current data is backed up first." || die "cancelled; nothing changed"
    log "restore: safety backup of the current data"
    "${DEPLOY_DIR}/scripts/backup-db.sh" "${env}" --label pre-restore >/dev/null
    log "restore: loading ${dump} into ${env}"
    # shellcheck disable=SC2016 # expanded by the container's shell
    zcat "${dump}" | compose "${env}" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot --default-character-set=utf8mb4' ||
        die "the restore failed; the pre-restore backup is in backups/${env}/"
    log "restore: done"
}

main "$@"
