#!/usr/bin/env bash
# A consistent dump of the application database that is proven before it counts: restored into a
# throwaway MySQL container as it is written, every table compared with the source's snapshot,
# encrypted with age on its way to the disk (backup/age-recipients.txt), then copied off the host.
# Older dumps expire only after a new one is verified. Scheduled by scripts/install-backup-timer.sh.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/metrics.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/metrics.sh"
# shellcheck source=scripts/lib/backup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/backup.sh"

usage() {
    cat <<USAGE
Usage: scripts/backup-db.sh <env> [--retention-days N] [--label NAME]

Dumps the database of <env> with mysqldump --single-transaction (one consistent InnoDB snapshot;
the application keeps running) and, as the dump is written, restores it into a throwaway MySQL
container (the mysql service's image, no network, removed afterwards) and compares each table's
rows and CHECKSUM TABLE with the source in the dump's own snapshot. Only a dump that matches is
kept: backups/<env>/<database>-<UTC time>[-label].sql.gz, or .sql.gz.age when
backup/age-recipients.txt names a recipient; then it is encrypted to them on its way to the disk,
and no plaintext is ever written. Dumps older than N days (default 14) are deleted after that.
Then BACKUP_COPY_COMMAND, if set, runs with the new dump as its last argument and BACKUP_ENV=<env>
in its environment (only encrypted dumps leave the host), e.g. the ready hook
BACKUP_COPY_COMMAND=scripts/offsite-sftp.sh with BACKUP_SFTP_TARGET (set both in the environment
or, unquoted, in env/<env>.env; words are split on spaces, no shell quoting; a relative path is
taken from the folder of compose.yaml).
It refuses up front when backups/<env>/ has less free space than 1.5 x the previous dump; a full
disk or any other write error fails it with the directory and its free bytes, leaving nothing
partial and every older dump in place.
USAGE
}

retention_days=14
label=""
OPTIONS=(--retention-days= --label=)
# This run's temporary things, removed at exit whatever happens (cleanup).
PARTIAL="" SCRATCH="" WORK=""

option() {
    case "$1" in
        --retention-days) require_number "$1" "$2"; retention_days="$2" ;;
        --label)
            [[ "$2" =~ ^[A-Za-z0-9_.-]+$ ]] || usage_error "--label takes letters, digits, '.', '_' and '-' only"
            label="-$2"
            ;;
    esac
}

