#!/usr/bin/env bash
# Runs docker compose for one environment: adds env/<env>.env, the deploy state and compose.<env>.yaml.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/compose.sh <env> <docker compose arguments...>

Runs 'docker compose' with --env-file env/<env>.env -f compose.yaml -f compose.<env>.yaml.
Examples:
  scripts/compose.sh prod ps
  scripts/compose.sh staging logs -f backend-blue
USAGE
}

main() {
    parse_args 1 rest "$@" # everything after <env> belongs to docker compose
    require_env "${POSITIONAL[0]}"
    compose "${POSITIONAL[@]}"
}

main "$@"
