#!/bin/sh
# certbot --deploy-hook: runs in the certbot container after each issuance or renewal, with
# RENEWED_LINEAGE=/etc/letsencrypt/live/<name>. The edge runs as uid 101 and must read the key;
# certbot writes it as root, mode 0600, in directories only root may enter.
set -eu
name="$(basename "${RENEWED_LINEAGE:?RENEWED_LINEAGE is not set; run by certbot only}")"
chmod 0755 /etc/letsencrypt/live /etc/letsencrypt/archive
chown -R 101:101 "/etc/letsencrypt/archive/${name}" "${RENEWED_LINEAGE}"
chmod 0750 "/etc/letsencrypt/archive/${name}"
printf '%s deploy-hook: %s is ready; the edge reloads after nginx -t passes\n' \
    "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "${name}" >&2
