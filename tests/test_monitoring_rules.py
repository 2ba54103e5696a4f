"""The alerts: one table (hooks/monitoring.py), its rules, their promtool tests, Alertmanager and the runbooks.

Without a render: the table has every alert the issue asks for, each expression parses
(promql-parser) and reads exactly the metrics it lists, every metric names its source, the
textfile metrics are the model's, and the backend's Micrometer names appear in a real Spring
Boot 3 exposition (tests/fixtures/spring_boot_prometheus/, provenance in its README).

Rendered (monitoring bundled, remote, with external data services, with receivers and another
availability target): `promtool check rules` and `promtool test rules` pass on the shipped
files, and fail when an alert's `for` is dropped, when it can never fire, or when its threshold
moves by the smallest step (so each case sits at its boundary); `amtool check-config` passes;
every runbook_url resolves to a heading of the rendered runbook doc in both languages, whose
commands exist in the render, and whose code blocks and table facts are the same in ko and en.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import deployment
import monitoring

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests/fixtures/spring_boot_prometheus/actuator-prometheus.txt"
PROMTOOL, AMTOOL = shutil.which("promtool"), shutil.which("amtool")
TOOLS_HINT = "Debian's prometheus and prometheus-alertmanager packages (tests/run.sh installs them as root)"

# Issue 13, item 3: the alerts it names, and the table's name for each.
REQUIRED = {
    "backend down": "BackendDown", "5xx ratio": "BackendHigh5xxRatio", "p99 latency": "BackendHighLatencyP99",
    "error-budget burn, 1h/5m at 14.4": "ErrorBudgetBurnFast", "error-budget burn, 6h/30m at 6": "ErrorBudgetBurnSlow",
    "JVM heap": "BackendHeapHigh", "connection-pool saturation": "BackendConnectionPoolSaturated",
    "MySQL down": "MySQLDown", "MySQL connections": "MySQLTooManyConnections", "Redis down": "RedisDown",
    "Redis memory": "RedisMemoryHigh", "disk full within 24 h": "DiskWillFillIn24h",
    "certificate expiry within 21 days": "CertificateExpiresSoon", "backup older than 26 h": "BackupTooOld",
    "containers restarting": "ContainerRestarting",
}
# Alerts whose test holds at exactly the threshold: `>` turned into `>=` (or `<` into `<=`) must fire there.
EXACT_THRESHOLD = {"BackendHigh5xxRatio", "BackendHeapHigh", "BackendConnectionPoolSaturated", "MySQLTooManyConnections",
                   "RedisMemoryHigh", "CertificateExpiresSoon", "BackupTooOld"}

ALL = {"database": "bundled", "redis": "bundled", "environments": ["dev", "staging", "prod"], "tls_mode_prod": "letsencrypt"}
BUNDLED = {"server_size": "large", "monitoring": "bundled"}
ANSWERS = {
    "bundled": BUNDLED,
    "bundled-en": {**BUNDLED, "docs_language": "en"},
    "remote": {"server_size": "large", "monitoring": "remote"},
    "external-data": {**BUNDLED, "database": "external", "db_host": "db.internal.example.com", "db_port": 3307,
                      "redis": "external", "redis_host": "cache.internal.example.com", "tls_mode_prod": "self-signed"},
    "receivers": {**BUNDLED, "advanced": True, "availability_target": 99.9, "alert_email": "ops@petory.example.com",
                  "alert_smtp_smarthost": "smtp.petory.example.com:587",
                  "alert_webhook": True},
}


def need(tool: str | None, name: str) -> str:
    if not tool:
        pytest.fail(f"{name} is not installed: {TOOLS_HINT}")
    return tool


# --------------------------------------------------------------------------- the table


def test_the_table_has_every_alert_the_issue_names():
    names = [alert[0] for alert in monitoring.ALERTS]
    assert len(names) == len(set(names)), "an alert is defined twice"
    missing = {what: name for what, name in REQUIRED.items() if name not in names}
    assert not missing, f"no alert for {missing}"
    assert set(monitoring._expressions("0.005")) == set(names), "every alert has exactly one expression"


@pytest.mark.parametrize("alert", monitoring.alerts(ALL), ids=lambda a: a["name"])
def test_each_alert_is_complete(alert):
    assert alert["severity"] in ("critical", "warning")
    assert re.fullmatch(r"\d+[smh]", alert["for"]), alert["for"]
    assert '"' not in alert["summary"] and "\\" not in alert["summary"], "printed in double quotes"
    assert "{{" not in alert["summary"], "plain text: the labels travel beside it"
    assert alert["runbook_url"] == f"deploy/docs/08-alert-runbooks.md#{alert['name'].lower()}"
    assert len(alert["commands"]) == 3 and all(c.strip() for c in alert["commands"])


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects, read from promql-parser's AST."""
    found: set[str] = set()

    def walk(node):
        name = getattr(node, "name", None)
        if type(node).__name__ == "VectorSelector":
            found.add(name)
            return
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                walk(child)
        for child in getattr(node, "args", None) or []:
            walk(child)

    walk(promql_parser.parse(expr))
    return found


