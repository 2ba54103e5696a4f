"""Host provisioning: the model (hooks/provisioning.py) and the rendered playbook (deploy/provision/).

The playbook runs for real against a fresh server in tests/live/test_provision.py; here: what it
is rendered from, and that ansible-lint (production profile, through validate.py) finds a broken one.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

import answers_rules
import deployment
import provisioning
from script_helpers import bash, functions, reasons
from test_model import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
# Modules whose tasks change the host: none of them may claim `changed_when: false`.
STATE_CHANGING = ("command", "shell", "raw", "script", "copy", "template", "file", "apt", "user", "git",
                  "systemd_service", "sysctl", "authorized_key", "get_url", "deb822_repository", "lineinfile")


def model(**answers):
    return deployment.build({**DEFAULTS, **answers})


def test_dev_only_has_nothing_to_provision():
    assert model(environments=["dev"])["provision"] is None


def test_each_server_environment_is_one_inventory_host_with_its_deploy_user_and_checkout():
    hosts = model(staging_ssh_user="stage", prod_deploy_dir="/opt/petory")["provision"]["hosts"]
    assert [(h["env"], h["name"], h["deploy_user"], h["checkout_dir"], h["deploy_dir"]) for h in hosts] == [
        ("staging", "petory-staging", "stage", "/srv/petory", "/srv/petory/deploy"),
        ("prod", "petory-prod", "deploy", "/opt/petory", "/opt/petory/deploy"),
    ]
    # CI's key, as the docs print it and as the scripts expand it: one path.
    assert [(h["ci_key"], h["ci_key_shell"]) for h in hosts] == [
        ("~/.ssh/petory-staging-ci", "${HOME}/.ssh/petory-staging-ci"),
        ("~/.ssh/petory-prod-ci", "${HOME}/.ssh/petory-prod-ci")]


def test_age_is_installed_where_the_bundled_mysql_is_backed_up():
    assert "age" in model()["provision"]["base_packages"]
    assert "age" not in model(database="external", db_host="db.internal.example.com")["provision"]["base_packages"]


def test_recovery_provisions_gives_github_the_new_host_key_then_restores_and_deploys_the_release():
    recovery = model(environments=["staging", "prod"])["recovery"]
    assert {env: [step["command"] for step in steps] for env, steps in recovery.items()} == {
        env: [f"make provision ENV={env}", f"make github ENV={env}", f"make recover ENV={env} VERSION=v1.0.0"]
        for env in ("staging", "prod")}
    assert model(environments=["dev"])["recovery"] == {}


@pytest.mark.parametrize("source,packages", [
    ("docker-ce", {"docker-ce", "docker-compose-plugin"}), ("debian", {"docker.io", "docker-compose"})])
def test_the_docker_source_picks_its_packages(source, packages):
    assert packages <= set(model(docker_source=source)["provision"]["docker_packages"])


def test_daemon_json_binds_loopback_rotates_logs_and_keeps_containers_through_restarts():
    daemon = model()["provision"]["daemon"]
    assert daemon["ip"] == "127.0.0.1" and daemon["live-restore"] is True
    assert daemon["log-driver"] == "json-file" and daemon["log-opts"] == {"max-size": "10m", "max-file": "5"}
    assert model()["provision"]["sysctl"] == {"net.ipv4.ip_forward": "1"}


def test_docker_logs_rotate_as_compose_yaml_rotates_them(rendered):
    compose = yaml.safe_load((rendered("defaults") / "deploy/compose.yaml").read_text())
    assert compose["x-hardening"]["logging"]["options"] == provisioning.DOCKER_LOG_OPTIONS


@pytest.mark.parametrize("answers,error", [
    ({"docker_source": "snap"}, "choose docker-ce or debian"),
    ({"admin_user": "root"}, "not root (its login is closed)"),
    ({"admin_user": "deploy"}, "staging's deploy user"),
    ({"admin_user": "Ops Team"}, "not a Unix user name"),
])
def test_bad_provisioning_answers_are_refused_in_a_few_words(answers, error):
    question = next(iter(answers))
    assert error in answers_rules.question_error(question, {**DEFAULTS, **answers})


def tasks_of(deploy: Path):
    for path in sorted((deploy / "provision/roles").glob("*/*/main.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            yield path, task
            for inner in task.get("block", []):
                yield path, inner


def test_no_state_changing_task_hides_behind_changed_when_false(rendered):
    deploy = rendered("defaults") / "deploy"
    found = list(tasks_of(deploy))
    assert len(found) >= 20
    for path, task in found:
        module = next((key for key in task if key.startswith("ansible.") or key.startswith("community.")), "")
        if module.rsplit(".", 1)[-1] in STATE_CHANGING:
            assert task.get("changed_when") is not False, f"{path}: {task['name']}"
        if module.endswith((".command", ".shell")):
            assert "changed_when" in task, f"{path}: {task['name']} must say when it changed something"


def run_lint(deploy: Path):
    """validate.py's ansible-lint check alone, from the rendered copy of validate.py."""
    spec = importlib.util.spec_from_file_location("rendered_validate", deploy / "scripts/validate.py")
    validate = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = validate  # dataclasses look their module up
    spec.loader.exec_module(validate)
    validator = validate.Validator(deploy, full=True)
    validator.check_ansible()
    [result] = validator.results
    return result


