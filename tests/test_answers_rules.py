"""Unit tests of the questionnaire's validation rules (hooks/answers_rules.py): every kind in the table."""

import re
from pathlib import Path

import pytest
import yaml

import answers_rules
import sizing
from answers_rules import RANGES, RULES, answer_error

ROOT = Path(__file__).resolve().parent.parent

# kind -> (valid answers, [(invalid answer, fragment of its message)]).
EXAMPLES = {
    "fqdn": (["petory.example.com", "staging.petory.co.kr"],
             [("https://petory.example.com", "URL"), ("petory", "fully qualified"),
              ("Petory.Example.com", "lower-case")]),
    "fqdn_list": ([[], ["www.petory.example.com"]],
                  [("www.petory.example.com", "YAML list"), (["http://www.petory.example.com"], "looks like a URL")]),
    "host": (["prod.petory.example.com", "203.0.113.10"], [("not a host", "host name"), ("petory", "IPv4")]),
    "email": (["ops@petory.example.com"], [("ops", "e-mail"), ("ops-at-petory", "not an e-mail address")]),
    "slug": (["petory", "petory-v2"], [("P", "slug"), ("Petory App", "not a valid slug")]),
    "image": (["nginx:1.28-alpine", "mysql:8.0", "registry.internal:5000/mirror/redis:7-alpine",
               "eclipse-temurin:17-jre", "nginx@sha256:" + "a" * 64],
              [("nginx:latest!", "image reference"), ("Nginx:Latest!", "not an image reference")]),
    "image_repo": (["ghcr.io/petory-team/petory-backend"], [("ghcr.io/a/b:1", "without tag")]),
    "registry_host": (["registry.example.com:5000", "ghcr.io"], [("https://registry.example.com", "registry host")]),
    "namespace": (["petory-team"], [("Team", "namespace"), ("Petory Team", "not a registry owner")]),
    "github_repo": (["petory-team/petory", "Petory/petory.app"],
                    [("petory", "owner/name"), ("https://github.com/petory-team/petory", "GitHub repository")]),
    "timezone": (["Asia/Seoul", "UTC"], [("Seoul", "IANA"), ("KST", "IANA"), ("Mars/Olympus", "not an IANA")]),
    "rel_path": (["backend/build/libs/*-SNAPSHOT.jar", "frontend"],
                 [("/abs/app.jar", "relative"), ("a/../../b.jar", "relative"), ("../other/app.jar", "without '..'")]),
    "abs_path": (["/srv/petory", "/etc/petory/tls"], [("srv", "absolute"), ("/srv/../etc", "absolute")]),
    "unix_user": (["deploy", "_ci"], [("root user", "Unix user"), ("Deploy User", "not a Unix user name")]),
    "db_name": (["petory", "petory_app"], [("pet-ory", "database name"), ("1petory", "not a database name")]),
    "origin_list": ([[], ["https://partner.petory.example.com", "https://app.example.com:8443"],
                     ["http://localhost:3000"]],
                    [("https://a.example.com", "YAML list"), (["*"], "wildcard"), (["https://a.example.com/"], "has a path"),
                     (["http://a.example.com"], "plain http"), (["https://A.example.com"], "lower-case")]),
    "cidr_list": ([[], ["10.0.0.0/8", "203.0.113.10"], ["2001:db8::/32"]],
                  [("10.0.0.0/8", "YAML list"), (["0.0.0.0/0"], "trust every address"), (["::/0"], "trust every address"),
                   (["10.0.0.1/8"], "not a CIDR"), (["lb.example.com"], "not a CIDR")]),
    "https_url": (["https://acme-staging-v02.api.letsencrypt.org/directory", "https://pebble:14000/dir"],
                  [("http://acme.example.com/directory", "https://")]),
    # Whole-number ranges (RANGES): both ends pass, one past each end fails.
    "port": ([1024, 8080, "3000", 65535], [(80, "not an unprivileged TCP port"), ("http", "unprivileged"),
                                           (65536, "from 1024 to 65535")]),
    "tcp_port": ([1, 3306, 65535], [(0, "not a TCP port"), (65536, "from 1 to 65535"), (True, "TCP port")]),
    "host_cpus": ([2, 4, 256], [(1, "from 2 (the minimum) to 256"), (257, "not a CPU core count")]),
    "host_memory_gb": ([4, 8, 2048], [(2, "from 4 (the minimum)"), (4096, "not a host memory size in whole GB")]),
    "body_size_mb": ([1, 10, 1024], [(0, "from 1 to 1024"), (2048, "from 1 to 1024")]),
    "timeout_seconds": ([5, 60, 3600], [(1, "from 5 to 3600"), (3601, "timeout")]),
    "rate_per_second": ([1, 20, 10000], [("fast", "request rate"), (0, "from 1 to 10000")]),
}

