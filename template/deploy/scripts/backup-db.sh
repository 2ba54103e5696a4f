#!/usr/bin/env bash
# Consistent, compressed, timestamped dump of the application database, with retention and an
# optional hook that copies it off the host. Scheduled by scripts/install-backup-timer.sh.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/metrics.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/metrics.sh"

usage() {
    cat <<USAGE
Usage: scripts/backup-db.sh <env> [--retention-days N] [--label NAME]

Writes backups/<env>/<database>-<UTC time>[-label].sql.gz with mysqldump --single-transaction
(a consistent InnoDB snapshot without locking the application out), checks the archive, deletes
dumps older than N days (default 14), then runs BACKUP_COPY_COMMAND if set, with the file as its
last argument: a command or small script of yours that copies one file off the host, e.g.
BACKUP_COPY_COMMAND=/usr/local/bin/petory-offsite-copy (set it in the environment or, unquoted,
in env/<env>.env; words are split on spaces, no shell quoting).
USAGE
}

retention_days=14
label=""
OPTIONS=(--retention-days= --label=)

option() {
    case "$1" in
        --retention-days) require_number "$1" "$2"; retention_days="$2" ;;
        --label)
            [[ "$2" =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "--label takes letters, digits, '.', '_' and '-' only"
            label="-$2"
            ;;
    esac
}

# dump ENV FILE: mysqldump of the application database into FILE, checked before it counts.
dump() {
    local env="$1" file="$2"
    # The root password stays inside the container (MYSQL_PWD from its own environment).
    # shellcheck disable=SC2016 # expanded by the container's shell
    if ! compose "${env}" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysqldump -uroot \
            --single-transaction --quick --routines --triggers --events --hex-blob \
            --default-character-set=utf8mb4 --databases "$MYSQL_DATABASE"' | gzip -9 >"${file}.partial"; then
        rm -f "${file}.partial"
        die "mysqldump failed; no backup written"
    fi
    gzip -t "${file}.partial" || die "the compressed dump is corrupt: ${file}.partial"
    zcat "${file}.partial" | tail -n 1 | grep -q "Dump completed" || die "the dump is incomplete: ${file}.partial"
    mv "${file}.partial" "${file}"
    chmod 600 "${file}"
}

# copy_off_host ENV FILE: run BACKUP_COPY_COMMAND (environment first, then env/<env>.env) on FILE.
copy_off_host() {
    local command
    local -a argv
    command="${BACKUP_COPY_COMMAND:-$(env_file_value "$1" BACKUP_COPY_COMMAND)}"
    [[ -n "${command}" ]] || return 0
    log "backup: copying off the host with: ${command} <file>"
    read -r -a argv <<<"${command}"
    "${argv[@]}" "$2" || die "BACKUP_COPY_COMMAND failed; the local backup $2 is kept"
}

# export_metrics ENV FILE: when the last verified dump ended, how long it took, its size.
export_metrics() {
    metrics_write backup "$1" \
        "$(metric petory_backup_last_success_timestamp_seconds "$(date +%s)" env="$1")" \
        "$(metric petory_backup_last_duration_seconds "${SECONDS}" env="$1")" \
        "$(metric petory_backup_last_size_bytes "$(stat -c %s "$2")" env="$1")"
}

main() {
    local env dir database file
    parse_args 1 1 "$@"
    env="${POSITIONAL[0]}"
    require_env "${env}"
    require_docker
    [[ -n "$(compose "${env}" ps -q mysql 2>/dev/null)" ]] || die "the mysql service of ${env} is not running"

    dir="${DEPLOY_DIR}/backups/${env}"
    mkdir -p "${dir}"
    chmod 700 "${dir}" # dumps contain every user's data
    database="$(compose "${env}" exec -T mysql printenv MYSQL_DATABASE | tr -d '\r')"
    file="${dir}/${database}-$(date -u +%Y%m%dT%H%M%SZ)${label}.sql.gz"

    SECONDS=0 # the dump's duration, for the metrics
    log "backup: dumping ${database} of ${env}"
    dump "${env}" "${file}"
    log "backup: wrote ${file} ($(du -h "${file}" | cut -f1))"
    export_metrics "${env}" "${file}"

    find "${dir}" -name "*.sql.gz" -type f -mtime +"${retention_days}" -print -delete | sed 's/^/backup: expired /' >&2
    copy_off_host "${env}" "${file}"
    printf '%s\n' "${file}"
}

main "$@"
