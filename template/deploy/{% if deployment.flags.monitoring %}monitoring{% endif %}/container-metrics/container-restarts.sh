#!/bin/sh
# Every 30 s, the restart count of each container of the Compose project $PETORY_PROJECT (and its
# monitoring project), from `docker inspect`, into $METRICS_TEXTFILE_DIR/containers.prom for
# node-exporter's textfile collector. Written to a temporary file, then renamed: node-exporter
# never reads half a file. POSIX sh: the docker CLI image has no bash.
set -eu

INTERVAL="${INTERVAL:-30}"
OUT="${METRICS_TEXTFILE_DIR:?METRICS_TEXTFILE_DIR is not set}/containers-${PETORY_ENV:?PETORY_ENV is not set}.prom"

usage() {
    echo "Usage: container-restarts.sh [--once]  (env: PETORY_PROJECT, PETORY_ENV, METRICS_TEXTFILE_DIR, INTERVAL)"
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
        for project in "${PETORY_PROJECT:?PETORY_PROJECT is not set}" "${PETORY_PROJECT}-monitoring"; do
            ids="$(docker ps -aq --filter "label=com.docker.compose.project=${project}")" || return 1
            [ -n "${ids}" ] || continue
            # shellcheck disable=SC2086 # one argument per container id
            docker inspect --format "${FORMAT}" ${ids} || return 1
        done
    } >"${tmp}" && mv "${tmp}" "${OUT}"
}

main() {
    case "${1:-}" in
        -h | --help) usage; exit 0 ;;
        --once) write_once; exit $? ;;
        "") ;;
        *) usage >&2; exit 2 ;;
    esac
    while :; do
        write_once || echo "container-restarts: docker inspect failed; keeping the last file" >&2
        sleep "${INTERVAL}"
    done
}

main "$@"
