#!/bin/sh
# docker-entrypoint.sh of petory-standin/redis:7 (Debian's Redis 7.0 standing
# in for the official redis:7-alpine image), with the official semantics:
#   - a first argument ending in .conf or starting with - gets redis-server
#     put in front of it;
#   - redis-server started as root: files in the working directory (/data)
#     not owned by redis are chowned to it, then the script re-executes itself
#     as redis (setpriv, as in the official Debian variant; su-exec on alpine);
#   - umask 0077 unless another umask than the default 0022 was set.
# Stand-in addition: the official image compiles redis-server with
# protected-mode defaulting to "no"; Debian's defaults to "yes". The same
# effective default is produced by adding "--protected-mode no" in front of
# the other options, unless the given config file sets protected-mode itself
# (a later --protected-mode on the command line still wins, as it would).
set -e

# first arg is `-f` or `--some-option`
# or first arg is `something.conf`
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
	set -- redis-server "$@"
fi

# allow the container to be started with `--user`
if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
	find . \! -user redis -exec chown redis '{}' +
	exec setpriv --reuid=redis --regid=redis --clear-groups -- "$0" "$@"
fi

case "${2:-}" in
	-v|--version|-h|--help|--test-memory|--check-system) protectedModeDefault= ;;
	*) protectedModeDefault=1 ;;
esac
if [ "$1" = 'redis-server' ] && [ -n "$protectedModeDefault" ]; then
	shift
	configFile=
	# a config file (or "-" for stdin) can only come first
	if [ "$#" -gt 0 ] && { [ "$1" = '-' ] || [ "${1#-}" = "$1" ]; }; then
		configFile="$1"
		shift
	fi
	if [ -n "$configFile" ] && [ -f "$configFile" ] \
		&& grep -q -E '^[[:space:]]*protected-mode([[:space:]]|$)' "$configFile"; then
		# the config file decides, as with the official binary
		set -- redis-server "$configFile" "$@"
	elif [ -n "$configFile" ]; then
		set -- redis-server "$configFile" --protected-mode no "$@"
	else
		set -- redis-server --protected-mode no "$@"
	fi
fi

# set an appropriate umask (if one isn't set already)
um="$(umask)"
if [ "$um" = '0022' ]; then
	umask 0077
fi

exec "$@"