def test_metric_names_come_from_the_parser():
    assert metric_names('sum(rate(a_total{job="x"}[5m])) / on() b > 0 and absent(c)') == {"a_total", "b", "c"}
    with pytest.raises(Exception):
        promql_parser.parse("sum(rate(a_total[5m]) >")


@pytest.mark.parametrize("alert", monitoring.alerts(ALL), ids=lambda a: a["name"])
def test_each_expression_parses_and_reads_the_metrics_it_lists(alert):
    listed = {m["name"] for m in alert["metrics"]}
    assert metric_names(alert["expr"]) == listed
    for metric in alert["metrics"]:
        assert metric["name"] in monitoring.SOURCES and metric["source"], f"{metric['name']} names no source"
        # A selector that names a job names the metric's own job (Prometheus writes `up` for every job).
        for job in [] if metric["name"] == "up" else re.findall(re.escape(metric["name"]) + r'\{[^}]*\bjob="(\w+)"', alert["expr"]):
            assert job == metric["job"], (metric["name"], job)


def test_every_source_is_used_and_scraped_by_a_known_job():
    used = {m["name"] for a in monitoring.alerts(ALL) for m in a["metrics"]}
    # With the dashboard's: exactly SOURCES (tests/test_monitoring_config.py reads the rendered dashboard).
    assert used <= set(monitoring.SOURCES), "SOURCES lists every metric the rules read"
    jobs = {"backend", "edge", "node", "mysql", "redis", "prometheus", "alertmanager"}
    assert {job for job, _ in monitoring.SOURCES.values()} <= jobs


def test_textfile_metrics_are_the_models():
    textfile = [name for name, (job, source) in monitoring.SOURCES.items() if "textfile" in source]
    assert textfile and all(name.startswith("petory_") for name in textfile)
    missing = [name for name in textfile if name not in deployment.METRICS]
    assert not missing, f"not in hooks/deployment.py METRICS: {missing}"


