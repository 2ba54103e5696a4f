"""`copier update` never loses an operator's work: releases, migrations and drift detection.

A throwaway git repository of this template's working tree is tagged 1.0.0; two scripted
releases follow (tests/update_helpers.py):
  1.1.0  template files only: API rate 20 -> 30 r/s, uploads 10m -> 20m, compose log rotation,
         and deploy/nginx/sites/<env>/server.conf renamed to 10-site.conf with a `_migrations`
         entry (hooks/migrations/rename_file.py) that carries the operator's edits to the new name;
  1.2.0  a new secret in every env file, added through hooks/env_files.py env_entries.
A project (the template copied at 1.0.0 into an application repository, layout app-repo: the
generated files in deploy/, the application's own README, Makefile and CI beside them) is
committed; clones of it get typical operator edits and are updated the way docs/UPGRADING.md
says. Copier exits 0 even when it leaves conflicts, so every test checks unmerged paths, `.rej`
files and conflict markers itself.

Needs the validators that deploy/scripts/validate.py --full runs (yamllint, shellcheck, hadolint,
nginx, check-jsonschema, docker compose): the test venv has them, and its bin/ is put on PATH.
Set PETORY_UPDATE_TEMPLATE_ROOT to run these tests against another checkout of the template.
"""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path

import pytest
import yaml

from update_helpers import (
    APP_FILES,
    DEPLOY,
    DEPLOY_LAYOUT_RELEASE,
    ENVIRONMENTS,
    NEW_ENV_KEY,
    NEW_ENV_KEY_LENGTH,
    OPERATOR_LOCATION,
    RENAMED,
    RENAMED_WORKFLOWS,
    ROOT_LAYOUT_RELEASE,
    TEMPLATE_SOURCE,
    VENV_BIN,
    build_layout_template_repo,
    build_template_repo,
    clone_project,
    conflict_markers,
    copier,
    copy_project,
    env_files,
    git,
    in_deploy,
    move_into_deploy,
    operator_edits,
    output,
    rejects,
    root_layout_commit,
    run,
    tool_env,
    unmerged,
    update,
    validate,
)

WORKFLOW = ".github/workflows/deploy-template-drift.yml"
LIMITS = f"{DEPLOY}/nginx/conf.d/50-limits.conf"
FULL_SHA_PIN = re.compile(r"^\s*(?:-\s*)?uses:\s*[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(?:\.\d+)*\s*$")


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def template_repo(tmp_path_factory) -> Path:
    return build_template_repo(tmp_path_factory.mktemp("template") / "petory-template")


@pytest.fixture(scope="module")
def base_project(template_repo, tmp_path_factory) -> Path:
    """Copied at 1.0.0 (the validation task ran), committed; env files untracked."""
    return copy_project(template_repo, tmp_path_factory.mktemp("base") / "petory", "1.0.0")


@pytest.fixture(scope="module")
def updated(base_project, tmp_path_factory) -> dict:
    """Operator edits committed, then `copier update --vcs-ref 1.1.0` (crosses the rename migration)."""
    project = clone_project(base_project, tmp_path_factory.mktemp("updated") / "petory")
    expected = operator_edits(project)
    secrets = env_files(project)
    head = git(project, "rev-parse", "HEAD").strip()
    proc = update(project, "1.1.0")
    return {"project": project, "proc": proc, "expected": expected, "secrets": secrets, "head": head}


@pytest.fixture(scope="module")
def conflicted(base_project, tmp_path_factory) -> dict:
    """The operator raised the same rate limit line that 1.1.0 changes."""
    project = clone_project(base_project, tmp_path_factory.mktemp("conflicted") / "petory")
    limits = project / LIMITS
    text = limits.read_text()
    assert "zone=api:10m rate=20r/s" in text
    limits.write_text(text.replace("zone=api:10m rate=20r/s", "zone=api:10m rate=50r/s"))
    git(project, "commit", "-q", "-am", "Operator: API rate 50 r/s for the launch")
    return {"project": project, "proc": update(project, "1.1.0")}


# --------------------------------------------------------------------------- 1.0.0 -> 1.1.0, clean

