"""Validation rules and normalisation of the questionnaire's answers.

Every validator in copier.yml is `{{ check('<question>') }}`: QUESTIONS names the kind of each
question, `normalize` cleans an answer where the meaning is clear (spaces trimmed, host names
lower-cased, a bare host name taken as a one-item list), RULES says what a right answer of each
kind looks like, and CROSS holds the rules that compare two answers.

Copier shows a message on one line after "Validation error for question '<name>': " and cuts it
at the terminal's width: at 80 columns that leaves 45 - len(name) characters (19 for
proxy_read_timeout_seconds). So messages say what is wrong in a few words, without repeating
the answer (it is on the screen just above), and docs/answers.md of the template holds each
rule in full.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo
from collections.abc import Mapping
from typing import Callable

if "sizing" not in globals():  # hooks/extensions.py injects this checkout's own copy
    import sizing

Rule = Callable[[object], str]

TERMINAL_WIDTH = 80
MESSAGE_PREFIX = "Validation error for question '{}': "  # what Copier 9 prints before a message


def message_room(question: str) -> int:
    """Characters left for a message of `question` on one 80-column line (the cursor takes one)."""
    return TERMINAL_WIDTH - 1 - len(MESSAGE_PREFIX.format(question))


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
# Where alerts, metrics or logs are pushed: https, or http to a relay on the host's loopback or
# to a private address (a monitoring host on the same network), with a path.
PUSH_URL = re.compile(
    rf"^(?:https://(?:{LABEL}\.)*{LABEL}|http://(?:localhost|127\.0\.0\.1|(?:{LABEL}\.)*{LABEL}))(?::[0-9]{{1,5}})?(?:/[A-Za-z0-9._~/%+-]*)?$"
)
SMARTHOST = re.compile(rf"^(?:{LABEL}\.)+[a-z]{{2,63}}:[0-9]{{1,5}}$")
# An age X25519 public key: "age1" and 58 characters of bech32 (no 1, b, i, o).
AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")

# Whole-number answers: kind -> (lowest, highest).
RANGES = {
    "port": (1024, 65535),  # the apps' unprivileged ports inside their containers
    "tcp_port": (1, 65535),  # external MySQL and Redis servers
    "host_cpus": (sizing.MIN_HOST_CPUS, 256),
    "host_memory_gb": (sizing.MIN_HOST_MEMORY_MB // 1024, 2048),
    "replicas": (1, sizing.MAX_BACKEND_REPLICAS),
    "body_size_mb": (1, 1024),
    "timeout_seconds": (5, 3600),
    "rate_per_second": (1, 10000),
}


def _pattern(rx: re.Pattern, message: str) -> Rule:
    """A rule: "" when the whole answer matches `rx`, else `message`."""
    return lambda value: "" if rx.match(str(value)) else message


def _each(rule: Rule) -> Rule:
    """A rule for a YAML list: the first wrong item's number and error."""
    def check(value) -> str:
        if not isinstance(value, list):
            return "give a list: [a, b]"
        return next((f"#{i}: {message}" for i, message in enumerate((rule(str(v)) for v in value), 1) if message), "")
    return check


def _range(low: int, high: int) -> Rule:
    """A rule for a whole number from `low` to `high` (an int, or a string of digits)."""
    def check(value) -> str:
        text = str(value)
        whole = isinstance(value, int) and not isinstance(value, bool) or text.isdigit()
        if whole and low <= int(text) <= high:
            return ""
        return "give at least 1" if whole and low == 1 and int(text) < 1 else f"give {low} to {high}"
    return check


def _fqdn(value) -> str:
    text = str(value)
    if "://" in text or "/" in text:
        return "a URL, not a host name"
    return "" if FQDN.match(text) else "not a full domain name"


def _origin(value) -> str:
    text = str(value)
    if "*" in text:
        return "no wildcards"
    if text.endswith("/") or text.count("/") > 2:
        return "has a path"
    return "" if ORIGIN.match(text) else "need https://host"


def _cidr(value) -> str:
    try:
        network = ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return "not a CIDR range"
    return "trusts every address" if network.prefixlen == 0 else ""


def _timezone(value) -> str:
    text = str(value)
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "not an IANA zone, e.g. UTC"
    # Legacy aliases such as EST exist in tzdata but name no region.
    return "" if "/" in text or text == "UTC" else "ambiguous; e.g. Asia/Seoul"


def _product_name(value) -> str:
    return "" if 0 < len(str(value)) <= 40 else "give 1-40 characters"


