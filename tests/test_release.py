"""The template's own releases: `make release`, the release workflow's tag script, and Copier
finding the new release without --vcs-ref (issue 12, item 9).

Everything runs on throwaway clones of this repository that hold the working tree (so the release
tooling under test is the one being edited), committed there: a clone where `make release` makes
the release, a bare "origin" it is pushed to without its tag (the workflow's situation), and the
checkout the workflow's step runs in. Copier then copies from that checkout and updates a project
generated at the previous release. Tasks are skipped (--skip-tasks): only versions are checked here.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tools"))

import release  # noqa: E402

# The steps share one release history; keep them on one xdist worker, in file order.
pytestmark = pytest.mark.xdist_group("release")
TODAY = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
ENTRY = "- A release made by tests/test_release.py."


def tool_env(home: Path) -> dict[str, str]:
    """A fixed identity and no user or system git configuration (no signing, no hooks)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "gitconfig").touch()
    env = dict(os.environ)
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Template Maintainer", "GIT_AUTHOR_EMAIL": "maintainer@petory.example.com",
        "GIT_COMMITTER_NAME": "Template Maintainer", "GIT_COMMITTER_EMAIL": "maintainer@petory.example.com",
    })
    return env


def run(cwd: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)} in {cwd}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def git(cwd: Path, env: dict, *args: str) -> str:
    return run(cwd, env, "git", *args).stdout.strip()


def working_tree_clone(dest: Path, env: dict) -> Path:
    """A clone of this repository (tags included) with the working tree committed and an Unreleased entry."""
    run(dest.parent, env, "git", "clone", "--quiet", str(ROOT), dest.name)
    # Every earlier release tagged, as the release workflow leaves the repository (a checkout
    # without tags, like a fresh CI clone, gets them here).
    run(dest, env, sys.executable, str(ROOT / "tools" / "release.py"), "tag")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, dest / name
        if target.is_symlink() or target.is_file():
            target.unlink()
        if source.is_symlink() or source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    changelog = dest / "CHANGELOG.md"
    text = changelog.read_text()
    assert "\n## [Unreleased]\n" in text, "CHANGELOG.md needs its `## [Unreleased]` section (the release input)"
    changelog.write_text(text.replace("\n## [Unreleased]\n", f"\n## [Unreleased]\n\n### Added\n\n{ENTRY}\n", 1))
    git(dest, env, "add", "-A")
    git(dest, env, "commit", "--quiet", "--allow-empty", "-m", "Working tree of the template, and a change to release")
    return dest