def test_update_leaves_no_conflict(updated):
    project, proc = updated["project"], updated["proc"]
    assert proc.returncode == 0, f"copier update to 1.1.0 failed:\n{output(proc)}"
    assert unmerged(project) == [], f"unmerged paths:\n{output(proc)}"
    assert rejects(project) == []
    assert conflict_markers(project) == []
    assert git(project, "rev-parse", "HEAD").strip() == updated["head"], "copier must not commit"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "1.1.0"


def test_operator_edits_are_kept(updated):
    project, expected = updated["project"], updated["expected"]
    old_site, new_site = RENAMED["prod"]
    assert not (project / old_site).exists(), "1.1.0 renamed the site file; the old name must be gone"
    assert expected["location"] in (project / new_site).read_text(), \
        f"the operator's nginx location did not follow {old_site} to {new_site}"
    assert expected["limit"] in (project / DEPLOY / "compose.yaml").read_text(), "changed resource limit lost"
    assert expected["service"] in (project / DEPLOY / "compose.prod.yaml").read_text(), "extra compose service lost"
    assert (project / DEPLOY / "env/prod.env").read_text().endswith(expected["env"]), "extra env variable lost"


def test_application_files_are_untouched(updated):
    """The application repository's own README, Makefile, .gitignore and CI survive the update."""
    project = updated["project"]
    changed = [name for name, text in APP_FILES.items() if (project / name).read_text() != text]
    assert changed == [], f"copier update changed the application's files: {changed}"


def test_template_changes_are_applied(updated):
    project = updated["project"]
    assert "zone=api:10m rate=30r/s" in (project / LIMITS).read_text()
    assert 'max-file: "10"' in (project / DEPLOY / "compose.yaml").read_text()
    for env in ENVIRONMENTS:
        old, new = RENAMED[env]
        if (project / DEPLOY / f"compose.{env}.yaml").exists():
            assert not (project / old).exists()
            assert "client_max_body_size 20m;" in (project / new).read_text(), f"{new} lacks 1.1.0's change"


def test_rename_migration_ran_and_merged(updated):
    log = updated["proc"].stderr
    assert f"your edits of {RENAMED['prod'][0]} were merged into {RENAMED['prod'][1]}" in log, output(updated["proc"])
    assert f"{RENAMED['dev'][0]} had no local edits" in log


def test_secrets_are_unchanged(updated):
    assert env_files(updated["project"]) == updated["secrets"]
    for path in (updated["project"] / DEPLOY / "env").glob("*.env"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} lost mode 0600"


def test_validation_passes_after_update(updated):
    """Every linter passes on the merged result (the operator's edits on top of 1.1.0)."""
    proc = validate(updated["project"], "--full")
    assert proc.returncode == 0, output(proc)


def test_rename_migration_is_idempotent(updated, template_repo, tmp_path):
    """Run again on the updated tree: nothing changes; after the commit (already renamed): no-op."""
    project = clone_project(updated["project"], tmp_path / "petory")
    script = template_repo / "hooks/migrations/rename_file.py"
    args = [sys.executable, str(script)]
    for old, new in RENAMED.values():
        args += ["--rename", old, new]
    env = {**tool_env(), "STAGE": "after", "VERSION_FROM": "1.0.0", "VERSION_TO": "1.1.0"}

    def snapshot() -> dict[str, bytes]:
        return {str(p.relative_to(project)): p.read_bytes() for p in project.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(project).parts}

    before = snapshot()
    proc = run(args, project, env=env)
    assert snapshot() == before, proc.stderr
    assert f"{RENAMED['prod'][1]} already holds your edits" in proc.stderr

    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Update to template 1.1.0")
    proc = run(args, project, env=env)
    assert snapshot() == before, proc.stderr
    assert f"{RENAMED['prod'][0]} was not committed before the update: nothing to carry over" in proc.stderr
    assert git(project, "status", "--porcelain") == ""


