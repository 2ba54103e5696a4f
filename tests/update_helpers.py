"""Helpers for tests/test_update.py: a throwaway, tagged git repository of this template, the
scripted releases made on top of it, typical operator edits, and Copier run as operators run it.

Copier runs in a subprocess (`python -m copier`), one process per command, exactly like an
operator's `copier update`: in-process runs would share Python's module cache between renders
of different template versions and hide or invent problems.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# Run the update tests against another checkout of the template (e.g. a patched copy) with this.
TEMPLATE_SOURCE = Path(os.environ.get("PETORY_UPDATE_TEMPLATE_ROOT", REPO_ROOT)).resolve()
VENV_BIN = Path(sys.executable).parent
IGNORED = shutil.ignore_patterns(".git", "tests", "__pycache__", "*.py[co]", ".pytest_cache", ".mypy_cache",
                                 ".ruff_cache", ".venv", "node_modules", "*.rej", "*.orig")
CONFLICT_LINE = re.compile(r"^(<{7}|>{7}|={7})( |$)", re.MULTILINE)
ENVIRONMENTS = ("dev", "staging", "prod")
DEPLOY = "deploy"  # every generated file but .copier-answers.yml and .github/ lives in this folder

# What the scripted releases change (asserted by the tests).
NEW_ENV_KEY = "PETORY_FILE_ENCRYPTION_KEY"
NEW_ENV_KEY_LENGTH = 48
RENAMED = {env: (f"{DEPLOY}/nginx/sites/{env}/server.conf", f"{DEPLOY}/nginx/sites/{env}/10-site.conf")
           for env in ENVIRONMENTS}

# What the operator changes.
OPERATOR_LOCATION = """\
    # Operator: old mobile app builds still open /legacy-login; send them to the API's login.
    location = /legacy-login {
        return 308 /api/auth/login;
    }

"""
OPERATOR_SERVICE = """\
  node-exporter: # Operator: host metrics for the monitoring server
    image: prom/node-exporter:v1.8.2
    restart: unless-stopped
    read_only: true
    pid: host
    command: [--path.rootfs=/host]
    volumes:
      - /:/host:ro,rslave
    networks: [public]
    deploy:
      resources: {limits: {cpus: "0.10", memory: 64M}}

"""
OPERATOR_ENV_LINE = "PETORY_FEATURE_FLAGS=adoption-v2\n"

# The Petory application repository the template generates into (layout app-repo): its own files,
# which neither `copier copy` nor `copier update` may touch.
APP_FILES = {
    "README.md": "# Petory\n\nPet adoption app: Spring Boot backend, React frontend.\n",
    "Makefile": "test:\n\tcd backend && ./gradlew test\n",
    ".gitignore": "/backend/build/\n/frontend/build/\nnode_modules/\n",
    ".github/workflows/ci.yml": "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-24.04\n"
                                "    steps:\n      - run: echo test\n",
    "backend/settings.gradle": "rootProject.name = 'petory'\n",
    "frontend/package.json": '{"name": "petory-frontend", "private": true}\n',
}


def tool_env() -> dict[str, str]:
    """Environment for every subprocess: the venv's tools first, a fixed git identity, no signing."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({
        "GIT_AUTHOR_NAME": "Petory Operator", "GIT_AUTHOR_EMAIL": "ops@petory.example.com",
        "GIT_COMMITTER_NAME": "Petory Operator", "GIT_COMMITTER_EMAIL": "ops@petory.example.com",
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "commit.gpgsign", "GIT_CONFIG_VALUE_0": "false",
        "GIT_CONFIG_KEY_1": "tag.gpgsign", "GIT_CONFIG_VALUE_1": "false",
        "GIT_CONFIG_KEY_2": "init.defaultBranch", "GIT_CONFIG_VALUE_2": "main",
    })
    for name in ("STAGE", "VERSION_FROM", "VERSION_TO", "GITHUB_STEP_SUMMARY", "TEMPLATE_READ_TOKEN"):
        env.pop(name, None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None,
        timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env or tool_env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode} in {cwd}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return run(["git", *args], cwd, check=check).stdout