VALID = [(kind, value) for kind, (valid, _) in EXAMPLES.items() for value in valid]
INVALID = [(kind, value, fragment) for kind, (_, invalid) in EXAMPLES.items() for value, fragment in invalid]


def test_every_rule_has_examples():
    assert set(EXAMPLES) == set(RULES)
    assert all(valid and invalid for valid, invalid in EXAMPLES.values())


@pytest.mark.parametrize("kind,value", VALID)
def test_valid_answers_pass(kind, value):
    assert answer_error(kind, value) == ""


@pytest.mark.parametrize("kind,value,fragment", INVALID)
def test_invalid_answers_say_what_is_expected(kind, value, fragment):
    message = answer_error(kind, value)
    assert fragment in message, message


def test_answer_error_looks_the_kind_up_in_the_table(monkeypatch):
    monkeypatch.setitem(RULES, "always-wrong", lambda value: f"no: {value}")
    assert answer_error("always-wrong", 1) == "no: 1"


def test_unknown_rule_is_a_programming_error():
    with pytest.raises(KeyError, match="no validation rule named 'nope'"):
        answer_error("nope", "x")


def test_every_range_is_a_rule_and_names_its_bounds():
    for kind, (low, high, *_) in RANGES.items():
        assert answer_error(kind, low) == answer_error(kind, high) == ""
        assert f"from {low}" in answer_error(kind, low - 1) and f"to {high}" in answer_error(kind, high + 1)


def test_host_minimums_match_the_sizing_module():
    assert RANGES["host_cpus"][0] == sizing.MIN_HOST_CPUS
    assert RANGES["host_memory_gb"][0] * 1024 == sizing.MIN_HOST_MEMORY_MB


def test_combinators():
    pattern = answers_rules._pattern(re.compile(r"^a+$"), "'{}' is not a's")
    assert pattern("aaa") == "" and pattern("ab") == "'ab' is not a's"
    each = answers_rules._each(pattern, "a's", "[aa]")
    assert each(["a", "aa"]) == "" and each(["a", "b", "c"]) == "'b' is not a's"
    assert each("a") == "give a YAML list of a's, e.g. [aa] or []"
    bounded = answers_rules._range(2, 4, "two to four", "the least")
    assert bounded(3) == bounded("4") == ""
    assert bounded(False) == "'False' is not two to four: a whole number from 2 (the least) to 4"


def test_copier_yml_calls_only_known_rules_and_has_no_inline_ranges():
    text = (ROOT / "copier.yml").read_text()
    config = yaml.safe_load(text)
    validators = {k: v["validator"] for k, v in config.items() if isinstance(v, dict) and "validator" in v}
    kinds = {m for v in validators.values() for m in re.findall(r"answer_error\('([a-z_]+)'", v)}
    assert kinds <= set(RULES), kinds - set(RULES)
    for name in ("db_port", "redis_port", "host_cpus", "host_memory_gb"):
        assert "answer_error(" in validators[name] and "<" not in validators[name], validators[name]
