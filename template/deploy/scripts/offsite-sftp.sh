#!/usr/bin/env bash
# A ready BACKUP_COPY_COMMAND: copies one dump to an SFTP server, under a temporary name first and
# renamed once complete (the server never holds half a dump under a dump's name), then compares
# the size the server reports with the local file's. --fetch-latest brings the newest dump back
# (a recovery onto a new server, a restore drill off the server).
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/offsite-sftp.sh <file>
       scripts/offsite-sftp.sh --fetch-latest <dir> [--env ENV]

Copies FILE with sftp to BACKUP_SFTP_TARGET: [user@]host:directory, or
sftp://[user@]host[:port]/directory for another port; the directory must exist. Keys only
(BatchMode), and the server's host key must be known already (StrictHostKeyChecking=yes):
  BACKUP_SFTP_IDENTITY     the SSH private key file (default: ssh's own, e.g. ~/.ssh/id_ed25519)
  BACKUP_SFTP_KNOWN_HOSTS  the known_hosts file with the server's key (default: ~/.ssh/known_hosts)
Each is read from the environment, else from env/<env>.env of BACKUP_ENV (set by
scripts/backup-db.sh), or of the environment whose backups/<env>/ holds FILE. Set
BACKUP_COPY_COMMAND=scripts/offsite-sftp.sh in env/<env>.env to copy every new dump.
  --fetch-latest  download the newest dump of the target (by the UTC time in its name) into DIR,
                  under a temporary name until its size matches, and print its path
  --env           the environment whose env/<env>.env holds the settings (with --fetch-latest)
USAGE
}

fetch_dir=""
settings_env="${BACKUP_ENV:-}"
OPTIONS=(--fetch-latest= --env=)
# A dump's name as scripts/backup-db.sh makes it: <database>-<UTC time>[-label].sql.gz[.age].
DUMP_NAME='^[A-Za-z0-9_]+-[0-9]{8}T[0-9]{6}Z(-[A-Za-z0-9_.-]+)?[.]sql[.]gz([.]age)?$'

option() {
    case "$1" in
        --fetch-latest) fetch_dir="$2" ;;
        --env) settings_env="$2" ;;
    esac
}

# setting NAME ENV: NAME from the environment, else from env/ENV.env (empty when unset).
setting() {
    if [[ -n "${!1:-}" ]]; then
        printf '%s' "${!1}"
    elif [[ -n "$2" && -f "${DEPLOY_DIR}/env/$2.env" ]]; then
        env_file_value "$2" "$1"
    fi
}

# connect ENV: sets TARGET and SSH_OPTIONS from the settings of ENV (may be empty).
TARGET=""
SSH_OPTIONS=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=30)
connect() {
    local identity known_hosts
    TARGET="$(setting BACKUP_SFTP_TARGET "$1")"
    [[ -n "${TARGET}" ]] || die "BACKUP_SFTP_TARGET is not set (user@host:directory or sftp://user@host:port/directory)${1:+; set it in env/$1.env}"
    identity="$(setting BACKUP_SFTP_IDENTITY "$1")"
    known_hosts="$(setting BACKUP_SFTP_KNOWN_HOSTS "$1")"
    if [[ -n "${identity}" ]]; then
        [[ -r "${identity}" ]] || die "cannot read BACKUP_SFTP_IDENTITY ${identity}"
        SSH_OPTIONS+=(-o IdentitiesOnly=yes -i "${identity}")
    fi
    if [[ -n "${known_hosts}" ]]; then
        [[ -r "${known_hosts}" ]] || die "cannot read BACKUP_SFTP_KNOWN_HOSTS ${known_hosts}"
        SSH_OPTIONS+=(-o UserKnownHostsFile="${known_hosts}")
    fi
}

# sftp_batch: runs the batch on stdin against TARGET; prints what sftp said (errors included).
sftp_batch() { sftp -q "${SSH_OPTIONS[@]}" -b - "${TARGET}" 2>&1; }

