"""Grafana, Loki and Alloy's configuration, checked without their binaries (none installs here).

The generated CI's `monitoring` job starts the real images (deploy/scripts/ci/check-monitoring.sh);
here, on the rendered files: the dashboards are JSON whose panels use only the provisioned data
sources' UIDs, whose PromQL parses (promql-parser) and reads only metrics that name their source
(hooks/monitoring.py SOURCES, which the live test finds in a scrape), and whose LogQL selects
only labels Alloy sets; the data sources and Alloy's writer point at services and ports of
compose.monitoring.yaml; the dashboard provider reads the mounted folder; Loki's retention is the
compactor's, at the model's days; config.alloy parses (tests/alloy_syntax.py), every component
it references is defined, and every variable it reads is in Alloy's environment. Each check is
also shown to fail on a broken copy.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import promql_parser
import pytest
import yaml

import alloy_syntax
import monitoring
import sizing

ANSWERS = {"server_size": "large", "monitoring": "bundled", "environments": ["dev", "staging", "prod"]}
ALLOY_LABELS = {"env", "service", "container", "status", "method", "level"}  # what config.alloy sets


@pytest.fixture(scope="module")
def deploy(rendered_with) -> Path:
    return rendered_with(ANSWERS) / "deploy"


def load(deploy: Path) -> dict:
    root = deploy / "monitoring"
    return {
        "compose": yaml.safe_load((deploy / "compose.monitoring.yaml").read_text()),
        "datasources": yaml.safe_load((root / "grafana/provisioning/datasources/datasources.yaml").read_text()),
        "providers": yaml.safe_load((root / "grafana/provisioning/dashboards/dashboards.yaml").read_text()),
        "dashboards": {p.name: json.loads(p.read_text()) for p in sorted((root / "grafana/dashboards").glob("*.json"))},
        "loki": yaml.safe_load((root / "loki/loki.yaml").read_text()),
        "alloy": (root / "alloy/config.alloy").read_text(),
    }


def promql_metrics(expr: str) -> set[str]:
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                visit(child)
        for child in getattr(node, "args", None) or ():
            visit(child)

    visit(promql_parser.parse(expr))
    return names


def service_ports(compose: dict) -> dict[str, set[int]]:
    """Compose service -> the ports its command or environment makes it listen on."""
    out = {}
    for name, service in compose["services"].items():
        text = json.dumps([service.get("command"), service.get("environment"), service.get("healthcheck")])
        out[name] = {int(port) for port in re.findall(r"(?:[:=]|127\.0\.0\.1:)(\d{4,5})\b", text)}
    return out


def _url_target(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"http://([a-z-]+):(\d+)(/.*)?", url)
    assert match, url
    return match.group(1), int(match.group(2))


# ------------------------------------------------------------------------------ the checks

def grafana_problems(files: dict) -> list[str]:
    problems = []
    sources = {source["uid"]: source for source in files["datasources"]["datasources"]}
    ports = service_ports(files["compose"])
    for source in sources.values():
        service, port = _url_target(source["url"])
        if port not in ports.get(service, set()):
            problems.append(f"data source {source['uid']}: {service}:{port} is no service port of compose.monitoring.yaml")
    mounts = [volume.split(":")[1] for volume in files["compose"]["services"]["grafana"]["volumes"]]
    for provider in files["providers"]["providers"]:
        if provider["options"]["path"] not in mounts:
            problems.append(f"dashboard provider {provider['name']}: {provider['options']['path']} is not mounted")
    if not files["dashboards"]:
        problems.append("no dashboard")
    for name, dashboard in files["dashboards"].items():
        for panel in dashboard["panels"]:
            where = f"{name}: panel {panel.get('title')!r}"
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("uid") not in sources or sources[source["uid"]]["type"] != source.get("type"):
                    problems.append(f"{where}: data source {source} is not provisioned")
                    continue
                expr = target.get("expr", "")
                if source["type"] == "prometheus":
                    try:
                        unknown = promql_metrics(expr) - set(monitoring.SOURCES)
                    except Exception as err:  # promql-parser raises ValueError and its own errors
                        problems.append(f"{where}: PromQL does not parse: {err}")
                        continue
                    if unknown:
                        problems.append(f"{where}: metrics with no source in hooks/monitoring.py: {sorted(unknown)}")
                else:
                    selector = re.match(r"\{([^}]*)\}", expr)
                    labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector.group(1))) if selector else set()
                    if not selector or labels - ALLOY_LABELS:
                        problems.append(f"{where}: LogQL selects labels Alloy does not set: {sorted(labels - ALLOY_LABELS)}")
    return problems


def loki_problems(files: dict, retention_days: int) -> list[str]:
    loki, problems = files["loki"], []
    compactor = loki.get("compactor", {})
    if compactor.get("retention_enabled") is not True or not compactor.get("delete_request_store"):
        problems.append("retention needs the compactor: retention_enabled and delete_request_store (grafana/loki#6300)")
    if loki.get("limits_config", {}).get("retention_period") != f"{retention_days * 24}h":
        problems.append(f"retention_period is not the model's {retention_days} days")
    schema = loki["schema_config"]["configs"][-1]
    if (schema["store"], schema["schema"], schema["object_store"]) != ("tsdb", "v13", "filesystem"):
        problems.append(f"schema {schema} is not tsdb v13 on the filesystem")
    if loki["server"]["http_listen_port"] not in service_ports(files["compose"])["loki"] | {3100}:
        problems.append("Loki listens elsewhere than compose.monitoring.yaml says")
    return problems


def alloy_problems(files: dict) -> list[str]:
    try:
        body = alloy_syntax.parse(files["alloy"])
    except alloy_syntax.AlloySyntaxError as err:
        return [f"config.alloy: {err}"]
    problems = []
    components = {f"{block.name}.{block.label}": block for block in body if isinstance(block, alloy_syntax.Block)}
    environment = set(files["compose"]["services"]["alloy"].get("environment") or {})
    for block in components.values():
        for item in _attributes(block):
            for path in alloy_syntax.references(item.value):
                if not any(path.startswith(name + ".") for name in components):
                    problems.append(f"config.alloy:{item.line}: {path} refers to no component")
            for call in alloy_syntax.calls(item.value):
                if call.function == "sys.env" and call.args[0] not in environment:
                    problems.append(f"config.alloy:{item.line}: {call.args[0]} is not in the alloy service's environment")
    writers = [block for block in components.values() if block.name == "loki.write"]
    for writer in writers:
        for endpoint in writer.blocks("endpoint"):
            service, port = _url_target(endpoint.attributes()["url"])
            if (service, port) != ("loki", files["loki"]["server"]["http_listen_port"]):
                problems.append(f"loki.write {writer.label}: {service}:{port} is not Loki")
    if not writers:
        problems.append("config.alloy writes nowhere (no loki.write)")
    sources = [block for block in components.values() if block.name == "loki.source.docker"]
    if not sources or "env" not in sources[0].attributes().get("labels", {}):
        problems.append("config.alloy: the container logs carry no env label")
    return problems


def _attributes(block: alloy_syntax.Block):
    for item in block.body:
        if isinstance(item, alloy_syntax.Attribute):
            yield item
        else:
            yield from _attributes(item)


# ------------------------------------------------------------------------------ the tests

def test_the_grafana_loki_and_alloy_files_pass_their_checks(deploy):
    files = load(deploy)
    assert grafana_problems(files) == []
    assert loki_problems(files, sizing.LOKI_RETENTION_DAYS) == []
    assert alloy_problems(files) == []


def test_sources_list_exactly_what_the_rules_and_dashboards_read(deploy):
    files = load(deploy)
    rules = {m["name"] for a in monitoring.alerts({**ANSWERS, "database": "bundled", "redis": "bundled"}) for m in a["metrics"]}
    dashboards = {name for d in files["dashboards"].values() for p in d["panels"] for t in p.get("targets", [])
                  if (t.get("datasource") or p.get("datasource", {})).get("type") == "prometheus"
                  for name in promql_metrics(t["expr"])}
    assert rules | dashboards == set(monitoring.SOURCES)


def _broken(files: dict, change) -> dict:
    files = copy.deepcopy(files)
    change(files)
    return files


def _first_target(files: dict) -> dict:
    return next(iter(files["dashboards"].values()))["panels"][0]["targets"][0]


BROKEN_GRAFANA = {
    "unknown data source": lambda f: _first_target(f).update(datasource={"type": "prometheus", "uid": "nope"}),
    "PromQL that does not parse": lambda f: _first_target(f).update(expr="sum(rate(x[5m]) >"),
    "metric with no source": lambda f: _first_target(f).update(expr="rate(made_up_total[5m])"),
    "data source on a wrong port": lambda f: f["datasources"]["datasources"][0].update(url="http://prometheus:9999"),
    "provider path not mounted": lambda f: f["providers"]["providers"][0]["options"].update(path="/elsewhere"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_GRAFANA))
def test_a_broken_grafana_file_is_found(deploy, case):
    assert grafana_problems(_broken(load(deploy), BROKEN_GRAFANA[case]))


def test_a_logql_label_alloy_does_not_set_is_found(deploy):
    def change(files):
        for dashboard in files["dashboards"].values():
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    if (target.get("datasource") or panel.get("datasource", {})).get("type") == "loki":
                        target["expr"] = '{namespace="prod"} |= "error"'
    assert any("LogQL" in line for line in grafana_problems(_broken(load(deploy), change)))


@pytest.mark.parametrize("change, expected", [
    (lambda f: f["loki"]["compactor"].pop("retention_enabled"), "compactor"),
    (lambda f: f["loki"]["limits_config"].update(retention_period="744h"), "retention_period"),
])
def test_a_broken_loki_config_is_found(deploy, change, expected):
    assert any(expected in line for line in loki_problems(_broken(load(deploy), change), sizing.LOKI_RETENTION_DAYS))


@pytest.mark.parametrize("change, expected", [
    (lambda text: text.replace("forward_to    = [loki.process.json.receiver]", "forward_to = [loki.process.jsn.receiver]"),
     "refers to no component"),
    (lambda text: text.replace('sys.env("PETORY_ENV")', 'sys.env("PETORY_ENVIRONMENT")'), "environment"),
    (lambda text: text.replace('url = "http://loki:3100/loki/api/v1/push"', 'url = "http://loki:3101/loki/api/v1/push"'),
     "is not Loki"),
    (lambda text: text.replace("loki.write \"default\" {", "loki.write \"default\" {{", 1), "config.alloy: line"),
])
def test_a_broken_alloy_config_is_found(deploy, change, expected):
    files = load(deploy)
    changed = change(files["alloy"])
    assert changed != files["alloy"], "the mutation must change the file"
    assert any(expected in line for line in alloy_problems({**files, "alloy": changed}))


def test_turning_monitoring_on_or_off_leaves_the_application_services_as_they_are(rendered_with):
    """`copier update --data monitoring=off` must not restart MySQL or Redis (scripts/apply.sh would
    ask for consent): their definitions in compose.yaml are the same whichever the answer, but for
    their CPU and memory limits, which apply.sh changes on the running containers (docker update)."""
    def services(answers: dict) -> dict:
        compose = yaml.safe_load((rendered_with(answers) / "deploy/compose.yaml").read_text())
        return {name: {key: value for key, value in compose["services"][name].items() if key != "deploy"}
                for name in ("mysql", "redis")}

    assert services({**ANSWERS, "monitoring": "off"}) == services(ANSWERS)
