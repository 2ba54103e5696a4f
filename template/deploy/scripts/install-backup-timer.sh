#!/usr/bin/env bash
# Schedules scripts/backup-db.sh with a systemd timer: persistent (a backup missed while the host
# was down runs at the next boot), logged in the journal, and visible in `systemctl list-timers`.
set -Eeuo pipefail

usage() {
    cat <<USAGE
Usage: scripts/install-backup-timer.sh <env> [--at "*-*-* 03:30:00"] [--retention-days N] [--print]

Installs and starts <project>-backup-<env>.timer (as root). --print shows the unit files only.
USAGE
}

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

at="*-*-* 03:30:00"
retention_days=14
print_only=0
positional=()
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --at) at="${2:?--at needs an OnCalendar expression}"; shift ;;
        --retention-days) retention_days="${2:?--retention-days needs a number}"; shift ;;
        --print) print_only=1 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) positional+=("$1") ;;
    esac
    shift
done
((${#positional[@]} == 1)) || { usage >&2; exit 2; }
env="${positional[0]}"
require_env "${env}"
unit="$(basename "${REPO_ROOT}")-backup-${env}"
owner="$(stat -c %U "${REPO_ROOT}/env/${env}.env")"

service="[Unit]
Description=Back up the ${env} database of ${REPO_ROOT}
Wants=docker.service
After=docker.service

[Service]
Type=oneshot
User=${owner}
WorkingDirectory=${REPO_ROOT}
ExecStart=${REPO_ROOT}/scripts/backup-db.sh ${env} --retention-days ${retention_days}"
timer="[Unit]
Description=Daily backup of the ${env} database

[Timer]
OnCalendar=${at}
Persistent=true
RandomizedDelaySec=10min

[Install]
WantedBy=timers.target"

if ((print_only)); then
    printf '# %s.service\n%s\n\n# %s.timer\n%s\n' "${unit}" "${service}" "${unit}" "${timer}"
    exit 0
fi
[[ "$(id -u)" -eq 0 ]] || die "run as root to install systemd units (or use --print)"
printf '%s\n' "${service}" >"/etc/systemd/system/${unit}.service"
printf '%s\n' "${timer}" >"/etc/systemd/system/${unit}.timer"
systemctl daemon-reload
systemctl enable --now "${unit}.timer"
log "backup timer: ${unit}.timer enabled ($(systemctl show -p NextElapseUSecRealtime --value "${unit}.timer"))"
