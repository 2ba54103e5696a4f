"""Golden diff: every answer set rendered at a baseline commit and at the working tree, compared.

The baseline is the commit that the deployment-model refactor (issue 10) started from. Every
difference must be covered by an entry of tests/golden_allow.yaml that says why it is intended:

    - files: "deploy/compose.yaml"        # glob over the path in the new render
      reason: "build context is the repository root (layout: files in deploy/)"
      lines: 'context: \\.\\.|dockerfile: deploy/'   # optional: every changed line must match
      sets: [defaults]                    # optional: only these answer sets
      change: modified                    # optional: modified (default), added or removed

Secrets (env/<env>.env values) and Copier's bookkeeping lines are normalised before comparing.
Run `python tests/golden.py [SET...]` to print the differences that no entry allows.
"""

from __future__ import annotations

import difflib
import fnmatch
import io
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "342368f"  # "Scripts that ask before acting share one option parser" (0.1.0 + 2)
ALLOW_FILE = Path(__file__).with_name("golden_allow.yaml")
# Where the baseline's files are in the new layout.
MOVED_GITHUB = {
    ".github/workflows/ci.yml": ".github/workflows/deploy-ci.yml",
    ".github/workflows/deploy.yml": ".github/workflows/deploy-pipeline.yml",
    ".github/workflows/template-drift.yml": ".github/workflows/deploy-template-drift.yml",
    ".github/dependabot.yml": ".github/dependabot.yml",
}
SECRET_LINE = re.compile(r"^([A-Z][A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|KEY))=.*$")
BOOKKEEPING = re.compile(r"^(_commit|_src_path):")


def new_path(old: str) -> str:
    if old == ".copier-answers.yml":
        return old
    if old.startswith(".github/"):
        return MOVED_GITHUB.get(old, old)
    return f"deploy/{old}"


def baseline_template(dest: Path) -> Path:
    """The template as it was at BASELINE (from git, so no checkout is touched)."""
    if not (dest / "copier.yml").exists():
        if subprocess.run(["git", "cat-file", "-e", f"{BASELINE}^{{commit}}"], cwd=ROOT).returncode:
            raise RuntimeError(f"the golden baseline {BASELINE} is not in this clone (shallow?): "
                               "run `git fetch --unshallow` first")
        archive = subprocess.run(["git", "archive", "--format=tar", BASELINE], cwd=ROOT, capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(dest, filter="fully_trusted")
    return dest


def render(template: Path, dest: Path, answers: dict, vcs_ref: str | None = None) -> Path:
    import copier

    copier.run_copy(str(template), str(dest), data=answers, defaults=True, unsafe=True, skip_tasks=True,
                    quiet=True, vcs_ref=vcs_ref)
    return dest


def normalised(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return [f"<binary {path.stat().st_size} bytes>"]
    if path.name.endswith(".env") and "env" in path.parts:
        lines = [SECRET_LINE.sub(r"\1=<secret>", line) for line in lines]
    if path.name == ".copier-answers.yml":
        lines = [line for line in lines if not BOOKKEEPING.match(line)]
    return lines


def files(project: Path) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and ".git" not in p.parts}


@dataclass
class Difference:
    answer_set: str
    path: str
    change: str  # modified, added, removed
    lines: list[str]  # changed lines, "+..." and "-..."

    def excerpt(self, limit: int = 12) -> str:
        shown = "\n".join(f"      {line}" for line in self.lines[:limit])
        more = f"\n      ... {len(self.lines) - limit} more" if len(self.lines) > limit else ""
        return f"  {self.answer_set}: {self.change} {self.path}\n{shown}{more}"


def differences(answer_set: str, old: Path, new: Path) -> list[Difference]:
    found = []
    old_files = files(old)
    mapped = {new_path(p): p for p in old_files}
    new_files = files(new)
    for path in sorted(set(mapped) | new_files):
        if path not in new_files:
            found.append(Difference(answer_set, path, "removed", [f"-{line}" for line in normalised(old / mapped[path])]))
        elif path not in mapped:
            found.append(Difference(answer_set, path, "added", [f"+{line}" for line in normalised(new / path)]))
        else:
            before, after = normalised(old / mapped[path]), normalised(new / path)
            if before != after:
                changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
                           if line[:1] in "+-" and not line.startswith(("+++", "---"))]
                found.append(Difference(answer_set, path, "modified", changed))
    return found


def allow_list() -> list[dict]:
    entries = yaml.safe_load(ALLOW_FILE.read_text()) or []
    for entry in entries:
        if not entry.get("reason", "").strip():
            raise ValueError(f"{ALLOW_FILE.name}: entry {entry} has no reason")
    return entries


def allowed(diff: Difference, entries: list[dict]) -> bool:
    """Allowed when each changed line is covered by an entry for this file, set and kind of change."""
    matching = [e for e in entries
                if any(fnmatch.fnmatchcase(diff.path, glob) for glob in _as_list(e["files"]))
                and e.get("change", "modified") == diff.change
                and (not e.get("sets") or diff.answer_set in e["sets"])]
    if not matching:
        return False
    if any("lines" not in e for e in matching):
        return True
    patterns = [re.compile(e["lines"]) for e in matching]
    return all(any(p.search(line[1:]) for p in patterns) for line in diff.lines)


def _as_list(value) -> list[str]:
    return value if isinstance(value, list) else [value]


def unexplained(answer_set: str, old: Path, new: Path) -> list[Difference]:
    entries = allow_list()
    return [d for d in differences(answer_set, old, new) if not allowed(d, entries)]


def main(argv: list[str]) -> int:
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    from answer_sets import SUPPORTED

    names = argv or sorted(SUPPORTED)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base = baseline_template(tmp_path / "baseline")
        total = 0
        for name in names:
            old = render(base, tmp_path / "old" / name, SUPPORTED[name])
            new = render(ROOT, tmp_path / "new" / name, SUPPORTED[name], vcs_ref="HEAD")
            for diff in unexplained(name, old, new):
                total += 1
                print(diff.excerpt(40))
        print(f"golden: {total} unexplained difference(s) in {len(names)} answer set(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