def _age_recipient(value) -> str:
    text = str(value)
    if not text:
        return ""  # no encryption: the dumps stay on the host
    if text.upper().startswith("AGE-SECRET-KEY-"):
        return "that is the secret key"  # it would end up in the answers file and deploy/backup/
    return "" if AGE_RECIPIENT.match(text) else "not an age1... public key"


def _optional(rule: Rule) -> Rule:
    """A rule that also accepts an empty answer (the feature stays unused)."""
    return lambda value: "" if str(value) == "" else rule(value)


def _percentage(value) -> str:
    try:
        number = float(str(value))
    except ValueError:
        return "give a number, e.g. 99.5"
    return "" if 90 <= number < 100 else "give 90 to 99.99"


def _monitoring(value) -> str:
    return "" if value in sizing.MONITORING_MODES else "choose off, bundled or remote"


def _environments(value) -> str:
    chosen = value if isinstance(value, list) else [value]
    if not chosen:
        return "choose at least one"
    return next((f"#{i}: not dev, staging, prod" for i, env in enumerate(chosen, 1)
                 if env not in ("dev", "staging", "prod")), "")


RULES: dict[str, Rule] = {
    "product_name": _product_name,
    "environments": _environments,
    "fqdn": _fqdn,
    "fqdn_list": _each(_fqdn),
    "host": _pattern(HOST, "not a host name or IPv4"),
    "email": _pattern(EMAIL, "not an e-mail address"),
    "slug": _pattern(SLUG, "use 3-32 of a-z, 0-9, -"),
    "image": _pattern(IMAGE_REF, "not an image reference"),
    "image_repo": _pattern(IMAGE_REPO, "a repository, without tag"),
    "registry_host": _pattern(REGISTRY_HOST, "not a host[:port]"),
    "namespace": _pattern(NAMESPACE, "use a-z, 0-9, '.', '_', '-'"),
    "github_repo": _pattern(GITHUB_REPO, "not owner/name"),
    "timezone": _timezone,
    "rel_path": _pattern(REL_PATH, "must be relative, no '..'"),
    "abs_path": _pattern(ABS_PATH, "must be an absolute path"),
    "unix_user": _pattern(UNIX_USER, "not a Unix user name"),
    "db_name": _pattern(DB_NAME, "use [A-Za-z][A-Za-z0-9_]*"),
    "origin_list": _each(_origin),
    "cidr_list": _each(_cidr),
    "https_url": _pattern(HTTPS_URL, "not an https:// URL"),
    "age_recipient": _age_recipient,
    "monitoring": _monitoring,
    "docker_source": lambda value: "" if value in ("docker-ce", "debian") else "choose docker-ce or debian",
    "percentage": _percentage,
    "push_url": _pattern(PUSH_URL, "not an http(s) URL"),
    "optional_push_url": _optional(_pattern(PUSH_URL, "not an http(s) URL")),
    "optional_email": _optional(_pattern(EMAIL, "not an e-mail address")),
    "smarthost": _pattern(SMARTHOST, "give host:port"),
    **{kind: _range(low, high) for kind, (low, high) in RANGES.items()},
}

# Question -> kind of its answer. copier.yml's validators look their question up here.
QUESTIONS: dict[str, str] = {
    "project_name": "product_name", "project_slug": "slug", "app_repository": "github_repo",
    "environments": "environments", "domain": "fqdn", "staging_domain": "fqdn",
    "extra_server_names": "fqdn_list", "acme_email": "email", "tls_provided_dir": "abs_path",
    "certbot_image": "image", "acme_server": "https_url",
    "cors_allowed_origins": "origin_list", "trusted_proxies": "cidr_list",
    "api_rate_limit": "rate_per_second", "api_body_size_mb": "body_size_mb",
    "proxy_read_timeout_seconds": "timeout_seconds",
    "db_host": "host", "db_port": "tcp_port", "db_name": "db_name", "redis_host": "host", "redis_port": "tcp_port",
    "backup_age_recipient": "age_recipient",
    "host_cpus": "host_cpus", "host_memory_gb": "host_memory_gb", "backend_replicas": "replicas",
    "backend_port": "port", "frontend_port": "port", "timezone": "timezone",
    "backend_dir": "rel_path", "backend_jar_glob": "rel_path", "frontend_dir": "rel_path",
    "frontend_build_dir": "rel_path",
    "registry_host": "registry_host", "registry_owner": "namespace",
    "backend_image": "image_repo", "frontend_image": "image_repo",
    "edge_nginx_image": "image", "frontend_nginx_image": "image", "jre_image": "image", "jdk_image": "image",
    "node_image": "image", "mysql_image": "image", "redis_image": "image", "adminer_image": "image",
    "staging_ssh_host": "host", "staging_ssh_user": "unix_user", "staging_deploy_dir": "abs_path",
    "prod_ssh_host": "host", "prod_ssh_user": "unix_user", "prod_deploy_dir": "abs_path",
    "monitoring": "monitoring", "availability_target": "percentage",
    "docker_source": "docker_source", "admin_user": "unix_user", "admin_cidrs": "cidr_list",
    "alert_email": "optional_email", "alert_smtp_smarthost": "smarthost",
    "remote_write_url": "push_url", "loki_push_url": "push_url",
}


