#!/bin/sh
# Every 30 s, the restart count of each container of the Compose project $PETORY_PROJECT (and its
# monitoring project), from `docker inspect`, into $METRICS_TEXTFILE_DIR/containers.prom for
# node-exporter's textfile collector. Written to a temporary file, then renamed: node-exporter
# never reads half a file. POSIX sh: the docker CLI image has no bash.
set -eu

INTERVAL="${INTERVAL:-30}"
INSPECT_TIMEOUT="${INSPECT_TIMEOUT:-20}"
OUT="${METRICS_TEXTFILE_DIR:?METRICS_TEXTFILE_DIR is not set}/containers-${PETORY_ENV:?PETORY_ENV is not set}.prom"

usage() {
    echo "Usage: container-restarts.sh [--once]  (env: PETORY_PROJECT, PETORY_ENV, METRICS_TEXTFILE_DIR, INTERVAL, INSPECT_TIMEOUT)"
}

# The Go template of `docker inspect`, its opening braces put together here (two in a row would
# read as a template marker to the tools that render this repository's files).
brace="{"
open="${brace}${brace}"
FORMAT="petory_container_restarts_total{env=\"${PETORY_ENV}\",service=\"${open}index .Config.Labels \"com.docker.compose.service\"}}\",container=\"${open}slice .Name 1}}\"} ${open}.RestartCount}}"

write_once() {
    tmp="${OUT}.tmp"
    {
        echo "# HELP petory_container_restarts_total Restarts of each container by its restart policy (docker inspect's RestartCount; a recreated container starts at 0)"
        echo "# TYPE petory_container_restarts_total counter"
    } >"${tmp}"
    for project in "${PETORY_PROJECT:?PETORY_PROJECT is not set}" "${PETORY_PROJECT}-monitoring"; do
        # stderr is captured too: when the listing fails, it is the one-line reason.
        ids="$(timeout "${INSPECT_TIMEOUT}" docker ps -aq --filter "label=com.docker.compose.project=${project}" 2>&1)" || {
            echo "container-restarts: docker ps: ${ids:-no answer within ${INSPECT_TIMEOUT} s}" >&2
            return 1
        }
        [ -n "${ids}" ] || continue
        # shellcheck disable=SC2086 # one argument per container id
        inspect_into "${tmp}" ${ids} || return 1
    done
    mv "${tmp}" "${OUT}"
}

# Appends one line per container to $1. A container removed between the listing and this call
# (a finished one-off run, the old colour of a deploy) only loses its line; any other error, or a
# daemon that does not answer within INSPECT_TIMEOUT, fails the round and the last file stays.
inspect_into() {
    file="$1"
    shift
    errors="$(timeout "${INSPECT_TIMEOUT}" docker inspect --format "${FORMAT}" "$@" 2>&1 >>"${file}")" && return 0
    if [ -n "${errors}" ] && ! printf '%s\n' "${errors}" | grep -qv '^Error: No such object'; then
        return 0
    fi
    echo "container-restarts: docker inspect: ${errors:-no answer within ${INSPECT_TIMEOUT} s}" >&2
    return 1
}

main() {
    case "${1:-}" in
        -h | --help) usage; exit 0 ;;
        --once) write_once; exit $? ;;
        "") ;;
        *) usage >&2; exit 2 ;;
    esac
    while :; do
        write_once || echo "container-restarts: keeping the last file" >&2
        sleep "${INTERVAL}"
    done
}

main "$@"