cleanup() {
    local -a pids
    mapfile -t pids < <(jobs -p)
    ((${#pids[@]} == 0)) || kill "${pids[@]}" 2>/dev/null || true
    [[ -z "${PARTIAL}" ]] || rm -f "${PARTIAL}"
    [[ -z "${SCRATCH}" ]] || scratch_remove "${SCRATCH}"
    [[ -z "${WORK}" ]] || rm -rf "${WORK}"
}

# recipients_file: backup/age-recipients.txt when it names a recipient, checked by age itself;
# nothing when the dumps stay unencrypted.
recipients_file() {
    local file="${DEPLOY_DIR}/backup/age-recipients.txt" error
    [[ -f "${file}" ]] && grep -qv -e '^[[:space:]]*#' -e '^[[:space:]]*$' "${file}" || return 0
    command -v age >/dev/null ||
        die "age is not installed (apt-get install age), and backup/age-recipients.txt names the recipients to encrypt dumps to; nothing written"
    if ! error="$(age --encrypt --recipients-file "${file}" </dev/null 2>&1 >/dev/null)"; then
        error="${error%%$'\n'*}" # age's first line says it; the last part names the line
        die "backup/age-recipients.txt: ${error##*: }; nothing written"
    fi
    printf '%s' "${file}"
}

# write_failed FILE REASON: stop, naming a full disk as such, with the directory and its free bytes.
write_failed() {
    local dir kind="write error"
    dir="$(dirname "$1")"
    shopt -s nocasematch
    if [[ "$2" == *"no space left on device"* || "$2" == *"disk quota exceeded"* ]]; then kind="the disk is full"; fi
    shopt -u nocasematch
    die "${kind}: writing ${1##*/} failed (${2:-no reason given}); ${dir} has $(free_bytes "${dir}") bytes free; nothing of this backup is kept, older dumps are untouched"
}

# prepare_dir DIR ENV: one backup of ENV at a time, the dumps' folder (mode 0700: every user's
# data), and no partial file of an interrupted run in it.
prepare_dir() {
    local error lock
    lock="$(state_dir "$2")/backup.lock"
    mkdir -p "${lock%/*}"
    exec 8>>"${lock}"
    flock -n 8 || die "another backup of $2 is running (it holds ${lock})"
    error="$(mkdir -p "$1" 2>&1 && chmod 700 "$1" 2>&1)" || write_failed "$1/" "${error##*: }"
    find "$1" -maxdepth 1 -name '*.partial' -type f -print -delete | sed 's/^/backup: removed the partial dump of an interrupted run: /' >&2
}

# check_space DIR: refuse before anything is written when DIR cannot hold 1.5 x the previous dump.
check_space() {
    local previous size free
    previous="$(newest_dump "$1")"
    [[ -n "${previous}" ]] || return 0
    size="$(stat -c %s "${previous}")"
    free="$(free_bytes "$1")"
    ((free * 2 >= size * 3)) ||
        die "not enough free space for a new dump: $1 has ${free} bytes free, less than 1.5 x the previous dump (${previous##*/}, ${size} bytes); nothing written"
}

# dump_and_verify ENV DATABASE FILE RECIPIENTS: FILE written (through age to RECIPIENTS, if any)
# and its content restored into a throwaway container and compared with the source, table by table.
# The restore reads the compressed plaintext on its way into age (a tee), so what is proven is
# byte for byte what gets encrypted, no plaintext file is ever written (nor needs the disk twice),
# and FILE only takes its name once the comparison has passed.
dump_and_verify() {
    local env="$1" database="$2" file="$3" recipients="$4" began report service project
    local -a sink=(cat)
    [[ -z "${recipients}" ]] || sink=(age --encrypt --recipients-file "${recipients}")
    began="${EPOCHREALTIME/./}"
    service="$(compose "${env}" ps -q mysql)"
    project="$(docker inspect --format '{{index .Config.Labels "com.docker.compose.project"}}' "${service}")"
    scratch_remove_stale "backup-${project}" # this run holds the lock: any other is a leftover
    SCRATCH="${project}-backup-check-${EPOCHSECONDS}-$$"
    scratch_start "${SCRATCH}" "$(docker inspect --format '{{.Image}}' "${service}")" "backup-${project}"
    scratch_wait "${SCRATCH}"
    log "backup: throwaway MySQL container ready in $(seconds_since "${began}") s"
    log "backup: dumping ${database} of ${env} to ${file}${recipients:+, encrypted to $(grep -cv -e '^[[:space:]]*#' -e '^[[:space:]]*$' "${recipients}") age recipient(s)}, restoring it as it is written"
    began="${EPOCHREALTIME/./}"
    PARTIAL="${file}.partial"
    if ! snapshot_stream "${env}" "${SCRATCH}" "${WORK}" "${PARTIAL}" "${sink[@]}"; then
        case "${STREAM_FAILED}" in
            write) write_failed "${file}" "${STREAM_REASON}" ;;
            dump) die "mysqldump failed: ${STREAM_REASON:-no reason given}; nothing of this backup is kept, older dumps are untouched" ;;
            *) die "the dump did not restore into the throwaway MySQL container: ${STREAM_REASON}; nothing of this backup is kept, older dumps are untouched" ;;
        esac
    fi
    log "backup: $(stat -c %s "${PARTIAL}") bytes written and restored in $(seconds_since "${began}") s; writes waited $((LOCK_MICROSECONDS / 1000)) ms for the snapshot"
    began="${EPOCHREALTIME/./}"
    scratch_stats "${SCRATCH}" "${database}" >"${WORK}/restored.stats"
    if ! report="$(stats_compare "${WORK}/source.stats" "${WORK}/restored.stats")"; then
        printf '%s\n' "${report}" | sed 's/^/backup: /' >&2
        die "the restored dump differs from the source's snapshot; nothing of this backup is kept, older dumps are untouched"
    fi
    printf '%s\n' "${report}" | sed 's/^/backup: /' >&2
    log "backup: compared in $(seconds_since "${began}") s"
    scratch_remove "${SCRATCH}"
    SCRATCH=""
    chmod 600 "${PARTIAL}"
    mv "${PARTIAL}" "${file}" 2>"${WORK}/write.log" || write_failed "${file}" "$(<"${WORK}/write.log")"
    PARTIAL=""
}