def next_version(clone: Path, env: dict) -> tuple[str, str]:
    """(the newest release, the next minor release) of the clone."""
    known = [t for t in git(clone, env, "tag", "--list").split() if release.is_version(t)]
    known.append(release.newest_release((clone / "CHANGELOG.md").read_text()))
    known.append(release.pyproject_version((clone / "pyproject.toml").read_text()))
    newest = max(known, key=release.version_key)
    major, minor = (int(part) for part in re.match(r"(\d+)\.(\d+)", newest).groups())
    return newest, f"{major}.{minor + 1}.0"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The release made once by `make release` in a clone; later tests add origin and CI checkouts to it."""
    base = tmp_path_factory.mktemp("release")
    env = tool_env(base / "home")
    work = working_tree_clone(base / "work", env)
    previous, version = next_version(work, env)
    made = run(work, env, "make", "release", f"VERSION={version}", f"DATE={TODAY}")
    return {"base": base, "env": env, "work": work, "previous": previous, "version": version, "made": made,
            "commit": git(work, env, "rev-parse", "HEAD")}


# ------------------------------------------------------------------------------------ versions

def test_version_order_is_packagings():
    from packaging.version import Version

    versions = ["0.1.0", "0.2.0", "0.10.0", "1.0.dev1", "1.0a1", "1.0a2.dev1", "1.0a2", "1.0b1", "1.0rc1",
                "1.0rc1.post1", "1.0", "1.0.post1.dev1", "1.0.post1", "1.0.1", "1.1.0.dev0", "1.1.0rc2", "2!0.1"]
    assert sorted(versions, key=release.version_key) == sorted(versions, key=Version)
    assert release.version_key("1.0") == release.version_key("1.0.0")
    for text in ("v1.0.0", "1.0.0-rc1", "1.0.0RC1", "01.0", "1.0+local", "0!1.0", "1.0.0.", "latest", ""):
        assert not release.is_version(text), text
    for text in ("0.3.0", "1.3.0rc1", "1.0.post2", "1.0.dev3", "1!2.0"):
        assert release.is_version(text) and str(Version(text)) == text, text


def test_changelog_rewrite_moves_the_entries_and_adds_the_links():
    changelog = ("# Changelog\n\nIntro.\n\n## [Unreleased]\n\n### Fixed\n\n- A fix.\n\n## [1.0.0] - 2026-01-02\n\n- Old.\n\n"
                 "[Unreleased]: https://example.com/t/compare/1.0.0...HEAD\n[1.0.0]: https://example.com/t/releases/tag/1.0.0\n")
    assert release.released_changelog(changelog, "1.1.0", "2026-02-03") == (
        "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n## [1.1.0] - 2026-02-03\n\n### Fixed\n\n- A fix.\n\n"
        "## [1.0.0] - 2026-01-02\n\n- Old.\n\n[Unreleased]: https://example.com/t/compare/1.1.0...HEAD\n"
        "[1.1.0]: https://example.com/t/releases/tag/1.1.0\n[1.0.0]: https://example.com/t/releases/tag/1.0.0\n")
    assert not release.has_entries("\n### Added\n\n### Fixed\n\n")
    assert release.has_entries("\n### Added\n\n- Something.\n")


# ------------------------------------------------------------------------------- make release

def test_make_release_refuses_and_changes_nothing(tmp_path):
    env = tool_env(tmp_path / "home")
    work = working_tree_clone(tmp_path / "work", env)
    previous, version = next_version(work, env)
    head, tags = git(work, env, "rev-parse", "HEAD"), git(work, env, "tag", "--list")
    older = f"{previous.split('.')[0]}.{previous.split('.')[1]}.0rc1"
    cases = {  # make exits 2 whenever the recipe fails; the script's own status is checked below
        "no VERSION": ([], "Set VERSION"),
        "not PEP 440": (["VERSION=v" + version], "not a PEP 440 version"),
        "not canonical": (["VERSION=" + version.replace(".0", "-0", 1)], "canonical form"),
        "existing tag": ([f"VERSION={previous}"], f"tag {previous} exists already"),
        "not newer": ([f"VERSION={older}"], "is not newer than"),
        "date before the last release": ([f"VERSION={version}", "DATE=2000-01-01"], "is before the newest release's date"),
    }
    for case, (args, message) in cases.items():
        proc = run(work, env, "make", "release", *args, check=False)
        assert proc.returncode != 0 and message in proc.stderr, f"{case}: exit {proc.returncode}\n{proc.stderr}"
    proc = run(work, env, "python3", "tools/release.py", "prepare", f"v{version}", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, "one line, exit status 1"
    (work / "scratch.txt").write_text("not committed\n")
    proc = run(work, env, "make", "release", f"VERSION={version}", check=False)
    assert proc.returncode != 0 and "working tree is not clean" in proc.stderr and "scratch.txt" in proc.stderr, proc.stderr
    (work / "scratch.txt").unlink()
    assert (git(work, env, "rev-parse", "HEAD"), git(work, env, "tag", "--list")) == (head, tags)
    assert git(work, env, "status", "--porcelain") == ""


def test_make_release_moves_unreleased_bumps_commits_and_tags(history):
    work, env, version = history["work"], history["env"], history["version"]
    changelog = (work / "CHANGELOG.md").read_text()
    unreleased, rest = changelog.split("\n## [Unreleased]\n", 1)[1].split(f"\n## [{version}] - {TODAY}\n", 1)
    assert unreleased.strip() == "", "the Unreleased section is empty after the release"
    assert ENTRY in rest.split("\n## [", 1)[0], "the entry moved under the release's heading"
    assert release.newest_release(changelog) == version
    assert f"[{version}]: https://github.com/petory/petory-deploy-template/releases/tag/{version}" in changelog
    assert f"[Unreleased]: https://github.com/petory/petory-deploy-template/compare/{version}...HEAD" in changelog
    assert release.pyproject_version((work / "pyproject.toml").read_text()) == version
    assert git(work, env, "log", "-1", "--format=%s") == f"Release {version}"
    assert git(work, env, "show", "--name-only", "--format=", "HEAD").split() == ["CHANGELOG.md", "pyproject.toml"]
    assert git(work, env, "cat-file", "-t", version) == "tag", "annotated tag"
    assert git(work, env, "rev-parse", f"{version}^{{commit}}") == history["commit"]
    assert git(work, env, "status", "--porcelain") == ""
    proc = run(work, env, "make", "release", f"VERSION={version[:-1]}1", check=False)
    assert proc.returncode != 0 and "section of CHANGELOG.md is empty" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------ the workflow

def workflow_step() -> tuple[dict, dict]:
    workflow = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if "tools/release.py" in s.get("run", "")]
    return workflow, job, step


def test_release_workflow_runs_on_main_with_least_privilege():
    workflow, job, step = workflow_step()
    assert workflow.get("on", workflow.get(True)) == {"push": {"branches": ["main"]}}  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {"contents": "read"} and job["permissions"] == {"contents": "write"}
    checkout = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout and checkout[0]["with"]["fetch-depth"] == 0, "the tag script needs every tag and the history"
    assert re.fullmatch(r"actions/checkout@[0-9a-f]{40}", checkout[0]["uses"])
    assert step["run"].split() == ["python3", "tools/release.py", "tag", "--push", "origin"]
    proc = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                           str(ROOT / ".github/workflows/release.yml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_release_tooling_is_not_rendered(rendered):
    """copier.yml renders only template/: the maintainers' Makefile, tools and workflows stay here."""
    assert yaml.safe_load((ROOT / "copier.yml").read_text())["_subdirectory"] == "template"
    project = rendered("defaults")
    for path in ("Makefile", "tools", ".github/workflows/release.yml", ".github/workflows/tests.yml", "CHANGELOG.md"):
        assert not (project / path).exists(), f"{path} was rendered into the generated repository"


