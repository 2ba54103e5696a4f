#!/bin/sh
# apt-install PACKAGE...: Debian packages into a stand-in image, one way for all of them.
# tests/live/standins.py copies it into the build contexts whose Dockerfile names it.
# No service may start during the build (policy-rc.d), no recommends, and nothing left that the
# image does not need: apt's lists and the packages' /etc/default files, which only their init
# scripts read (the official images are configured by flags, never by those files).
set -eu
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
for package in "$@"; do
    rm -f "/etc/default/${package}"
done
rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d
