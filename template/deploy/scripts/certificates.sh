#!/usr/bin/env bash
# The local certificate authority of each environment, and server certificates issued from it
# (the functions are in scripts/lib/certificates.sh; init-certificates.sh uses them for the edge).
set -Eeuo pipefail

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/metrics.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/metrics.sh"
# shellcheck source=scripts/lib/certificates.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/certificates.sh"

usage() {
    cat <<USAGE
Usage: scripts/certificates.sh <command> <arguments...>, one of:
       scripts/certificates.sh ca <env>
       scripts/certificates.sh issue <env> <out-dir> <name> [<name>...]
       scripts/certificates.sh expiry <file>

  ca      create the local CA of <env> in .deploy/<env>/ca/ unless it exists (ca.pem, ca.key);
          it is never replaced. Give ca.pem to the clients that should trust its certificates.
  issue   write <out-dir>/fullchain.pem and <out-dir>/privkey.pem: a server certificate for the
          host names and IP addresses given (valid ${LEAF_DAYS} days), signed by the CA of <env>
  expiry  print the notAfter date of the certificate in <file> as seconds since the epoch
Each CA and certificate's expiry is exported as petory_certificate_expiry_timestamp_seconds.
Needs: openssl.
USAGE
}

main() {
    parse_args 1 rest "$@"
    local command="${POSITIONAL[0]}"
    set -- "${POSITIONAL[@]:1}"
    case "${command}" in
        ca)
            (($# == 1)) || usage_error "ca takes one environment"
            require_known_env "$1"
            ensure_ca "$1"
            export_certificate_expiry "$1" local-ca "$(certificate_expiry "$(ca_dir "$1")/ca.pem")"
            printf '%s\n' "$(ca_dir "$1")/ca.pem"
            ;;
        issue)
            (($# >= 3)) || usage_error "issue takes an environment, an output directory and at least one name"
            require_known_env "$1"
            issue_leaf "$@"
            export_certificate_expiry "$1" "$3" "$(certificate_expiry "$2/fullchain.pem")"
            log "certificates: issued $2/fullchain.pem for ${*:3}"
            ;;
        expiry)
            (($# == 1)) || usage_error "expiry takes one certificate file"
            [[ -r "$1" ]] || die "cannot read $1"
            certificate_expiry "$1"
            ;;
        *) usage_error "unknown command '${command}'" ;;
    esac
}

main "$@"
