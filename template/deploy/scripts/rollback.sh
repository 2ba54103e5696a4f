#!/usr/bin/env bash
# Goes back to the previous (or a named) version with the same zero-downtime switch as a deploy,
# using only images already on this host: it works with the registry unreachable.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/rollback.sh <env> [version] [--yes] [--allow-mutable-tag]

Without a version, goes back to the version deployed before the current one (from
.deploy/<env>/history). The images must still be on this host (deploy.sh keeps the last 5).
The deploy metrics record the rollback like any deploy.
  --yes                 do not ask for confirmation
  --allow-mutable-tag   go back to a tag other than sha-<commit> or MAJOR.MINOR.PATCH, with a
                        warning (as deploy.sh --allow-mutable-tag)
USAGE
}

allow_mutable_tag=0
OPTIONS=(--yes --allow-mutable-tag) # --yes: confirmation, handled by parse_args

option() {
    case "$1" in
        --allow-mutable-tag) allow_mutable_tag=1 ;;
    esac
}

# previous_version HISTORY CURRENT: the newest version in the history that differs from CURRENT.
previous_version() {
    awk '{print $3}' "$1" | tac | awk -v cur="$2" '$0 != cur && !seen[$0]++' | head -n 1
}

main() {
    local env history current target
    parse_args 1 2 "$@"
    env="${POSITIONAL[0]}"
    require_env "${env}"
    history="$(state_dir "${env}")/history"
    [[ -s "${history}" ]] || die "no deploy history for ${env} (${history}); nothing to roll back to"
    current="$(cat "$(state_dir "${env}")/current" 2>/dev/null || true)"
    target="${POSITIONAL[1]:-$(previous_version "${history}" "${current}")}"
    [[ -n "${target}" ]] || die "the history of ${env} holds no version other than ${current}"
    [[ "${target}" != "${current}" ]] || die "${env} already runs ${target}"
    require_tag "${target}" "${allow_mutable_tag}"
    require_docker

    confirm "Roll ${env} back from ${current:-unknown} to ${target}?" || die "cancelled"
    log "rollback: ${env}: ${current:-unknown} -> ${target} (no pull)"
    local -a options=(--no-pull) # the images of earlier deploys are on this host
    if ((allow_mutable_tag)); then options+=(--allow-mutable-tag); fi
    exec "${DEPLOY_DIR}/scripts/deploy.sh" "${env}" "${target}" "${options[@]}"
}

main "$@"
