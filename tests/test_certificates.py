"""scripts/certificates.sh and scripts/lib/certificates.sh: the local CA of an environment and the
server certificates issued from it (no Docker engine needed)."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from script_helpers import bash, private_copy, run

NAMES = ["petory.example.com", "www.petory.example.com", "10.0.0.7", "::1"]


@pytest.fixture
def deploy(rendered, tmp_path):
    return private_copy(rendered, tmp_path)


def certificates(deploy, *args, metrics=None):
    return run(deploy, "scripts/certificates.sh", *args,
               env={"METRICS_TEXTFILE_DIR": str(metrics or deploy / "no-metrics-here")})


def load(path):
    return x509.load_pem_x509_certificates(path.read_bytes())


def mode(path):
    return path.stat().st_mode & 0o777


def verify(ca, chain):
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(chain)], capture_output=True, text=True)


def test_ca_is_a_constrained_p256_authority_made_once(deploy):
    proc = certificates(deploy, "ca", "prod")
    assert proc.returncode == 0, proc.stderr
    ca_dir = deploy / ".deploy/prod/ca"
    assert proc.stdout.strip() == str(ca_dir / "ca.pem")
    assert mode(ca_dir / "ca.key") == 0o600 and mode(ca_dir) == 0o700
    [ca] = load(ca_dir / "ca.pem")
    assert ca.issuer == ca.subject and "prod local CA" in ca.subject.rfc4514_string()
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey) and ca.public_key().curve.name == "secp256r1"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3649) <= lifetime <= datetime.timedelta(days=3653)

    before = {name: (ca_dir / name).read_bytes() for name in ("ca.pem", "ca.key")}
    again = certificates(deploy, "ca", "prod")
    assert again.returncode == 0 and "created" not in again.stderr
    assert {name: (ca_dir / name).read_bytes() for name in before} == before  # never replaced


def test_leaf_is_a_server_certificate_for_every_name(deploy, tmp_path):
    out = tmp_path / "edge"
    proc = certificates(deploy, "issue", "prod", str(out), *NAMES)
    assert proc.returncode == 0, proc.stderr
    assert mode(out / "privkey.pem") == 0o600
    leaf, ca = load(out / "fullchain.pem")  # the certificate, then the CA
    assert ca.subject == leaf.issuer and (deploy / ".deploy/prod/ca/ca.pem").read_bytes().strip() in (
        out / "fullchain.pem").read_bytes()
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == NAMES[:2]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(n) for n in NAMES[2:]]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == datetime.timedelta(days=365)  # intermediate
    # The key in privkey.pem belongs to the certificate.
    key = subprocess.run(["openssl", "pkey", "-in", str(out / "privkey.pem"), "-pubout"], capture_output=True).stdout
    cert = subprocess.run(["openssl", "x509", "-in", str(out / "fullchain.pem"), "-noout", "-pubkey"],
                          capture_output=True).stdout
    assert key and key == cert


@pytest.mark.parametrize("answer_set,profile", [("tls-self-signed", "intermediate"), ("edge-modern-cors-lb", "modern")])
def test_leaf_lifetime_is_the_tls_profiles_limit_and_the_docs_say_so(rendered, tmp_path, answer_set, profile):
    """sslyze's Mozilla profiles hold the limit that tests/live/test_tls_profiles.py checks on the running edge."""
    from sslyze.mozilla_tls_profile.tls_config_checker import MozillaTlsConfiguration, TlsConfigurationEnum

    import deployment

    days = deployment.LEAF_DAYS[profile]
    deploy = private_copy(rendered, tmp_path, answer_set)
    assert f'Mozilla "{profile}" profile' in (deploy / "nginx/snippets/tls.conf").read_text()
    assert certificates(deploy, "issue", "prod", str(tmp_path / "out"), "a.example.com").returncode == 0
    [leaf, _] = load(tmp_path / "out/fullchain.pem")
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    assert lifetime == days <= MozillaTlsConfiguration.get(TlsConfigurationEnum(profile)).maximum_certificate_lifespan
    assert f"leaf 인증서는 {days}일 동안 유효하며(Mozilla `{profile}`" in (deploy / "docs/04-nginx-configuration.md").read_text()


def test_leaf_verifies_against_its_ca_only(deploy, tmp_path):
    assert certificates(deploy, "issue", "prod", str(tmp_path / "prod"), "petory.example.com").returncode == 0
    assert certificates(deploy, "issue", "staging", str(tmp_path / "staging"), "petory.example.com").returncode == 0
    prod_ca, staging_ca = deploy / ".deploy/prod/ca/ca.pem", deploy / ".deploy/staging/ca/ca.pem"
    assert verify(prod_ca, tmp_path / "prod/fullchain.pem").returncode == 0
    assert verify(staging_ca, tmp_path / "staging/fullchain.pem").returncode == 0
    refused = verify(prod_ca, tmp_path / "staging/fullchain.pem")
    assert refused.returncode != 0 and "unable to get local issuer certificate" in refused.stdout + refused.stderr