def test_rename_migration_surfaces_a_conflict(base_project, updated, template_repo, tmp_path):
    """The operator changed the very line 1.1.0 changes in the renamed file: inline markers, unmerged."""
    old, new = RENAMED["prod"]
    project = clone_project(base_project, tmp_path / "petory")
    site = project / old
    site.write_text(site.read_text().replace("client_max_body_size 10m;", "client_max_body_size 50m;"))
    git(project, "commit", "-q", "-am", "Operator: 50m uploads")
    # The tree as Copier leaves it before the `after` migrations: old name deleted, new one rendered.
    site.unlink()
    release_render = (updated["project"] / new).read_text().replace(OPERATOR_LOCATION, "")
    (project / new).write_text(release_render)
    args = [sys.executable, str(template_repo / "hooks/migrations/rename_file.py"), "--rename", old, new]
    proc = run(args, project, env={**tool_env(), "STAGE": "after", "VERSION_FROM": "1.0.0"})
    assert "with 1 conflict(s)" in proc.stderr, proc.stderr
    assert unmerged(project) == [new]
    text = (project / new).read_text()
    assert "<<<<<<< before updating" in text and "client_max_body_size 50m;" in text
    assert "client_max_body_size 20m;" in text and ">>>>>>> after updating" in text
    proc = validate(project)
    assert proc.returncode != 0 and f"{in_deploy(new)}:" in proc.stdout, output(proc)
    assert "unresolved merge conflict marker" in proc.stdout, output(proc)


# --------------------------------------------------------------------------- 1.0.0 -> 1.1.0, conflict

def test_conflicting_edit_is_surfaced_inline(conflicted):
    project, proc = conflicted["project"], conflicted["proc"]
    assert proc.returncode == 0, f"copier exits 0 even with conflicts; here it failed:\n{output(proc)}"
    assert unmerged(project) == [LIMITS], output(proc)
    assert rejects(project) == []
    text = (project / LIMITS).read_text()
    assert "<<<<<<< before updating" in text and ">>>>>>> after updating" in text
    assert "rate=50r/s" in text and "rate=30r/s" in text, "both sides of the conflict must be shown"


def test_validation_names_the_conflicted_file(conflicted):
    project = conflicted["project"]
    line = next(n for n, text in enumerate((project / LIMITS).read_text().splitlines(), 1)
                if text.startswith("<<<<<<<"))
    proc = validate(project)
    assert proc.returncode != 0, output(proc)
    assert f"{in_deploy(LIMITS)}:{line}: unresolved merge conflict marker" in proc.stdout, output(proc)


# --------------------------------------------------------------------------- 1.0.0 -> 1.2.0, new env key

def test_new_env_key_is_reported_then_synced(base_project, tmp_path):
    project = clone_project(base_project, tmp_path / "petory")
    expected = operator_edits(project)
    secrets = env_files(project)
    proc = update(project, "1.2.0")
    assert proc.returncode == 0, (
        "copier update to 1.2.0 failed. If the validation task is what failed, the update stopped after "
        "rendering the new version and before re-applying the operator's edits (the working tree shows "
        f"the template's files and .copier-answers.yml already says 1.2.0):\n{output(proc)}")
    assert unmerged(project) == [] and rejects(project) == [], output(proc)
    assert f"{NEW_ENV_KEY}=<generated:{NEW_ENV_KEY_LENGTH}>" in (project / DEPLOY / "env/.env.example").read_text(), (
        "1.2.0 added the key in hooks/env_files.py, but deploy/env/.env.example was rendered without it: the update "
        "rendered 1.2.0 with 1.0.0's hooks modules (imported by hooks/extensions.py and cached in sys.modules "
        "by the render of the old version in the same process)")
    assert env_files(project) == secrets, "copier update changed an env file"
    assert expected["location"] in (project / RENAMED["prod"][1]).read_text()

    proc = validate(project)
    assert proc.returncode != 0, f"validation must fail while env files lack {NEW_ENV_KEY}:\n{output(proc)}"
    for env in secrets:
        assert re.search(rf"env/{env}\.env:\d+: lacks {NEW_ENV_KEY}\b.*make (-C {DEPLOY} )?env-sync ENV={env}",
                         proc.stdout), \
            f"validate must name env/{env}.env, {NEW_ENV_KEY} and `make env-sync ENV={env}`:\n{proc.stdout}"

    for env in secrets:
        run(["make", "-s", "-C", DEPLOY, "env-sync", f"ENV={env}", f"PYTHON={sys.executable}"], project)
    after = env_files(project)
    for env, old in secrets.items():
        assert after[env].startswith(old), f"deploy/env/{env}.env: existing lines (secrets) changed by env-sync"
        added = dict(line.split("=", 1) for line in after[env][len(old):].decode().splitlines()
                     if "=" in line and not line.startswith("#"))
        assert list(added) == [NEW_ENV_KEY], added
        assert re.fullmatch(rf"[A-Za-z0-9]{{{NEW_ENV_KEY_LENGTH}}}", added[NEW_ENV_KEY]), "not a generated secret"
        assert stat.S_IMODE((project / DEPLOY / f"env/{env}.env").stat().st_mode) == 0o600
    new_values = {re.search(rf"^{NEW_ENV_KEY}=(.*)$", content.decode(), re.MULTILINE).group(1) for content in after.values()}
    assert len(new_values) == len(after), "each environment needs its own secret"

    proc = validate(project)
    assert proc.returncode == 0, output(proc)


