"""The generated GitHub Actions workflows, the CI scripts they run, and the Dependabot configuration.

Every supported answer set is rendered (plus the deployment-repository layout); its .github/ files
are checked against check-jsonschema's vendored schemas and by checkov's github_actions framework,
every `run:` block goes through shellcheck, and the security properties are asserted on the parsed
YAML: pinned actions, least-privilege permissions, environments and concurrency (resolved through
the reusable deploy workflow), immutable image tags, strict SSH host-key checking, no secret on a
command line or in the log. The scripts in deploy/scripts/ci/ run here against stub `ssh`, `npm`
and `gradlew`; tests/live/test_ssh_deploy.py runs the deploy job for real, and
tests/live/test_first_ci_run.py the first CI run's jobs in both layouts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
CI_SCRIPTS = "deploy/scripts/ci"
# Answer sets of this module on top of answer_sets.SUPPORTED: the separate deployment repository.
LAYOUTS = {
    "deploy-repo": {"layout": "deploy-repo"},
    "deploy-repo-prod-source": {"layout": "deploy-repo", "environments": ["prod"], "backend_build": "source", "advanced": True,
                                "app_repository": "petory-team/petory-app"},
}
ANSWER_SETS = {**SUPPORTED, **LAYOUTS}
WITH_SERVERS = sorted(n for n, a in ANSWER_SETS.items() if a.get("environments") != ["dev"])
# The duplication budget (issue 10): share of workflow lines inside a repeated 6-line block.
WINDOW = 6
MAX_REPEATED_SHARE = 0.15


# --------------------------------------------------------------------------- helpers

@pytest.fixture(scope="session")
def project(rendered_with):
    """name of an answer set of ANSWER_SETS -> its shared render (read only)."""
    return lambda name: rendered_with(ANSWER_SETS[name])


def answers_of(project_dir: Path) -> dict:
    """The recorded answers, plus the defaults of the questions Copier did not record (hidden by
    `when`, e.g. the advanced ones): static defaults as written, derived ones from hooks/derived.py."""
    import answers_rules
    import derived

    answers = yaml.safe_load((project_dir / ".copier-answers.yml").read_text())
    config = yaml.safe_load((Path(__file__).resolve().parent.parent / "copier.yml").read_text())
    for name, spec in config.items():
        if name.startswith("_") or not isinstance(spec, dict) or name in answers or spec.get("when") is False:
            continue
        if name in derived.DERIVED:
            answers[name] = derived.value(name, answers_rules.normalized(answers))
        elif "{{" not in str(spec.get("default", "")):
            answers[name] = spec.get("default")
    return answers


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def workflow_paths(project_dir: Path) -> list[Path]:
    return sorted((project_dir / ".github/workflows").glob("*.yml"))


def workflows(project_dir: Path) -> dict[str, dict]:
    return {p.name: load(p) for p in workflow_paths(project_dir)}


def servers_of(answers: dict) -> list[str]:
    return [env for env in SERVERS if env in answers["environments"]]


def app_repository(answers: dict) -> str | None:
    return answers.get("app_repository") if answers.get("layout") == "deploy-repo" else None


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


def resolve(value, inputs: dict):
    """`value` with every ${{ inputs.X }} of a called workflow replaced by the caller's `with:` value."""
    if isinstance(value, dict):
        return {k: resolve(v, inputs) for k, v in value.items()}
    if isinstance(value, str):
        whole = re.fullmatch(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", value)
        if whole:
            return inputs[whole.group(1)]
        return re.sub(r"\$\{\{\s*inputs\.(\w+)\s*\}\}", lambda m: str(inputs[m.group(1)]), value)
    return value


def called_deploy_job(project_dir: Path, env: str) -> tuple[dict, dict]:
    """(caller job of the pipeline, the called workflow's job resolved with the caller's inputs)."""
    caller = load(project_dir / ".github/workflows/deploy-pipeline.yml")["jobs"][f"deploy-{env}"]
    assert caller["uses"] == "./.github/workflows/deploy-environment.yml", caller
    called = load(project_dir / ".github/workflows/deploy-environment.yml")
    declared = called["on"]["workflow_call"]["inputs"]
    assert set(caller["with"]) == {n for n, spec in declared.items() if spec.get("required")}, caller["with"]
    (job,) = called["jobs"].values()
    return caller, resolve(job, caller["with"])


def repeated_lines(paths: list[Path], window: int = WINDOW) -> tuple[int, int]:
    """(lines inside a window of `window` consecutive non-blank lines that occurs more than once
    across all files, all non-blank lines); lines are compared whitespace-normalised."""
    files = [[" ".join(line.split()) for line in p.read_text().splitlines() if line.strip()] for p in paths]
    counts: dict[tuple[str, ...], int] = {}
    for lines in files:
        for i in range(len(lines) - window + 1):
            key = tuple(lines[i:i + window])
            counts[key] = counts.get(key, 0) + 1
    covered = 0
    for lines in files:
        inside = [False] * len(lines)
        for i in range(len(lines) - window + 1):
            if counts[tuple(lines[i:i + window])] > 1:
                inside[i:i + window] = [True] * window
        covered += sum(inside)
    return covered, sum(map(len, files))


def stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
    path.chmod(0o755)


def ssh_stub(tmp_path: Path, log_format: str) -> Path:
    """A directory whose `ssh` only logs its arguments (printf format "%s\\n" with $* or $@)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    stub(stubs, "ssh", f'printf "%s\\n" {log_format} >"${{SSH_LOG}}"\n')
    return stubs


def run_script(cwd: Path, *cmd, env: dict | None = None, stubs: Path | None = None) -> subprocess.CompletedProcess:
    path = f"{stubs}{os.pathsep}{os.environ['PATH']}" if stubs else os.environ["PATH"]
    base = {"PATH": path, "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run(list(map(str, cmd)), cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


# --------------------------------------------------------------------------- schema, shellcheck, checkov

@pytest.mark.parametrize("name", sorted(ANSWER_SETS))
def test_files_match_the_vendored_schemas(project, name):
    directory = project(name)
    files = workflow_paths(directory)
    names = {p.name for p in files}
    servers = bool(servers_of(answers_of(directory)))
    assert {"deploy-ci.yml", "deploy-template-drift.yml"} <= names
    assert ("deploy-pipeline.yml" in names) == servers and ("deploy-environment.yml" in names) == servers, names
    checker = str(VENV_BIN / "check-jsonschema")
    dependabot = [directory / ".github/dependabot.yml", directory / "deploy/dependabot-entries.yml"]
    for schema, paths in (("vendor.github-workflows", files), ("vendor.dependabot", dependabot)):
        proc = subprocess.run([checker, "--builtin-schema", schema, *map(str, paths)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # The deployment's own yamllint rules (line length, indentation, truthy values) hold here too.
    proc = subprocess.run([str(VENV_BIN / "yamllint"), "-f", "parsable", "-c", str(directory / "deploy/.yamllint.yaml"),
                           str(directory / ".github"), str(dependabot[1])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(ANSWER_SETS))
def test_every_run_block_passes_shellcheck(project, name, tmp_path):
    directory = project(name)
    scripts = []
    for wf_name, workflow in workflows(directory).items():
        shell = workflow.get("defaults", {}).get("run", {}).get("shell")
        for job_id, step, script in run_blocks(workflow):
            if wf_name != "deploy-template-drift.yml":  # GitHub's default on Linux is bash without pipefail
                assert (step.get("shell") or shell) == "bash", f"{wf_name} {job_id}: `{step.get('name')}` is not bash"
            # Expressions inside scripts are an injection risk; values come in through env: instead.
            assert "${{" not in script, f"{wf_name} {job_id}: `{step.get('name')}` has an expression in run:"
            # A script a step calls exists in the render and can be run.
            for called in re.findall(rf"(?<![\w/]){CI_SCRIPTS}/[\w.-]+", script):
                assert os.access(directory / called, os.X_OK), f"{wf_name} {job_id}: {called} is missing or not executable"
            path = tmp_path / f"{wf_name}-{job_id}-{len(scripts)}.sh"
            # What GitHub runs for `shell: bash`: bash --noprofile --norc -eo pipefail {0}
            path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
            scripts.append(path)
    assert len(scripts) >= 3
    proc = subprocess.run([str(VENV_BIN / "shellcheck"), "-s", "bash", "-f", "gcc", *map(str, scripts)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["defaults", "minimal", "dockerhub-www", "other-registry-mirror", "deploy-repo",
                                  "deploy-repo-prod-source"])
def test_ci_scripts_pass_shellcheck_and_explain_themselves(project, name):
    deploy = project(name) / "deploy"
    scripts = sorted((deploy / "scripts/ci").glob("*.sh"))
    assert {p.name for p in scripts} >= {"ssh-setup.sh", "smoke.sh", "remote-deploy.sh", "build-app.sh", "lib.sh"}
    proc = subprocess.run([str(VENV_BIN / "shellcheck"), "-x", "-P", "SCRIPTDIR", "-f", "gcc",
                           *(str(p.relative_to(deploy)) for p in scripts)], cwd=deploy, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for script in scripts:
        text = script.read_text()
        if script.name == "lib.sh":  # sourced, not run
            assert "set -" not in text and not os.access(script, os.X_OK)
            continue
        assert "set -Eeuo pipefail" in text and text.rstrip().endswith('main "$@"'), script.name
        proc = run_script(deploy.parent, f"deploy/scripts/ci/{script.name}", "--help")
        assert proc.returncode == 0 and proc.stdout.startswith(f"Usage: deploy/scripts/ci/{script.name}"), proc


def checkov(directory: Path) -> dict:
    binary = VENV_BIN / "checkov"
    assert binary.exists(), "checkov is missing: pip install -e '.[test]'"
    # --skip-download and BC_SKIP_MAPPING: no calls to the vendor's API; the local policies suffice.
    proc = subprocess.run([str(binary), "-d", str(directory / ".github"), "--framework", "github_actions",
                           "--compact", "--skip-download", "--output", "json"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"})
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    (report,) = report if isinstance(report, list) else [report]
    assert report["check_type"] == "github_actions", report["check_type"]
    return report


@pytest.mark.parametrize("name", ["defaults", "minimal", "staging-only", "dockerhub-www", "other-registry-mirror",
                                  "dev-only", "deploy-repo", "deploy-repo-prod-source"])
def test_checkov_github_actions_passes_and_every_skip_says_why(project, name):
    report = checkov(project(name))
    assert report["summary"]["parsing_errors"] == 0, report["results"]["parsing_errors"]
    assert report["summary"]["passed"] > 0
    failed = [(c["check_id"], c["file_path"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 5 and reason != "No comment provided", (skipped["check_id"], reason)


# --------------------------------------------------------------------------- reuse

@pytest.mark.parametrize("name", ["defaults", "minimal", "staging-only", "dev-only", "source-build-java21",
                                  "other-registry-mirror", "deploy-repo", "deploy-repo-prod-source"])
def test_at_most_15_percent_of_workflow_lines_are_repeated_blocks(project, name, summary):
    covered, total = repeated_lines(workflow_paths(project(name)))
    share = covered / total
    if name == "defaults":
        summary.append(f"workflows: {covered} of {total} lines in repeated {WINDOW}-line blocks ({share:.0%})")
    assert share <= MAX_REPEATED_SHARE, f"{covered} of {total} workflow lines ({share:.0%}) are in repeated {WINDOW}-line blocks"


def test_repeated_block_count_counts_every_line_of_a_repeat(tmp_path):
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    block = [f"line {i}" for i in range(6)]
    a.write_text("\n".join(["x", *block, "y"]))
    b.write_text("\n".join(["  ".join(line.split()) for line in block] + ["", "z"]))
    assert repeated_lines([a, b]) == (12, 15)
    b.write_text("\n".join(block[:5] + ["z"]))
    assert repeated_lines([a, b]) == (0, 14)


def test_action_pins_live_in_one_template_file():
    pins = (ROOT / "partials/actions.jinja").read_text()
    for path in sorted((ROOT / "template/.github").rglob("*")):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"\b[0-9a-f]{40}\b", text), f"{path.name} pins a commit itself"
            for line in text.splitlines():
                if re.match(r"^\s*(?:-\s*)?uses:", line):
                    assert re.search(r"uses: \{\{ pin\('[\w-]+'\) \}\}$|uses: \./\.github/workflows/[\w-]+\.yml$", line), \
                        f"{path.name}: {line.strip()}"
    assert len(re.findall(r"'[0-9a-f]{40}'", pins)) >= 8


@pytest.mark.parametrize("name", sorted(ANSWER_SETS))
def test_every_action_is_pinned_to_a_commit_with_its_version(project, name):
    pins: dict[str, set[tuple[str, str]]] = {}
    paths = workflow_paths(project(name)) + sorted((ROOT / ".github/workflows").glob("*.yml"))
    for path in paths:
        lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(?:-\s*)?uses:", line)]
        for line in lines:
            if "uses: ./.github/workflows/" in line:
                continue
            match = PIN.match(line)
            assert match, f"{path.name}: unparsable {line!r}"
            assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), f"{path.name}: {match['action']} pinned to {match['ref']}"
            assert match["comment"] and re.fullmatch(r"v\d+\.\d+\.\d+", match["comment"]), \
                f"{path.name}: {match['action']}@{match['ref']} lacks its version comment"
            pins.setdefault(match["action"], set()).add((match["ref"], match["comment"]))
    # One version of each action everywhere, the generated files and the template's own CI alike.
    assert {a: v for a, v in pins.items() if len(v) > 1} == {}
    expected = {"actions/checkout", "actions/setup-node", "docker/setup-buildx-action", "docker/build-push-action"}
    assert expected <= set(pins), set(pins)


# --------------------------------------------------------------------------- permissions, secrets

@pytest.mark.parametrize("name", sorted(ANSWER_SETS))
def test_permissions_are_read_only_by_default_and_granted_per_job(project, name):
    directory = project(name)
    answers = answers_of(directory)
    ghcr = answers.get("registry", "ghcr") == "ghcr"
    for wf_name, workflow in workflows(directory).items():
        assert workflow["permissions"] in ({}, {"contents": "read"}), f"{wf_name}: {workflow['permissions']}"
        for job_id, job in workflow["jobs"].items():
            perms = job.get("permissions", {})
            assert isinstance(perms, dict), f"{wf_name} {job_id}: permissions {perms!r}"
            writes = {k for k, v in perms.items() if v == "write"}
            if (wf_name, job_id) == ("deploy-pipeline.yml", "image") and ghcr:
                assert perms == {"contents": "read", "packages": "write"}, (job_id, perms)
            else:
                assert not writes, f"{wf_name} {job_id} asks for {writes}"
            if job_id.startswith("deploy") and wf_name != "deploy-ci.yml":  # callers and the called deploy job
                # With GHCR the deploy's own token lets the server pull, for that deploy only.
                assert perms == {"contents": "read", **({"packages": "read"} if ghcr else {})}, f"{wf_name} {job_id}: {perms}"


@pytest.mark.parametrize("name", ["defaults", "dockerhub-www", "other-registry-mirror", "deploy-repo"])
def test_no_secret_reaches_a_command_line_or_the_log(project, name):
    directory = project(name)
    for wf_name, workflow in workflows(directory).items():
        for job_id, job in workflow["jobs"].items():
            if "uses" in job:  # a call: secrets pass only as `inherit` or by name to the called workflow
                assert job.get("secrets", "inherit") == "inherit" or all(
                    v == f"${{{{ secrets.{k} }}}}" for k, v in job["secrets"].items()), (wf_name, job_id)
                assert "secrets." not in json.dumps(job.get("with", {})), (wf_name, job_id)
            for step in job.get("steps", []):
                secret_vars = {k for k, v in step.get("env", {}).items() if "secrets." in str(v)}
                if "run" in step:
                    script = step["run"]
                    assert "set -x" not in script and "xtrace" not in script
                    for var in secret_vars:
                        for line in script.splitlines():
                            if re.search(rf"\${{?{var}\b", line):  # only through a variable, never printed
                                assert not re.match(r"\s*(echo|printf)\b", line) or ">" in line, (wf_name, line)
                for key, value in step.get("with", {}).items():
                    if "secrets." in str(value):  # only actions' credential inputs take secrets
                        assert key in ("password", "token"), f"{wf_name} {job_id}: secret passed as {key}"
    # The SSH secrets are read in ssh-setup.sh only: tested for emptiness, written into 0600 files.
    setup = (directory / CI_SCRIPTS / "ssh-setup.sh").read_text()
    for line in setup.splitlines():
        if re.search(r"\$\{SSH_(PRIVATE_KEY|KNOWN_HOSTS)", line):
            assert re.match(r'\s*if \[\[ -z "\$\{SSH_PRIVATE_KEY:-\}" \]\] \|\| \[\[ -z "\$\{SSH_KNOWN_HOSTS:-\}" \]\]; then$',
                            line) or re.search(r'>"\$\{dir\}/(id_deploy|known_hosts)"$', line), line
    assert "umask 077" in setup and "set -x" not in setup
    for script in (directory / CI_SCRIPTS).glob("*.sh"):
        assert "SSH_PRIVATE_KEY" not in script.read_text() or script.name == "ssh-setup.sh", script.name


# --------------------------------------------------------------------------- deploy-ci.yml

@pytest.mark.parametrize("name", ["defaults", "source-build-java21", "dev-only", "deploy-repo"])
def test_ci_tests_and_builds_both_apps_in_one_matrix_and_validates(project, name):
    directory = project(name)
    answers = answers_of(directory)
    repo = app_repository(answers)
    prefix = "app/" if repo else ""
    ci = workflows(directory)["deploy-ci.yml"]
    assert set(ci["on"]) == {"pull_request", "workflow_call"}
    # mysql: the generated MySQL configuration on 8.0 and 8.4 (tests/test_db_tls.py); monitoring:
    # the real Grafana, Loki and Alloy images, where the bundled stack is generated; firewall: the
    # host firewall on the runner's engine and the newest docker-ce, where a server is provisioned.
    bundled = (directory / "deploy/monitoring/grafana").is_dir()
    servers = (directory / "deploy/provision").is_dir()
    assert set(ci["jobs"]) == ({"app", "deployment-files", "mysql"} | ({"monitoring"} if bundled else set())
                               | ({"firewall"} if servers else set()))
    if servers:
        firewall = ci["jobs"]["firewall"]
        assert firewall["strategy"]["matrix"]["engine"] == ["runner", "docker-ce"]
        assert firewall["steps"][-1]["run"].endswith('deploy/scripts/ci/check-firewall.sh --engine "${ENGINE}"')
        assert (directory / "deploy/scripts/ci/check-firewall.sh").stat().st_mode & 0o111
    if bundled:
        assert [s["run"] for s in ci["jobs"]["monitoring"]["steps"] if "run" in s] == ["deploy/scripts/ci/check-monitoring.sh"]
        assert (directory / "deploy/scripts/ci/check-monitoring.sh").stat().st_mode & 0o111
    job = ci["jobs"]["app"]
    matrix = job["strategy"]["matrix"]["include"]
    assert matrix == [{"app": "backend", "image": answers["backend_image"]},
                      {"app": "frontend", "image": answers["frontend_image"]}]

    (java,) = action_steps(job, "actions/setup-java")
    assert java["if"] == "matrix.app == 'backend'"
    assert java["with"] == {"distribution": "temurin", "java-version": str(answers["java_version"])}
    (gradle,) = action_steps(job, "gradle/actions/setup-gradle")  # dependency and wrapper cache
    assert gradle["if"] == "matrix.app == 'backend'" and gradle["with"]["cache-provider"] == "basic"
    (node,) = action_steps(job, "actions/setup-node")
    assert node["if"] == "matrix.app == 'frontend'" and node["with"]["cache"] == "npm"
    assert node["with"]["cache-dependency-path"] == f"{prefix}{answers['frontend_dir']}/package-lock.json"
    (build_app,) = [s for s in job["steps"] if "build-app.sh" in s.get("run", "")]
    assert build_app["run"] == 'deploy/scripts/ci/build-app.sh --test "${APP}"'
    assert build_app["env"] == {"APP": "${{ matrix.app }}"}

    checkouts = action_steps(job, "actions/checkout")
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)
    if repo:  # the application, at the commit the pipeline passes (or its default branch)
        assert len(checkouts) == 2 and ci["on"]["workflow_call"]["inputs"]["app_ref"]["default"] == ""
        assert checkouts[1]["with"] | {"persist-credentials": False} == {
            "repository": repo, "ref": "${{ inputs.app_ref }}", "path": "app",
            "token": "${{ secrets.APP_REPOSITORY_TOKEN || github.token }}", "persist-credentials": False}
    else:
        assert len(checkouts) == 1

    (build,) = action_steps(job, "docker/build-push-action")
    assert build["if"] == "github.event_name == 'pull_request'"  # the pipeline builds its own when it calls ci
    assert build["with"]["push"] is False and build["with"]["context"] == "."
    assert build["with"]["file"] == "deploy/docker/${{ matrix.app }}/Dockerfile"
    assert build["with"]["cache-from"] == "type=gha,scope=${{ matrix.app }}"  # one cache per image

    validation = [s["run"] for s in ci["jobs"]["deployment-files"]["steps"] if "run" in s]
    assert validation[-1] == "python3 deploy/scripts/validate.py --full --require-all"


def test_dev_only_has_no_deploy_workflow(project):
    directory = project("dev-only")
    assert not (directory / ".github/workflows/deploy-pipeline.yml").exists()
    assert not (directory / ".github/workflows/deploy-environment.yml").exists()
    assert not re.search(r"deploy\b(?![-/]|ment)", (directory / ".github/workflows/deploy-ci.yml").read_text().split("jobs:")[1])


# --------------------------------------------------------------------------- deploy-pipeline.yml

@pytest.mark.parametrize("name", WITH_SERVERS)
def test_pipeline_builds_immutable_images_in_one_matrix(project, name):
    directory = project(name)
    answers = answers_of(directory)
    servers = servers_of(answers)
    repo = app_repository(answers)
    text = (directory / ".github/workflows/deploy-pipeline.yml").read_text()
    pipeline = load(directory / ".github/workflows/deploy-pipeline.yml")

    assert pipeline["on"]["push"] == {"branches": ["main"], "tags": ["v*.*.*"]}
    inputs = pipeline["on"]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == servers
    assert set(inputs) == ({"environment", "app_ref"} if repo else {"environment"})
    assert pipeline["concurrency"] == {"group": "deploy-${{ github.ref }}", "cancel-in-progress": False}
    jobs = pipeline["jobs"]
    assert set(jobs) == {"version", "ci", "image", *(f"deploy-{env}" for env in servers)}
    assert jobs["ci"]["uses"] == "./.github/workflows/deploy-ci.yml"
    for env in SERVERS:
        if env not in servers:
            assert f"deploy-{env}" not in text and f"'{env}'" not in text, f"{name}: {env} referenced"

    # The version is decided once, from the commit the images are built from.
    version = jobs["version"]
    assert version["outputs"] == {"commit": "${{ steps.version.outputs.commit }}",
                                  "version": "${{ steps.version.outputs.version }}"}
    resolve_run = step_by_id(version, "version")["run"]
    assert 'echo "version=sha-${commit::7}" >> "${GITHUB_OUTPUT}"' in resolve_run
    if repo:
        assert 'commit="$(git -C app rev-parse HEAD)"' in resolve_run
        (checkout,) = action_steps(version, "actions/checkout")
        assert checkout["with"] == {"repository": repo, "ref": "${{ inputs.app_ref }}", "path": "app",
                                    "token": "${{ secrets.APP_REPOSITORY_TOKEN || github.token }}",
                                    "persist-credentials": False}
        assert jobs["ci"]["with"] == {"app_ref": "${{ needs.version.outputs.commit }}"}
    else:
        assert 'commit="${GITHUB_SHA}"' in resolve_run and not action_steps(version, "actions/checkout")

    job = jobs["image"]
    assert job["needs"] == ["version", "ci"]
    assert job["strategy"]["matrix"]["include"] == [{"app": "backend", "image": answers["backend_image"]},
                                                    {"app": "frontend", "image": answers["frontend_image"]}]
    assert job["env"] == {"IMAGE": "${{ matrix.image }}", "VERSION": "${{ needs.version.outputs.version }}"}
    existing = step_by_id(job, "existing")
    assert 'imagetools inspect "${IMAGE}:${VERSION}"' in existing["run"]
    meta = step_by_id(job, "meta")
    assert meta["with"]["images"] == "${{ matrix.image }}" and meta["with"]["flavor"] == "latest=false"
    assert meta["with"]["tags"].splitlines() == ["type=raw,value=${{ needs.version.outputs.version }}",
                                                 "type=ref,event=tag"]
    (build,) = action_steps(job, "docker/build-push-action")
    assert build["with"]["push"] is True and build["with"]["file"] == "deploy/docker/${{ matrix.app }}/Dockerfile"
    assert build["with"]["tags"] == "${{ steps.meta.outputs.tags }}"
    assert build["with"]["cache-from"] == "type=gha,scope=${{ matrix.app }}"
    assert build["with"]["cache-to"] == "type=gha,mode=max,scope=${{ matrix.app }}"
    assert build["with"]["build-args"].splitlines() == ["APP_VERSION=${{ needs.version.outputs.version }}",
                                                        "VCS_REF=${{ needs.version.outputs.commit }}"]
    # An image of a commit is built once; a release only adds its tag, never moves one.
    assert build["if"] == "steps.existing.outputs.found != 'true'"
    (promote,) = [s for s in job["steps"] if "imagetools create" in s.get("run", "")]
    assert promote["if"] == "steps.existing.outputs.found == 'true' && github.ref_type == 'tag'"
    assert "release tags are never moved" in promote["run"]
    (login,) = action_steps(job, "docker/login-action")
    if answers.get("registry", "ghcr") == "ghcr":
        assert login["with"] == {"registry": "ghcr.io", "username": "${{ github.actor }}",
                                 "password": "${{ secrets.GITHUB_TOKEN }}"}
    else:
        assert login["with"]["password"] in ("${{ secrets.DOCKERHUB_TOKEN }}", "${{ secrets.REGISTRY_PASSWORD }}")

    # Gradle on the runner only when the image takes the jar from there; npm always.
    (build_app,) = [s for s in job["steps"] if "build-app.sh" in s.get("run", "")]
    assert build_app["run"] == 'deploy/scripts/ci/build-app.sh "${APP}"'
    source_build = answers.get("backend_build") == "source"
    assert bool(action_steps(job, "actions/setup-java")) == (not source_build)
    assert build_app["if"] == "steps.existing.outputs.found != 'true'" + (" && matrix.app == 'frontend'" if source_build else "")
    checkouts = action_steps(job, "actions/checkout")
    assert all(s["if"] == "steps.existing.outputs.found != 'true'" for s in checkouts)
    if repo:  # the application at the commit the version job resolved, so both legs build the same one
        assert len(checkouts) == 2
        assert checkouts[1]["with"]["ref"] == "${{ needs.version.outputs.commit }}"
        assert checkouts[1]["with"]["path"] == "app" and checkouts[1]["with"]["repository"] == repo
        assert f"org.opencontainers.image.source=https://github.com/{repo}" in meta["with"]["labels"]
    else:
        assert len(checkouts) == 1


@pytest.mark.parametrize("name", ["defaults", "minimal", "staging-only", "other-registry-mirror", "deploy-repo"])
def test_deploy_jobs_are_gated_serialised_and_use_plain_strict_ssh(project, name):
    directory = project(name)
    answers = answers_of(directory)
    for env in servers_of(answers):
        caller, job = called_deploy_job(directory, env)
        domain = answers["domain"] if env == "prod" else answers["staging_domain"]
        assert caller["needs"] == ["version", "image"]
        assert caller["secrets"] == "inherit"  # environment secrets reach a called workflow only so
        assert caller["with"] == {
            "environment": env, "url": f"https://{domain}", "ssh_host": answers[f"{env}_ssh_host"],
            "ssh_user": answers[f"{env}_ssh_user"], "ssh_dir": answers[f"{env}_deploy_dir"],
            "version": "${{ needs.version.outputs.version }}"}
        if env == "prod":  # a release tag or a manual run, never a plain push to main
            assert "refs/heads/main" not in caller["if"]
            assert "startsWith(github.ref, 'refs/tags/v')" in caller["if"]
            assert "inputs.environment == 'prod'" in caller["if"]
        else:
            assert "github.ref == 'refs/heads/main'" in caller["if"]

        assert job["environment"] == {"name": env, "url": f"https://{domain}"}
        assert job["concurrency"] == {"group": f"deploy-{env}", "cancel-in-progress": False}
        assert {k: job["env"][k] for k in ("DEPLOY_ENV", "SSH_HOST", "SSH_USER", "DEPLOY_DIR", "PUBLIC_URL")} == {
            "DEPLOY_ENV": env, "SSH_HOST": answers[f"{env}_ssh_host"], "SSH_USER": answers[f"{env}_ssh_user"],
            "DEPLOY_DIR": answers[f"{env}_deploy_dir"], "PUBLIC_URL": f"https://{domain}"}
        # Plain ssh: no third-party action in a job that holds the server's key.
        assert [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s] == ["actions/checkout"]
        # The deploy gate (validate.py --no-placeholders) needs deploy/; nothing is installed there.
        assert job["steps"][0]["with"] == {"persist-credentials": False, "sparse-checkout": "deploy"}
        ssh = step_by_id(job, "ssh")
        assert ssh["env"] == {"SSH_PRIVATE_KEY": "${{ secrets.SSH_PRIVATE_KEY }}",
                              "SSH_KNOWN_HOSTS": "${{ secrets.SSH_KNOWN_HOSTS }}"}
        assert ssh["run"] == 'deploy/scripts/ci/ssh-setup.sh "${RUNNER_TEMP}/ssh"'
        assert step_by_id(job, "deploy")["run"] == ('deploy/scripts/ci/remote-deploy.sh "${RUNNER_TEMP}/ssh/config" '
                                                    '"${DEPLOY_DIR}" "${DEPLOY_ENV}" "${GITHUB_SHA}" "${VERSION}"')
        assert step_by_id(job, "smoke")["run"] == 'deploy/scripts/ci/smoke.sh --api-path "${SMOKE_API_PATH}" "${PUBLIC_URL}"'
        (rollback,) = [s for s in job["steps"] if "--rollback" in s.get("run", "")]
        assert rollback["if"] == "failure() && steps.smoke.outcome == 'failure'"
        assert job["steps"][-1]["if"] == "always()" and job["steps"][-1]["run"] == 'rm -rf "${RUNNER_TEMP}/ssh"'

    setup = (directory / CI_SCRIPTS / "ssh-setup.sh").read_text()
    assert "StrictHostKeyChecking yes" in setup and "UserKnownHostsFile" in setup and "GlobalKnownHostsFile /dev/null" in setup
    scripts = "\n".join(p.read_text() for p in (directory / CI_SCRIPTS).glob("*.sh"))
    assert not re.search(r"StrictHostKeyChecking\s*=?\s*(no|accept-new|off)", scripts)
    assert "ssh-keyscan" not in scripts
    assert all(re.search(r'ssh -F ("\$\{dir\}/config"|"\$1"|DIR/config) ', line)  # code, and the usage text
               for line in scripts.splitlines() if re.match(r"\s*ssh\s", line))


@pytest.mark.parametrize("name", ["defaults", "minimal", "servers-only", "deploy-repo", "deploy-repo-prod-source"])
def test_production_job_still_declares_its_environment_and_concurrency_after_reuse(project, name):
    """The job that deploys production, found through the reusable workflow it calls."""
    directory = project(name)
    caller, job = called_deploy_job(directory, "prod")
    assert caller["with"]["environment"] == "prod"
    assert job["environment"]["name"] == "prod"  # required reviewers and prod's secrets apply to this job
    assert job["environment"]["url"] == f"https://{answers_of(directory)['domain']}"
    assert job["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}
    assert job["env"]["DEPLOY_ENV"] == "prod"


# --------------------------------------------------------------------------- the CI scripts, run

def test_ssh_setup_writes_a_strict_private_configuration_and_refuses_missing_secrets(project, tmp_path):
    repo = project("defaults")
    stubs = ssh_stub(tmp_path, '"$*"')
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {"SSH_PRIVATE_KEY": key.read_text(), "SSH_KNOWN_HOSTS": "[127.0.0.1]:2222 ssh-ed25519 AAAAC3Nza",
           "SSH_HOST": "127.0.0.1", "SSH_USER": "deploy", "SSH_PORT": "2222", "SSH_LOG": str(tmp_path / "ssh.log")}
    out = tmp_path / "ssh"
    proc = run_script(repo, f"{CI_SCRIPTS}/ssh-setup.sh", out, env=env, stubs=stubs)
    assert proc.returncode == 0, proc.stderr
    assert "host key verified" in proc.stdout and key.read_text().split()[2][:20] not in proc.stdout + proc.stderr
    assert (tmp_path / "ssh.log").read_text().split() == ["-F", f"{out}/config", "deploy-target", "true"]
    assert out.stat().st_mode & 0o777 == 0o700
    assert all((out / f).stat().st_mode & 0o777 == 0o600 for f in ("id_deploy", "known_hosts", "config"))
    config = (out / "config").read_text()
    for line in ("HostName 127.0.0.1", "Port 2222", "User deploy", "StrictHostKeyChecking yes", "BatchMode yes",
                 f"UserKnownHostsFile {out}/known_hosts", "GlobalKnownHostsFile /dev/null"):
        assert f"  {line}\n" in config, line

    missing = run_script(repo, f"{CI_SCRIPTS}/ssh-setup.sh", tmp_path / "other",
                         env={**env, "SSH_KNOWN_HOSTS": "", "GITHUB_ACTIONS": "true"}, stubs=stubs)
    assert missing.returncode == 1 and missing.stdout.startswith("::error title=Missing secrets::")
    bad = run_script(repo, f"{CI_SCRIPTS}/ssh-setup.sh", tmp_path / "bad", env={**env, "SSH_PRIVATE_KEY": "nope"},
                     stubs=stubs)
    assert bad.returncode == 1 and "not an unencrypted OpenSSH private key" in bad.stderr


def test_remote_deploy_runs_the_documented_command_on_the_server(project, tmp_path):
    repo = project("defaults")
    stubs = ssh_stub(tmp_path, '"$@"')
    config = tmp_path / "config"
    config.write_text("Host deploy-target\n")
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = {"SSH_LOG": str(tmp_path / "ssh.log")}
    proc = run_script(repo, f"{CI_SCRIPTS}/remote-deploy.sh", config, "/srv/petory app", "prod", sha, "sha-0123456",
                      env=env, stubs=stubs)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "ssh.log").read_text().splitlines() == [
        "-F", str(config), "deploy-target",
        rf"cd /srv/petory\ app && git fetch --quiet --tags --force && git checkout --quiet {sha}"
        " && deploy/scripts/deploy.sh prod sha-0123456 && deploy/scripts/apply.sh prod"]
    # The server's exit status 3 is apply.sh's "a setting needs a restart": a warning, the version is live.
    stub(stubs, "ssh", 'printf "%s\\n" "$@" >"${SSH_LOG}"; exit "${SSH_EXIT:-0}"\n')
    for exit_status, returncode, annotation in ((3, 0, "::warning title=Restart needed::"), (1, 1, "")):
        proc = run_script(repo, f"{CI_SCRIPTS}/remote-deploy.sh", config, "/srv/petory", "prod", sha, "sha-0123456",
                          env={**env, "GITHUB_ACTIONS": "true", "SSH_EXIT": str(exit_status)}, stubs=stubs)
        assert proc.returncode == returncode, proc
        if annotation:
            assert annotation in proc.stdout and "apply.sh prod --restart" in proc.stdout
        else:
            assert "::warning" not in proc.stdout
    proc = run_script(repo, f"{CI_SCRIPTS}/remote-deploy.sh", "--rollback", config, "/srv/petory", "staging",
                      env={**env, "GITHUB_ACTIONS": "true"}, stubs=stubs)
    assert proc.returncode == 0 and proc.stdout.startswith("::warning title=Rolled back::")
    assert (tmp_path / "ssh.log").read_text().splitlines()[-1] == "cd /srv/petory && deploy/scripts/rollback.sh staging --yes"
    for args in ((config, "/srv/petory", "prod", "HEAD", "sha-0123456"),  # a commit id only
                 (config, "/srv/petory", "prod", sha, "sha-1; rm -rf /"),  # no shell in a tag
                 (config, "/srv/petory", "dev", sha, "sha-0123456")):  # servers only
        assert run_script(repo, f"{CI_SCRIPTS}/remote-deploy.sh", *args, env=env, stubs=stubs).returncode == 1, args


def test_remote_deploy_logs_the_server_in_for_this_deploy_only_with_the_token_on_stdin(project, tmp_path):
    repo = project("defaults")  # ghcr: deploy-environment.yml hands the job's token over
    step = workflows(repo)["deploy-environment.yml"]["jobs"]["deploy"]
    assert step_by_id(step, "deploy")["env"] == {"REGISTRY_HOST": "ghcr.io", "REGISTRY_USER": "${{ github.actor }}",
                                                "REGISTRY_TOKEN": "${{ github.token }}"}
    assert step["permissions"] == {"contents": "read", "packages": "read"}
    stubs = tmp_path / "bin"
    stubs.mkdir()
    # The "server": ssh runs the command in a local bash, whose docker records the login.
    stub(stubs, "ssh", 'last="${*: -1}"; printf "%s\\n" "${last}" >"${SSH_LOG}"; exec bash -c "${last%%cd /*}true"\n')
    stub(stubs, "docker", 'printf "%s|%s|%s\\n" "${DOCKER_CONFIG}" "$*" "$(cat)" >>"${DOCKER_LOG}"\n')
    config = tmp_path / "config"
    config.write_text("Host deploy-target\n")
    sha = "0123456789abcdef0123456789abcdef01234567"
    env = {"SSH_LOG": str(tmp_path / "ssh.log"), "DOCKER_LOG": str(tmp_path / "docker.log"), "TMPDIR": str(tmp_path),
           "REGISTRY_HOST": "ghcr.io", "REGISTRY_USER": "octocat", "REGISTRY_TOKEN": "ghs_jobtoken"}
    proc = run_script(repo, f"{CI_SCRIPTS}/remote-deploy.sh", config, "/srv/petory", "prod", sha, "sha-0123456",
                      env=env, stubs=stubs)
    assert proc.returncode == 0, proc.stderr
    command = (tmp_path / "ssh.log").read_text()
    assert "ghs_jobtoken" not in command + proc.stdout + proc.stderr  # on stdin only
    assert command.endswith(f" && cd /srv/petory && git fetch --quiet --tags --force && git checkout --quiet {sha}"
                            " && deploy/scripts/deploy.sh prod sha-0123456 && deploy/scripts/apply.sh prod\n")
    [login] = (tmp_path / "docker.log").read_text().splitlines()
    docker_config, args, stdin = login.split("|")
    assert args == "login --username octocat --password-stdin ghcr.io" and stdin == "ghs_jobtoken"
    # Its own Docker configuration, not the deploy user's, and gone after the deploy.
    assert docker_config.startswith(str(tmp_path)) and not Path(docker_config).exists()
    (tmp_path / "ssh.log").unlink()
    bad = run_script(repo, f"{CI_SCRIPTS}/remote-deploy.sh", config, "/srv/petory", "prod", sha, "sha-0123456",
                     env={**env, "REGISTRY_HOST": "ghcr.io; rm -rf /", "GITHUB_ACTIONS": "true"}, stubs=stubs)
    assert bad.returncode == 1 and bad.stdout.startswith("::error title=Bad registry::")
    assert not (tmp_path / "ssh.log").exists(), "the server was reached"


def test_smoke_check_passes_on_a_frontend_2xx_and_an_api_below_500(project, tmp_path):
    repo = project("defaults")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    # curl prints the status of each URL: 200 for the page, 404 for the API (the backend answered).
    stub(stubs, "curl", 'url="${*: -1}"; printf "%s\\n" "${url}" >>"${CURL_LOG}"\n'
                        'case "${url}" in */api/v1/health) echo 404 ;; */) echo 200 ;; *) echo 502 ;; esac\n')
    env = {"CURL_LOG": str(tmp_path / "curl.log")}
    proc = run_script(repo, f"{CI_SCRIPTS}/smoke.sh", "--api-path", "/api/v1/health", "https://petory.example.com/",
                      env=env, stubs=stubs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "curl.log").read_text().splitlines() == ["https://petory.example.com/",
                                                                "https://petory.example.com/api/v1/health"]
    assert run_script(repo, f"{CI_SCRIPTS}/smoke.sh", "petory.example.com", env=env, stubs=stubs).returncode == 2


@pytest.mark.parametrize("name", ["defaults", "deploy-repo"])
def test_build_app_builds_where_the_dockerfiles_copy_from(project, name, tmp_path):
    answers = answers_of(project(name))
    prefix = "app/" if app_repository(answers) else ""
    repo = tmp_path / "repo"
    shutil.copytree(project(name) / "deploy", repo / "deploy", symlinks=True)
    backend, frontend = repo / prefix / answers["backend_dir"], repo / prefix / answers["frontend_dir"]
    backend.mkdir(parents=True)
    frontend.mkdir(parents=True)
    jar = repo / prefix / answers["backend_jar_glob"].replace("*", "petory-0.0.1")
    stub(backend, "gradlew", f'echo "gradlew $*" >>"${{BUILD_LOG}}"\nmkdir -p {jar.parent}\ntouch {jar}\n')
    stubs = tmp_path / "bin"
    stubs.mkdir()
    build_dir = repo / prefix / answers["frontend_build_dir"]
    stub(stubs, "npm", f'echo "npm $* in $PWD" >>"${{BUILD_LOG}}"\n'
                       f'if [ "$*" = "run build" ]; then mkdir -p {build_dir} && touch {build_dir}/index.html; fi\n')
    env = {"BUILD_LOG": str(tmp_path / "build.log")}

    proc = run_script(tmp_path, repo / CI_SCRIPTS / "build-app.sh", "--test", "backend", env=env, stubs=stubs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"boot jar: {jar.relative_to(repo)}" in proc.stdout
    proc = run_script(tmp_path, repo / CI_SCRIPTS / "build-app.sh", "frontend", env=env, stubs=stubs)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "build.log").read_text().splitlines() == [
        "gradlew build --no-daemon", f"npm ci --no-audit --no-fund in {frontend}", f"npm run build in {frontend}"]
    # A second jar that the Dockerfile's glob would also match fails the build with its names.
    (jar.parent / jar.name.replace("petory", "other")).touch()
    proc = run_script(tmp_path, repo / CI_SCRIPTS / "build-app.sh", "backend", env={**env, "GITHUB_ACTIONS": "true"},
                      stubs=stubs)
    assert proc.returncode == 1 and "::error title=Backend jar::" in proc.stdout and "matches 2 files" in proc.stdout


# --------------------------------------------------------------------------- dependabot, docs

@pytest.mark.parametrize("name", ["defaults", "source-build-java21", "deploy-repo"])
def test_dependabot_updates_actions_images_and_the_apps_of_this_repository(project, name):
    directory = project(name)
    answers = answers_of(directory)
    config = yaml.safe_load((directory / ".github/dependabot.yml").read_text())
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    ours = {"github-actions", "docker", "docker-compose", "pip"}
    if app_repository(answers):  # the application's own repository updates its dependencies
        assert set(updates) == ours
    else:
        assert set(updates) == ours | {"gradle", "npm"}
        assert updates["gradle"]["directory"] == f"/{answers['backend_dir']}"
        assert updates["npm"]["directory"] == f"/{answers['frontend_dir']}"
    assert updates["github-actions"]["directory"] == "/"
    assert updates["docker"]["directories"] == ["/deploy/docker/backend", "/deploy/docker/frontend"]
    assert updates["docker-compose"]["directory"] == "/deploy"  # the compose files' base-image digests
    assert updates["pip"]["directory"] == "/deploy/tools" and (directory / "deploy/tools/requirements.txt").is_file()
    # deploy/dependabot-entries.yml: the same entries, for an application that keeps its own file.
    entries = yaml.safe_load((directory / "deploy/dependabot-entries.yml").read_text())
    assert entries == config


@pytest.mark.parametrize("name", ["defaults", "en-docs", "dockerhub-www", "other-registry-mirror", "minimal", "dev-only",
                                  "staging-only", "deploy-repo"])
def test_cicd_doc_lists_every_secret_variable_and_environment_to_create(project, name):
    directory = project(name)
    doc = (directory / "deploy/docs/03-cicd-pipeline.md").read_text()
    text = "\n".join(p.read_text() for p in workflow_paths(directory))
    secrets = set(re.findall(r"secrets\.([A-Z_]+)", text)) - {"GITHUB_TOKEN"}
    variables = set(re.findall(r"vars\.([A-Z_]+)", text))
    for name_ in secrets | variables:
        assert f"`{name_}`" in doc, f"deploy/docs/03-cicd-pipeline.md does not mention {name_}"
    servers = servers_of(answers_of(directory))
    for env in servers:
        assert f"`{env}`" in doc
    if "prod" in servers:  # GitHub's setting that gates production
        assert "required reviewers" in doc.lower()
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
