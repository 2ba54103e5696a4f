#!/usr/bin/env bash
# Rotates one secret of a running server environment in an order that never breaks the colour
# that serves traffic: the new credential is added next to the old one, the backend is redeployed
# blue-green with it, and only then is the old one removed. If the redeploy fails, the env file and
# the credential are put back as they were.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/mysql.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/mysql.sh"

usage() {
    cat <<USAGE
Usage: scripts/rotate-secret.sh <env> <secret> [options]

<secret> is one of:
  jwt    the JWT signing key. The backend signs with a new key at once and still verifies tokens
         signed with the old one for --overlap (PETORY_JWT_PREVIOUS_SECRET until
         PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL), so nobody is signed out.
  redis  the Redis password: added with ACL SETUSER, the backend redeployed, the old one removed;
         then Redis is recreated so that a later restart keeps the new one (a few seconds without
         cache).
  mysql  the application's MySQL password, with MySQL's dual passwords (8.0.14 and later):
         ALTER USER ... RETAIN CURRENT PASSWORD, the backend redeployed, DISCARD OLD PASSWORD.

Options:
  --overlap DURATION   jwt: how long tokens signed with the old key stay valid, e.g. 90m, 24h or 7d
                       (default 24h; make it at least your longest token lifetime)
  --force              jwt: rotate although the key before is still accepted (its tokens stop
                       verifying at once)
  --wait-lock SECONDS  wait that long for another deploy of <env> to finish (default: refuse)
  -h, --help           this help

Afterwards, copy env/<env>.env to your secret store: it holds the new secret.
USAGE
}

overlap=24h
force=0
wait_lock=0
OPTIONS=(--overlap= --force --wait-lock=)

option() {
    case "$1" in
        --overlap) [[ "$2" =~ ^[1-9][0-9]*[smhd]$ ]] || usage_error "--overlap takes a duration such as 90m, 24h or 7d"; overlap="$2" ;;
        --force) force=1 ;;
        --wait-lock) require_number "$1" "$2"; wait_lock="$2" ;;
    esac
}

saved_env="" # the env file as it was before this rotation: put back if the redeploy fails

# set_env KEY=VALUE...: change the env file atomically (VALUE <generated:N> is a new secret,
# <key:NAME> the current value of NAME), keeping a copy of the old file to go back to.
set_env() {
    local -a sets=()
    local pair
    if [[ -z "${saved_env}" ]]; then
        saved_env="$(state_dir "${env}")/env.before-rotation"
        cp -p "${DEPLOY_DIR}/env/${env}.env" "${saved_env}" # mode 0600 like the original
    fi
    for pair in "$@"; do sets+=(--set "${pair}"); done
    python3 "${DEPLOY_DIR}/scripts/env_files.py" --env "${env}" "${sets[@]}" >/dev/null
}

restore_env() {
    mv "${saved_env}" "${DEPLOY_DIR}/env/${env}.env"
    saved_env=""
}

# keep_new_env: the rotation reached the point of no return; the saved copy goes.
keep_new_env() {
    rm -f "${saved_env}"
    saved_env=""
}

finish() {
    [[ -z "${saved_env}" ]] || log "rotate: stopped before the rotation completed; env/${env}.env as it was before is kept in ${saved_env}"
}

seconds_of() {
    local n="${1%?}"
    case "${1: -1}" in
        s) echo "${n}" ;;
        m) echo $((n * 60)) ;;
        h) echo $((n * 3600)) ;;
        d) echo $((n * 86400)) ;;
    esac
}

# --- jwt -------------------------------------------------------------------------------------------

rotate_jwt() {
    local until previous_until now
    now="$(date -u +%s)"
    previous_until="$(env_file_value "${env}" PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL)"
    if ((!force)) && [[ -n "${previous_until}" ]] && (($(date -u -d "${previous_until}" +%s 2>/dev/null || echo 0) > now)); then
        die "the key before the last rotation is accepted until ${previous_until}; rotating now would sign out the users holding its tokens. Wait until then, or pass --force"
    fi
    until="$(date -u -d "@$((now + $(seconds_of "${overlap}")))" +%Y-%m-%dT%H:%M:%SZ)"
    log "rotate: jwt: new signing key; the current one verifies tokens until ${until}"
    set_env "PETORY_JWT_PREVIOUS_SECRET=<key:PETORY_JWT_SECRET>" "PETORY_JWT_SECRET=<generated:64>" \
        "PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL=${until}"
    if ! redeploy_running "${env}" backend; then
        restore_env
        die "the backend with the new key did not deploy; env/${env}.env is back as it was and the old key still signs"
    fi
    keep_new_env
    log "rotate: jwt: done; tokens issued before the rotation are accepted until ${until}"
}

