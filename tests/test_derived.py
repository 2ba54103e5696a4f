"""Derived answers (hooks/derived.py) and the migration that keeps them following their sources
(hooks/migrations/follow_derived.py): the table against copier.yml, the migration's plan on
answer files, and one real `copier copy` + `copier update` that changes every source at once."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

import answers_rules
import derived
from update_helpers import IGNORED, TEMPLATE_SOURCE, commit_and_tag, copier, git, output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks" / "migrations"))
import follow_derived  # noqa: E402

CONFIG = yaml.safe_load((ROOT / "copier.yml").read_text())
QUESTIONS = [name for name, spec in CONFIG.items() if not name.startswith("_") and isinstance(spec, dict)]
# Defaults that read other answers but are not answers to follow: the sizes' presets, shown
# only when the size is `custom` (so never recorded otherwise), and the computed values.
NOT_DERIVED = {"host_cpus", "host_memory_gb", "deployment", "sizing"}


def test_every_default_that_reads_an_answer_is_a_derivation():
    templated = {name for name in QUESTIONS if "{{" in str(CONFIG[name].get("default", ""))}
    uses_derived = {name for name in templated if CONFIG[name]["default"] == f"{{{{ derived('{name}') }}}}"}
    assert templated - NOT_DERIVED == uses_derived, "defaults that read other answers must be derived('<name>')"
    assert uses_derived == set(derived.DERIVED), set(derived.DERIVED) ^ uses_derived


@pytest.mark.parametrize("name", sorted(derived.DERIVED))
def test_sources_are_asked_before_what_they_feed(name):
    position = {question: i for i, question in enumerate(QUESTIONS)}
    for source in derived.DERIVED[name].sources:
        assert position[source] < position[name], f"{name} reads {source}, which copier.yml asks later"


def test_derivations_match_the_documented_defaults():
    answers = {"project_name": "Pet Care", "domain": "petory.com", "project_slug": "pet-care", "backend_dir": "server",
               "frontend_dir": "web", "java_version": 21, "registry": "dockerhub", "registry_owner": "pets",
               "registry_host": None, "staging_domain": "staging.petory.com", "server_size": "medium",
               "database": "bundled", "redis": "bundled"}
    assert derived.value("project_slug", answers) == "pet-care"
    assert derived.value("acme_email", answers) == "ops@petory.com"
    assert derived.value("db_name", answers) == "pet_care"
    assert derived.value("backend_jar_glob", answers) == "server/build/libs/*-SNAPSHOT.jar"
    assert derived.value("backend_image", answers) == "docker.io/pets/pet-care-backend"
    assert derived.value("jdk_image", answers) == "eclipse-temurin:21-jdk"
    assert derived.value("staging_ssh_host", answers) == "staging.petory.com"
    assert derived.value("backend_replicas", answers) == 2


# --------------------------------------------------------------------------- the migration's plan

RECORDED = {
    "project_name": "Petory", "domain": "petory.example.com", "staging_domain": "staging.petory.example.com",
    "acme_email": "ops@petory.example.com", "prod_ssh_host": "203.0.113.10",  # the operator's address
    "staging_ssh_host": "staging.petory.example.com", "registry": "ghcr", "registry_owner": "petory-team",
}


def _plan(recorded: dict) -> tuple[list[str], bool]:
    return follow_derived.plan(recorded, CONFIG, derived, answers_rules.normalized)


def test_plan_drops_accepted_defaults_and_keeps_the_operators_answers():
    drop, switch_on = _plan(RECORDED)
    assert drop == ["staging_domain", "acme_email", "registry_owner", "staging_ssh_host"]
    assert not switch_on  # no advanced answer recorded


def test_plan_switches_advanced_on_for_a_customised_hidden_answer():
    assert _plan({**RECORDED, "mysql_image": "mirror.internal/mysql:8.0"})[1]
    assert _plan({**RECORDED, "prod_ssh_user": "ops"})[1]
    assert not _plan({**RECORDED, "mysql_image": "mysql:8.0", "prod_ssh_user": "deploy"})[1]  # defaults
    assert not _plan({**RECORDED, "advanced": False, "prod_ssh_user": "ops"})[1]  # the operator's choice stands


def test_rewrite_removes_only_whole_top_level_lines():
    text = ("# header\n_commit: 0.2.0\nacme_email: ops@petory.example.com\nacme_email_extra: keep\n"
            "environments:\n- dev\n")
    assert follow_derived.rewrite(text, ["acme_email"], True) == (
        "# header\n_commit: 0.2.0\nacme_email_extra: keep\nenvironments:\n- dev\nadvanced: true\n")


def test_an_answers_file_that_predates_monitoring_keeps_it_off(tmp_path, capsys):
    """0.5.0 and older had no monitoring: the update must not start it and shrink the application."""
    old = tmp_path / ".copier-answers.yml"
    old.write_text("_commit: 0.5.0\nserver_size: medium\n")
    assert follow_derived.main([str(old)]) == 0
    assert yaml.safe_load(old.read_text())["monitoring"] == "off"
    assert "follow_derived: monitoring: off (new in 0.6.0" in capsys.readouterr().out
    newer = tmp_path / "newer.yml"
    newer.write_text("_commit: 0.6.0\nserver_size: medium\nmonitoring: bundled\n")
    assert follow_derived.kept_as_it_was(yaml.safe_load(newer.read_text())) == {}


def test_migration_without_answers_file_changes_nothing(tmp_path, capsys):
    assert follow_derived.main([str(tmp_path / ".copier-answers.yml")]) == 0
    assert "nothing to migrate" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- a real update

# Every root source changes at once; each derived answer must follow, except the one the
# operator typed (prod_deploy_dir), which must stay.
FIRST = {"advanced": True, "layout": "deploy-repo", "database": "external", "redis": "external"}
OPERATOR = {"prod_deploy_dir": "/opt/petory-prod"}
CHANGES = {"project_name": "Pawtory", "domain": "pawtory.com", "backend_dir": "server", "frontend_dir": "web",
           "java_version": "21", "registry": "dockerhub", "server_size": "large"}


def _data(answers: dict) -> list[str]:
    return [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]


@pytest.fixture(scope="module")
def followed(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("derived")
    template = work / "template"
    shutil.copytree(TEMPLATE_SOURCE, template, symlinks=True, ignore=IGNORED)
    git(template, "init", "-q")
    commit_and_tag(template, "1.0.0", "template")
    git(template, "commit", "-q", "--allow-empty", "-m", "next")
    git(template, "tag", "-a", "1.0.1", "-m", "Release 1.0.1")
    project = work / "project"
    proc = copier(work, "copy", "--trust", "--defaults", "--skip-tasks", "--vcs-ref", "1.0.0",
                  *_data({**FIRST, **OPERATOR}), str(template), str(project))
    assert proc.returncode == 0, output(proc)
    before = yaml.safe_load((project / ".copier-answers.yml").read_text())
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated")
    proc = copier(project, "update", "--trust", "--defaults", "--skip-tasks", "--vcs-ref", "1.0.1", *_data(CHANGES))
    assert proc.returncode == 0, output(proc)
    after = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return {"before": before, "after": after, "log": proc.stdout + proc.stderr}


@pytest.mark.parametrize("name", sorted(set(derived.DERIVED) - set(OPERATOR)))
def test_each_derived_answer_follows_its_sources_on_update(followed, name):
    before, after = followed["before"], followed["after"]
    assert name in before and name in after, f"{name} was not asked with {FIRST}"
    expected = derived.value(name, answers_rules.normalized(after))
    assert str(after[name]) == str(expected), f"{name}: {after[name]!r}, derived {expected!r}\n{followed['log']}"
    old = derived.value(name, answers_rules.normalized(before))
    assert str(before[name]) == str(old)
    if str(old) != str(expected):
        assert re.search(rf"follow_derived: {name} follows", followed["log"]), followed["log"]


# Derived answers whose sources CHANGES cannot move: `database` stays external, since bundled
# would hide db_host, whose following this update checks (tests/test_db_tls.py tests db_tls's).
# `monitoring` is bundled on medium and on large alike (tests/test_model.py covers its sizes).
FIXED_SOURCES = {"db_tls", "monitoring"}


def test_every_derivation_changed_in_the_update(followed):
    """The update test is only as strong as its changes: each derived value must differ."""
    unchanged = [name for name in set(derived.DERIVED) - set(OPERATOR) - FIXED_SOURCES
                 if str(followed["before"][name]) == str(followed["after"][name])]
    assert unchanged == [], f"CHANGES leave these derived answers unchanged: {unchanged}"


def test_the_operators_answer_stays(followed):
    assert followed["after"]["prod_deploy_dir"] == OPERATOR["prod_deploy_dir"]
    assert followed["after"]["advanced"] is True