# listed_size NAME LISTING: the size in bytes that `ls -l` of the server gave for NAME.
listed_size() { awk -v name="$1" '$NF == name && NF >= 9 { print $5 }' <<<"$2"; }

# sftp_failure OUTPUT: what went wrong, on one line (sftp echoes its commands; those go).
sftp_failure() { grep -v '^sftp>' <<<"$1" | tail -n 2 | tr '\n' ' '; }

copy() {
    local file="$1" env name size remote
    [[ -f "${file}" && -r "${file}" ]] || die "cannot read ${file}"
    env="${BACKUP_ENV:-$(basename "$(dirname "$(realpath "${file}")")")}"
    [[ " ${ENVIRONMENTS[*]} " == *" ${env} "* ]] || env=""
    connect "${env}"
    name="${file##*/}"
    size="$(stat -c %s "${file}")"
    # A leftover of an interrupted copy goes first ("-": its absence is no error).
    remote="$(sftp_batch <<BATCH
-rm "${name}.partial"
put "${file}" "${name}.partial"
chmod 600 "${name}.partial"
rename "${name}.partial" "${name}"
ls -l "${name}"
BATCH
)" || die "the copy to ${TARGET} failed: $(sftp_failure "${remote}")"
    [[ "$(listed_size "${name}" "${remote}")" == "${size}" ]] ||
        die "the copy to ${TARGET} has not the size of ${file} (${size} bytes): ${remote##*$'\n'}"
    log "offsite: copied ${name} (${size} bytes) to ${TARGET}"
}

# fetch_latest DIR: the newest dump of TARGET into DIR; prints its path.
fetch_latest() {
    local dir="$1" listing name size local_file
    [[ -d "${dir}" && -w "${dir}" ]] || die "cannot write to ${dir}"
    [[ -z "${settings_env}" || " ${ENVIRONMENTS[*]} " == *" ${settings_env} "* ]] ||
        usage_error "--env ${settings_env} is not an environment; use one of: ${ENVIRONMENTS[*]}"
    connect "${settings_env}"
    listing="$(sftp_batch <<<"ls -l")" || die "cannot list ${TARGET}: $(sftp_failure "${listing}")"
    # The newest by the UTC time in the name, not by the server's modification times.
    name="$(awk 'NF >= 9 { print $NF }' <<<"${listing}" | grep -E "${DUMP_NAME}" |
        sed -E 's/^.*-([0-9]{8}T[0-9]{6}Z).*$/\1 &/' | sort | tail -n 1 | cut -d' ' -f2)" || true
    [[ -n "${name}" ]] || die "${TARGET} holds no dump (<database>-<UTC time>.sql.gz[.age]); nothing fetched"
    size="$(listed_size "${name}" "${listing}")"
    local_file="${dir%/}/${name}"
    [[ ! -e "${local_file}" ]] || die "${local_file} exists already; nothing fetched (remove it, or use it)"
    log "offsite: fetching ${name} (${size} bytes) from ${TARGET}"
    local out
    out="$(sftp_batch <<<"get \"${name}\" \"${local_file}.partial\"")" || {
        rm -f "${local_file}.partial"
        die "fetching ${name} from ${TARGET} failed: $(sftp_failure "${out}")"
    }
    if [[ "$(stat -c %s "${local_file}.partial")" != "${size}" ]]; then
        rm -f "${local_file}.partial"
        die "the fetched ${name} has not the size ${TARGET} lists (${size} bytes); nothing kept"
    fi
    chmod 600 "${local_file}.partial"
    mv "${local_file}.partial" "${local_file}"
    log "offsite: fetched ${local_file}"
    printf '%s\n' "${local_file}"
}

main() {
    parse_args 0 1 "$@"
    if [[ -n "${fetch_dir}" ]]; then
        ((${#POSITIONAL[@]} == 0)) || usage_error "--fetch-latest takes a directory, not a file too"
        fetch_latest "${fetch_dir}"
    else
        if ((${#POSITIONAL[@]} == 0)); then
            log "ERROR: missing <file>"
            usage >&2
            exit 2
        fi
        copy "${POSITIONAL[0]}"
    fi
}

main "$@"
