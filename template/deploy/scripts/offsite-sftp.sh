#!/usr/bin/env bash
# A ready BACKUP_COPY_COMMAND: copies one dump to an SFTP server, under a temporary name first and
# renamed once complete (the server never holds half a dump under a dump's name), then compares
# the size the server reports with the local file's.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/offsite-sftp.sh <file>

Copies FILE with sftp to BACKUP_SFTP_TARGET: [user@]host:directory, or
sftp://[user@]host[:port]/directory for another port; the directory must exist. Keys only
(BatchMode), and the server's host key must be known already (StrictHostKeyChecking=yes):
  BACKUP_SFTP_IDENTITY     the SSH private key file (default: ssh's own, e.g. ~/.ssh/id_ed25519)
  BACKUP_SFTP_KNOWN_HOSTS  the known_hosts file with the server's key (default: ~/.ssh/known_hosts)
Each is read from the environment, else from env/<env>.env of BACKUP_ENV (set by
scripts/backup-db.sh), or of the environment whose backups/<env>/ holds FILE. Set
BACKUP_COPY_COMMAND=scripts/offsite-sftp.sh in env/<env>.env to copy every new dump.
USAGE
}

# setting NAME ENV: NAME from the environment, else from env/ENV.env (empty when unset).
setting() {
    if [[ -n "${!1:-}" ]]; then
        printf '%s' "${!1}"
    elif [[ -n "$2" && -f "${DEPLOY_DIR}/env/$2.env" ]]; then
        env_file_value "$2" "$1"
    fi
}

main() {
    local file env target identity known_hosts name size remote
    local -a ssh_options=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=30)
    parse_args 1 1 "$@"
    file="${POSITIONAL[0]}"
    [[ -f "${file}" && -r "${file}" ]] || die "cannot read ${file}"
    env="${BACKUP_ENV:-$(basename "$(dirname "$(realpath "${file}")")")}"
    [[ " ${ENVIRONMENTS[*]} " == *" ${env} "* ]] || env=""
    target="$(setting BACKUP_SFTP_TARGET "${env}")"
    [[ -n "${target}" ]] || die "BACKUP_SFTP_TARGET is not set (user@host:directory or sftp://user@host:port/directory)${env:+; set it in env/${env}.env}"
    identity="$(setting BACKUP_SFTP_IDENTITY "${env}")"
    known_hosts="$(setting BACKUP_SFTP_KNOWN_HOSTS "${env}")"
    if [[ -n "${identity}" ]]; then
        [[ -r "${identity}" ]] || die "cannot read BACKUP_SFTP_IDENTITY ${identity}"
        ssh_options+=(-o IdentitiesOnly=yes -i "${identity}")
    fi
    if [[ -n "${known_hosts}" ]]; then
        [[ -r "${known_hosts}" ]] || die "cannot read BACKUP_SFTP_KNOWN_HOSTS ${known_hosts}"
        ssh_options+=(-o UserKnownHostsFile="${known_hosts}")
    fi
    name="${file##*/}"
    size="$(stat -c %s "${file}")"
    # A leftover of an interrupted copy goes first ("-": its absence is no error).
    remote="$(sftp -q "${ssh_options[@]}" -b - "${target}" 2>&1 <<BATCH
-rm "${name}.partial"
put "${file}" "${name}.partial"
chmod 600 "${name}.partial"
rename "${name}.partial" "${name}"
ls -l "${name}"
BATCH
)" || die "the copy to ${target} failed: $(grep -v '^sftp>' <<<"${remote}" | tail -n 2 | tr '\n' ' ')"
    [[ "$(awk -v name="${name}" '$NF == name && NF >= 9 { print $5 }' <<<"${remote}")" == "${size}" ]] ||
        die "the copy to ${target} has not the size of ${file} (${size} bytes): ${remote##*$'\n'}"
    log "offsite: copied ${name} (${size} bytes) to ${target}"
}

main "$@"