@pytest.fixture
def deploy_copy(rendered, tmp_path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(rendered("defaults"), root, symlinks=True)
    return root / "deploy"


def test_ansible_lint_passes_and_finds_a_task_without_its_fully_qualified_module(deploy_copy):
    clean = run_lint(deploy_copy)
    assert clean.status == "PASS", clean.problems
    tasks = deploy_copy / "provision/roles/base/tasks/main.yml"
    tasks.write_text(tasks.read_text().replace("ansible.builtin.apt:", "apt:", 1))
    broken = run_lint(deploy_copy)
    assert broken.status == "FAIL"
    assert any(line.startswith("provision/roles/base/tasks/main.yml:") and "fqcn" in line
               for line in broken.problems), broken.problems


def test_the_firewall_opens_exactly_the_ports_the_edge_publishes_on_every_address(rendered):
    compose = yaml.safe_load((rendered("defaults") / "deploy/compose.yaml").read_text())
    published = {int(entry.split(":")[-2].split("-")[-1].rstrip("}")) for entry in compose["services"]["edge"]["ports"]}
    assert all(entry.startswith("${EDGE_BIND_ADDRESS:-0.0.0.0}:") for entry in compose["services"]["edge"]["ports"])
    assert published == set(provisioning.FIREWALL["public_tcp"]) == {80, 443}


def test_admin_ranges_split_by_family_and_an_empty_list_means_any_address():
    firewall = model(admin_cidrs=["203.0.113.0/24", "2001:db8::/32"])["provision"]["firewall"]
    assert firewall["admin_cidrs_v4"] == ["203.0.113.0/24"] and firewall["admin_cidrs_v6"] == ["2001:db8::/32"]
    assert model()["provision"]["firewall"]["admin_cidrs_v4"] == []  # rules.v4.j2: from 0.0.0.0/0


KNOWN_GITHUB = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize("url,expected", [
    ("git@github.com:petory-team/petory-deploy.git",
     ["petory_repository_ssh_host=github.com", "petory_repository_known_hosts_file=<file>",
      "petory_repository_github=petory-team/petory-deploy"]),
    ("ssh://git@github.com/petory-team/petory-deploy",
     ["petory_repository_ssh_host=github.com", "petory_repository_known_hosts_file=<file>",
      "petory_repository_github=petory-team/petory-deploy"]),
    ("https://github.com/petory-team/petory-deploy.git", []),
    ("/srv/git/petory-deploy.git", []),
])
def test_a_repository_over_ssh_gets_its_host_the_operators_known_host_key_and_githubs_owner_and_name(
        rendered, tmp_path, url, expected):
    deploy = rendered("defaults") / "deploy"
    (tmp_path / "known_hosts").write_text(KNOWN_GITHUB + "\n")
    code = functions(deploy / "scripts/provision.sh", "repository_access") + \
        f'repository_access "{url}"; printf "%s\\n" "${{REPOSITORY_ARGS[@]}}"; cat "${{KNOWN_HOSTS_FILE:-/dev/null}}"'
    proc = bash(deploy, code, env={"ANSIBLE_SSH_COMMON_ARGS": f"-F /dev/null -o UserKnownHostsFile={tmp_path}/known_hosts"})
    assert proc.returncode == 0, proc.stderr
    words = [word for word in proc.stdout.splitlines() if word]  # printf prints one empty line for none
    arguments, known_hosts = words[:2 * len(expected)], words[2 * len(expected):]
    assert arguments[0::2] == ["-e"] * len(expected)
    assert [re.sub(r"=/tmp/tmp\.\w+$", "=<file>", w) for w in arguments[1::2]] == expected
    assert known_hosts == ([KNOWN_GITHUB] if expected else [])


def test_a_repository_host_missing_from_known_hosts_is_named_before_anything_runs(rendered, tmp_path):
    deploy = rendered("defaults") / "deploy"
    (tmp_path / "known_hosts").write_text(KNOWN_GITHUB + "\n")
    code = functions(deploy / "scripts/provision.sh", "repository_access") + \
        'repository_access "ssh://git@git.example.com:2222/ops/petory-deploy.git"'
    proc = bash(deploy, code, env={"ANSIBLE_SSH_COMMON_ARGS": f"-F /dev/null -o UserKnownHostsFile={tmp_path}/known_hosts"})
    assert (proc.returncode, reasons(proc)) == (1, [
        f"ERROR: the repository's host [git.example.com]:2222 is not in {tmp_path}/known_hosts: fetch from it over SSH "
        "here once (git fetch), comparing the fingerprint with the one its provider publishes"])
