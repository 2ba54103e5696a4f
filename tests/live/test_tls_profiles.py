"""The edge's TLS against Mozilla's profiles, judged by sslyze's own checker, on a self-signed stack.

The shared prod stack (self-signed, `intermediate`: the default) is scanned as it runs: with the
environment's local CA given to sslyze the checker finds nothing, and without it the one finding is
that CA's trust. For `modern` no second stack is started: the template is rendered again with only
`tls_profile` changed, the files that differ are swapped into the running stack and applied as an
operator applies a change (`scripts/init-certificates.sh prod --force`, `make reload-edge`), the
edge is scanned, and its own files are put back the same way. The same site validates by name for
a client that trusts only `.deploy/prod/ca/ca.pem`: Python's ssl, and curl as the docs show it.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import copier
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sslyze import (CertificateInfoExtraArgument, ScanCommand, ScanCommandsExtraArguments, Scanner,
                    ServerNetworkLocation, ServerScanRequest, ServerScanResult, ServerScanStatusEnum)
from sslyze.mozilla_tls_profile.tls_config_checker import (SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
                                                           MozillaTlsConfiguration,
                                                           ServerNotCompliantWithTlsConfiguration,
                                                           TlsConfigurationEnum,
                                                           check_server_against_tls_configuration)

from stack import ROOT, Stack

# What a profile switch changes in the files the running stack mounts or runs: the protocols and
# groups (tls.conf), and the certificate lifetime the profile allows (the local CA's helper).
PROFILE_FILES = {"nginx/snippets/tls.conf", "scripts/lib/certificates.sh"}


def ca_file(stack: Stack) -> Path:
    return stack.deploy_dir / f".deploy/{stack.env}/ca/ca.pem"


def scan(stack: Stack, ca: Path | None) -> ServerScanResult:
    """Everything sslyze's Mozilla checker needs, plus the HTTP headers (HSTS), for the site's name."""
    extra = ScanCommandsExtraArguments(certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca) if ca else None)
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(stack.domain, stack.https_port, ip_address="127.0.0.1"),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER | {ScanCommand.HTTP_HEADERS},
        scan_commands_extra_arguments=extra)
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    return result


def findings(result: ServerScanResult, profile: str) -> dict[str, str]:
    try:
        check_server_against_tls_configuration(result, MozillaTlsConfiguration.get(TlsConfigurationEnum(profile)))
    except ServerNotCompliantWithTlsConfiguration as err:
        return err.issues
    return {}


def accepted(result: ServerScanResult, version: str) -> set[str]:
    attempt = getattr(result.scan_result, f"{version}_cipher_suites")
    return {s.cipher_suite.name for s in attempt.result.accepted_cipher_suites}


def check_profile(stack: Stack, profile: str, lifetime_days: int) -> str:
    """Scan with and without the local CA; assert the profile's every parameter; a summary line."""
    config = MozillaTlsConfiguration.get(TlsConfigurationEnum(profile))
    trusted = scan(stack, ca_file(stack))
    assert findings(trusted, profile) == {}, findings(trusted, profile)
    untrusted = scan(stack, None)
    leaf = untrusted.scan_result.certificate_info.result.certificate_deployments[0].received_certificate_chain[0]
    assert findings(untrusted, profile) == {
        "certificate_path_validation": f"Certificate path validation failed for {leaf.subject.rfc4514_string()}."}
    assert leaf.subject.rfc4514_string() == f"CN={stack.domain}"
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == lifetime_days

    # The checker only rejects extras; these say the edge offers what the profile lists, no less.
    result = trusted.scan_result
    curves = {c.name for c in result.elliptic_curves.result.supported_curves}
    assert curves == config.tls_curves, curves
    assert accepted(trusted, "tls_1_3") == config.ciphersuites
    ecdsa = {name for name in config.ciphers.iana if name.startswith("TLS_ECDHE_ECDSA_")}  # the leaf is P-256
    assert accepted(trusted, "tls_1_2") == (ecdsa if "TLSv1.2" in config.tls_versions else set())
    assert not any(accepted(trusted, v) for v in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"))
    hsts = result.http_headers.result.strict_transport_security_header
    assert hsts is not None and hsts.max_age >= config.hsts_min_age  # the checker leaves HSTS out
    return (f"{profile}: groups {', '.join(sorted(curves))}; TLS 1.3 {', '.join(sorted(accepted(trusted, 'tls_1_3')))}; "
            f"TLS 1.2 {', '.join(sorted(accepted(trusted, 'tls_1_2'))) or 'refused'}; leaf {lifetime_days} days")


def handshake(stack: Stack, context: ssl.SSLContext) -> dict:
    with socket.create_connection(("127.0.0.1", stack.https_port), 10) as sock:
        with context.wrap_socket(sock, server_hostname=stack.domain) as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {stack.domain}\r\nConnection: close\r\n\r\n".encode())
            assert tls.recv(64).startswith(b"HTTP/1.1 200 "), "the site did not answer 200"
            return tls.getpeercert()


def tls12_accepted(stack: Stack) -> bool:
    context = ssl.create_default_context(cafile=ca_file(stack))
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        handshake(stack, context)
        return True
    except ssl.SSLError:
        return False


def wait_for_tls12(stack: Stack, accepted_now: bool, timeout: float = 30) -> None:
    """A reload is asynchronous: wait until new connections see the configuration it loaded."""
    deadline = time.monotonic() + timeout
    while tls12_accepted(stack) != accepted_now:
        assert time.monotonic() < deadline, f"TLS 1.2 still {'refused' if accepted_now else 'accepted'} after reload"
        time.sleep(0.5)


def apply_certificate_and_reload(stack: Stack) -> None:
    """The docs' renewal of a local-CA certificate, then `make reload-edge` (nginx -t first)."""
    stack.run("scripts/init-certificates.sh", stack.env, "--force")
    stack.run("make", "reload-edge", f"ENV={stack.env}", input=b"")  # no terminal, as in CI


def edge_openssl(stack: Stack) -> str:
    proc = stack.compose("exec", "-T", "edge", "nginx", "-V")
    return next(line for line in proc.stderr.decode().splitlines() if "OpenSSL" in line).strip()


# ---------------------------------------------------------------------------------------------


def test_self_signed_site_validates_by_name_for_a_client_trusting_only_the_local_ca(prod_stack):
    ca = ca_file(prod_stack)
    context = ssl.create_default_context(cafile=ca)  # this CA only, no system store
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    peer = handshake(prod_stack, context)
    assert ("DNS", prod_stack.domain) in peer["subjectAltName"]
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate in certificate chain"):
        handshake(prod_stack, ssl.create_default_context())  # the system store does not know it

    # A server certificate issued by that CA, not the CA itself.
    with socket.create_connection(("127.0.0.1", prod_stack.https_port), 10) as sock:
        with context.wrap_socket(sock, server_hostname=prod_stack.domain) as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    [authority] = x509.load_pem_x509_certificates(ca.read_bytes())
    assert leaf.issuer == authority.subject and leaf.subject != authority.subject
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]

    # The docs' check, `curl --cacert <ca.pem> https://<domain>/`, aimed at the published port.
    curl = shutil.which("curl")
    assert curl, "curl is missing (apt-get install -y curl)"
    port = prod_stack.https_port
    proc = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(ca),
                           "--resolve", f"{prod_stack.domain}:{port}:127.0.0.1", f"https://{prod_stack.domain}:{port}/"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout == "200", proc.stderr


