#!/bin/sh
# Per container: fresh host keys, the test's public key, and the deploy user in the group that
# owns the mounted Docker socket (as `usermod -aG docker deploy` on a real server).
set -eu
: "${AUTHORIZED_KEY:?set AUTHORIZED_KEY to the deploy user's public key}"
ssh-keygen -A >/dev/null
home="$(getent passwd "${DEPLOY_USER}" | cut -d: -f6)"
install -d -m 700 -o "${DEPLOY_USER}" -g "${DEPLOY_USER}" "${home}/.ssh"
printf '%s\n' "${AUTHORIZED_KEY}" >"${home}/.ssh/authorized_keys"
chown "${DEPLOY_USER}:${DEPLOY_USER}" "${home}/.ssh/authorized_keys"
chmod 600 "${home}/.ssh/authorized_keys"
if [ -S /var/run/docker.sock ]; then
    gid="$(stat -c %g /var/run/docker.sock)"
    group="$(getent group "${gid}" | cut -d: -f1 || true)"
    if [ -z "${group}" ]; then
        groupadd --gid "${gid}" docker-host
        group=docker-host
    fi
    usermod -aG "${group}" "${DEPLOY_USER}"
fi
exec /usr/sbin/sshd -D -e "$@" # "$@": -o options of the test, which win over sshd_config
