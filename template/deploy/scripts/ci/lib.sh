#!/usr/bin/env bash
# Messages of the CI scripts in this folder: on GitHub Actions they become annotations on the run
# (GITHUB_ACTIONS=true there), in a terminal they are plain lines on stderr. Source it; it
# defines functions only.

# annotate LEVEL TITLE MESSAGE: LEVEL is error, warning or notice.
annotate() {
    if [[ "${GITHUB_ACTIONS:-}" == true ]]; then
        printf '::%s title=%s::%s\n' "$1" "$2" "$3"
    else
        printf '%s: %s: %s\n' "$1" "$2" "$3" >&2
    fi
}

# fail TITLE MESSAGE: report an error and stop the script.
fail() {
    annotate error "$1" "$2"
    exit 1
}

# usage_error MESSAGE: a wrong command line; prints the script's usage.
usage_error() {
    usage >&2
    printf 'error: %s\n' "$1" >&2
    exit 2
}