# --- redis -----------------------------------------------------------------------------------------

# redis_command LINE: one Redis command, read from stdin so no password is on a command line.
redis_command() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    printf '%s\n' "$1" | compose "${env}" exec -T redis sh -c 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli' | grep -qx OK
}

rotate_redis() {
    local old new
    [[ -n "$(compose "${env}" ps -q redis 2>/dev/null)" ]] || die "the redis service of ${env} is not running (an external Redis is rotated where it runs)"
    old="$(env_file_value "${env}" REDIS_PASSWORD)"
    set_env "REDIS_PASSWORD=<generated:40>"
    new="$(env_file_value "${env}" REDIS_PASSWORD)"
    log "rotate: redis: adding the new password next to the old one"
    redis_command "ACL SETUSER default on >${new}" || { restore_env; die "Redis refused ACL SETUSER; nothing changed"; }
    if ! redeploy_running "${env}" backend; then
        redis_command "ACL SETUSER default <${new}" || true
        restore_env
        die "the backend with the new password did not deploy; env/${env}.env and Redis are back as they were"
    fi
    keep_new_env
    log "rotate: redis: removing the old password"
    redis_command "ACL SETUSER default <${old}" || die "Redis refused to remove the old password; both work. Retry: printf 'ACL SETUSER default <old>' | redis-cli"
    keep_new_env
    log "rotate: redis: recreating Redis so that its definition carries the new password (a few seconds without cache)"
    compose "${env}" up -d --no-deps --force-recreate --wait --wait-timeout 120 redis >/dev/null ||
        die "Redis did not become healthy again; see make logs ENV=${env} SERVICE=redis"
    log "rotate: redis: done"
}

# --- mysql -----------------------------------------------------------------------------------------

# mysql_root SQL_FROM_STDIN: statements as root inside the mysql container, passwords never on a
# command line.
mysql_root() {
    # shellcheck disable=SC2016 # expanded by the container's shell
    compose "${env}" exec -T mysql sh -c 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mysql -uroot -N -B'
}

rotate_mysql() {
    local user version new account
    [[ -n "$(compose "${env}" ps -q mysql 2>/dev/null)" ]] || die "the mysql service of ${env} is not running (an external database is rotated where it runs)"
    version="$(echo 'SELECT VERSION();' | mysql_root)"
    has_dual_passwords "${version}" ||
        die "the database server (${version}) has no dual passwords (RETAIN CURRENT PASSWORD, MySQL 8.0.14 and later); nothing was changed"
    user="$(compose "${env}" exec -T mysql printenv APP_DB_USER | tr -d '\r')"
    account="$(app_account "${user}")"
    set_env "MYSQL_PASSWORD=<generated:40>"
    new="$(env_file_value "${env}" MYSQL_PASSWORD)"
    log "rotate: mysql: adding the new password of ${user} next to the old one"
    add_password_sql "${account}" "${new}" | mysql_root ||
        { restore_env; die "MySQL refused ALTER USER ... RETAIN CURRENT PASSWORD; nothing changed"; }
    if ! redeploy_running "${env}" backend; then
        # The old password becomes the current one again, and the new one is dropped.
        { add_password_sql "${account}" "$(sed -n 's/^MYSQL_PASSWORD=//p' "${saved_env}" | tail -n 1)"
            discard_old_password_sql "${account}"; } | mysql_root || true
        restore_env
        die "the backend with the new password did not deploy; env/${env}.env and MySQL are back as they were"
    fi
    keep_new_env
    log "rotate: mysql: discarding the old password"
    discard_old_password_sql "${account}" | mysql_root ||
        die "MySQL refused DISCARD OLD PASSWORD; both passwords work. Retry: ALTER USER ${account} DISCARD OLD PASSWORD"
    log "rotate: mysql: done"
}

main() {
    local secret
    parse_args 2 2 "$@"
    env="${POSITIONAL[0]}"
    secret="${POSITIONAL[1]}"
    [[ "${secret}" =~ ^(jwt|redis|mysql)$ ]] || usage_error "unknown secret '${secret}'; use jwt, redis or mysql"
    require_env "${env}"
    [[ " ${SERVER_ENVIRONMENTS[*]} " == *" ${env} "* ]] || die "${env} is not a server environment; in dev, edit env/${env}.env and run make up ENV=${env}"
    require_docker
    ensure_state "${env}"
    take_lock "${env}" "${wait_lock}" "rotation of ${secret}"
    [[ -n "$(compose "${env}" ps -q edge 2>/dev/null)" ]] || die "${env} is not running; edit env/${env}.env directly before its first deploy"
    trap finish EXIT
    "rotate_${secret}"
    log "rotate: copy env/${env}.env to your secret store now: it holds the new ${secret} secret"
}

main "$@"