def test_intermediate_profile_passes_mozillas_check_on_the_running_edge(prod_stack, summary):
    line = check_profile(prod_stack, "intermediate", 365)
    summary.append(f"live tls profiles: {line} (edge {edge_openssl(prod_stack)})")


def test_modern_profile_passes_mozillas_check_after_swapping_its_files_in(prod_stack, tmp_path, summary):
    answers = yaml.safe_load((prod_stack.project_dir / ".copier-answers.yml").read_text())
    answers = {k: v for k, v in answers.items() if not k.startswith("_")}
    assert answers.get("tls_profile", "intermediate") == "intermediate"
    modern = tmp_path / "modern"
    copier.run_copy(str(ROOT), str(modern), data={**answers, "tls_profile": "modern"}, defaults=True, unsafe=True,
                    vcs_ref="HEAD", quiet=True, skip_tasks=True)
    running = prod_stack.deploy_dir
    swap = {}
    for path in (p for top in ("nginx", "scripts") for p in (modern / "deploy" / top).rglob("*") if p.is_file()):
        rel = str(path.relative_to(modern / "deploy"))
        if not (running / rel).is_file() or (running / rel).read_bytes() != path.read_bytes():
            swap[rel] = path.read_bytes()
    assert set(swap) == PROFILE_FILES, sorted(swap)
    original = {rel: (running / rel).read_bytes() for rel in swap}

    try:
        for rel, content in swap.items():
            (running / rel).write_bytes(content)
        apply_certificate_and_reload(prod_stack)
        wait_for_tls12(prod_stack, accepted_now=False)
        summary.append(f"live tls profiles: {check_profile(prod_stack, 'modern', 90)} (swapped into the prod stack)")
    finally:
        for rel, content in original.items():
            (running / rel).write_bytes(content)
        apply_certificate_and_reload(prod_stack)
        wait_for_tls12(prod_stack, accepted_now=True)
    # Back as it was: intermediate, with a new one-year certificate from the same CA.
    context = ssl.create_default_context(cafile=ca_file(prod_stack))
    with socket.create_connection(("127.0.0.1", prod_stack.https_port), 10) as sock:
        with context.wrap_socket(sock, server_hostname=prod_stack.domain) as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 365
