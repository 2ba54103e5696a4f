"""Validation rules for the questionnaire.

`answer_error(kind, value)` returns "" for a valid answer, else a message that says what a right
answer looks like; copier.yml validators call it so every rule has a unit test. RULES is the
table of kinds; each rule is built from the small combinators below (`_pattern`, `_each`, `_range`)
or is a short function when one pattern cannot say what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from typing import Callable

Rule = Callable[[object], str]

LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
FQDN = re.compile(rf"^(?=.{{4,253}}$)(?:{LABEL}\.)+[a-z]{{2,63}}$")
EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@" + FQDN.pattern[1:])
HOST = re.compile(rf"^(?:{FQDN.pattern[1:-1]}|(?:\d{{1,3}}\.){{3}}\d{{1,3}})$")  # FQDN or IPv4 address
SLUG = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
# registry/namespace/name:tag or @digest, as `docker pull` accepts (lower-case repository path).
IMAGE_REPO = re.compile(
    r"^(?:(?:[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
IMAGE_REF = re.compile(IMAGE_REPO.pattern[:-1] + r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$")
NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
REL_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9._/*?\[\]!-]+$")
ABS_PATH = re.compile(r"^/(?!.*\.\.)[A-Za-z0-9._/-]+$")
DB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
# Browser origins allowed by CORS: scheme://host[:port], nothing after it (that is what browsers send).
ORIGIN = re.compile(rf"^(?:https://(?:{LABEL}\.)+[a-z]{{2,63}}|http://(?:localhost|127\.0\.0\.1))(?::[0-9]{{1,5}})?$")
HTTPS_URL = re.compile(rf"^https://(?:{LABEL}\.)*{LABEL}(?::[0-9]{{1,5}})?(?:/[A-Za-z0-9._~/-]*)?$")

# Whole-number answers: kind -> (lowest, highest, what it is[, why the lowest]).
RANGES = {
    "port": (1024, 65535, "an unprivileged TCP port"),  # the apps' ports inside their containers
    "tcp_port": (1, 65535, "a TCP port"),  # external MySQL and Redis servers
    "host_cpus": (2, 256, "a CPU core count for the host", "the minimum"),  # hooks/sizing.py MIN_HOST_CPUS
    "host_memory_gb": (4, 2048, "a host memory size in whole GB", "the minimum"),  # MIN_HOST_MEMORY_MB / 1024
    "body_size_mb": (1, 1024, "a request body limit in MB"),
    "timeout_seconds": (5, 3600, "a timeout in seconds"),
    "rate_per_second": (1, 10000, "a request rate per second"),
}


def _pattern(rx: re.Pattern, message: str) -> Rule:
    """A rule: "" when the whole answer matches `rx`, else `message` with the answer in place of {}."""
    return lambda value: "" if rx.match(str(value)) else message.format(value)


def _each(rule: Rule, what: str, example: str) -> Rule:
    """A rule for a YAML list: the first element's error, or a hint when the answer is not a list."""
    def check(value) -> str:
        if not isinstance(value, list):
            return f"give a YAML list of {what}, e.g. {example} or []"
        return next((message for message in (rule(str(v)) for v in value) if message), "")
    return check


def _range(low: int, high: int, what: str, why_low: str = "") -> Rule:
    """A rule for a whole number from `low` to `high` (an int, or a string of digits)."""
    shown_low = f"{low} ({why_low})" if why_low else f"{low}"

    def check(value) -> str:
        text = str(value)
        whole = isinstance(value, int) and not isinstance(value, bool) or text.isdigit()
        if whole and low <= int(text) <= high:
            return ""
        return f"'{text}' is not {what}: a whole number from {shown_low} to {high}"
    return check


def _fqdn(value) -> str:
    text = str(value)
    if "://" in text or "/" in text:
        return f"'{text}' looks like a URL; give the bare host name, e.g. petory.example.com"
    if not FQDN.match(text):
        return f"'{text}' is not a fully qualified lower-case domain name, e.g. petory.example.com"
    return ""


