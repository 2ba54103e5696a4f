#!/usr/bin/env bash
# Restores a dump made by scripts/backup-db.sh into the running MySQL of an environment, and with
# --to rolls it forward to a point in time by replaying the binary logs scripts/ship-binlogs.sh
# shipped. The current data is dumped first (label pre-restore), so a wrong restore can be undone.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/backup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/backup.sh"

usage() {
    cat <<USAGE
Usage: scripts/restore-db.sh <env> <backup.sql.gz> [--to "YYYY-MM-DD HH:MM:SS+HH:MM"] [--identity FILE] [--yes]

Replaces the application database of <env> with the dump. Asks for confirmation unless --yes.
  --to        then replay the binary logs from the dump's position up to this instant (changes
              made before it are back, none made at or after it); the UTC offset is required,
              e.g. "2026-03-01 14:05:00+09:00". The latest binary logs are shipped first, so
              backups/<env>/binlog/ must hold every one since the dump.
  --identity  the age identity (private key) file that decrypts .age dumps and binary logs
              (default: \$BACKUP_AGE_IDENTITY)
USAGE
}

to=""
identity="${BACKUP_AGE_IDENTITY:-}"
OPTIONS=(--yes --to= --identity=) # --yes: confirmation, handled by parse_args
TO_FORMAT='^([0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})([+-])([01][0-9]):([0-5][0-9])$'
WORK_DIR=/tmp/petory-pitr # in the mysql container: the decrypted binary logs, while they replay
REPLAY_ENV="" # the environment whose container holds WORK_DIR

option() {
    case "$1" in
        --to) to="$2" ;;
        --identity) identity="$2" ;;
    esac
}

