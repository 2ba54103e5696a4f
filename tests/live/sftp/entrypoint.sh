#!/bin/sh
# Per container: fresh host keys and the test's public key for the offsite account.
set -eu
: "${AUTHORIZED_KEY:?set AUTHORIZED_KEY to the public key of the offsite account}"
ssh-keygen -A >/dev/null
install -d -m 755 /etc/ssh/authorized_keys
printf '%s\n' "${AUTHORIZED_KEY}" >/etc/ssh/authorized_keys/offsite
chmod 644 /etc/ssh/authorized_keys/offsite
exec /usr/sbin/sshd -D -e
