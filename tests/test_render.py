"""Render every supported answer set, validate the output with the real tools, refuse bad answers."""

from __future__ import annotations

import filecmp
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from answer_sets import INVALID, SUPPORTED

# `${{` is GitHub Actions syntax; `[[ ... ]]` is only a (legacy Copier) marker around a bare name,
# not a bash test like `[[ -n "$x" ]]`.
# A Jinja marker left over; Go templates that generated files carry on purpose (Alertmanager's
# notification text: `{{ .Status }}`, `{{ range .Alerts }}`, `{{ end }}`) are not one.
GO_TEMPLATE = r"\s*-?\s*(?:[.$]|(?:range|end|if|else|with|len|toUpper)\b)"
MARKER = re.compile(rf"(?<!\$)\{{\{{(?!{GO_TEMPLATE})|\{{%|\[\[\s*[\w.]+\s*\]\]")
# Ansible's own Jinja: the roles are copied verbatim (plain files in template/), so every marker
# there is Ansible's; group_vars/all.yml is rendered, and prints exactly these Ansible expressions.
ANSIBLE_ROLES = "deploy/provision/roles/"
ANSIBLE_EXPRESSION = re.compile(r"\{\{ (lookup\('ansible\.builtin\.file', \w+\)|ansible_facts\['\w+'\]\['\w+'\]) \}\}")
VALIDATE = "deploy/scripts/validate.py"
FAST_CHECKS = ["conflict markers", "YAML parse", "env files", "docker compose config", "nginx -t"]
LINTERS = ["gixy", "yamllint", "shellcheck", "hadolint", "GitHub workflow schema", "checkov"]


def text_files(project: Path):
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


def validate(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, VALIDATE, *args], cwd=project, capture_output=True, text=True)


def checks_run(stdout: str) -> list[str]:
    """The check names of a validate.py report, in order (`PASS  nginx -t (nginx 1.27.1)` -> `nginx -t`)."""
    return [re.sub(r" \(.*\)$", "", line[6:]) for line in stdout.splitlines() if line[:4] in {"PASS", "FAIL", "SKIP"}]