def copier(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`copier ARGS` as an operator runs it (never raises: tests look at the exit status)."""
    return run([sys.executable, "-m", "copier", *args], cwd, check=False)


def output(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"


def validate(project: Path, *args: str) -> subprocess.CompletedProcess:
    """The generated repository's own check, run from the repository root (`--full`: every linter).

    It prints paths relative to the deployment folder, as `make -C deploy validate` shows them."""
    return run([sys.executable, f"{DEPLOY}/scripts/validate.py", *args], project, check=False)


def in_deploy(path: str) -> str:
    """A repository path as the deployment folder's own tools print it (deploy/x -> x)."""
    prefix = f"{DEPLOY}/"
    assert path.startswith(prefix), path
    return path[len(prefix):]


# --------------------------------------------------------------------------- the template repository

def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    count = text.count(old)
    assert count == 1, (f"scripted change: expected {old!r} once in {path}, found it {count} times; the "
                        "template changed, so update the scripted release in tests/update_helpers.py")
    path.write_text(text.replace(old, new))


def set_migrations(copier_yml: Path, extra: list[dict]) -> None:
    """Append entries to copier.yml's `_migrations` (kept as a JSON flow list, which is YAML)."""
    text = copier_yml.read_text()
    existing = (yaml.safe_load(text) or {}).get("_migrations") or []
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("_migrations:")), len(lines))
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t", "-")) or not lines[end].strip()):
        end += 1
    block = "_migrations: " + json.dumps(existing + extra) + "\n"
    copier_yml.write_text("".join(lines[:start]) + block + "".join(lines[end:]))


