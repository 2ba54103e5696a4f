#!/bin/sh
# Runs beside the edge (same image, uid 101, the edge's process namespace): when a certificate
# file changes (certbot issued or renewed one), test the whole configuration with `nginx -t` and
# only then tell the edge's nginx master to reload gracefully (SIGHUP, as `nginx -s reload`).
# A file that fails the test never replaces what the edge serves; the check repeats until it passes.
set -u
interval="${CERT_RELOAD_INTERVAL:-10}"

log() { printf '%s cert-reload: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >&2; }

fingerprint() { cat /etc/letsencrypt/live/*/fullchain.pem /etc/letsencrypt/live/*/privkey.pem 2>&1 | cksum; }

master_pid() {
    for dir in /proc/[0-9]*; do
        case "$(tr '\0' ' ' <"${dir}/cmdline" 2>/dev/null)" in
            "nginx: master process"*) echo "${dir#/proc/}"; return 0 ;;
        esac
    done
    return 1
}

reload() {
    if ! out="$(nginx -t 2>&1)"; then
        log "certificate changed but nginx -t fails; the edge keeps its current configuration: ${out}"
        return 1
    fi
    pid="$(master_pid)" || { log "no nginx master process found in the edge"; return 1; }
    kill -HUP "${pid}" && log "nginx -t passed; reloaded the edge (master pid ${pid})"
}

trap 'exit 0' TERM INT
loaded=""
while :; do
    # At start the edge may already hold an older certificate than the files: reload once.
    current="$(fingerprint)"
    if [ "${current}" != "${loaded}" ] && reload; then
        loaded="${current}"
    fi
    sleep "${interval}" &
    wait $!
done
