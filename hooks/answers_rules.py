"""Validation rules for the questionnaire and the env-file contract.

`answer_error(kind, value)` returns "" for a valid answer, else a message that says what a right
answer looks like; copier.yml validators call it so every rule has a unit test.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo

LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
FQDN = re.compile(rf"^(?=.{{4,253}}$)(?:{LABEL}\.)+[a-z]{{2,63}}$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@" + FQDN.pattern[1:])
SLUG = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
# registry/namespace/name:tag or @digest, as `docker pull` accepts (lower-case repository path).
IMAGE_REF = re.compile(
    r"^(?:(?:[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
IMAGE_REPO = re.compile(
    r"^(?:(?:[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
REL_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9._/*?\[\]!-]+$")
DB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


def _fqdn(value: str) -> str:
    if "://" in value or "/" in value:
        return f"'{value}' looks like a URL; give the bare host name, e.g. petory.example.com"
    if not FQDN.match(str(value)):
        return f"'{value}' is not a fully qualified lower-case domain name, e.g. petory.example.com"
    return ""


# Browser origins allowed by CORS: scheme://host[:port], nothing after it (that is what browsers send).
ORIGIN = re.compile(rf"^(?:https://(?:{LABEL}\.)+[a-z]{{2,63}}|http://(?:localhost|127\.0\.0\.1))(?::[0-9]{{1,5}})?$")
HTTPS_URL = re.compile(rf"^https://(?:{LABEL}\.)*{LABEL}(?::[0-9]{{1,5}})?(?:/[A-Za-z0-9._~/-]*)?$")
# Whole-number answers: (lowest, highest, what it is).
RANGES = {
    "body_size_mb": (1, 1024, "a request body limit in MB"),
    "timeout_seconds": (5, 3600, "a timeout in seconds"),
    "rate_per_second": (1, 10000, "a request rate per second"),
}


def _origin(value: str) -> str:
    if value == "*" or "*" in value:
        return f"'{value}' is a wildcard; list each allowed origin, e.g. https://partner.example.com"
    if value.endswith("/") or value.count("/") > 2:
        return f"'{value}' has a path; an origin is scheme://host[:port] only, e.g. https://partner.example.com"
    if not ORIGIN.match(value):
        return (f"'{value}' is not an origin like https://partner.example.com (https, lower-case host, optional "
                "port; plain http only for localhost)")
    return ""


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return f"'{value}' is not a CIDR range or address, e.g. 10.0.0.0/8 or 203.0.113.10"
    if network.prefixlen == 0:
        return f"'{value}' would trust every address, so anyone could fake their address; list your load balancers' ranges"
    return ""


def _rule(kind: str, value) -> str:
    text = str(value)
    if kind == "fqdn":
        return _fqdn(text)
    if kind == "fqdn_list":
        if not isinstance(value, list):
            return "give a YAML list of host names, e.g. [www.petory.example.com] or []"
        return next((m for m in (_fqdn(str(v)) for v in value) if m), "")
    if kind == "email":
        return "" if EMAIL.match(text) else f"'{text}' is not an e-mail address, e.g. ops@petory.example.com"
    if kind == "slug":
        return "" if SLUG.match(text) else (
            f"'{text}' is not a valid slug: 3-32 characters, lower-case letters, digits and '-', "
            "starting with a letter, e.g. petory"
        )
    if kind == "image":
        return "" if IMAGE_REF.match(text) else (
            f"'{text}' is not an image reference like nginx:1.28-alpine or "
            "registry.example.com/mirror/mysql:8.0 (lower-case repository, optional :tag or @sha256:digest)"
        )
    if kind == "image_repo":
        return "" if IMAGE_REPO.match(text) else (
            f"'{text}' is not an image repository without tag, e.g. ghcr.io/petory-team/petory-backend"
        )
    if kind == "registry_host":
        return "" if REGISTRY_HOST.match(text) else f"'{text}' is not a registry host, e.g. registry.example.com:5000"
    if kind == "namespace":
        return "" if NAMESPACE.match(text) else (
            f"'{text}' is not a registry owner/namespace: lower-case letters, digits, '.', '_' or '-', e.g. petory-team"
        )
    if kind == "port":
        ok = text.isdigit() and 1024 <= int(text) <= 65535
        return "" if ok else f"'{text}' is not an unprivileged TCP port: a number from 1024 to 65535"
    if kind == "timezone":
        try:
            zoneinfo.ZoneInfo(text)
            return "" if "/" in text or text == "UTC" else f"'{text}' is ambiguous; use an IANA name like Asia/Seoul or UTC"
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return f"'{text}' is not an IANA time zone name, e.g. Asia/Seoul or UTC"
    if kind == "rel_path":
        return "" if REL_PATH.match(text) else (
            f"'{text}' must be a path relative to the Petory repository root, without '..', "
            "e.g. backend/build/libs/*-SNAPSHOT.jar"
        )
    if kind == "unix_user":
        return "" if UNIX_USER.match(text) else f"'{text}' is not a Unix user name, e.g. deploy"
    if kind == "host":
        if FQDN.match(text) or re.match(r"^(\d{1,3}\.){3}\d{1,3}$", text):
            return ""
        return f"'{text}' is not a host name or IPv4 address, e.g. prod.petory.example.com or 203.0.113.10"
    if kind == "abs_path":
        return "" if re.match(r"^/[A-Za-z0-9._/-]+$", text) and ".." not in text else (
            f"'{text}' must be an absolute directory path on the server, e.g. /srv/petory"
        )
    if kind == "origin_list":
        if not isinstance(value, list):
            return "give a YAML list of origins, e.g. [https://partner.example.com] or []"
        return next((m for m in (_origin(str(v)) for v in value) if m), "")
    if kind == "cidr_list":
        if not isinstance(value, list):
            return "give a YAML list of CIDR ranges, e.g. [10.0.0.0/8] or []"
        return next((m for m in (_cidr(str(v)) for v in value) if m), "")
    if kind in RANGES:
        low, high, what = RANGES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) or text.isdigit()
        return "" if ok and low <= int(text) <= high else f"'{text}' is not {what}: a whole number from {low} to {high}"
    if kind == "https_url":
        return "" if HTTPS_URL.match(text) else (
            f"'{text}' is not an https:// URL, e.g. https://acme-v02.api.letsencrypt.org/directory"
        )
    if kind == "db_name":
        return "" if DB_NAME.match(text) else (
            f"'{text}' is not a database name: a letter, then letters, digits or '_', up to 64 characters"
        )
    if kind == "github_repo":
        return "" if GITHUB_REPO.match(text) else f"'{text}' is not a GitHub repository as owner/name, e.g. petory-team/petory"
    raise KeyError(f"no validation rule named {kind!r}")


def answer_error(kind: str, value) -> str:
    return _rule(kind, value)


def env_entries(env: str, slug: str, bundled_mysql: bool, bundled_redis: bool) -> list[dict]:
    """The keys of env/<env>.env, in file order, with the value for `env` and the tracked example.

    `example` is what env/.env.example shows (placeholders for secrets); `value` is what the
    generated env file gets (`new_secret` is applied to `<generated:N>` by the template).
    """
    dev = env == "dev"
    entries = [
        ("Compose", "COMPOSE_PROJECT_NAME", f"{slug}-{env}", f"{slug}-prod",
         "one Compose project per environment, so dev and staging can share a host"),
        ("Compose", "APP_VERSION", "local", "local",
         "image tag `make up` runs before the first deploy; afterwards scripts/deploy.sh records each colour's tag in .deploy/<env>/colours.env"),
        ("Compose", "EDGE_BIND_ADDRESS", "127.0.0.1" if dev else "0.0.0.0", "0.0.0.0",
         "address the edge publishes 80/443 on; 127.0.0.1 keeps a dev stack private"),
        ("Compose", "EDGE_HTTP_PORT", "8080" if dev else "80", "80", "host port for HTTP (redirects to HTTPS)"),
        ("Compose", "EDGE_HTTPS_PORT", "8443" if dev else "443", "443", "host port for HTTPS"),
    ]
    if bundled_mysql:
        entries.append(("Secrets", "MYSQL_ROOT_PASSWORD", "<generated:40>", "<generated:40>",
                        "MySQL root; used only by the MySQL container and backups"))
    entries += [
        ("Secrets", "MYSQL_PASSWORD", "<generated:40>", "<generated:40>",
         "password of the application's MySQL user" + ("" if bundled_mysql else " (set it to the external database's)")),
        ("Secrets", "REDIS_PASSWORD", "<generated:40>", "<generated:40>",
         "Redis AUTH password" + ("" if bundled_redis else " (set it to the external Redis's)")),
        ("Secrets", "PETORY_JWT_SECRET", "<generated:64>", "<generated:64>",
         "HMAC key for the backend's JWTs (64 characters = 512 bits for HS512)"),
    ]
    keys = ("section", "key", "value", "example", "comment")
    return [dict(zip(keys, entry)) for entry in entries]