def copy_of(project: Path, dest: Path) -> Path:
    """A private copy of a shared render, for tests that change files."""
    shutil.copytree(project, dest, symlinks=True)
    return dest


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_supported_answers_render_and_validate(rendered, name):
    project = rendered(name)
    leftovers = [
        f"{path.relative_to(project)}:{n}"
        for path, text in text_files(project)
        if path.suffix not in {".sh"} and not str(path.relative_to(project)).startswith(ANSIBLE_ROLES)
        for n, line in enumerate(text.splitlines(), 1)
        if MARKER.search(ANSIBLE_EXPRESSION.sub("", line))
    ]
    assert not leftovers, f"template markers left in {leftovers}"
    proc = validate(project, "--full", "--require-all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed, 0 skipped" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_answers_are_refused_with_a_clear_message(copie, name):
    answers, message = INVALID[name]
    result = copie.copy(extra_answers=answers)
    assert result.exit_code != 0
    assert isinstance(result.exception, ValueError), repr(result.exception)
    assert "Validation error for question" in str(result.exception)
    assert message in str(result.exception), str(result.exception)


def test_same_answers_render_identical_files_apart_from_secrets(rendered, copie):
    first = rendered("defaults")
    second = copie.copy(extra_answers={}).project_dir
    secrets = {Path("deploy/env") / f"{env}.env" for env in ("dev", "staging", "prod")}
    files = sorted({p.relative_to(first) for p in first.rglob("*") if p.is_file()})
    assert files == sorted({p.relative_to(second) for p in second.rglob("*") if p.is_file()})
    differing = [f for f in files if not filecmp.cmp(first / f, second / f, shallow=False)]
    # A dirty template checkout is committed to a throwaway commit on every copy; only that line may differ.
    answers = Path(".copier-answers.yml")
    if answers in differing:
        def without_commit(p):
            return [line for line in p.read_text().splitlines() if not line.startswith("_commit:")]
        assert without_commit(first / answers) == without_commit(second / answers)
        differing.remove(answers)
    assert sorted(differing) == sorted(secrets), differing


def test_defaults_generate_the_promised_repository(rendered):
    project = rendered("defaults")
    for path in (".copier-answers.yml", "deploy/README.md", "deploy/Makefile", "deploy/.gitignore",
                 "deploy/env/.env.example", "deploy/compose.yaml", "deploy/compose.dev.yaml",
                 "deploy/compose.staging.yaml", "deploy/compose.prod.yaml",
                 "deploy/docs/01-overview.md", "deploy/docs/02-docker-configuration.md",
                 "deploy/docs/03-cicd-pipeline.md", "deploy/docs/04-nginx-configuration.md",
                 "deploy/docs/05-environment-variables.md", "deploy/docs/06-deployment-process.md",
                 "deploy/scripts/validate.py"):
        assert (project / path).is_file(), path
    make = subprocess.run(["make", "-C", "deploy", "help"], cwd=project, capture_output=True, text=True,
                          check=True).stdout
    for task in ("validate", "up", "down", "logs", "env-sync", "certs", "reload-edge"):
        assert f"make {task}" in make, make


def test_secrets_are_random_private_and_ignored(rendered, tmp_path):
    project = copy_of(rendered("defaults"), tmp_path / "project")  # `git init` must not touch the shared render
    example = (project / "deploy/env/.env.example").read_text()
    seen = set()
    for env in ("dev", "staging", "prod"):
        env_file = project / "deploy/env" / f"{env}.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#"))
        for key in ("MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "REDIS_PASSWORD", "PETORY_JWT_SECRET"):
            assert key in example and f"{key}=<generated:" in example
            assert len(values[key]) >= 40 and values[key] not in seen
            seen.add(values[key])
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    envs = ["deploy/env/prod.env", "deploy/env/dev.env", "deploy/env/staging.env"]
    ignored = subprocess.run(["git", "check-ignore", *envs], cwd=project, capture_output=True, text=True).stdout.split()
    assert ignored == envs
    assert subprocess.run(["git", "check-ignore", "-q", "deploy/env/.env.example"], cwd=project).returncode == 1


def test_validation_names_file_and_line_and_fails(rendered, tmp_path):
    project = copy_of(rendered("minimal"), tmp_path / "broken")
    compose = project / "deploy/compose.prod.yaml"
    compose.write_text(compose.read_text() + "  oops: [unclosed\n")
    script = project / "deploy/scripts/compose.sh"
    script.write_text(script.read_text() + "\necho $undefined_and_unquoted\n")
    snippet = project / "deploy/nginx/snippets/deny-hidden.conf"
    snippet.write_text(snippet.read_text() + "\nlocation ~ \\.php {\n    return 404;\n}\n")
    proc = validate(project, "--full")
    assert proc.returncode == 1
    assert re.search(r"compose\.prod\.yaml:\d+:", proc.stdout), proc.stdout
    assert re.search(r"scripts/compose\.sh:\d+:\d+: .*SC2086", proc.stdout), proc.stdout
    assert re.search(r"nginx/snippets/deny-hidden\.conf:\d+: \[unanchored_regex\]", proc.stdout), proc.stdout
    fast = validate(project)  # the copy-time set still catches the broken YAML, without the linters
    assert fast.returncode == 1 and re.search(r"compose\.prod\.yaml:\d+:", fast.stdout), fast.stdout
    assert "SC2086" not in fast.stdout and "unanchored_regex" not in fast.stdout


def test_default_run_is_the_fast_set_and_full_adds_every_linter(rendered):
    project = rendered("defaults")
    fast = validate(project, "--require-all")
    assert fast.returncode == 0, fast.stdout + fast.stderr
    assert [c for c in checks_run(fast.stdout) if c != "Dependabot entries"] == FAST_CHECKS, fast.stdout
    usage = validate(project, "--help").stdout
    for check in FAST_CHECKS + LINTERS:
        assert check in usage, check
    assert usage.index("nginx -t") < usage.index("--full adds") < usage.index("shellcheck")
    def recipe(*args: str) -> list[str]:
        return subprocess.run(["make", "-n", "validate", *args], cwd=project / "deploy", capture_output=True,
                              text=True, check=True).stdout.split()

    assert recipe()[-1] == "scripts/validate.py" and recipe("FULL=1")[-2:] == ["scripts/validate.py", "--full"]


def test_dependabot_entries_missing_from_the_kept_file_are_named(rendered, tmp_path):
    project = copy_of(rendered("defaults"), tmp_path / "project")
    entries = project / "deploy/dependabot-entries.yml"
    if not entries.exists():  # the entries the template wants, in dependabot.yml's `updates:` format
        entries.write_text("updates:\n  - package-ecosystem: github-actions\n    directory: /\n"
                           "  - package-ecosystem: docker\n    directories: [/deploy/docker/backend]\n")
    wanted = yaml.safe_load(entries.read_text())["updates"]
    # An application's own dependabot.yml (kept by _skip_if_exists) that updates only its npm packages.
    (project / ".github/dependabot.yml").write_text(
        "version: 2\nupdates:\n  - package-ecosystem: npm\n    directory: /frontend\n"
        "    schedule: {interval: weekly}\n")
    proc = validate(project)
    assert proc.returncode == 1
    assert "FAIL  Dependabot entries" in proc.stdout, proc.stdout
    for entry in wanted:
        if entry["package-ecosystem"] != "npm":
            assert f"../.github/dependabot.yml:1: no {entry['package-ecosystem']} update for" in proc.stdout, proc.stdout


def test_missing_validator_is_reported_as_skipped_not_passed(rendered, tmp_path):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, 'scripts'); "
                           "import validate; v = validate.Validator(__import__('pathlib').Path('.').resolve()); "
                           "v.tool = lambda name: None; v.check_hadolint(); sys.exit(v.report(True))"],
                          cwd=rendered("minimal") / "deploy", capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "SKIP  hadolint" in proc.stdout and "make tools FULL=1" in proc.stdout
    assert "0 passed" in proc.stdout


