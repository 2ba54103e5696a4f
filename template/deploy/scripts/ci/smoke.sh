#!/usr/bin/env bash
# Smoke check of a deployed environment from the outside, as a user reaches it: the frontend
# must answer 2xx, the API any status below 500 (502/503/504 mean the backend is not reachable
# behind the edge; 401 or 404 from the backend itself is fine). Retries cover a slow start.
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: deploy/scripts/ci/smoke.sh [--api-path PATH] URL

Example: deploy/scripts/ci/smoke.sh https://petory.example.com
  --api-path PATH   a path the backend answers (default /api/)
Exits non-zero when a check still fails after ${ATTEMPTS} attempts ${PAUSE_SECONDS} s apart.
USAGE
}

# shellcheck source=scripts/ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ATTEMPTS=6
PAUSE_SECONDS=5
api_path=/api/

# check URL HIGHEST: GET URL until it answers a status from 200 to HIGHEST.
check() {
    local url="$1" highest="$2" status attempt
    for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
        status="$(curl --silent --show-error --max-time 10 --output /dev/null --write-out '%{http_code}' "${url}" || true)"
        status="${status:-000}"
        if ((status >= 200 && status <= highest)); then
            echo "smoke: GET ${url} -> ${status}"
            return 0
        fi
        echo "smoke: GET ${url} -> ${status} (attempt ${attempt} of ${ATTEMPTS})"
        ((attempt == ATTEMPTS)) || sleep "${PAUSE_SECONDS}"
    done
    fail "Smoke check failed" "GET ${url} never answered 200-${highest}"
}

main() {
    local url=""
    while (($#)); do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --api-path)
                (($# >= 2)) || usage_error "--api-path needs a path"
                api_path="$2"
                shift
                ;;
            -*) usage_error "unknown option $1" ;;
            *)
                [[ -z "${url}" ]] || usage_error "one URL expected"
                url="$1"
                ;;
        esac
        shift
    done
    [[ "${url}" == https://* || "${url}" == http://* ]] || usage_error "give the public URL, e.g. https://petory.example.com"
    [[ "${api_path}" == /* ]] || usage_error "--api-path must start with /"
    url="${url%/}"
    check "${url}/" 299
    check "${url}${api_path}" 499
}

main "$@"
