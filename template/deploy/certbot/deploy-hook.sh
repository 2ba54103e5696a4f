#!/bin/sh
# certbot --deploy-hook: runs in the certbot container after each issuance or renewal, with
# RENEWED_LINEAGE=<config dir>/live/<name> (the config dir is /etc/letsencrypt, or certbot.sh's
# staging directory on a first issuance). The edge runs as uid 101 and must read the key;
# certbot writes it as root, mode 0600, in directories only root may enter.
set -eu
name="$(basename "${RENEWED_LINEAGE:?RENEWED_LINEAGE is not set; run by certbot only}")"
config="$(dirname "$(dirname "${RENEWED_LINEAGE}")")"
chmod 0755 "${config}/live" "${config}/archive"
chown -R 101:101 "${config}/archive/${name}" "${RENEWED_LINEAGE}"
chmod 0750 "${config}/archive/${name}"
printf '%s deploy-hook: %s is ready; the edge reloads after nginx -t passes\n' \
    "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${name}" >&2
