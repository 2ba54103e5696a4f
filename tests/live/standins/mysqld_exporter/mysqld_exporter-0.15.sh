#!/bin/sh
# mysqld_exporter 0.15's command line on top of Debian's 0.14 (see the Dockerfile).
set -eu

address=localhost:3306
user=""
mycnf=""
# Take out the 0.15-only flags; the rest stays in "$@" for 0.14.
count=$#
while [ "${count}" -gt 0 ]; do
    arg="$1"
    shift
    count=$((count - 1))
    case "${arg}" in
        --mysqld.address=*) address="${arg#*=}" ;;
        --mysqld.username=*) user="${arg#*=}" ;;
        --config.my-cnf=*) mycnf="${arg#*=}" ;;
        *) set -- "$@" "${arg}" ;;
    esac
done

# client_value KEY: KEY's value in the [client] section of the my.cnf; empty when absent.
client_value() {
    if [ -n "${mycnf}" ] && [ -r "${mycnf}" ]; then
        sed -n '/^\[client\]/,/^\[/s/^[[:space:]]*'"$1"'[[:space:]]*=[[:space:]]*//p' "${mycnf}" | tail -n 1
    fi
}

password="${MYSQLD_EXPORTER_PASSWORD:-$(client_value password)}"
user="${user:-$(client_value user)}"
ca="$(client_value ssl-ca)"
tls="$(client_value tls)"
host="${address%:*}"
port="${address##*:}"

if [ -n "${ca}" ]; then
    # 0.14 verifies against ssl-ca only from a my.cnf (its `tls=custom`), never from the DSN.
    umask 077
    printf '[client]\nuser=%s\npassword=%s\nhost=%s\nport=%s\nssl-ca=%s\n' \
        "${user}" "${password}" "${host}" "${port}" "${ca}" >/dev/shm/my.cnf
    exec prometheus-mysqld-exporter --config.my-cnf=/dev/shm/my.cnf "$@"
fi
DATA_SOURCE_NAME="${user}:${password}@tcp(${address})/${tls:+?tls=${tls}}"
export DATA_SOURCE_NAME
exec prometheus-mysqld-exporter "$@"
