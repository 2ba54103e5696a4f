#!/usr/bin/env bash
# Ships MySQL's binary logs: closes the current one, copies every closed one not yet shipped into
# backups/<env>/binlog/ (encrypted to backup/age-recipients.txt when it lists recipients), then off
# the host with BACKUP_COPY_COMMAND. scripts/restore-db.sh --to replays them up to a point in time.
# Run every few minutes by the timer of scripts/install-backup-timer.sh; prints and exports the RPO.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/metrics.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/metrics.sh"
# shellcheck source=scripts/lib/backup.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/backup.sh"

usage() {
    cat <<USAGE
Usage: scripts/ship-binlogs.sh <env> [--interval MINUTES]

FLUSH BINARY LOGS, then every closed binary log of <env>'s MySQL that is not yet in
backups/<env>/binlog/ is copied there byte for byte (as <name>.age when backup/age-recipients.txt
lists a recipient), and BACKUP_COPY_COMMAND (as for backup-db.sh) runs once on each encrypted
one; one that failed is retried at the next run. Shipped copies go when the server has expired the
binary log too (binlog_expire_logs_seconds). Safe to run again at any time.
Prints the RPO: the data a lost host would take with it, at most the larger of the interval and
the age of the newest binary log off the host (exported as petory_binlog_rpo_seconds).
  --interval  minutes between two runs, for the RPO (default ${interval_minutes}, the timer's)
USAGE
}

interval_minutes=5
OPTIONS=(--interval=)
RECIPIENTS="${DEPLOY_DIR}/backup/age-recipients.txt"
PARTIAL="" # the file being written, removed at exit unless it was completed

option() {
    case "$1" in
        --interval) require_number "$1" "$2" 1; interval_minutes="$2" ;;
    esac
}

# has_recipients: backup/age-recipients.txt names at least one age recipient (comments aside).
has_recipients() {
    [[ -r "${RECIPIENTS}" ]] && grep -qvE '^[[:space:]]*(#|$)' "${RECIPIENTS}"
}

# copy_command ENV: BACKUP_COPY_COMMAND from the environment, else from env/<env>.env.
copy_command() {
    printf '%s' "${BACKUP_COPY_COMMAND:-$(env_file_value "$1" BACKUP_COPY_COMMAND)}"
}

# write_failed DIR WHAT: the reason a write into DIR failed, with the space left there.
write_failed() {
    die "$2 failed in $1 ($(free_bytes "$1") bytes free there); nothing partial is kept"
}

# ship ENV DIR SOURCE SIZE MTIME ENCRYPT: copy the closed binary log SOURCE (a path in the mysql
# container) into DIR, checked against the server's SIZE, with the server's MTIME (its last
# event), encrypted when ENCRYPT is 1. Written under a dot name, then renamed: all or nothing.
ship() {
    local env="$1" dir="$2" name="${3##*/}" size="$4" mtime="$5" encrypt="$6" written
    PARTIAL="${dir}/.${name}.partial"
    compose "${env}" exec -T mysql cat "$3" </dev/null >"${PARTIAL}" || write_failed "${dir}" "copying ${name} out of the mysql container"
    written="$(stat -c %s "${PARTIAL}")"
    [[ "${written}" == "${size}" ]] || die "the copy of ${name} has ${written} bytes, the server's ${size}; not shipped"
    if ((encrypt)); then
        age -R "${RECIPIENTS}" -o "${PARTIAL}.age" "${PARTIAL}" || write_failed "${dir}" "encrypting ${name}"
        rm -f "${PARTIAL}"
        PARTIAL+=".age"
        name+=".age"
    fi
    chmod 600 "${PARTIAL}"
    touch -d "@${mtime}" "${PARTIAL}" # the end of the binary log: what the RPO and the expiry read
    mv "${PARTIAL}" "${dir}/${name}"
    PARTIAL=""
    log "ship-binlogs: shipped ${name} (${size} bytes)"
}

# copy_off_host ENV DIR COMMAND: run COMMAND as backup-db.sh does (BACKUP_ENV set, a relative path
# from the folder of compose.yaml) on each encrypted shipped file it has not yet taken (DIR/.copied
# lists those it has), oldest first. Copies from before there was a recipient stay on the host.
copy_off_host() {
    local file name
    local -a argv
    read -r -a argv <<<"$3"
    [[ "${argv[0]}" != */* || "${argv[0]}" == /* ]] || argv[0]="${DEPLOY_DIR}/${argv[0]}"
    touch "$2/.copied"
    for file in "$2"/*.age; do
        name="${file##*/}"
        if [[ ! -f "${file}" ]] || grep -qxF -- "${name}" "$2/.copied"; then continue; fi
        BACKUP_ENV="$1" "${argv[@]}" "${file}" || die "BACKUP_COPY_COMMAND failed on ${file}; kept, and retried at the next run"
        printf '%s\n' "${name}" >>"$2/.copied"
    done
}

# expire ENV DIR SERVER_LOGS: remove the shipped copies of binary logs the server no longer has
# and that are older than its binlog_expire_logs_seconds.
expire() {
    local seconds file name
    seconds="$(service_mysql "$1" -e 'SELECT @@binlog_expire_logs_seconds')"
    [[ "${seconds}" =~ ^[1-9][0-9]*$ ]] || return 0 # 0: the server keeps them for ever, so do we
    for file in "$2"/*; do
        name="${file##*/}"
        [[ -f "${file}" && " $3 " != *" ${name%.age} "* ]] || continue
        (($(stat -c %Y "${file}") < $(date +%s) - seconds)) || continue
        rm -f "${file}"
        if [[ -f "$2/.copied" ]]; then
            grep -vxF -- "${name}" "$2/.copied" >"$2/.copied.new" || true
            mv "$2/.copied.new" "$2/.copied"
        fi
        log "ship-binlogs: expired ${name}"
    done
}

