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
