#!/usr/bin/env bash
# The host firewall of a Petory server: the chains PETORY-INPUT (jumped to first from INPUT) and
# DOCKER-USER, from /etc/petory/firewall/rules.v4 and rules.v6 (deploy/provision, role firewall).
# Only those chains are written: Docker's own chains are never flushed, so a reload never cuts a
# container off (a whole-table restore or `iptables -F` would, until Docker restarts).
set -Eeuo pipefail

RULES_DIR="${PETORY_FIREWALL_RULES:-/etc/petory/firewall}"
STATE_DIR=/run/petory-firewall
REVERT_UNIT=petory-firewall-revert
# The chains written per family. IPv6 has no DOCKER-USER of ours: no container has an IPv6 address.
declare -A CHAINS=([v4]="PETORY-INPUT DOCKER-USER" [v6]="PETORY-INPUT")

usage() {
    cat <<USAGE
Usage: petory-firewall <command>
  apply [--revert-after SECONDS]  load the rules; with --revert-after, the previous rules come back
                                  after SECONDS unless \`petory-firewall confirm\` runs first
                                  (the dead-man switch: a rule that cuts SSH cannot lock you out)
  confirm                         keep the rules of the last apply (stops the pending revert)
  revert                          put back the rules from before the last apply
  audit                           compare the live rules with the rules files; exit 1 on any drift
  show                            print the live rules of both chains
Rules: ${RULES_DIR}/rules.v4 and rules.v6 (iptables-restore format, these chains only).
USAGE
}

log() { echo "petory-firewall: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# tool FAMILY NAME: iptables for v4, ip6tables for v6 (NAME: "", -save, -restore).
tool() { if [[ "$1" == v4 ]]; then echo "iptables$2"; else echo "ip6tables$2"; fi; }

# chains FAMILY: the rules of our chains as `iptables -S` prints them, and INPUT's jump.
chains() {
    local cmd chain
    cmd="$(tool "$1" "")"
    for chain in ${CHAINS[$1]}; do
        "${cmd}" -S "${chain}" 2>/dev/null || true
    done
    "${cmd}" -S INPUT | grep -n -- '-j PETORY-INPUT$' | sed 's/^\([0-9]*\):/INPUT position \1: /' || true
}

# expected FAMILY: what chains() prints once the rules file is loaded, from a throwaway network
# namespace (nothing of this host changes).
expected() {
    local file="${RULES_DIR}/rules.$1"
    [[ -r "${file}" ]] || die "${file} is missing; run make provision for this host"
    unshare --net bash -c "$(tool "$1" -restore) --noflush <'${file}' && $(tool "$1" "") -I INPUT 1 -j PETORY-INPUT && $(declare -f tool chains); $(declare -p CHAINS); chains $1"
}

# save_previous FAMILY: our chains as they are now, in restore format, for revert.
save_previous() {
    local chain
    {
        echo "*filter"
        for chain in ${CHAINS[$1]}; do echo ":${chain} - [0:0]"; done
        "$(tool "$1" -save)" -t filter | grep -E -- "^-A (${CHAINS[$1]// /|}) " || true
        echo "COMMIT"
    } >"${STATE_DIR}/previous.$1"
}

load() { # FAMILY FILE
    "$(tool "$1" -restore)" --noflush <"$2"
    "$(tool "$1" "")" -C INPUT -j PETORY-INPUT 2>/dev/null || "$(tool "$1" "")" -I INPUT 1 -j PETORY-INPUT
}

apply() {
    local revert_after="" family before after changed=0
    case "${1:-}" in
        --revert-after) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--revert-after takes seconds"; revert_after="$2" ;;
        "") ;;
        *) usage >&2; exit 2 ;;
    esac
    install -d -m 0700 "${STATE_DIR}"
    rm -f "${STATE_DIR}"/previous.* # revert puts back only what this apply changes
    for family in v4 v6; do
        before="$(chains "${family}")"
        [[ "${before}" == "$(expected "${family}")" ]] && continue
        changed=1
        save_previous "${family}"
        load "${family}" "${RULES_DIR}/rules.${family}"
        after="$(chains "${family}")"
        [[ "${after}" == "$(expected "${family}")" ]] || die "the ${family} rules did not load as written"
    done
    if ((changed == 0)); then
        echo "rules: as before"
        return
    fi
    if [[ -n "${revert_after}" ]]; then
        systemctl stop "${REVERT_UNIT}.timer" 2>/dev/null || true
        systemd-run --quiet --unit "${REVERT_UNIT}" --on-active="${revert_after}" --timer-property=AccuracySec=1s \
            "$(realpath "$0")" revert
        log "the previous rules come back in ${revert_after} s unless petory-firewall confirm runs"
    fi
    echo "rules: changed"
}

confirm() {
    systemctl is-active --quiet "${REVERT_UNIT}.timer" || die "nothing to confirm: no apply is waiting (or it has reverted already)"
    systemctl stop "${REVERT_UNIT}.timer"
    log "rules confirmed"
}

revert() {
    local family
    for family in v4 v6; do
        [[ -r "${STATE_DIR}/previous.${family}" ]] && load "${family}" "${STATE_DIR}/previous.${family}"
    done
    log "reverted to the rules from before the last apply"
}

audit() {
    local family drift=0 diff_text
    for family in v4 v6; do
        if ! diff_text="$(diff <(expected "${family}") <(chains "${family}"))"; then
            drift=1
            sed -n "s/^</missing (${family}):/p; s/^>/unexpected (${family}):/p" <<<"${diff_text}"
        fi
    done
    ((drift == 0)) || die "the live rules drifted from ${RULES_DIR}; petory-firewall apply restores them"
    echo "audit: the live rules are the rules files"
}

main() {
    [[ "$(id -u)" -eq 0 ]] || [[ "${1:-}" =~ ^(-h|--help)$ ]] || die "run as root (sudo)"
    case "${1:-}" in
        apply) shift; apply "$@" ;;
        confirm) confirm ;;
        revert) revert ;;
        audit) audit ;;
        show) chains v4; chains v6 ;;
        -h | --help) usage ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