def test_without_nginx_gixy_is_skipped_too(rendered, tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'scripts'); "
                           "import validate; v = validate.Validator(__import__('pathlib').Path('.').resolve(), full=True); "
                           "v.nginx_binary = lambda: (None, ''); v.check_nginx(); sys.exit(v.report(True))"],
                          cwd=rendered("minimal") / "deploy", capture_output=True, text=True)
    assert proc.returncode == 2
    assert "SKIP  nginx -t" in proc.stdout and "SKIP  gixy" in proc.stdout, proc.stdout


def test_answers_file_records_answers_but_no_secret(rendered):
    project = rendered("defaults")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["domain"] == "petory.example.com" and answers["environments"] == ["dev", "staging", "prod"]
    assert "sizing" not in answers and "deployment" not in answers
    text = (project / ".copier-answers.yml").read_text()
    prod_secret = (project / "deploy/env/prod.env").read_text().split("MYSQL_PASSWORD=")[1].split()[0]
    assert prod_secret not in text


def test_the_webhook_url_is_left_to_the_operator_and_checked_before_a_deploy(rendered, tmp_path):
    """alert_webhook gives env/prod.env an empty ALERT_WEBHOOK_URL: a warning, a failure before a deploy."""
    project = copy_of(rendered("monitoring-receivers"), tmp_path / "receivers")
    assert "ALERT_WEBHOOK_URL" not in (project / "deploy/env/staging.env").read_text()  # prod's key only
    assert "hooks.slack.com" not in (project / ".copier-answers.yml").read_text()
    warned = validate(project)
    assert warned.returncode == 0 and "WARN  supplied secrets of prod" in warned.stdout, warned.stdout
    strict = validate(project, "--no-placeholders", "prod")
    assert strict.returncode == 1 and "FAIL  supplied secrets of prod" in strict.stdout, strict.stdout
    env_file = project / "deploy/env/prod.env"
    env_file.write_text(env_file.read_text().replace("ALERT_WEBHOOK_URL=\n", "ALERT_WEBHOOK_URL=https://hooks.example.net/x\n"))
    assert "supplied secrets" not in validate(project).stdout