def _host_fit(answers: Mapping) -> str:
    """The sizing check of the replica count in a few words (hooks/sizing.py has the numbers)."""
    return sizing.short_fit_error(answers["host_cpus"], answers["host_memory_gb"], answers["backend_replicas"],
                                  answers["database"] == "bundled", answers["redis"] == "bundled")


def _monitoring_fit(answers: Mapping) -> str:
    """Whether the monitoring mode fits beside the apps, in a few words (hooks/sizing.py has the numbers)."""
    return sizing.short_monitoring_error(answers["host_cpus"], answers["host_memory_gb"], answers["backend_replicas"],
                                         answers["database"] == "bundled", answers["redis"] == "bundled",
                                         answers["monitoring"])


def _admin_user(answers: Mapping) -> str:
    """The operator's account is neither root (its login is closed) nor a deploy user (CI's key only)."""
    if answers["admin_user"] == "root":
        return "not root (its login is closed)"
    taken = [env for env in ("staging", "prod") if env in answers["environments"]
             and answers.get(f"{env}_ssh_user") == answers["admin_user"]]
    return f"{taken[0]}'s deploy user; choose another" if taken else ""


# Rules that compare a question's answer with earlier ones: question -> rule over all answers.
CROSS: dict[str, Callable[[Mapping], str]] = {
    "staging_domain": lambda a: "same as the production domain" if a["staging_domain"] == a["domain"] else "",
    "backend_replicas": _host_fit,
    "monitoring": _monitoring_fit,
    "admin_user": _admin_user,
    "frontend_port": lambda a: "taken by the backend port" if a["frontend_port"] == a["backend_port"] else "",
    "backend_jar_glob": lambda a: "" if str(a["backend_jar_glob"]).endswith(".jar") else "must end in .jar",
    "frontend_image": lambda a: "same as the backend image" if a["frontend_image"] == a["backend_image"] else "",
}

_LOWER = {"fqdn", "host", "registry_host", "smarthost"}
_LISTS = {"fqdn_list", "origin_list", "cidr_list"}
_AS_GIVEN = {"slug"}  # printed as answered (labels, CA names): a padded slug must fail, not pass


def normalize(kind: str, value):
    """The answer with what cannot matter removed: spaces, the case of host names, a missing list."""
    if kind in _LISTS:
        items = [value] if isinstance(value, str) and value.strip() else value
        if not isinstance(items, list):
            return value
        element = {"fqdn_list": "fqdn", "origin_list": "origin", "cidr_list": "cidr"}[kind]
        return [normalize(element, item) for item in items]
    if not isinstance(value, str) or kind in _AS_GIVEN:
        return value
    text = value.strip()
    if kind in _LOWER or kind == "origin":
        return text.lower()
    if kind in ("email", "optional_email") and "@" in text:
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"
    return text


def normalized(answers: Mapping) -> dict:
    """All answers, each normalised by the kind of its question (others as given)."""
    return {name: normalize(QUESTIONS[name], value) if name in QUESTIONS else value
            for name, value in answers.items()}


def answer_error(kind: str, value) -> str:
    """"" when `value` (normalised) is a valid answer of this kind, else what a valid one looks like.

    An unknown kind raises KeyError: a typo in copier.yml must not pass every answer.
    """
    try:
        rule = RULES[kind]
    except KeyError:
        raise KeyError(f"no validation rule named {kind!r}") from None
    return rule(normalize(kind, value))


def question_error(name: str, answers: Mapping) -> str:
    """"" when the answer to question `name` is valid, alone and against the earlier answers."""
    try:
        kind = QUESTIONS[name]
    except KeyError:
        raise KeyError(f"no question named {name!r} in QUESTIONS") from None
    clean = normalized(answers)
    return answer_error(kind, clean[name]) or (CROSS[name](clean) if name in CROSS else "")