def commit_and_tag(repo: Path, version: str, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    git(repo, "tag", "-a", version, "-m", f"Release {version}")


def release_1_1_0(repo: Path) -> None:
    """Template-file changes only: a changed default, a changed line in a file the operator
    edits, a compose change, and a renamed file carried over by a `_migrations` entry (its paths
    are the generated ones, relative to the repository root: deploy/nginx/sites/<env>/...)."""
    replace_once(repo / "template/deploy/nginx/conf.d/50-limits.conf.jinja", "rate={{ api_rate_limit }}r/s",
                 "rate={{ api_rate_limit + 10 }}r/s")  # renders 20 -> 30 with the default answer
    replace_once(repo / "partials/nginx-site.conf.jinja", "client_max_body_size {{ api_body_size_mb }}m;",
                 "client_max_body_size {{ api_body_size_mb * 2 }}m;")
    replace_once(repo / "template/deploy/compose.yaml.jinja", 'options: {max-size: 10m, max-file: "5"}',
                 'options: {max-size: 10m, max-file: "10"}')
    site_files = sorted((repo / "template/deploy/nginx/sites").glob("*/server.conf.jinja"))
    assert len(site_files) == len(ENVIRONMENTS), f"expected one server.conf.jinja per environment, got {site_files}"
    for path in site_files:
        git(repo, "mv", str(path.relative_to(repo)), str(path.with_name("10-site.conf.jinja").relative_to(repo)))
    command = ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrations/rename_file.py"]
    for old, new in RENAMED.values():
        command += ["--rename", old, new]
    set_migrations(repo / "copier.yml", [{"version": "1.1.0", "command": command}])
    commit_and_tag(repo, "1.1.0", "Site files are deploy/nginx/sites/<env>/10-site.conf; API rate 30 r/s; uploads 20m")


def release_1_2_0(repo: Path) -> None:
    """A new env key, introduced the way this template introduces keys: hooks/env_files.py."""
    replace_once(
        repo / "hooks/env_files.py",
        '    keys = ("section", "key", "value", "example", "comment")\n',
        f'    entries.append(("Secrets", "{NEW_ENV_KEY}", "<generated:{NEW_ENV_KEY_LENGTH}>", '
        f'"<generated:{NEW_ENV_KEY_LENGTH}>",\n'
        '                    "key that encrypts uploaded pet documents at rest"))\n'
        '    keys = ("section", "key", "value", "example", "comment")\n',
    )
    commit_and_tag(repo, "1.2.0", f"New secret {NEW_ENV_KEY} in every env file")


def build_template_repo(dest: Path) -> Path:
    """The working tree of this template as a git repository tagged 1.0.0, 1.1.0 and 1.2.0."""
    shutil.copytree(TEMPLATE_SOURCE, dest, symlinks=True, ignore=IGNORED)
    git(dest, "init", "-q")
    commit_and_tag(dest, "1.0.0", "Petory deployment template 1.0.0")
    release_1_1_0(dest)
    release_1_2_0(dest)
    return dest


# --------------------------------------------------------------------------- 0.1.0 -> 0.2.0: into deploy/

ROOT_LAYOUT_RELEASE = "0.1.0"  # the last release that generated into the repository root
DEPLOY_LAYOUT_RELEASE = "0.2.0"
# The workflows that 0.2.0 renamed (the rest moved into deploy/ under their old names).
RENAMED_WORKFLOWS = (
    (".github/workflows/ci.yml", ".github/workflows/deploy-ci.yml"),
    (".github/workflows/deploy.yml", ".github/workflows/deploy-pipeline.yml"),
    (".github/workflows/template-drift.yml", ".github/workflows/deploy-template-drift.yml"),
)


def root_layout_commit() -> str | None:
    """This checkout's commit of release 0.1.0: its tag, else the "Release 0.1.0" commit."""
    for args in (["rev-parse", "--verify", "-q", f"{ROOT_LAYOUT_RELEASE}^{{commit}}"],
                 ["log", "-1", "--format=%H", f"--grep=^Release {re.escape(ROOT_LAYOUT_RELEASE)}$"]):
        proc = run(["git", *args], REPO_ROOT, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return None


def build_layout_template_repo(dest: Path, root_commit: str) -> Path:
    """A template repository tagged 0.1.0 (this checkout's release, root layout) and 0.2.0 (the
    working tree, deploy/ layout)."""
    dest.mkdir(parents=True)
    tarball = dest.parent / f"{ROOT_LAYOUT_RELEASE}.tar"
    run(["git", "archive", "--format=tar", "-o", str(tarball), root_commit], REPO_ROOT)
    run(["tar", "-xf", str(tarball)], dest)
    git(dest, "init", "-q")
    commit_and_tag(dest, ROOT_LAYOUT_RELEASE, "Petory deployment template 0.1.0")
    for path in git(dest, "ls-files", "-z").split("\0"):
        if path:
            (dest / path).unlink()
    shutil.copytree(TEMPLATE_SOURCE, dest, symlinks=True, ignore=IGNORED, dirs_exist_ok=True)
    commit_and_tag(dest, DEPLOY_LAYOUT_RELEASE, "Every generated file moves into deploy/")
    return dest


def move_into_deploy(project: Path, template_url: str, work: Path) -> dict[str, subprocess.CompletedProcess]:
    """The procedure of docs/UPGRADING.md, "0.1.0 -> 0.2.0", step by step as an operator runs it."""
    git(project, "rm", "-q", ".github/dependabot.yml")  # 0. unedited: let 0.2.0 write its own
    git(project, "commit", "-q", "-m", "Dependabot: template 0.2.0 writes its own")
    secrets = work / "petory-secrets"
    secrets.mkdir()
    for path in (project / "env").glob("*.env"):  # 1. the untracked secrets out of Copier's way
        shutil.move(str(path), secrets / path.name)
    update_proc = copier(project, "update", "--trust", "--defaults", "--conflict", "inline",  # 2.
                         "--vcs-ref", DEPLOY_LAYOUT_RELEASE)
    for path in secrets.glob("*.env"):  # 3. the secrets back, over the fresh ones 0.2.0 generated
        shutil.move(str(path), project / DEPLOY / "env" / path.name)
    clone = work / "petory-template"  # 4. carry the edits over with the release's migration script
    run(["git", "clone", "-q", "--branch", DEPLOY_LAYOUT_RELEASE, template_url, str(clone)], work)
    command = [sys.executable, str(clone / "hooks/migrations/rename_file.py"), "--into", DEPLOY]
    for old, new in RENAMED_WORKFLOWS:
        command += ["--rename", old, new]
    return {"update": update_proc, "rename": run(command, project, check=False)}


# --------------------------------------------------------------------------- generated projects

def copy_project(template: Path, dest: Path, ref: str, *extra: str, app: bool = True) -> Path:
    """The application repository (APP_FILES) with the template copied into it at `ref`, committed.
    app=False: an empty repository (0.1.0 wrote its own README, Makefile and CI at the root)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in APP_FILES.items() if app else ():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text(text)
    git(dest, "init", "-q")
    if app:
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", "Petory application")
    proc = copier(dest.parent, "copy", "--trust", "--defaults", "--vcs-ref", ref, *extra, str(template), str(dest))
    assert proc.returncode == 0, f"copier copy at {ref} failed:\n{output(proc)}"
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "Deployment from the Petory template")
    return dest


def clone_project(project: Path, dest: Path) -> Path:
    """A byte-for-byte copy, .git, env files and their modes included."""
    shutil.copytree(project, dest, symlinks=True)
    return dest


def update(project: Path, ref: str) -> subprocess.CompletedProcess:
    return copier(project, "update", "--trust", "--defaults", "--conflict", "inline", "--vcs-ref", ref)


def env_files(project: Path) -> dict[str, bytes]:
    folder = project / DEPLOY / "env"
    return {env: (folder / f"{env}.env").read_bytes() for env in ENVIRONMENTS if (folder / f"{env}.env").exists()}


def unmerged(project: Path) -> list[str]:
    return git(project, "diff", "--name-only", "--diff-filter=U").split()


def rejects(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob("*.rej") if ".git" not in p.parts)


def conflict_markers(project: Path) -> list[str]:
    found = []
    for path in project.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if CONFLICT_LINE.search(text):
            found.append(str(path.relative_to(project)))
    return sorted(found)


def operator_edits(project: Path, folder: str = DEPLOY) -> dict[str, str]:
    """Typical edits, committed: an nginx location, a resource limit, a compose service, and an
    extra variable in the (gitignored) env file. Returns what to look for after the update.
    `folder` holds the generated files: deploy, or "." for a 0.1.0 (root layout) repository."""
    site = project / folder / "nginx/sites/prod/server.conf"
    text = site.read_text()
    anchor = text.rfind("    location / {")
    assert anchor > 0, f"no `location / {{` in {site}"
    site.write_text(text[:anchor] + OPERATOR_LOCATION + text[anchor:])

    compose = project / folder / "compose.yaml"
    text = compose.read_text()
    backend = text.index("\nx-backend: &backend\n")  # the settings both backend colours share
    match = re.compile(r'(resources: \{limits: \{cpus: "[0-9.]+", memory: )(\d+)M').search(text, backend)
    assert match, "no backend resources line in compose.yaml"
    limit_line = f"{match.group(1)}{int(match.group(2)) + 512}M"
    compose.write_text(text[:match.start()] + limit_line + text[match.end():])

    prod = project / folder / "compose.prod.yaml"
    text = prod.read_text()
    assert text.count("\nservices:\n") == 1, "compose.prod.yaml has no top-level services:"
    prod.write_text(text.replace("\nservices:\n", "\nservices:\n" + OPERATOR_SERVICE))

    env_file = project / folder / "env/prod.env"
    with env_file.open("a") as handle:
        handle.write(OPERATOR_ENV_LINE)

    git(project, "commit", "-q", "-am", "Operator: legacy login redirect, backend memory, node-exporter")
    return {"location": "location = /legacy-login {", "limit": limit_line, "service": "  node-exporter:",
            "env": OPERATOR_ENV_LINE}
