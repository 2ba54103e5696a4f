#!/bin/sh
# Entry point of the certbot container (letsencrypt mode). POSIX sh: the official image is Alpine.
#   certbot.sh loop             issue the certificate if the edge still has its self-signed
#                               placeholder, then try `certbot renew` twice a day (the default)
#   certbot.sh issue            issue now, if the placeholder is still there
#   certbot.sh renew [ARGS...]  renew now if due (ARGS, e.g. --force-renewal, go to certbot)
# The edge reloads by itself once the new files pass `nginx -t` (the cert-reload service).
# Environment: CERTBOT_DOMAINS (comma-separated, first = certificate name), CERTBOT_EMAIL,
# CERTBOT_SERVER (ACME directory URL).
set -eu
umask 022

: "${CERTBOT_DOMAINS:?CERTBOT_DOMAINS is not set}" "${CERTBOT_EMAIL:?CERTBOT_EMAIL is not set}"
: "${CERTBOT_SERVER:?CERTBOT_SERVER is not set}"
name="${CERTBOT_DOMAINS%%,*}"
etc=/etc/letsencrypt
live="${etc}/live/${name}"
staged="${etc}/.issuing"
parked="${etc}/.placeholder-${name}"
here="$(dirname "$0")"

log() { printf '%s certbot: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*" >&2; }

# Options of every certbot run: state on the certs volume, scratch space on the /tmp tmpfs (the
# container's root filesystem is read-only), HTTP-01 through the webroot the edge serves.
config_dir="${etc}"
run_certbot() {
    certbot "$@" --non-interactive --server "${CERTBOT_SERVER}" --config-dir "${config_dir}" \
        --work-dir /tmp/certbot/work --logs-dir /tmp/certbot/logs \
        --webroot --webroot-path /var/www/acme --deploy-hook "sh ${here}/deploy-hook.sh"
}

# The ACME directory answers (a plain GET: it counts against no rate limit). Waiting for it first
# keeps a network that is not up yet from turning into a failed order and an hour's delay.
directory_reachable() {
    python3 -c 'import os, requests; requests.get(os.environ["CERTBOT_SERVER"], timeout=10).raise_for_status()' \
        2>/dev/null
}

issue() {
    # A container stopped between install_issued's renames left the placeholder parked.
    if [ ! -e "${live}" ] && [ -d "${parked}" ]; then mv "${parked}" "${live}"; fi
    if [ -e "${live}/fullchain.pem" ] && [ ! -e "${live}/.self-signed" ]; then
        return 0 # issued before (or provided): renewal takes care of it
    fi
    waited=0
    until directory_reachable; do
        [ $((waited % 60)) -eq 0 ] && log "waiting for the ACME directory ${CERTBOT_SERVER} to answer"
        sleep 5
        waited=$((waited + 5))
    done
    log "requesting a certificate for ${CERTBOT_DOMAINS} from ${CERTBOT_SERVER}"
    # certbot refuses a live directory it did not create, and the edge (a restart, every `nginx -t`
    # of a deploy) needs the placeholder's files until the new ones are there: certbot issues into
    # a staging directory on the same volume, whose lineage then replaces the placeholder.
    rm -rf "${staged}"
    mkdir -p "${staged}"
    [ ! -d "${etc}/accounts" ] || cp -a "${etc}/accounts" "${staged}/" # the same ACME account
    config_dir="${staged}"
    if run_certbot certonly --cert-name "${name}" --domains "${CERTBOT_DOMAINS}" --email "${CERTBOT_EMAIL}" \
        --agree-tos --no-eff-email --key-type ecdsa --keep-until-expiring; then
        config_dir="${etc}"
        install_issued
        log "certificate issued for ${CERTBOT_DOMAINS}"
    else
        config_dir="${etc}"
        rm -rf "${staged}"
        log "issuance failed; the self-signed placeholder stays in place (retry in an hour)"
        return 1
    fi
}

# install_issued: the staged lineage moves into ${etc} (its renewal file rewritten to say so); the
# live directory changes by two renames, so no reader finds it missing for longer than that.
install_issued() {
    mkdir -p "${etc}/archive" "${etc}/renewal" "${etc}/live"
    rm -rf "${etc}/accounts" "${etc}/archive/${name}"
    mv "${staged}/accounts" "${etc}/accounts"
    mv "${staged}/archive/${name}" "${etc}/archive/${name}"
    sed "s#${staged}#${etc}#g" "${staged}/renewal/${name}.conf" >"${etc}/renewal/${name}.conf"
    rm -rf "${parked}"
    if [ -e "${live}" ]; then mv "${live}" "${parked}"; fi
    mv "${staged}/live/${name}" "${live}"
    rm -rf "${parked}" "${staged}"
}

renew() {
    run_certbot renew --cert-name "${name}" "$@"
}

case "${1:-loop}" in
    issue) issue ;;
    renew) shift; renew --no-random-sleep-on-renew "$@" ;;
    loop)
        trap 'exit 0' TERM INT
        while :; do
            if issue; then
                # certbot renews only within 30 days of expiry; twice a day is Let's Encrypt's advice.
                renew || log "renewal failed; the current certificate stays (retry in 12 hours)"
                pause=43200
            else
                pause=3600
            fi
            sleep "${pause}" &
            wait $!
        done
        ;;
    *) echo "usage: certbot.sh [loop|issue|renew [certbot options]]" >&2; exit 2 ;;
esac