# copy_off_host ENV FILE: run BACKUP_COPY_COMMAND (environment first, then env/<env>.env) on FILE;
# fails when none is set.
copy_off_host() {
    local command
    local -a argv
    command="${BACKUP_COPY_COMMAND:-$(env_file_value "$1" BACKUP_COPY_COMMAND)}"
    [[ -n "${command}" ]] || return 1
    [[ "$2" == *.age ]] ||
        die "not copied off the host: backup/age-recipients.txt names no recipient, and unencrypted dumps never leave the host (BACKUP_COPY_COMMAND is set); the local dump $2 is kept"
    read -r -a argv <<<"${command}"
    [[ "${argv[0]}" != */* || "${argv[0]}" == /* ]] || argv[0]="${DEPLOY_DIR}/${argv[0]}"
    log "backup: copying off the host with: ${command} <file>"
    BACKUP_ENV="$1" "${argv[@]}" "$2" || die "BACKUP_COPY_COMMAND failed; the local backup $2 is kept"
}

# export_metrics ENV FILE COPIED_AT: the last verified dump: when it ended, how long it took, its
# size, the rows it restored, how long writes waited, and when a dump last left the host.
export_metrics() {
    local copied="${3:-$(metrics_value backup "$1" petory_backup_last_copy_timestamp_seconds)}"
    local -a samples=(
        "$(metric petory_backup_last_success_timestamp_seconds "${EPOCHSECONDS}" env="$1")"
        "$(metric petory_backup_last_duration_seconds "${SECONDS}" env="$1")"
        "$(metric petory_backup_last_size_bytes "$(stat -c %s "$2")" env="$1")"
        "$(metric petory_backup_last_verified_rows "$(stats_total "${WORK}/restored.stats")" env="$1")"
        "$(metric petory_backup_last_write_lock_seconds "$(printf '%d.%06d' "$((LOCK_MICROSECONDS / 1000000))" "$((LOCK_MICROSECONDS % 1000000))")" env="$1")"
    )
    [[ -z "${copied}" ]] || samples+=("$(metric petory_backup_last_copy_timestamp_seconds "${copied}" env="$1")")
    metrics_write backup "$1" "${samples[@]}"
}

main() {
    local env dir database file recipients
    parse_args 1 1 "$@"
    env="${POSITIONAL[0]}"
    require_env "${env}"
    require_docker
    [[ -n "$(compose "${env}" ps -q mysql 2>/dev/null)" ]] || die "the mysql service of ${env} is not running"
    recipients="$(recipients_file)"

    umask 077 # dumps contain every user's data, even while they are written
    dir="${DEPLOY_DIR}/backups/${env}"
    trap cleanup EXIT
    prepare_dir "${dir}" "${env}"
    check_space "${dir}"
    WORK="$(mktemp -d)"
    database="$(compose "${env}" exec -T mysql printenv MYSQL_DATABASE | tr -d '\r')"
    file="${dir}/${database}-$(date -u +%Y%m%dT%H%M%SZ)${label}.sql.gz${recipients:+.age}"

    SECONDS=0 # the backup's duration, for the metrics
    dump_and_verify "${env}" "${database}" "${file}" "${recipients}"
    log "backup: wrote ${file} ($(du -h "${file}" | cut -f1)), verified"
    export_metrics "${env}" "${file}"

    # Only now that a new dump is verified: older dumps expire.
    find "${dir}" -maxdepth 1 -type f \( -name '*.sql.gz' -o -name '*.sql.gz.age' \) -mtime +"${retention_days}" \
        ! -name "${file##*/}" -print -delete | sed 's/^/backup: expired /' >&2
    if copy_off_host "${env}" "${file}"; then export_metrics "${env}" "${file}" "${EPOCHSECONDS}"; fi
    printf '%s\n' "${file}"
}

main "$@"