# --------------------------------------------------------------------------- idempotency

def test_update_to_current_version_changes_nothing(base_project, tmp_path):
    project = clone_project(base_project, tmp_path / "petory")
    secrets = env_files(project)
    proc = copier(project, "update", "--trust", "--defaults", "--conflict", "inline", "--vcs-ref=:current:")
    assert proc.returncode == 0, output(proc)
    assert git(project, "status", "--porcelain") == "", f"an update to the same version changed files:\n{output(proc)}"
    assert env_files(project) == secrets


def test_tasks_leave_tracked_files_unchanged(base_project, template_repo, tmp_path):
    """The same copy without tasks has identical tracked files: tasks only touch env file modes."""
    plain = tmp_path / "no-tasks"
    proc = copier(tmp_path, "copy", "--trust", "--defaults", "--skip-tasks", "--vcs-ref", "1.0.0",
                  str(template_repo), str(plain))
    assert proc.returncode == 0, output(proc)
    tracked = [path for path in git(base_project, "ls-files", "-z").split("\0") if path and path not in APP_FILES]
    changed = [path for path in tracked
               if not (plain / path).is_file() or (plain / path).read_bytes() != (base_project / path).read_bytes()
               or (plain / path).stat().st_mode != (base_project / path).stat().st_mode]
    assert changed == [], f"a Copier task changed tracked files: {changed}"


# --------------------------------------------------------------------------- 0.1.0 (root) -> 0.2.0 (deploy/)

# Answers that 0.3.0 moved behind `advanced`, customised in the 0.1.0 installation: hidden
# questions are not recorded, so without the migration each would silently return to its default.
OPERATOR_ADVANCED = {"mysql_image": "mirror.internal/library/mysql:8.0", "prod_ssh_user": "ops",
                     "staging_deploy_dir": "/opt/petory", "api_body_size_mb": 25,
                     "frontend_nginx_image": "mirror.internal/library/nginx:1.28-alpine"}


@pytest.fixture(scope="module")
def layout_move(tmp_path_factory) -> dict:
    """A 0.1.0 repository (files at the root) with operator edits, moved into deploy/ by the
    procedure of docs/UPGRADING.md: secrets aside, `copier update`, secrets back, rename_file.py --into."""
    commit = root_layout_commit()
    if commit is None:
        pytest.skip(f"this checkout has neither a {ROOT_LAYOUT_RELEASE} tag nor a 'Release {ROOT_LAYOUT_RELEASE}' commit")
    work = tmp_path_factory.mktemp("layout")
    template = build_layout_template_repo(work / "template-origin", commit)
    advanced = [arg for key, value in OPERATOR_ADVANCED.items() for arg in ("--data", f"{key}={value}")]
    project = copy_project(template, work / "petory", ROOT_LAYOUT_RELEASE, *advanced, app=False)
    expected = operator_edits(project, ".")
    secrets = {path.name: path.read_bytes() for path in (project / "env").glob("*.env")}
    assert secrets, "0.1.0 generated no env files?"
    return {"project": project, "expected": expected, "secrets": secrets,
            **move_into_deploy(project, str(template), work)}


