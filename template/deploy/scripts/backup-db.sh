#!/usr/bin/env bash
# Consistent, compressed, timestamped dump of the application database, with retention and an
# optional hook that copies it off the host. Scheduled by scripts/install-backup-timer.sh.
set -Eeuo pipefail

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

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

retention_days=14
label=""
positional=()
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --retention-days) retention_days="${2:?--retention-days needs a number}"; shift ;;
        --label) label="-${2:?--label needs a name}"; shift ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) positional+=("$1") ;;
    esac
    shift
done
((${#positional[@]} == 1)) || { usage >&2; exit 2; }
env="${positional[0]}"
require_env "${env}"
[[ "${retention_days}" =~ ^[0-9]+$ ]] || die "--retention-days must be a whole number"
[[ -n "$(compose "${env}" ps -q mysql 2>/dev/null)" ]] || die "the mysql service of ${env} is not running"

dir="${REPO_ROOT}/backups/${env}"
mkdir -p "${dir}"
chmod 700 "${dir}" # dumps contain every user's data
database="$(compose "${env}" exec -T mysql printenv MYSQL_DATABASE | tr -d '\r')"
file="${dir}/${database}-$(date -u +%Y%m%dT%H%M%SZ)${label}.sql.gz"

log "backup: dumping ${database} of ${env}"
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
log "backup: wrote ${file} ($(du -h "${file}" | cut -f1))"

find "${dir}" -name "*.sql.gz" -type f -mtime +"${retention_days}" -print -delete | sed 's/^/backup: expired /' >&2

copy_command="${BACKUP_COPY_COMMAND:-$(sed -n 's/^BACKUP_COPY_COMMAND=//p' "${REPO_ROOT}/env/${env}.env" | tail -n 1)}"
if [[ -n "${copy_command}" ]]; then
    log "backup: copying off the host with: ${copy_command} <file>"
    read -r -a copy_argv <<<"${copy_command}"
    "${copy_argv[@]}" "${file}" || die "BACKUP_COPY_COMMAND failed; the local backup ${file} is kept"
fi
printf '%s\n' "${file}"
