#!/usr/bin/env bash
# Runs docker compose for one environment: adds env/<env>.env and compose.<env>.yaml.
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: scripts/compose.sh <env> <docker compose arguments...>

Runs 'docker compose' with --env-file env/<env>.env -f compose.yaml -f compose.<env>.yaml.
Examples:
  scripts/compose.sh prod ps
  scripts/compose.sh staging logs -f backend-blue
USAGE
}

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
env="$1"
shift
require_env "${env}"
compose "${env}" "$@"