def test_a_second_issue_reuses_the_ca_and_replaces_the_files(deploy, tmp_path):
    out = tmp_path / "edge"
    assert certificates(deploy, "issue", "prod", str(out), "a.example.com").returncode == 0
    first = (out / "fullchain.pem").read_bytes()
    ca = (deploy / ".deploy/prod/ca/ca.pem").read_bytes()
    assert certificates(deploy, "issue", "prod", str(out), "b.example.com").returncode == 0
    assert (out / "fullchain.pem").read_bytes() != first and (deploy / ".deploy/prod/ca/ca.pem").read_bytes() == ca
    assert sorted(p.name for p in out.iterdir()) == ["fullchain.pem", "privkey.pem"]  # nothing temporary left


@pytest.mark.parametrize("args,message", [
    (["issue", "prod", "OUT", "bad name"], "'bad name' is neither a host name nor an IP address"),
    (["issue", "prod", "OUT", "-x.example.com"], "is neither a host name nor an IP address"),
    (["issue", "prod", "OUT"], "issue takes an environment, an output directory and at least one name"),
    (["issue", "qa", "OUT", "a.example.com"], "unknown environment 'qa'"),
    (["ca"], "ca takes one environment"),
    (["renew", "prod"], "unknown command 'renew'"),
])
def test_bad_input_gets_one_line_and_writes_nothing(deploy, tmp_path, args, message):
    out = tmp_path / "out"
    proc = certificates(deploy, *[str(out) if a == "OUT" else a for a in args])
    assert proc.returncode in (1, 2) and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists() and not (deploy / ".deploy").exists()


def test_half_a_ca_is_never_replaced(deploy, tmp_path):
    assert certificates(deploy, "ca", "prod").returncode == 0
    key = deploy / ".deploy/prod/ca/ca.key"
    saved = key.read_bytes()
    (deploy / ".deploy/prod/ca/ca.pem").unlink()
    proc = certificates(deploy, "issue", "prod", str(tmp_path / "out"), "a.example.com")
    assert proc.returncode == 1 and "holds only one of ca.pem and ca.key" in proc.stderr
    assert key.read_bytes() == saved and not (tmp_path / "out").exists()


def test_expiry_is_the_not_after_date(deploy, tmp_path):
    assert certificates(deploy, "issue", "prod", str(tmp_path), "a.example.com").returncode == 0
    proc = certificates(deploy, "expiry", str(tmp_path / "fullchain.pem"))
    [leaf, _] = load(tmp_path / "fullchain.pem")
    assert proc.returncode == 0 and int(proc.stdout) == int(leaf.not_valid_after_utc.timestamp())
    proc = certificates(deploy, "expiry", str(tmp_path / "privkey.pem"))
    assert proc.returncode == 1 and "holds no PEM certificate" in proc.stderr


def test_expiry_metrics_keep_the_other_certificates(deploy, tmp_path):
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    assert certificates(deploy, "ca", "prod", metrics=metrics).returncode == 0
    assert certificates(deploy, "issue", "prod", str(tmp_path / "a"), "a.example.com", metrics=metrics).returncode == 0
    assert certificates(deploy, "issue", "prod", str(tmp_path / "a"), "a.example.com", metrics=metrics).returncode == 0
    text = (metrics / "petory_certificates_prod.prom").read_text()
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    [leaf, ca] = load(tmp_path / "a/fullchain.pem")
    assert sorted(samples) == sorted([
        f'petory_certificate_expiry_timestamp_seconds{{env="prod",name="local-ca"}} {int(ca.not_valid_after_utc.timestamp())}',
        f'petory_certificate_expiry_timestamp_seconds{{env="prod",name="a.example.com"}} {int(leaf.not_valid_after_utc.timestamp())}',
    ])


def test_init_certificates_uses_the_local_ca_and_keeps_the_placeholder_marker(deploy):
    """The Docker part (the certs volume) runs in tests/live; here: what the script is built from."""
    text = (deploy / "scripts/init-certificates.sh").read_text()
    assert "source \"$(dirname \"${BASH_SOURCE[0]}\")/lib/certificates.sh\"" in text
    assert 'issue_leaf "${env}"' in text and "-x509" not in text  # no CA certificate served as the server's
    assert "touch \"${work}/.self-signed\"" in text and "test ! -f ${live}/.self-signed" in text
    proc = bash(deploy, 'source scripts/lib/metrics.sh; source scripts/lib/certificates.sh; type issue_leaf >/dev/null')
    assert proc.returncode == 0, proc.stderr