def _origin(value) -> str:
    text = str(value)
    if "*" in text:
        return f"'{text}' is a wildcard; list each allowed origin, e.g. https://partner.example.com"
    if text.endswith("/") or text.count("/") > 2:
        return f"'{text}' has a path; an origin is scheme://host[:port] only, e.g. https://partner.example.com"
    if not ORIGIN.match(text):
        return (f"'{text}' is not an origin like https://partner.example.com (https, lower-case host, optional "
                "port; plain http only for localhost)")
    return ""


def _cidr(value) -> str:
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return f"'{value}' is not a CIDR range or address, e.g. 10.0.0.0/8 or 203.0.113.10"
    if network.prefixlen == 0:
        return f"'{value}' would trust every address, so anyone could fake their address; list your load balancers' ranges"
    return ""


def _timezone(value) -> str:
    text = str(value)
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"'{text}' is not an IANA time zone name, e.g. Asia/Seoul or UTC"
    # Legacy aliases such as KST or EST exist in tzdata but name no region.
    return "" if "/" in text or text == "UTC" else f"'{text}' is ambiguous; use an IANA name like Asia/Seoul or UTC"


RULES: dict[str, Rule] = {
    "fqdn": _fqdn,
    "fqdn_list": _each(_fqdn, "host names", "[www.petory.example.com]"),
    "host": _pattern(HOST, "'{}' is not a host name or IPv4 address, e.g. prod.petory.example.com or 203.0.113.10"),
    "email": _pattern(EMAIL, "'{}' is not an e-mail address, e.g. ops@petory.example.com"),
    "slug": _pattern(SLUG, "'{}' is not a valid slug: 3-32 characters, lower-case letters, digits and '-', "
                           "starting with a letter, e.g. petory"),
    "image": _pattern(IMAGE_REF, "'{}' is not an image reference like nginx:1.28-alpine or "
                                 "registry.example.com/mirror/mysql:8.0 (lower-case repository, optional :tag or "
                                 "@sha256:digest)"),
    "image_repo": _pattern(IMAGE_REPO, "'{}' is not an image repository without tag, e.g. ghcr.io/petory-team/petory-backend"),
    "registry_host": _pattern(REGISTRY_HOST, "'{}' is not a registry host, e.g. registry.example.com:5000"),
    "namespace": _pattern(NAMESPACE, "'{}' is not a registry owner/namespace: lower-case letters, digits, '.', '_' "
                                     "or '-', e.g. petory-team"),
    "github_repo": _pattern(GITHUB_REPO, "'{}' is not a GitHub repository as owner/name, e.g. petory-team/petory"),
    "timezone": _timezone,
    "rel_path": _pattern(REL_PATH, "'{}' must be a path relative to the Petory repository root, without '..', "
                                   "e.g. backend/build/libs/*-SNAPSHOT.jar"),
    "abs_path": _pattern(ABS_PATH, "'{}' must be an absolute directory path on the server, e.g. /srv/petory"),
    "unix_user": _pattern(UNIX_USER, "'{}' is not a Unix user name, e.g. deploy"),
    "db_name": _pattern(DB_NAME, "'{}' is not a database name: a letter, then letters, digits or '_', "
                                 "up to 64 characters"),
    "origin_list": _each(_origin, "origins", "[https://partner.example.com]"),
    "cidr_list": _each(_cidr, "CIDR ranges", "[10.0.0.0/8]"),
    "https_url": _pattern(HTTPS_URL, "'{}' is not an https:// URL, e.g. https://acme-v02.api.letsencrypt.org/directory"),
    **{kind: _range(*limits) for kind, limits in RANGES.items()},
}


def answer_error(kind: str, value) -> str:
    """"" when `value` is a valid answer of this kind, else what a valid one looks like.

    An unknown kind raises KeyError: a typo in copier.yml must not pass every answer.
    """
    try:
        rule = RULES[kind]
    except KeyError:
        raise KeyError(f"no validation rule named {kind!r}") from None
    return rule(value)