def test_release_workflow_tags_the_release_commit_once(history):
    base, env, work, version = history["base"], history["env"], history["work"], history["version"]
    origin = base / "origin.git"
    run(base, env, "git", "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    (work / "README.md").write_text((work / "README.md").read_text() + "\nA change after the release.\n")
    git(work, env, "commit", "--quiet", "-am", "After the release")
    old_tags = [t for t in git(work, env, "tag", "--list").split() if t != version]
    git(work, env, "push", "--quiet", str(origin), "HEAD:refs/heads/main", *(f"refs/tags/{t}" for t in old_tags))
    checkout = base / "ci"
    run(base, env, "git", "clone", "--quiet", str(origin), str(checkout))
    assert git(checkout, env, "tag", "--list", version) == "", "the pushed release has no tag yet"
    _, _, step = workflow_step()
    step_env = {**env, **step.get("env", {})}
    for attempt in ("creates", "finds"):
        proc = run(checkout, step_env, "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"])
        expected = f"pushed tag {version} to origin" if attempt == "creates" else "nothing to do"
        assert expected in proc.stdout, f"{attempt}: {proc.stdout}{proc.stderr}"
        assert git(origin, env, "rev-parse", f"{version}^{{commit}}") == history["commit"], "the release commit, not HEAD"
        assert git(origin, env, "cat-file", "-t", version) == "tag"
    assert git(origin, env, "for-each-ref", "--format=%(taggername)", f"refs/tags/{version}") == "github-actions[bot]"
    history["checkout"] = checkout


def test_copier_finds_the_new_release_without_vcs_ref(history):
    base, env, version, previous = history["base"], history["env"], history["version"], history["previous"]
    checkout = history.get("checkout")
    if checkout is None:
        pytest.fail("needs test_release_workflow_tags_the_release_commit_once (run the whole module)")

    def commit_of(project: Path) -> str:
        return yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]

    copier = [str(VENV_BIN / "copier")]
    fresh = base / "fresh"
    run(base, env, *copier, "copy", "--trust", "--defaults", "--skip-tasks", "--quiet", str(checkout), str(fresh))
    assert commit_of(fresh) == version
    old = base / "old"
    run(base, env, *copier, "copy", "--trust", "--defaults", "--skip-tasks", "--quiet", "--vcs-ref", previous,
        str(checkout), str(old))
    assert commit_of(old) == previous
    git(old, env, "init", "--quiet")
    git(old, env, "add", "-A")
    git(old, env, "commit", "--quiet", "-m", f"Deployment from the template {previous}")
    run(old, env, *copier, "update", "--trust", "--defaults", "--skip-tasks", "--quiet")
    assert commit_of(old) == version
