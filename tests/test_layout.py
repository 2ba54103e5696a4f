"""Generation into an existing Petory application repository touches none of its own files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import copier
import yaml

ROOT = Path(__file__).resolve().parent.parent

# What the application repository already has: Copier cannot merge into any of these.
APP_FILES = {
    "README.md": "# Petory\n\nThe pet-care web service.\n",
    "Makefile": "test:\n\t./backend/gradlew -p backend test\n",
    ".gitignore": "node_modules/\nbuild/\n",
    ".github/workflows/ci.yml": "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo app\n",
    ".github/dependabot.yml": "version: 2\nupdates:\n  - package-ecosystem: npm\n    directory: /frontend\n"
                              "    schedule:\n      interval: daily\n",
    "backend/build.gradle": "plugins { id 'java' }\n",
    "frontend/package.json": '{"name": "petory-frontend", "private": true}\n',
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def application_repository(path: Path) -> Path:
    for name, text in APP_FILES.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "app")
    return path


def test_generation_into_the_application_repository_changes_none_of_its_files(tmp_path):
    repo = application_repository(tmp_path / "petory")
    copier.run_copy(str(ROOT), str(repo), defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True, skip_tasks=True)
    assert git(repo, "diff", "--stat") == "", "an application file was changed"
    for name, text in APP_FILES.items():
        assert (repo / name).read_text() == text, name
    added = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert all(line.startswith("?? ") for line in added), added
    outside = sorted(p[3:] for p in added if not p[3:].startswith("deploy/"))
    assert outside == [".copier-answers.yml", ".github/workflows/deploy-ci.yml",
                       ".github/workflows/deploy-environment.yml", ".github/workflows/deploy-pipeline.yml",
                       ".github/workflows/deploy-template-drift.yml"], outside
    # The nested .gitignore keeps the secrets out of the application's history.
    ignored = subprocess.run(["git", "check-ignore", "deploy/env/prod.env"], cwd=repo, capture_output=True, text=True)
    assert ignored.stdout.strip() == "deploy/env/prod.env"
    make = subprocess.run(["make", "-C", "deploy", "help"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert "make deploy" in make and "make validate" in make


def test_a_fresh_repository_gets_the_dependabot_file(tmp_path):
    copier.run_copy(str(ROOT), str(tmp_path / "new"), defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True,
                    skip_tasks=True)
    dependabot = yaml.safe_load((tmp_path / "new/.github/dependabot.yml").read_text())
    directories = {d for u in dependabot["updates"] for d in u.get("directories", [u.get("directory")])}
    assert "/deploy/docker/backend" in directories and "/backend" in directories


def test_a_separate_deployment_repository_checks_the_application_out_into_app(tmp_path):
    project = tmp_path / "petory-deploy"
    copier.run_copy(str(ROOT), str(project), data={"layout": "deploy-repo", "app_repository": "petory-team/petory"},
                    defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True, skip_tasks=True)
    assert "make -C deploy help" in (project / "README.md").read_text()
    assert (project / ".gitignore").read_text().splitlines()[-1] == "/app/"
    dockerfile = (project / "deploy/docker/backend/Dockerfile").read_text()
    assert "ARG JAR_FILE=app/backend/build/libs/*-SNAPSHOT.jar" in dockerfile
    assert "- ../app/backend:/workspace" in (project / "deploy/compose.dev.yaml").read_text()