def sample_families() -> dict[str, set[str]]:
    """Sample name -> the label names it carries, from the committed Spring Boot exposition."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(SAMPLE.read_text(encoding="utf-8")):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


def test_backend_metrics_and_labels_appear_in_a_real_spring_boot_exposition():
    samples = sample_families()
    backend = {m["name"] for a in monitoring.alerts(ALL) for m in a["metrics"] if m["job"] == "backend"}
    assert backend, "the rules read backend metrics"
    assert backend <= set(samples), f"not in the Spring Boot sample: {sorted(backend - set(samples))}"
    for alert in monitoring.alerts(ALL):
        for name in backend & metric_names(alert["expr"]):
            for selector in re.findall(re.escape(name) + r"\{([^}]*)\}", alert["expr"]):
                labels = set(re.findall(r"(\w+)\s*[!=]~?", selector)) - {"job", "env", "instance"}
                assert labels <= samples[name], (alert["name"], name, labels - samples[name])
    # G1's heap pools report no maximum (-1), which is why BackendHeapHigh keeps only positive maxima.
    assert "jvm_memory_max_bytes" in SAMPLE.read_text() and '"G1 Eden Space"} -1.0' in SAMPLE.read_text()


@pytest.mark.parametrize(("target", "budget"), [(99.5, "0.005"), (99.9, "0.001"), (99, "0.01"), (99.95, "0.0005")])
def test_error_budget(target, budget):
    assert monitoring.error_budget(target) == budget
    assert f"(14.4 * {budget})" in monitoring._expressions(budget)["ErrorBudgetBurnFast"]


def test_alerts_follow_the_data_services():
    external = monitoring.alerts({**ALL, "database": "external", "redis": "external", "tls_mode_prod": "self-signed"})
    names = {a["name"] for a in external}
    assert not names & {"MySQLDown", "MySQLTooManyConnections", "RedisDown", "RedisMemoryHigh", "BackupTooOld"}
    commands = [c for a in external for c in a["commands"]]
    assert not [c for c in commands if "mysql-slow-log" in c or "certs-renew" in c]
    assert "make certs ENV={env}" in commands
    bundled = {a["name"] for a in monitoring.alerts(ALL)}
    assert len(bundled) == len(monitoring.ALERTS)


def test_the_model_carries_the_alerting_part():
    model = monitoring.build(ALL)
    groups = [a["name"] for g in model["rule_groups"] for a in g["alerts"]]
    assert groups == [a["name"] for a in model["alerts"]], "each component's alerts are together in the table"
    assert all(len({a["component"] for a in g["alerts"]}) == 1 for g in model["rule_groups"])
    assert model["routing"]["inhibit_equal"] == ["env", "component"]


# --------------------------------------------------------------------------- renders


@pytest.fixture(scope="module")
def render(rendered_with):
    return lambda name: rendered_with(ANSWERS[name])


def promtool_test(rules_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([need(PROMTOOL, "promtool"), "test", "rules", "tests/petory_test.yml"], cwd=rules_dir,
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_rendered_rules_pass_promtool(render, name):
    rules = render(name) / "deploy/monitoring/rules"
    check = subprocess.run([need(PROMTOOL, "promtool"), "check", "rules", "petory.yml"], cwd=rules,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = promtool_test(rules)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    shipped = yaml.safe_load((rules / "petory.yml").read_text())
    alerts = [rule for group in shipped["groups"] for rule in group["rules"]]
    model = monitoring.alerts({**ALL, **ANSWERS[name]})
    assert [r["alert"] for r in alerts] == [a["name"] for a in model], "the rules are the table, in its order"
    for rule, alert in zip(alerts, model):
        assert rule["expr"] == alert["expr"] and rule.get("for", "0s") == alert["for"]
        assert rule["labels"] == {"severity": alert["severity"], "component": alert["component"]}
        assert rule["annotations"] == {"summary": alert["summary"], "runbook_url": alert["runbook_url"]}
    cases = yaml.safe_load((rules / "tests/petory_test.yml").read_text())["tests"]
    for alert in model:
        evaluations = [e for case in cases for e in case["alert_rule_test"] if e["alertname"] == alert["name"]]
        assert any(e["exp_alerts"] for e in evaluations) and any(not e["exp_alerts"] for e in evaluations), \
            f"{alert['name']}: needs a case that fires and one that holds"


def mutated(rules_dir: Path, tmp_path: Path, name: str, change) -> Path:
    """A copy of the rules directory where `change(rule)` edited the rule of alert `name`."""
    copy = tmp_path / f"rules-{name}-{change.__name__}"
    shutil.copytree(rules_dir, copy)
    document = yaml.safe_load((copy / "petory.yml").read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == name:
                change(rule)
    (copy / "petory.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    return copy


def drop_for(rule):
    rule.pop("for")


def never(rule):
    rule["expr"] = f"({rule['expr']}) and on() vector(0) > 1"


def inclusive(rule):
    """The alert's own threshold (the expression's last comparison) includes its value: `> 0.9` -> `>= 0.9`."""
    last = list(re.finditer(r"(?<=\s)[<>](?= )", rule["expr"]))[-1]
    rule["expr"] = rule["expr"][:last.end()] + "=" + rule["expr"][last.end():]


def test_each_case_sits_at_its_boundary(render, tmp_path):
    """The unit tests fail when an alert loses its `for`, can never fire, or its threshold takes its own value."""
    rules = render("bundled") / "deploy/monitoring/rules"
    mutants = [(alert["name"], change) for alert in monitoring.alerts(ALL)
               for change in [never] + ([drop_for] if alert["for"] != "0s" else [])
               + ([inclusive] if alert["name"] in EXACT_THRESHOLD else [])]
    assert len(mutants) > 2 * len(monitoring.ALERTS)
    with ThreadPoolExecutor(max_workers=2) as pool:  # each promtool run takes about a second
        results = list(pool.map(lambda m: promtool_test(mutated(rules, tmp_path, *m)), mutants))
    survivors = [f"{name}: {change.__name__}" for (name, change), result in zip(mutants, results) if result.returncode == 0]
    assert not survivors, f"the unit tests still pass after: {survivors}"


@pytest.mark.parametrize("name", ["bundled", "external-data", "receivers"])
def test_alertmanager_config_passes_amtool(render, name):
    path = render(name) / "deploy/monitoring/alertmanager/alertmanager.yml"
    result = subprocess.run([need(AMTOOL, "amtool"), "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    inhibit = config["inhibit_rules"][0]
    assert inhibit["source_matchers"] == ['severity="critical"'] and inhibit["target_matchers"] == ['severity="warning"']
    receiver = config["receivers"][0]
    if name == "receivers":
        assert receiver["email_configs"][0]["to"] == "ops@petory.example.com"
        assert receiver["slack_configs"][0]["api_url_file"] == monitoring.WEBHOOK_URL_FILE
        assert "hooks.slack.com" not in path.read_text(), "the webhook URL is a credential"
    else:
        assert set(receiver) == {"name"}, "no receiver answered: alerts stay in Alertmanager and Grafana"


def test_remote_mode_ships_rules_but_no_alertmanager(render):
    deploy = render("remote") / "deploy"
    assert (deploy / "monitoring/rules/petory.yml").is_file()
    assert not (deploy / "monitoring/alertmanager").exists()


def heading_anchors(text: str) -> set[str]:
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("name", ["bundled", "bundled-en", "external-data", "remote"])
def test_runbook_urls_resolve_and_their_commands_exist(render, name):
    from test_docs_paths import make_targets

    root = render(name)
    rules = yaml.safe_load((root / "deploy/monitoring/rules/petory.yml").read_text())
    doc = root / monitoring.RUNBOOK_DOC
    text = doc.read_text(encoding="utf-8")
    anchors = heading_anchors(text)
    targets = make_targets(root / "deploy/Makefile")
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert (root / path) == doc and anchor in anchors, rule["annotations"]["runbook_url"]
        section = text.split(f"### {rule['alert']}\n", 1)[1].split("\n### ", 1)[0]
        commands = re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines()
        assert len(commands) == 3, (rule["alert"], commands)
        for command in commands:
            words = command.split()
            if words[0] == "make":
                assert words[1] in targets, f"{rule['alert']}: make {words[1]} is not a target"
            elif words[0].startswith("scripts/"):
                assert (root / "deploy" / words[0]).is_file(), f"{rule['alert']}: {words[0]} is not generated"
            assert "{" not in command, f"{rule['alert']}: unfilled {command}"


def test_runbooks_agree_in_both_languages(render):
    from test_docs import code_blocks, fact_cells, tables

    ko, en = ((render(n) / monitoring.RUNBOOK_DOC).read_text(encoding="utf-8") for n in ("bundled", "bundled-en"))
    assert code_blocks(ko) == code_blocks(en)
    assert [fact_cells(t) for t in tables(ko)] == [fact_cells(t) for t in tables(en)]
    assert heading_anchors(ko) - heading_anchors(en) == {"모니터링과-알림-런북", "모니터링-스택", "알림", "런북"}


def test_validate_runs_promtool_and_amtool(render, tmp_path, monkeypatch):
    """`make validate FULL=1`: passes the shipped files, fails with promtool's report, warns without the tools."""
    import validate

    deploy = tmp_path / "deploy"
    shutil.copytree(render("bundled") / "deploy", deploy, symlinks=True)

    def run() -> dict:
        validator = validate.Validator(deploy, full=True)
        validator.check_alert_rules()
        validator.check_alertmanager()
        return {result.name: result for result in validator.results}

    passed = run()
    assert passed["alert rules"].status == "PASS" and passed["Alertmanager config"].status == "PASS"
    rules = deploy / "monitoring/rules/petory.yml"
    rules.write_text(rules.read_text().replace("> 0.9\n", "> 0.95\n", 1))  # BackendHeapHigh's threshold moved
    broken = run()["alert rules"]
    assert broken.status == "FAIL" and any("alertname: BackendHeapHigh" in line for line in broken.problems), broken
    config = deploy / "monitoring/alertmanager/alertmanager.yml"
    config.write_text(config.read_text().replace("receiver: operators", "receiver: nobody", 1))
    assert run()["Alertmanager config"].status == "FAIL"
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    missing = run()
    # Skipped, which fails --require-all (CI installs both with apt-get), naming the package.
    assert missing["alert rules"].status == "SKIP" and missing["alert rules"].note.endswith("apt-get install prometheus")
    assert missing["Alertmanager config"].status == "SKIP"
    assert missing["Alertmanager config"].note.endswith("apt-get install prometheus-alertmanager")
