#!/usr/bin/env bash
# Writes the SSH client configuration for one deploy target into a directory and connects once.
# The private key and the server's host key come from the environment (GitHub secrets), never
# from a command line, and the host key is checked strictly against them: nothing is learned on
# the fly, so a server with another key stops the deploy before anything runs on it.
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: deploy/scripts/ci/ssh-setup.sh DIR

Writes DIR/id_deploy, DIR/known_hosts and DIR/config (DIR mode 0700, files 0600) with the host
alias deploy-target, then checks that the connection works. Afterwards:
  ssh -F DIR/config deploy-target <command>
Remove DIR when done: it holds the private key.

Read from the environment:
  SSH_PRIVATE_KEY   the deploy key, an unencrypted OpenSSH private key
  SSH_KNOWN_HOSTS   the server's known_hosts line(s), their fingerprints compared with
                    ssh-keygen -lf of the host keys on the server (deploy/docs/03-cicd-pipeline.md)
  SSH_HOST          server host name or address
  SSH_USER          user that owns the deploy directory
  SSH_PORT          SSH port (default 22)
USAGE
}

# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SSH_PORT="${SSH_PORT:-22}"
ALIAS=deploy-target

check_environment() {
    if [[ -z "${SSH_PRIVATE_KEY:-}" ]] || [[ -z "${SSH_KNOWN_HOSTS:-}" ]]; then
        fail "Missing secrets" "SSH_PRIVATE_KEY and SSH_KNOWN_HOSTS are empty: create them in the GitHub environment${DEPLOY_ENV:+ ${DEPLOY_ENV}} (deploy/docs/03-cicd-pipeline.md)"
    fi
    [[ -n "${SSH_HOST:-}" && -n "${SSH_USER:-}" ]] || fail "Missing target" "set SSH_HOST and SSH_USER"
    [[ "${SSH_PORT}" =~ ^[0-9]+$ ]] || fail "Bad port" "SSH_PORT '${SSH_PORT}' is not a number"
}

# write_files DIR: the key and known_hosts are created unreadable to others from the start.
write_files() {
    local dir="$1"
    mkdir -p "${dir}"
    chmod 700 "${dir}"
    (
        umask 077
        printf '%s\n' "${SSH_PRIVATE_KEY}" >"${dir}/id_deploy"
        printf '%s\n' "${SSH_KNOWN_HOSTS}" >"${dir}/known_hosts"
    )
    # Reading the public half proves the key is usable without a passphrase prompt.
    ssh-keygen -y -f "${dir}/id_deploy" >/dev/null 2>&1 ||
        fail "Bad key" "SSH_PRIVATE_KEY is not an unencrypted OpenSSH private key"
    (
        umask 077
        cat >"${dir}/config" <<CONFIG
Host ${ALIAS}
  HostName ${SSH_HOST}
  Port ${SSH_PORT}
  User ${SSH_USER}
  IdentityFile ${dir}/id_deploy
  IdentitiesOnly yes
  UserKnownHostsFile ${dir}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  BatchMode yes
  ConnectTimeout 20
  ServerAliveInterval 15
  ServerAliveCountMax 8
CONFIG
    )
}

main() {
    case "${1:-}" in
        -h | --help) usage; exit 0 ;;
        "" | -*) usage_error "give the directory to write the configuration to" ;;
    esac
    (($# == 1)) || usage_error "one directory expected"
    local dir="$1"
    check_environment
    write_files "${dir}"
    ssh -F "${dir}/config" "${ALIAS}" true
    echo "SSH to ${SSH_USER}@${SSH_HOST}:${SSH_PORT} works; host key verified"
}

main "$@"
