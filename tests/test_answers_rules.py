"""Unit tests of the questionnaire's validation rules (hooks/answers_rules.py)."""

import pytest

from answers_rules import answer_error, env_entries

VALID = [
    ("fqdn", "petory.example.com"), ("fqdn", "staging.petory.co.kr"), ("email", "ops@petory.example.com"),
    ("slug", "petory"), ("slug", "petory-v2"), ("image", "nginx:1.28-alpine"), ("image", "mysql:8.0"),
    ("image", "registry.internal:5000/mirror/redis:7-alpine"), ("image", "eclipse-temurin:17-jre"),
    ("image", "nginx@sha256:" + "a" * 64), ("image_repo", "ghcr.io/petory-team/petory-backend"),
    ("port", 8080), ("timezone", "Asia/Seoul"), ("timezone", "UTC"), ("rel_path", "backend/build/libs/*-SNAPSHOT.jar"),
    ("unix_user", "deploy"), ("host", "203.0.113.10"), ("abs_path", "/srv/petory"), ("db_name", "petory"),
    ("fqdn_list", []), ("fqdn_list", ["www.petory.example.com"]), ("namespace", "petory-team"),
    ("registry_host", "registry.example.com:5000"),
    ("origin_list", []), ("origin_list", ["https://partner.petory.example.com", "https://app.example.com:8443"]),
    ("origin_list", ["http://localhost:3000"]), ("cidr_list", []), ("cidr_list", ["10.0.0.0/8", "203.0.113.10"]),
    ("cidr_list", ["2001:db8::/32"]), ("body_size_mb", 10), ("body_size_mb", 1024), ("timeout_seconds", 60),
    ("rate_per_second", 20), ("https_url", "https://acme-staging-v02.api.letsencrypt.org/directory"),
    ("https_url", "https://pebble:14000/dir"),
]
INVALID = [
    ("fqdn", "https://petory.example.com", "URL"), ("fqdn", "petory", "fully qualified"),
    ("fqdn", "Petory.Example.com", "lower-case"), ("email", "ops", "e-mail"), ("slug", "P", "slug"),
    ("image", "nginx:latest!", "image reference"), ("image_repo", "ghcr.io/a/b:1", "without tag"),
    ("port", 80, "unprivileged"), ("port", "http", "unprivileged"), ("timezone", "Seoul", "IANA"),
    ("timezone", "KST", "IANA"), ("rel_path", "/abs/app.jar", "relative"), ("rel_path", "a/../../b.jar", "relative"),
    ("unix_user", "root user", "Unix user"), ("host", "not a host", "host name"), ("abs_path", "srv", "absolute"),
    ("db_name", "pet-ory", "database name"), ("fqdn_list", "www.petory.example.com", "YAML list"),
    ("namespace", "Team", "namespace"),
    ("origin_list", "https://a.example.com", "YAML list"), ("origin_list", ["*"], "wildcard"),
    ("origin_list", ["https://a.example.com/"], "has a path"), ("origin_list", ["http://a.example.com"], "plain http"),
    ("origin_list", ["https://A.example.com"], "lower-case"), ("cidr_list", "10.0.0.0/8", "YAML list"),
    ("cidr_list", ["0.0.0.0/0"], "trust every address"), ("cidr_list", ["::/0"], "trust every address"),
    ("cidr_list", ["10.0.0.1/8"], "not a CIDR"), ("cidr_list", ["lb.example.com"], "not a CIDR"),
    ("body_size_mb", 0, "from 1 to 1024"), ("body_size_mb", 2048, "from 1 to 1024"),
    ("timeout_seconds", 1, "from 5 to 3600"), ("rate_per_second", "fast", "request rate"),
    ("https_url", "http://acme.example.com/directory", "https://"),
]


@pytest.mark.parametrize("kind,value", VALID)
def test_valid_answers_pass(kind, value):
    assert answer_error(kind, value) == ""


@pytest.mark.parametrize("kind,value,fragment", INVALID)
def test_invalid_answers_say_what_is_expected(kind, value, fragment):
    message = answer_error(kind, value)
    assert fragment in message and "e.g." in message or fragment in message


def test_unknown_rule_is_a_programming_error():
    with pytest.raises(KeyError):
        answer_error("nope", "x")


def test_env_entries_follow_bundled_services():
    keys = [e["key"] for e in env_entries("prod", "petory", True, True)]
    assert "MYSQL_ROOT_PASSWORD" in keys and keys.index("COMPOSE_PROJECT_NAME") == 0
    external = [e["key"] for e in env_entries("prod", "petory", False, False)]
    assert "MYSQL_ROOT_PASSWORD" not in external and "MYSQL_PASSWORD" in external
    dev = {e["key"]: e["value"] for e in env_entries("dev", "petory", True, True)}
    assert dev["EDGE_BIND_ADDRESS"] == "127.0.0.1" and dev["COMPOSE_PROJECT_NAME"] == "petory-dev"
