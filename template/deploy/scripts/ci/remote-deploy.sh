#!/usr/bin/env bash
# Runs a deploy, or a rollback, on a server over SSH: the server's checkout of this repository
# moves to the commit being deployed, so its deployment files match the images, then
# deploy/scripts/deploy.sh pulls the images and switches blue/green with health checks (it
# rolls back by itself when they fail), and deploy/scripts/apply.sh applies the commit's other
# configuration changes. --rollback runs deploy/scripts/rollback.sh instead,
# after a smoke check from the outside failed.
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: deploy/scripts/ci/remote-deploy.sh SSH_CONFIG DIR ENV COMMIT VERSION
       deploy/scripts/ci/remote-deploy.sh --rollback SSH_CONFIG DIR ENV

  SSH_CONFIG   the file deploy/scripts/ci/ssh-setup.sh wrote (host alias deploy-target)
  DIR          the repository's checkout on the server
  ENV          staging or prod
  COMMIT       full commit id the server checks out
  VERSION      image tag to deploy, e.g. sha-0123abc or v1.2.3

With REGISTRY_HOST, REGISTRY_USER and REGISTRY_TOKEN in the environment (deploy-environment.yml
gives the job's own token for ghcr.io), the server logs in for this deploy only: in a Docker
configuration of its own, removed afterwards, with the token on stdin.
USAGE
}

# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# on_server SSH_CONFIG COMMAND: the command is one string, quoted here for the server's shell.
on_server() {
    # shellcheck disable=SC2029 # expanded on this side on purpose; every value is checked or quoted
    ssh -F "$1" deploy-target "$2"
}

# registry_login: sets LOGIN, the start of the server's command that logs in for this deploy only
# (empty without REGISTRY_TOKEN). The token is short-lived (the job's), arrives on stdin and never
# touches the deploy user's own ~/.docker/config.json, whose logins stay as they are.
LOGIN=""
registry_login() {
    [[ -n "${REGISTRY_TOKEN:-}" ]] || return 0
    [[ "${REGISTRY_HOST:-}" =~ ^[A-Za-z0-9.-]+(:[0-9]+)?$ ]] || fail "Bad registry" "unexpected REGISTRY_HOST '${REGISTRY_HOST:-}'"
    [[ "${REGISTRY_USER:-}" =~ ^[A-Za-z0-9._-]+$ ]] || fail "Bad registry" "unexpected REGISTRY_USER '${REGISTRY_USER:-}'"
    # shellcheck disable=SC2016 # expanded on the server
    LOGIN="$(printf '%s' 'DOCKER_CONFIG="$(mktemp -d)" && export DOCKER_CONFIG && trap '\''rm -rf "${DOCKER_CONFIG}"'\'' EXIT' \
        ' && { [ ! -d ~/.docker/cli-plugins ] || ln -s ~/.docker/cli-plugins "${DOCKER_CONFIG}/"; }' \
        " && docker login --username ${REGISTRY_USER} --password-stdin ${REGISTRY_HOST} >/dev/null && ")"
}

deploy() {
    local config="$1" dir="$2" env="$3" commit="$4" version="$5"
    [[ "${commit}" =~ ^[0-9a-f]{40}$ ]] || fail "Bad commit" "unexpected commit id '${commit}'"
    [[ "${version}" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || fail "Bad version" "unexpected image tag '${version}'"
    registry_login
    echo "Deploying ${version} (commit ${commit::7}) to ${env} in ${dir}"
    # apply.sh then brings what the commit changed besides the images (limits, MySQL settings,
    # nginx/) to the running services, without downtime; it exits 3 when something needs a restart.
    local status=0 command
    command="${LOGIN}cd $(printf '%q' "${dir}") && git fetch --quiet --tags --force && git checkout --quiet ${commit} && deploy/scripts/deploy.sh ${env} ${version} && deploy/scripts/apply.sh ${env}"
    if [[ -n "${LOGIN}" ]]; then
        printf '%s\n' "${REGISTRY_TOKEN}" | on_server "${config}" "${command}" || status=$?
    else
        on_server "${config}" "${command}" || status=$?
    fi
    case "${status}" in
        0) ;;
        3) annotate warning "Restart needed" "${version} is live on ${env}, but a changed setting needs a restart; the job log names it and the command (deploy/scripts/apply.sh ${env} --restart SERVICE)" ;;
        *) exit "${status}" ;;
    esac
}

rollback() {
    local config="$1" dir="$2" env="$3"
    annotate warning "Rolled back" "the smoke check of ${env} failed; running deploy/scripts/rollback.sh"
    on_server "${config}" "cd $(printf '%q' "${dir}") && deploy/scripts/rollback.sh ${env} --yes"
}

main() {
    local action=deploy
    case "${1:-}" in
        -h | --help) usage; exit 0 ;;
        --rollback) action=rollback; shift ;;
        -*) usage_error "unknown option $1" ;;
    esac
    if [[ "${action}" == deploy ]]; then
        (($# == 5)) || usage_error "SSH_CONFIG DIR ENV COMMIT VERSION expected"
    else
        (($# == 3)) || usage_error "SSH_CONFIG DIR ENV expected"
    fi
    [[ -f "$1" ]] || fail "No SSH configuration" "$1 does not exist; run deploy/scripts/ci/ssh-setup.sh first"
    [[ "$3" =~ ^(staging|prod)$ ]] || fail "Bad environment" "unknown environment '$3'"
    "${action}" "$@"
}

main "$@"