def test_layout_move_merges_edits_without_conflicts(layout_move):
    project, update_proc, rename_proc = layout_move["project"], layout_move["update"], layout_move["rename"]
    assert update_proc.returncode == 0, output(update_proc)
    assert rename_proc.returncode == 0, output(rename_proc)
    assert unmerged(project) == [] and rejects(project) == [] and conflict_markers(project) == [], \
        output(update_proc) + output(rename_proc)
    expected = layout_move["expected"]
    assert expected["location"] in (project / DEPLOY / "nginx/sites/prod/server.conf").read_text()
    assert expected["limit"] in (project / DEPLOY / "compose.yaml").read_text()
    assert expected["service"] in (project / DEPLOY / "compose.prod.yaml").read_text()
    log = rename_proc.stderr
    for path in ("nginx/sites/prod/server.conf", "compose.yaml", "compose.prod.yaml"):
        assert f"your edits of {path} were merged into {DEPLOY}/{path}" in log, log
    for old, new in RENAMED_WORKFLOWS:
        assert f"{old} had no local edits: {new} is the new version's file" in log, log
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == DEPLOY_LAYOUT_RELEASE


def test_layout_move_keeps_the_secrets(layout_move):
    project = layout_move["project"]
    for name, content in layout_move["secrets"].items():
        path = project / DEPLOY / "env" / name
        assert path.read_bytes() == content, f"{path} is not the operator's env file"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert layout_move["expected"]["env"] in (project / DEPLOY / "env/prod.env").read_text()


def test_layout_move_leaves_nothing_at_the_root(layout_move):
    project = layout_move["project"]
    assert sorted(p.name for p in project.iterdir()) == [".copier-answers.yml", ".git", ".github", DEPLOY]
    workflows = {p.name for p in (project / ".github/workflows").iterdir()}
    assert {Path(new).name for _, new in RENAMED_WORKFLOWS} <= workflows, workflows
    assert all(name.startswith("deploy-") for name in workflows), f"a 0.1.0 workflow is left: {workflows}"


def test_layout_move_validates_and_commits(layout_move):
    """The procedure's last steps: env-sync (keys 0.2.0 added, if any), validate, commit."""
    project = layout_move["project"]
    for name in layout_move["secrets"]:
        run(["make", "-s", "-C", DEPLOY, "env-sync", f"ENV={Path(name).stem}", f"PYTHON={sys.executable}"], project)
    proc = validate(project)
    assert proc.returncode == 0, output(proc)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", f"Template {DEPLOY_LAYOUT_RELEASE}: the deployment files move into deploy/")
    assert git(project, "status", "--porcelain") == ""
    tracked_env = git(project, "ls-files", f"{DEPLOY}/env").split()
    assert tracked_env == [f"{DEPLOY}/env/.env.example"], f"secrets must stay untracked: {tracked_env}"


# --------------------------------------------------------------------------- template-drift workflow

@pytest.fixture(scope="module")
def workflow(base_project) -> dict:
    path = base_project / WORKFLOW
    assert path.is_file(), f"{WORKFLOW} is not generated"
    return {"path": path, "text": path.read_text(), "data": yaml.safe_load(path.read_text())}


def test_workflow_passes_schema_and_yamllint(workflow, base_project):
    run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow["path"])],
        base_project)
    run([str(VENV_BIN / "yamllint"), "-s", "-c", f"{DEPLOY}/.yamllint.yaml", WORKFLOW], base_project)


def test_workflow_is_weekly_least_privilege_and_pinned(workflow):
    data, text = workflow["data"], workflow["text"]
    triggers = data[True] if True in data else data["on"]  # PyYAML reads `on:` as True
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    cron = triggers["schedule"][0]["cron"].split()
    assert len(cron) == 5 and cron[2] == "*" and cron[3] == "*" and cron[4].isdigit(), f"not weekly: {cron}"
    assert data["permissions"] == {"contents": "read"}
    uses = [line for line in text.splitlines() if re.match(r"^\s*(-\s*)?uses:", line)]
    assert uses, "no actions used?"
    for line in uses:
        assert FULL_SHA_PIN.match(line), f"not pinned to a full commit SHA with the version in a comment: {line}"
    runs = "\n".join(step.get("run", "") for job in data["jobs"].values() for step in job["steps"])
    assert re.search(r'"copier>=[\d.]+,<[\d.]+"', runs) and re.search(r'"copier-template-extensions>=[\d.]+,<[\d.]+"',
                                                                       runs), "pip installs need version ranges"
    assert "copier check-update --quiet" in runs