# report_rpo ENV DIR OFF_HOST: print the RPO and export it with the end of the newest binary log
# that is safe (off the host when OFF_HOST is 1, else in DIR).
report_rpo() {
    local file newest=0 mtime now rpo where
    for file in "$2"/*; do
        [[ -f "${file}" ]] || continue
        if (($3)) && ! grep -qxF -- "${file##*/}" "$2/.copied"; then continue; fi
        mtime="$(stat -c %Y "${file}")"
        ((mtime <= newest)) || newest="${mtime}"
    done
    ((newest)) || die "no binary log of $1 has been shipped yet"
    now="$(date +%s)"
    rpo=$((now - newest > interval_minutes * 60 ? now - newest : interval_minutes * 60))
    where="off the host"
    (($3)) || where="in backups/$1/binlog/ only, not off the host (set BACKUP_COPY_COMMAND)"
    metrics_write binlog "$1" \
        "$(metric petory_binlog_rpo_seconds "${rpo}" env="$1")" \
        "$(metric petory_binlog_last_shipped_timestamp_seconds "${newest}" env="$1")"
    printf 'RPO %s s: binary logs up to %s are %s; shipped every %s min\n' \
        "${rpo}" "$(date -u -d "@${newest}" '+%F %T UTC')" "${where}" "${interval_minutes}"
}

main() {
    local env dir basename command encrypt=0 listing current stats="" row name size mtime shipped
    local -a logs=() closed=() rows=()
    parse_args 1 1 "$@"
    env="${POSITIONAL[0]}"
    require_env "${env}"
    command="$(copy_command "${env}")"
    if has_recipients; then
        command -v age >/dev/null || die "age is not installed (apt-get install age); backup/age-recipients.txt lists recipients"
        encrypt=1
    elif [[ -n "${command}" ]]; then
        die "BACKUP_COPY_COMMAND is set but backup/age-recipients.txt lists no recipient: binary logs leave the host only encrypted"
    fi
    require_docker
    [[ -n "$(compose "${env}" ps -q mysql 2>/dev/null)" ]] || die "the mysql service of ${env} is not running"

    umask 077 # binary logs hold every change to every user's data, even while they are copied
    dir="${DEPLOY_DIR}/backups/${env}/binlog"
    mkdir -p "${dir}"
    chmod 700 "${dir%/binlog}" "${dir}"
    ensure_state "${env}"
    exec 8>"$(state_dir "${env}")/ship-binlogs.lock"
    flock -w 300 8 || die "another ship-binlogs.sh of ${env} has been running for 5 minutes"
    trap '[[ -z "${PARTIAL}" ]] || rm -f -- "${PARTIAL}"' EXIT
    rm -f "${dir}"/.*.partial "${dir}"/.*.partial.age # left by a run that was killed

    basename="$(service_mysql "${env}" -e 'SELECT @@log_bin_basename')"
    [[ "${basename}" == /* ]] || die "the binary log of ${env}'s MySQL is off (log_bin); point-in-time recovery needs it"
    service_mysql "${env}" -e 'FLUSH BINARY LOGS'
    listing="$(service_mysql "${env}" -e 'SHOW BINARY LOGS')" # name, size[, encrypted]
    [[ -n "${listing}" ]] || die "SHOW BINARY LOGS listed nothing"
    mapfile -t logs < <(cut -f1 <<<"${listing}")
    current="${logs[-1]}" # still being written
    for name in "${logs[@]}"; do
        [[ "${name}" =~ ^[A-Za-z0-9_.-]+$ ]] || die "unexpected binary log name '${name}'"
        [[ "${name}" == "${current}" ]] || closed+=("${name}")
    done

    # Size and end of each closed log in one call. A shipped copy that ends at another time is not
    # this server's log of that name: the numbering started again (a new data volume).
    ((${#closed[@]})) && stats="$(compose "${env}" exec -T -w "${basename%/*}" mysql stat -c '%n %s %Y' -- "${closed[@]}")"
    mapfile -t rows <<<"${stats}"
    for row in "${rows[@]}"; do
        read -r name size mtime <<<"${row}"
        [[ -n "${name}" ]] || continue
        shipped="${dir}/${name}"
        [[ -e "${shipped}" ]] || shipped+=".age"
        if [[ ! -e "${shipped}" ]]; then
            ship "${env}" "${dir}" "${basename%/*}/${name}" "${size}" "${mtime}" "${encrypt}"
        elif [[ "$(stat -c %Y "${shipped}")" != "${mtime}" ]]; then
            die "${shipped#"${DEPLOY_DIR}/"} is not the server's ${name} (the binary logs started again); move backups/${env}/binlog/ aside and run again"
        fi
    done

    [[ -z "${command}" ]] || copy_off_host "${env}" "${dir}" "${command}"
    expire "${env}" "${dir}" "${logs[*]}"
    report_rpo "${env}" "${dir}" "$([[ -n "${command}" ]] && echo 1 || echo 0)"
}

main "$@"
