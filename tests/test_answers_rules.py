"""Unit tests of the questionnaire's validation rules (hooks/answers_rules.py): every kind in the table."""

import re
from pathlib import Path

import pytest
import yaml

import answers_rules
import sizing
from answers_rules import RANGES, RULES, answer_error

ROOT = Path(__file__).resolve().parent.parent

# kind -> (valid answers, [(invalid answer, fragment of its message)]). Valid answers include
# the forms that normalisation accepts (spaces, upper-case host names, a bare list element).
EXAMPLES = {
    "product_name": (["Petory", "Pet Care 2"], [("", "1-40 characters"), ("x" * 41, "1-40 characters")]),
    "environments": ([["dev"], ["staging", "prod"], "prod"], [([], "at least one"), (["dev", "qa"], "#2: not dev")]),
    "fqdn": (["petory.example.com", "staging.petory.co.kr", " Petory.Example.com "],
             [("https://petory.example.com", "a URL"), ("petory", "not a full domain")]),
    "fqdn_list": ([[], ["www.petory.example.com"], "www.petory.example.com"],
                  [({"www": 1}, "a list"), (["www.petory.com", "http://www.petory.example.com"], "#2: a URL")]),
    "host": (["prod.petory.example.com", "203.0.113.10", "PROD.petory.example.com"],
             [("not a host", "host name"), ("petory", "IPv4")]),
    "email": (["ops@petory.example.com", " Ops@Petory.Example.com"], [("ops", "e-mail"), ("ops-at-petory", "not an e-mail")]),
    "slug": (["petory", "petory-v2"], [("P", "3-32"), ("Petory App", "a-z"), (" petory", "a-z")]),
    "image": (["nginx:1.28-alpine", "mysql:8.0", "registry.internal:5000/mirror/redis:7-alpine",
               "eclipse-temurin:17-jre", "nginx@sha256:" + "a" * 64, "nginx:1.28-alpine@sha256:" + "b" * 64],
              [("nginx:latest!", "not an image"), ("Nginx:Latest!", "image reference")]),
    "image_repo": (["ghcr.io/petory-team/petory-backend"], [("ghcr.io/a/b:1", "without tag")]),
    "registry_host": (["registry.example.com:5000", "ghcr.io", "Registry.Example.com"],
                      [("https://registry.example.com", "host[:port]")]),
    "namespace": (["petory-team"], [("Team", "a-z"), ("Petory Team", "a-z, 0-9")]),
    "github_repo": (["petory-team/petory", "Petory/petory.app"],
                    [("petory", "owner/name"), ("https://github.com/petory-team/petory", "owner/name")]),
    "timezone": (["Asia/Seoul", "UTC"], [("Seoul", "IANA"), ("EST", "ambiguous"), ("Mars/Olympus", "not an IANA")]),
    "rel_path": (["backend/build/libs/*-SNAPSHOT.jar", "frontend"],
                 [("/abs/app.jar", "relative"), ("a/../../b.jar", "relative"), ("../other/app.jar", "no '..'")]),
    "abs_path": (["/srv/petory", "/etc/petory/tls"], [("srv", "absolute"), ("/srv/../etc", "absolute")]),
    "unix_user": (["deploy", "_ci"], [("root user", "Unix user"), ("Deploy User", "not a Unix user name")]),
    "db_name": (["petory", "petory_app"], [("pet-ory", "[A-Za-z]"), ("1petory", "[A-Za-z]")]),
    "origin_list": ([[], ["https://partner.petory.example.com", "https://app.example.com:8443"],
                     ["http://localhost:3000"], "https://a.example.com", ["https://A.example.com"]],
                    [(7, "a list"), (["*"], "#1: no wildcards"), (["https://a.example.com/"], "has a path"),
                     (["http://a.example.com"], "need https")]),
    "cidr_list": ([[], ["10.0.0.0/8", "203.0.113.10"], ["2001:db8::/32"], "10.0.0.0/8"],
                  [(7, "a list"), (["0.0.0.0/0"], "trusts every address"), (["::/0"], "trusts every address"),
                   (["10.0.0.1/8"], "not a CIDR"), (["lb.example.com"], "not a CIDR")]),
    "https_url": (["https://acme-staging-v02.api.letsencrypt.org/directory", "https://pebble:14000/dir"],
                  [("http://acme.example.com/directory", "https://")]),
    "age_recipient": (["", "age1py2wwa7g6pxav3wahw6cfrsdj0m4988gnujhaf65sxpnwq6fjacs5wzt2w"],
                      [("age1py2wwa7g6pxav3wahw6cfrsdj0m4988gnujhaf65sxpnwq6fjacs5wzt2", "age1... public"),
                       ("ssh-ed25519 AAAAC3Nza", "not an age1"),
                       ("AGE-SECRET-KEY-1" + "Q" * 58, "secret key")]),
    # Monitoring (issue 13): the mode, the error budget's target, where alerts, metrics and logs go.
    "monitoring": (["off", "bundled", "remote"], [("agent", "off, bundled or remote"), (True, "choose off")]),
    "percentage": (["99.5", 99.9, 90], [("high", "a number"), (100, "90 to 99.99"), ("89.9", "90 to")]),
    "push_url": (["https://prometheus.example.com/api/v1/write", "http://10.0.0.5:9090/api/v1/write",
                  "http://monitor:3100/loki/api/v1/push"],
                 [("ftp://monitor.example.com", "http(s) URL"), ("prometheus.example.com", "not an http")]),
    "optional_push_url": (["", "https://hooks.slack.com/services/T0/B0/x", "http://127.0.0.1:9099/alerts"],
                          [("hooks.slack.com", "http(s) URL"), ("https://a b", "not an http")]),
    "optional_email": (["", "oncall@petory.example.com", " Oncall@Petory.Example.com"],
                       [("oncall", "e-mail"), ("a@b", "not an e-mail")]),
    "smarthost": (["smtp.example.com:587", "SMTP.Example.com:25"], [("smtp.example.com", "host:port"),
                                                                     ("smtp:587", "give host:port")]),
    "docker_source": (["docker-ce", "debian"], [("snap", "choose docker-ce or debian"), ("", "docker-ce or debian")]),
    # Whole-number ranges (RANGES): both ends pass, one past each end fails.
    "port": ([1024, 8080, "3000", 65535], [(80, "give 1024 to 65535"), ("http", "1024 to"), (65536, "to 65535")]),
    "tcp_port": ([1, 3306, 65535], [(0, "at least 1"), (65536, "1 to 65535"), (True, "1 to 65535")]),
    "host_cpus": ([2, 4, 256], [(1, "give 2 to 256"), (257, "2 to 256")]),
    "host_memory_gb": ([4, 8, 2048], [(2, "give 4 to"), (4096, "4 to 2048")]),
    "replicas": ([1, 8], [(0, "at least 1"), (9, "1 to 8")]),
    "body_size_mb": ([1, 10, 1024], [(0, "at least 1"), (2048, "1 to 1024")]),
    "timeout_seconds": ([5, 60, 3600], [(1, "5 to 3600"), (3601, "5 to 3600")]),
    "rate_per_second": ([1, 20, 10000], [("fast", "1 to 10000"), (0, "at least 1")]),
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


LONG_ANSWERS = ["x" * 300, "https://" + "a" * 200 + ".example.com/path", [("a" * 200) + ".example"]]


@pytest.mark.parametrize("question", sorted(answers_rules.QUESTIONS))
def test_every_message_fits_the_questionnaires_line(question):
    """Copier prints "Validation error for question '<name>': <message>" on one line, cut at
    the terminal's width (tests/test_questionnaire.py sees it in a real 80-column pty)."""
    kind = answers_rules.QUESTIONS[question]
    messages = [answer_error(kind, value) for value, _ in EXAMPLES[kind][1]]
    messages += [answer_error(kind, value) for value in LONG_ANSWERS]
    messages += [answers_rules.question_error(question, _answers(**changes))
                 for name, changes, _ in CROSS_CASES if name == question]
    room = answers_rules.message_room(question)
    for message in filter(None, messages):
        assert len(message) <= room and "\n" not in message, f"{question}: {len(message)} > {room}: {message}"


def _answers(**changes) -> dict:
    answers = {"domain": "petory.example.com", "staging_domain": "staging.petory.example.com",
               "backend_port": 8080, "frontend_port": 3000, "backend_jar_glob": "backend/build/libs/*.jar",
               "backend_image": "ghcr.io/t/petory-backend", "frontend_image": "ghcr.io/t/petory-frontend",
               "host_cpus": 4, "host_memory_gb": 8, "backend_replicas": 2, "database": "bundled", "redis": "bundled",
               "monitoring": "bundled", "environments": ["staging", "prod"], "staging_ssh_user": "deploy",
               "prod_ssh_user": "deploy", "admin_user": "admin"}
    return {**answers, **changes}


CROSS_CASES = [
    ("admin_user", {"admin_user": "root"}, "not root"),
    ("admin_user", {"admin_user": "deploy", "environments": ["prod"], "prod_ssh_user": "deploy"}, "prod's deploy user"),
    ("staging_domain", {"staging_domain": " Petory.Example.com"}, "same as the production"),
    ("frontend_port", {"frontend_port": 8080}, "taken by the backend"),
    ("backend_jar_glob", {"backend_jar_glob": "backend/build/libs/*"}, "end in .jar"),
    ("frontend_image", {"frontend_image": "ghcr.io/t/petory-backend"}, "same as the backend"),
    ("backend_replicas", {"backend_replicas": 0}, "give at least 1"),
    ("backend_replicas", {"backend_replicas": 8, "host_cpus": 2, "host_memory_gb": 4}, "at most 1 fit"),
    ("backend_replicas", {"backend_replicas": 8, "host_cpus": 4, "host_memory_gb": 8}, "needs 10.9 GB; at most 5 fit"),
    ("host_memory_gb", {"host_memory_gb": 3}, "give 4 to 2048"),
    ("monitoring", {"monitoring": "bundled", "host_cpus": 2, "host_memory_gb": 4, "backend_replicas": 1},
     "needs 5.5 of 4 GB; use off"),
    ("monitoring", {"monitoring": "remote", "host_cpus": 2, "host_memory_gb": 4, "backend_replicas": 1}, "use off"),
]


@pytest.mark.parametrize("question,changes,fragment", CROSS_CASES)
def test_cross_rules_name_the_real_problem(question, changes, fragment):
    message = answers_rules.question_error(question, _answers(**changes))
    assert fragment in message, message
    assert answers_rules.question_error(question, _answers()) == ""


def test_every_cross_rule_has_a_case_and_a_question():
    assert {question for question, _, _ in CROSS_CASES} >= set(answers_rules.CROSS)
    assert set(answers_rules.CROSS) <= set(answers_rules.QUESTIONS)


def test_normalisation_where_the_meaning_is_clear():
    n = answers_rules.normalized({"domain": " Petory.COM ", "extra_server_names": "WWW.petory.com",
                                  "acme_email": " Ops@Petory.COM", "trusted_proxies": "10.0.0.0/8",
                                  "project_slug": " petory", "unlisted": " as is "})
    assert n == {"domain": "petory.com", "extra_server_names": ["www.petory.com"], "acme_email": "Ops@petory.com",
                 "trusted_proxies": ["10.0.0.0/8"], "project_slug": " petory", "unlisted": " as is "}


def test_answer_error_looks_the_kind_up_in_the_table(monkeypatch):
    monkeypatch.setitem(RULES, "always-wrong", lambda value: f"no: {value}")
    assert answer_error("always-wrong", 1) == "no: 1"


def test_unknown_rule_or_question_is_a_programming_error():
    with pytest.raises(KeyError, match="no validation rule named 'nope'"):
        answer_error("nope", "x")
    with pytest.raises(KeyError, match="no question named 'nope'"):
        answers_rules.question_error("nope", {})


def test_every_range_is_a_rule_and_names_its_bounds():
    for kind, (low, high, *_) in RANGES.items():
        assert answer_error(kind, low) == answer_error(kind, high) == ""
        assert answer_error(kind, high + 1) == f"give {low} to {high}"
        assert answer_error(kind, low - 1) == (f"give {low} to {high}" if low > 1 else "give at least 1")


def test_host_minimums_match_the_sizing_module():
    assert RANGES["host_cpus"][0] == sizing.MIN_HOST_CPUS
    assert RANGES["host_memory_gb"][0] * 1024 == sizing.MIN_HOST_MEMORY_MB
    assert RANGES["replicas"][1] == sizing.MAX_BACKEND_REPLICAS


def test_combinators():
    pattern = answers_rules._pattern(re.compile(r"^a+$"), "not a's")
    assert pattern("aaa") == "" and pattern("ab") == "not a's"
    each = answers_rules._each(pattern)
    assert each(["a", "aa"]) == "" and each(["a", "b", "c"]) == "#2: not a's"
    assert each(7) == "give a list: [a, b]"
    bounded = answers_rules._range(2, 4)
    assert bounded(3) == bounded("4") == ""
    assert bounded(False) == bounded(5) == "give 2 to 4"


def test_the_room_for_a_message_is_what_copier_leaves():
    assert answers_rules.message_room("domain") == 79 - len("Validation error for question 'domain': ")


QUESTIONS_IN_COPIER_YML = {name: spec for name, spec in yaml.safe_load((ROOT / "copier.yml").read_text()).items()
                           if not name.startswith("_") and isinstance(spec, dict)}


def test_every_validator_is_the_check_of_its_own_question():
    validated = {name: spec["validator"] for name, spec in QUESTIONS_IN_COPIER_YML.items() if "validator" in spec}
    for name, validator in validated.items():
        assert validator == f"{{{{ check('{name}') }}}}", f"{name}: {validator}"
    assert set(validated) == set(answers_rules.QUESTIONS), set(validated) ^ set(answers_rules.QUESTIONS)


@pytest.mark.parametrize("name", sorted(QUESTIONS_IN_COPIER_YML))
def test_help_and_choices_fit_80_columns(name):
    """Copier prints `🎤 <help>` (3 columns of prefix) and each choice indented by 2-4."""
    spec = QUESTIONS_IN_COPIER_YML[name]
    for line in str(spec.get("help", "")).splitlines():
        assert len(line) <= 80 - 3, f"{name}: help line of {len(line)} chars: {line}"
    for label in spec.get("choices") or ():
        assert len(str(label)) <= 80 - 4, f"{name}: choice of {len(str(label))} chars: {label}"


def test_every_rule_is_explained_in_the_docs():
    docs = (ROOT / "docs" / "answers.md").read_text()
    for kind in RULES:
        assert f"| `{kind}` |" in docs, f"docs/answers.md has no row for the rule {kind}"
