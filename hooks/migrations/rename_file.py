#!/usr/bin/env python3
"""Copier migration: carry an operator's edits over when a release renames a generated file.

Why it is needed: `copier update` replays the operator's edits path by path. When release X
renders `new` instead of `old`, Copier writes the template's `new`, finds `old` only in the
previous version and deletes it, so edits made to `old` would vanish from the working tree.

What it does (stage `after`, in the generated repository, once per `--rename OLD NEW` pair):
  U = the operator's `old` as committed before the update (`git show HEAD:old`)
  A = `old` as the previous template version rendered it (re-rendered offline from the local
      template clone at $VERSION_FROM with the previously recorded answers)
  B = `new` as the new version rendered it (the file Copier just wrote)
and writes the three-way merge of the operator's changes (A -> U) into B at `new`. A clean
merge keeps both; overlapping changes get the same inline markers as Copier's own conflicts
(`<<<<<<< before updating` ... `>>>>>>> after updating`) and `new` is marked unmerged in the
index, so `git diff --name-only --diff-filter=U` and `make -C deploy validate` report it.

`--into DIR` pairs every file the previous version generated at PATH with DIR/PATH, for a
release that moves the generated files into a folder (0.2.0 moved them into deploy/). Files the
new version writes at their old path (.copier-answers.yml, .github/dependabot.yml) are left to
Copier, and an edited file that the new version no longer generates is named, not restored.

Safe to run again and when there is nothing to do: it changes nothing when `old` was not
committed (already renamed, or never generated), when the operator never edited `old`, when
`new` already holds the merge, or when `new` still has unresolved conflict markers.

copier.yml (paths as generated, relative to the repository root):
  _migrations:
    - version: "1.1.0"
      command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrations/rename_file.py",
                --rename, deploy/nginx/sites/prod/server.conf, deploy/nginx/sites/prod/10-site.conf]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parents[2]  # the template clone Copier is updating from
ANSWERS_FILE = ".copier-answers.yml"
CONFLICT = re.compile(rb"^(<{7} |>{7} |={7}$)", re.MULTILINE)
LABELS = ("before updating", "last update", "after updating")  # the labels Copier uses


def say(message: str) -> None:
    print(f"migration rename_file: {message}", file=sys.stderr)


def git(*args: str, check: bool = True, input_: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, check=check, input=input_)


def committed(path: str) -> bytes | None:
    """The file as committed at HEAD (the operator's version before the update), or None."""
    proc = git("show", f"HEAD:./{path}", check=False)  # ./ = relative to the project, which may be a subdirectory
    return proc.stdout if proc.returncode == 0 else None


def unmerged(path: str) -> bool:
    return bool(git("ls-files", "--unmerged", "--", path).stdout.strip())


def previous_answers() -> dict:
    import yaml  # Copier depends on PyYAML, and this runs with Copier's interpreter

    text = committed(ANSWERS_FILE)
    if text is None:
        raise RuntimeError(f"{ANSWERS_FILE} is not committed at HEAD")
    return yaml.safe_load(text) or {}


def render_previous_version(dest: Path) -> None:
    """Render the previous template version with the previous answers into dest (no tasks)."""
    import copier

    answers = previous_answers()
    ref = os.environ.get("VERSION_FROM") or answers.get("_commit")
    if not ref:
        raise RuntimeError(f"no previous version: $VERSION_FROM is unset and {ANSWERS_FILE} has no _commit")
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    copier.run_copy(str(TEMPLATE_ROOT), dest, data=data, vcs_ref=str(ref), defaults=True, overwrite=True,
                    unsafe=True, skip_tasks=True, quiet=True)


def mark_unmerged(path: str, base: bytes, ours: bytes, theirs: bytes) -> None:
    """Record the three stages like Copier does, so git lists `path` as unmerged."""
    mode = "100755" if os.access(path, os.X_OK) else "100644"
    indexed = git("rev-parse", "--show-prefix").stdout.decode().strip() + path  # the index wants top-level paths
    stages = [f"0 {'0' * 40}\t{indexed}"]
    for stage, blob in ((1, base), (2, ours), (3, theirs)):
        sha = git("hash-object", "-w", "--stdin", input_=blob).stdout.decode().strip()
        stages.append(f"{mode} {sha} {stage}\t{indexed}")
    git("update-index", "--index-info", input_=("\n".join(stages) + "\n").encode())


def merge(ours: bytes, base: bytes, theirs: bytes) -> tuple[bytes, int]:
    """git merge-file: the operator's changes (base -> ours) and the template's (base -> theirs)."""
    with tempfile.TemporaryDirectory(prefix="petory-rename-") as tmp:
        paths = []
        for name, blob in (("ours", ours), ("base", base), ("theirs", theirs)):
            paths.append(Path(tmp, name))
            paths[-1].write_bytes(blob)
        proc = subprocess.run(["git", "merge-file", "-p", "-L", LABELS[0], "-L", LABELS[1], "-L", LABELS[2],
                               *map(str, paths)], capture_output=True, check=False)
    if proc.returncode < 0 or proc.returncode > 127:
        raise RuntimeError(f"git merge-file failed: {proc.stderr.decode().strip()}")
    return proc.stdout, proc.returncode


def migrate(old: str, new: str, previous: dict[str, bytes | None]) -> str:
    """Carry the edits of one renamed file. Returns what was done (for the log and the tests)."""
    ours = committed(old)
    if ours is None:
        return f"{old} was not committed before the update: nothing to carry over"
    target = Path(new)
    if Path(old).exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(old).rename(target)
        return f"moved {old} to {new}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(ours)
        return f"{new} is not generated by the new version: restored your {old} there"
    current = target.read_bytes()
    if unmerged(new) or CONFLICT.search(current):
        return f"{new} already holds unresolved conflict markers: left as is"
    base = previous.get(old)
    if base is None:  # `old` was the operator's own file: a two-way merge shows every difference
        base = b""
    if ours == base:
        return f"{old} had no local edits: {new} is the new version's file"
    merged, conflicts = merge(ours, base, current)
    if merged == current:
        return f"{new} already holds your edits from {old}"
    target.write_bytes(merged)
    if conflicts:
        mark_unmerged(new, base, ours, current)
        return (f"your edits of {old} were merged into {new} with {conflicts} conflict(s): resolve the "
                f"'<<<<<<< {LABELS[0]}' blocks, then `git add {new}` and run `make -C deploy validate`")
    return f"your edits of {old} were merged into {new}"


def moved_into(folder: str, rendered: list[str], previous: dict[str, bytes | None]) -> list[tuple[str, str]]:
    """The `--into` pairs: committed files of the previous render whose new home is folder/PATH."""
    pairs = []
    for old in rendered:
        new = f"{folder}/{old}"
        if old == ANSWERS_FILE or Path(old).exists() or committed(old) is None:
            continue  # Copier's own update handles it, or nothing of the operator's is there
        if Path(new).exists():
            pairs.append((old, new))
        elif committed(old) != previous.get(old):
            say(f"{old} is no longer generated and you had edited it: your version is `git show HEAD:{old}`")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rename", nargs=2, action="append", default=[], metavar=("OLD", "NEW"),
                        help="generated paths, relative to the repository root (repeatable)")
    parser.add_argument("--into", metavar="DIR",
                        help="every file of the previous version moved to DIR/<its path> (e.g. deploy)")
    args = parser.parse_args(argv)
    if not args.rename and not args.into:
        parser.error("give --rename OLD NEW (repeatable), --into DIR, or both")
    if os.environ.get("STAGE", "after") != "after":
        say("runs at the 'after' stage only; nothing done")
        return 0
    if git("rev-parse", "--is-inside-work-tree", check=False).returncode:
        say("not inside a git repository; nothing done")
        return 0

    pairs = [(old, new) for old, new in args.rename]
    needed = [old for old, _ in pairs if committed(old) is not None]
    previous: dict[str, bytes | None] = {}
    rendered: list[str] = []
    if needed or args.into:
        with tempfile.TemporaryDirectory(prefix="petory-previous-") as tmp:
            try:
                render_previous_version(Path(tmp))
            except Exception as err:  # noqa: BLE001  (any failure: fall back to a two-way merge)
                if args.into:  # without the previous file list there is nothing to pair
                    say(f"could not re-render the previous version ({err}); nothing moved")
                    return 1
                say(f"could not re-render the previous version ({err}); differences will show as conflicts")
            rendered = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*") if p.is_file())
            for old in needed + rendered:
                path = Path(tmp, old)
                previous[old] = path.read_bytes() if path.is_file() else None
    for old, new in pairs:
        say(migrate(old, new, previous))
    if args.into:
        moved = moved_into(args.into.rstrip("/"), rendered, previous)
        edited = [(old, new) for old, new in moved if committed(old) != previous.get(old)]
        for old, new in edited:
            say(migrate(old, new, previous))
        if len(moved) > len(edited):  # one line for the rest: a folder move pairs every generated file
            say(f"{len(moved) - len(edited)} moved files had no local edits: they are the new version's files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
