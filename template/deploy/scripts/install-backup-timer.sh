#!/usr/bin/env bash
# Schedules scripts/backup-db.sh with a systemd timer: persistent (a backup missed while the host
# was down runs at the next boot), logged in the journal, and visible in `systemctl list-timers`.
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    cat <<USAGE
Usage: scripts/install-backup-timer.sh <env> [--at "*-*-* 03:30:00"] [--retention-days N] [--print]

Installs and starts <project>-<env>-backup.timer (as root). --print shows the unit files only.
USAGE
}

at="*-*-* 03:30:00"
retention_days=14
print_only=0
OPTIONS=(--at= --retention-days= --print)

option() {
    case "$1" in
        --at) at="$2" ;; # checked with systemd-analyze where it is installed
        --retention-days) require_number "$1" "$2"; retention_days="$2" ;;
        --print) print_only=1 ;;
    esac
}

# service_unit ENV: runs one backup, as the owner of the env file (who may read the secrets).
service_unit() {
    cat <<UNIT
[Unit]
Description=Back up the $1 database of ${DEPLOY_DIR}
Wants=docker.service
After=docker.service

[Service]
Type=oneshot
User=$(stat -c %U "${DEPLOY_DIR}/env/$1.env")
WorkingDirectory=${DEPLOY_DIR}
ExecStart=${DEPLOY_DIR}/scripts/backup-db.sh $1 --retention-days ${retention_days}
UNIT
}

# timer_unit ENV: starts the service at --at, and at boot when that time was missed.
timer_unit() {
    cat <<UNIT
[Unit]
Description=Daily backup of the $1 database

[Timer]
OnCalendar=${at}
Persistent=true
RandomizedDelaySec=10min

[Install]
WantedBy=timers.target
UNIT
}

main() {
    local env unit
    parse_args 1 1 "$@"
    env="${POSITIONAL[0]}"
    require_env "${env}"
    if command -v systemd-analyze >/dev/null; then
        systemd-analyze calendar "${at}" >/dev/null 2>&1 || usage_error "--at '${at}' is not a systemd calendar expression"
    fi
    # Named after the environment's Compose project (e.g. petory-prod), not the checkout's folder.
    unit="$(env_file_value "${env}" COMPOSE_PROJECT_NAME)"
    [[ -n "${unit}" ]] || die "env/${env}.env sets no COMPOSE_PROJECT_NAME, which names the units"
    unit+="-backup"
    if ((print_only)); then
        printf '# %s.service\n%s\n\n# %s.timer\n%s\n' "${unit}" "$(service_unit "${env}")" "${unit}" "$(timer_unit "${env}")"
        return
    fi
    [[ "$(id -u)" -eq 0 ]] || die "run as root to install systemd units (or use --print)"
    service_unit "${env}" >"/etc/systemd/system/${unit}.service"
    timer_unit "${env}" >"/etc/systemd/system/${unit}.timer"
    systemctl daemon-reload
    systemctl enable --now "${unit}.timer"
    log "backup timer: ${unit}.timer enabled ($(systemctl show -p NextElapseUSecRealtime --value "${unit}.timer"))"
}

main "$@"
