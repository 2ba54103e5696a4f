#!/bin/sh
# Every 30 s, the restart count of each container of the Compose project $PETORY_PROJECT (and its
# monitoring project), from `docker inspect`, into $METRICS_TEXTFILE_DIR/containers.prom for
# node-exporter's textfile collector. Written to a temporary file, then renamed: node-exporter
# never reads half a file. POSIX sh: the docker CLI image has no bash.
set -eu

INTERVAL="${INTERVAL:-30}"
INSPECT_TIMEOUT="${INSPECT_TIMEOUT:-10}"
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
    ids=""
    for project in "${PETORY_PROJECT:?PETORY_PROJECT is not set}" "${PETORY_PROJECT}-monitoring"; do
        # stderr is captured too: when the listing fails, it is the one-line reason.
        listing="$(timeout "${INSPECT_TIMEOUT}" docker ps -aq --filter "label=com.docker.compose.project=${project}" 2>&1)" || {
            echo "container-restarts: docker ps: ${listing:-no answer within ${INSPECT_TIMEOUT} s}; keeping the last file" >&2
            return 1
        }
        ids="${ids} ${listing}"
    done
    # shellcheck disable=SC2086 # one word per id
    inspect_all "${tmp}" ${ids} || inspect_each "${tmp}" ${ids} || return 1
    mv "${tmp}" "${OUT}"
}

# inspect_all FILE ID...: one CLI run for every container (a Go binary per container would cost
# the collector's small CPU share many times over). It fails, and leaves FILE as it was, on any
# error other than a container removed since the listing.
inspect_all() {
    out="$1"
    shift
    [ "$#" -gt 0 ] || return 0
    batch="${out}.batch"
    rc=0
    errors="$(timeout "${INSPECT_TIMEOUT}" docker inspect --format "${FORMAT}" "$@" 2>&1 >"${batch}")" || rc=$?
    # Exit 1 with nothing but "No such object" lines: those containers were removed since the
    # listing (a finished one-off run, the old colour of a deploy), and the rest were read.
    if [ "${rc}" -ne 0 ] && printf '%s\n' "${errors}" | grep -qv '^Error: No such object'; then
        rm -f "${batch}"
        return 1
    fi
    cat "${batch}" >>"${out}"
    rm -f "${batch}"
}

# inspect_each FILE ID...: the fallback, one container at a time, each with its own time limit: a
# container the engine holds locked (a stop in progress) costs only its own line. Fails when no
# container could be read: the daemon is in trouble, and the last file is the better answer.
inspect_each() {
    out="$1"
    shift
    listed=0 written=0 failed=0 first_error=""
    for id in "$@"; do
        listed=$((listed + 1))
        if errors="$(timeout "${INSPECT_TIMEOUT}" docker inspect --format "${FORMAT}" "${id}" 2>&1 >>"${out}")"; then
            written=$((written + 1))
            continue
        fi
        case "${errors}" in
            "Error: No such object"*) continue ;; # gone: nothing to count
        esac
        failed=$((failed + 1))
        [ -n "${first_error}" ] || first_error="${id}: ${errors:-no answer within ${INSPECT_TIMEOUT} s}"
    done
    [ "${failed}" -eq 0 ] && return 0
    echo "container-restarts: docker inspect failed for ${failed} of ${listed} containers (${first_error})" >&2
    [ "${written}" -gt 0 ]
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