def test_workflow_run_blocks_pass_shellcheck(workflow, tmp_path):
    steps = [step for job in workflow["data"]["jobs"].values() for step in job["steps"] if "run" in step]
    assert steps
    for number, step in enumerate(steps):
        assert "${{" not in step["run"], f"step {step.get('name')}: pass expressions through env:, not into run:"
        script = tmp_path / f"step-{number}.sh"
        script.write_text(step["run"])
        proc = run([str(VENV_BIN / "shellcheck"), "-s", "bash", str(script)], tmp_path, check=False)
        assert proc.returncode == 0, f"step {step.get('name')!r}:\n{proc.stdout}"


def drift_check(workflow: dict, project: Path, tmp_path: Path):
    step = next(s for job in workflow["data"]["jobs"].values() for s in job["steps"] if s.get("id") == "check")
    script = tmp_path / "check.sh"
    script.write_text(step["run"])
    summary = tmp_path / "summary.md"
    env = {**tool_env(), "GITHUB_STEP_SUMMARY": str(summary)}
    proc = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], project, check=False, env=env)
    return proc, summary.read_text() if summary.exists() else ""


def test_workflow_reports_a_newer_template(workflow, base_project, tmp_path):
    proc, summary = drift_check(workflow, base_project, tmp_path)
    assert proc.returncode == 1, output(proc)
    assert "Template update available: 1.0.0 → 1.2.0" in summary, summary
    assert "copier update --trust --conflict inline --vcs-ref 1.2.0" in summary
    assert "::error title=Template update available::" in proc.stdout


def test_workflow_is_quiet_when_up_to_date(workflow, template_repo, tmp_path):
    project = copy_project(template_repo, tmp_path / "latest", "1.2.0", "--skip-tasks")
    proc, summary = drift_check(workflow, project, tmp_path)
    assert proc.returncode == 0, output(proc)
    assert "Template is up to date" in summary and "1.2.0" in summary


def test_copier_yml_migrations_are_versioned_and_exist():
    """Every `_migrations` entry names a PEP 440 release and a script that ships with the template."""
    from packaging.version import Version

    config = yaml.safe_load((TEMPLATE_SOURCE / "copier.yml").read_text())
    assert config["_min_copier_version"]
    for entry in config.get("_migrations") or []:
        assert isinstance(entry, dict) and "command" in entry, entry
        if "version" in entry:
            Version(str(entry["version"]))  # raises for a version Copier could not order
        else:  # runs on every update: only the answers migration, before Copier reads the answers
            assert entry["when"] == "{{ _stage == 'before' }}" and "follow_derived.py" in str(entry["command"]), entry
        command = entry["command"] if isinstance(entry["command"], list) else entry["command"].split()
        for part in command:
            if "hooks/migrations/" in str(part):
                script = str(part).split("hooks/migrations/", 1)[1]
                assert (TEMPLATE_SOURCE / "hooks/migrations" / script).is_file(), f"missing migration {script}"


def test_layout_move_keeps_every_customised_advanced_answer(layout_move):
    """follow_derived.py switched `advanced` on, so the hidden questions kept their answers."""
    answers = yaml.safe_load((layout_move["project"] / ".copier-answers.yml").read_text())
    assert answers.get("advanced") is True, output(layout_move["update"])
    assert {key: answers.get(key) for key in OPERATOR_ADVANCED} == OPERATOR_ADVANCED
    assert "mirror.internal/library/mysql:8.0" in (layout_move["project"] / DEPLOY / "compose.yaml").read_text()


def test_layout_move_treats_0_1_0_defaults_as_derived(layout_move):
    """0.1.0 recorded acme_email = ops@<domain> and friends: they follow their sources from now on."""
    log = output(layout_move["update"])
    for name in ("staging_domain", "acme_email", "staging_ssh_host", "prod_ssh_host", "db_name"):
        assert f"follow_derived: {name} follows" in log, log
    assert "follow_derived: staging_deploy_dir follows" not in log  # the operator's own directory