# utc_time LOCAL: "YYYY-MM-DD HH:MM:SS+HH:MM" as the same instant in UTC ("YYYY-MM-DD HH:MM:SS").
utc_time() {
    local epoch
    if [[ ! "$1" =~ ${TO_FORMAT} ]] || ((10#${BASH_REMATCH[3]} > 14)); then
        usage_error "--to takes \"YYYY-MM-DD HH:MM:SS+HH:MM\" (a time and its UTC offset, e.g. \"2026-03-01 14:05:00+09:00\"), not '$1'"
    fi
    epoch="$(date -u -d "$1" +%s 2>/dev/null)" || usage_error "--to '$1' is not a valid date and time"
    ((epoch <= $(date +%s))) || usage_error "--to '$1' is in the future"
    date -u -d "@${epoch}" '+%F %T'
}

# dump_time DUMP: the UTC time in a dump's name (<db>-YYYYmmddTHHMMSSZ...), as "YYYY-MM-DD HH:MM:SS".
dump_time() {
    [[ "${1##*/}" =~ -([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z[.-] ]] || return 0
    printf '%s-%s-%s %s:%s:%s' "${BASH_REMATCH[@]:1:6}"
}

# require_identity WHAT: the age identity file is given and readable, and age is installed.
require_identity() {
    [[ -n "${identity}" ]] || die "$1 is encrypted: pass --identity FILE (or set BACKUP_AGE_IDENTITY) with the age key of backup/age-recipients.txt"
    [[ -f "${identity}" && -r "${identity}" ]] || die "cannot read the age identity ${identity}"
    command -v age >/dev/null || die "age is not installed (apt-get install age); $1 is encrypted"
}

# plain FILE: FILE's content, decrypted when it ends in .age.
plain() {
    if [[ "$1" == *.age ]]; then age -d -i "${identity}" "$1"; else cat "$1"; fi
}

# binlog_position DUMP: "<file> <position>" where the dump's snapshot stood in the binary log, empty
# when it does not say: backup-db.sh writes it in the manifest at the dump's end (lib/backup.sh),
# mysqldump --source-data=2 (MySQL) or --master-data=2 (MariaDB) as a comment in the header.
binlog_position() {
    plain "$1" | gzip -dc | sed -n -E \
        -e "s/^${MANIFEST_PREFIX} binlog\t([A-Za-z0-9_.-]+\.[0-9]+)\t([0-9]+)\$/\1 \2/p" \
        -e "s/^-- CHANGE (MASTER|REPLICATION SOURCE) TO (MASTER|SOURCE)_LOG_FILE='([A-Za-z0-9_.-]+\.[0-9]+)', (MASTER|SOURCE)_LOG_POS=([0-9]+).*/\3 \5/p" |
        tail -n 1
}

# shipped_log ENV NAME NUMBER: the path of binary log NAME's NUMBERth sibling in
# backups/<env>/binlog/ (plain or .age), or nothing when it is not there.
shipped_log() {
    local path
    path="$(printf '%s/backups/%s/binlog/%s.%06d' "${DEPLOY_DIR}" "$1" "${2%.*}" "$3")"
    [[ -f "${path}" ]] || path+=".age"
    [[ ! -f "${path}" ]] || printf '%s\n' "${path}"
}

# binlogs_since ENV FIRST: the shipped binary logs from FIRST (the dump's) on, one path a line.
# When the server still writes FIRST's series, every one up to the last it has closed (none may
# be missing): its current one began after the shipping, so it holds nothing before --to. When
# its logs started again (a new data volume, e.g. on a new host), the shipped ones as far as they
# go without a gap.
binlogs_since() {
    local current number=$((10#${2##*.})) last path
    current="$(service_mysql "$1" -e 'SHOW BINARY LOGS' | cut -f1 | tail -n 1)"
    path="$(shipped_log "$1" "$2" "${number}")"
    [[ -n "${path}" ]] || die "$2, the binary log of the dump's position, is not in backups/$1/binlog/"
    if [[ "${current%.*}" == "${2%.*}" ]] && ((10#${current##*.} > number)); then
        last=$((10#${current##*.} - 1))
    else
        last="${number}"
        while [[ -n "$(shipped_log "$1" "$2" $((last + 1)))" ]]; do last=$((last + 1)); done
        log "restore: the server's binary logs started again (it writes ${current}); replaying the shipped ones up to $(printf '%s.%06d' "${2%.*}" "${last}")"
    fi
    for ((; number <= last; number++)); do
        path="$(shipped_log "$1" "$2" "${number}")"
        [[ -n "${path}" ]] || die "$(printf '%s.%06d' "${2%.*}" "${number}") is not in backups/$1/binlog/ (needed to replay from the dump's position); run scripts/ship-binlogs.sh $1"
        printf '%s\n' "${path}"
    done
}

# remove_work_dir: the EXIT trap of replay; no decrypted binary log stays in the container.
remove_work_dir() {
    [[ -z "${REPLAY_ENV}" ]] || compose "${REPLAY_ENV}" exec -T mysql rm -rf "${WORK_DIR}" || true
}

# replay ENV POSITION UNTIL LOGS...: apply the binary logs' changes to the application database,
# from POSITION in the first log to the last event before UNTIL (UTC). mysqlbinlog reads
# --stop-datetime in its own time zone, hence TZ=UTC for it; --no-defaults, as it refuses the
# [client] options of the mysql client's (default-character-set). A replay logs its changes again
# under their old GTIDs, which MariaDB's mysqlbinlog refuses to read later unless told to (MySQL's
# ignores the --loose- option it does not know).
replay() {
    local env="$1" position="$2" until="$3" path
    local -a names=()
    shift 3
    REPLAY_ENV="${env}"
    trap remove_work_dir EXIT
    # shellcheck disable=SC2016 # expanded by the container's shell
    compose "${env}" exec -T mysql sh -c 'rm -rf "$1" && mkdir -m 700 "$1"' sh "${WORK_DIR}"
    for path in "$@"; do
        names+=("$(basename "${path}" .age)")
        # shellcheck disable=SC2016 # expanded by the container's shell
        plain "${path}" | compose "${env}" exec -T mysql sh -c 'cat >"$1"' sh "${WORK_DIR}/${names[-1]}" ||
            die "could not copy ${path##*/} into the mysql container; the database holds the dump only"
    done
    # shellcheck disable=SC2016 # expanded by the container's shell
    compose "${env}" exec -T -e TZ=UTC -w "${WORK_DIR}" mysql bash -c 'set -o pipefail
        mysqlbinlog --no-defaults --loose-skip-gtid-strict-mode --start-position="$1" --stop-datetime="$2" --database="$MYSQL_DATABASE" "${@:3}" |
            MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql -uroot --default-character-set=utf8mb4' \
        replay "${position}" "${until}" "${names[@]}" ||
        die "replaying the binary logs failed; the database holds the dump and part of the logs, the pre-restore backup is in backups/${env}/"
}

main() {
    local env dump until="" taken error position="" first listing offset
    local -a logs=()
    parse_args 2 2 "$@"
    env="${POSITIONAL[0]}"
    dump="${POSITIONAL[1]}"
    require_env "${env}"
    [[ -z "${to}" ]] || until="$(utc_time "${to}")"
    [[ -f "${dump}" && -r "${dump}" ]] || die "cannot read ${dump}"
    if [[ -n "${to}" ]]; then
        taken="$(dump_time "${dump}")"
        [[ -z "${taken}" || ! "${until}" < "${taken}" ]] ||
            usage_error "--to ${to} (${until} UTC) is before the dump was taken (${taken} UTC); pick an older dump"
    fi
    [[ "${dump}" != *.age ]] || require_identity "${dump}"
    error="$( (plain "${dump}" | gzip -t) 2>&1)" || die "${dump} cannot be read as a compressed dump: ${error%%$'\n'*}"
    if [[ -n "${to}" ]]; then
        position="$(binlog_position "${dump}")"
        [[ -n "${position}" ]] || die "${dump} records no binary log position (dumps made before point-in-time recovery have none); restore it without --to"
    fi
    require_docker

    ensure_state "${env}"
    take_lock "${env}" 0 "restore of ${dump}" # no deploy may start while the data is replaced
    confirm "Replace the ${env} database with ${dump}${to:+, rolled forward to ${to}}? Current data is backed up first." || die "cancelled; nothing changed"
    if [[ -n "${to}" ]]; then
        # Closed now, everything before --to is in a log that binlogs_since checks was shipped,
        # even if shipping fails.
        log "restore: shipping the latest binary logs"
        service_mysql "${env}" -e 'FLUSH BINARY LOGS'
        "${DEPLOY_DIR}/scripts/ship-binlogs.sh" "${env}" >/dev/null ||
            log "restore: WARNING: ship-binlogs.sh failed; checking that backups/${env}/binlog/ has what the replay needs"
        first="${position%% *}"
        listing="$(binlogs_since "${env}" "${first}")"
        mapfile -t logs <<<"${listing}"
        [[ "${logs[*]}" != *.age* ]] || require_identity "the binary logs in backups/${env}/binlog/"
    fi
    log "restore: safety backup of the current data"
    "${DEPLOY_DIR}/scripts/backup-db.sh" "${env}" --label pre-restore >/dev/null
    log "restore: loading ${dump} into ${env}"
    # shellcheck disable=SC2016 # expanded by the container's shell
    plain "${dump}" | zcat | compose "${env}" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot --default-character-set=utf8mb4' ||
        die "the restore failed; the pre-restore backup is in backups/${env}/"
    if [[ -n "${to}" ]]; then
        offset="${position#* }"
        log "restore: replaying ${#logs[@]} binary logs from ${first}:${offset} up to ${until} UTC"
        replay "${env}" "${offset}" "${until}" "${logs[@]}"
    fi
    log "restore: done"
}

main "$@"
