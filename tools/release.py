#!/usr/bin/env python3
"""Releases of this template: git tags that Copier can use, made from CHANGELOG.md.

  python3 tools/release.py prepare 0.3.0 [--date 2026-12-05]   # `make release VERSION=0.3.0`
  python3 tools/release.py tag [--push origin]                 # .github/workflows/release.yml

prepare  refuses a dirty tree, a version that is not PEP 440 in canonical form, a version that is
         not newer than every release (tags, CHANGELOG.md, pyproject.toml), an existing tag and an
         empty `## [Unreleased]` section. Then it moves the Unreleased entries under
         `## [VERSION] - DATE`, sets pyproject.toml's version, commits both files and creates the
         annotated tag VERSION. Nothing is pushed.
tag      reads the newest release of CHANGELOG.md. When no tag names it, it tags the first commit
         of the branch's first-parent history at which CHANGELOG.md and pyproject.toml both announce
         it (the release commit, not whatever came after), and pushes that tag. A tag that exists is
         never moved.

Standard library only: the workflow runs it with the runner's python3. Run from the repository root.
Exit status: 0 done (or nothing to do), 1 refused (one line on stderr says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

CHANGELOG = "CHANGELOG.md"
PYPROJECT = "pyproject.toml"
UNRELEASED = "Unreleased"
# PEP 440 versions in the canonical form (what packaging's str(Version(v)) prints), without a local
# part: the tag, the CHANGELOG heading and pyproject.toml spell a release exactly the same way.
CANONICAL = re.compile(
    r"(?:(?P<epoch>[1-9]\d*)!)?(?P<release>(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))*)"
    r"(?:(?P<pre_l>a|b|rc)(?P<pre_n>0|[1-9]\d*))?(?:\.post(?P<post>0|[1-9]\d*))?(?:\.dev(?P<dev>0|[1-9]\d*))?")
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?[ \t]*$", re.MULTILINE)
LINK = re.compile(r"^\[(?P<name>[^\]]+)\]: (?P<url>\S+)[ \t]*$", re.MULTILINE)
PYPROJECT_VERSION = re.compile(r'^version = "(?P<version>[^"]*)"[ \t]*$', re.MULTILINE)


class Refused(Exception):
    """A release that must not happen; the message is the one-line reason."""


# ------------------------------------------------------------------------------------ versions

def version_key(version: str) -> tuple:
    """Sort key of a canonical PEP 440 version, ordered as packaging.version.Version orders them."""
    match = CANONICAL.fullmatch(version)
    if not match:
        raise Refused(f"{version!r} is not a PEP 440 version in canonical form (e.g. 1.2.0, 1.3.0rc1, 1.3.0.post1)")
    release = [int(part) for part in match["release"].split(".")]
    while release and release[-1] == 0:  # 1.0 == 1.0.0
        release.pop()
    post = (0, int(match["post"])) if match["post"] is not None else (-1,)
    dev = (0, int(match["dev"])) if match["dev"] is not None else (1,)
    if match["pre_l"]:
        pre = (0, match["pre_l"], int(match["pre_n"]))  # a < b < rc
    elif match["post"] is None and match["dev"] is not None:
        pre = (-1,)  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = (1,)
    return int(match["epoch"] or 0), tuple(release), pre, post, dev


def is_version(text: str) -> bool:
    return CANONICAL.fullmatch(text) is not None


# ----------------------------------------------------------------------------------- the files

def releases(changelog: str) -> list[tuple[str, str | None]]:
    """(version, date) of every `## [version] - date` heading, newest (first) first; Unreleased excluded."""
    return [(m["name"], m["date"]) for m in HEADING.finditer(changelog) if m["name"].lower() != UNRELEASED.lower()]


def newest_release(changelog: str) -> str | None:
    found = releases(changelog)
    return found[0][0] if found else None


def pyproject_version(pyproject: str) -> str:
    found = PYPROJECT_VERSION.findall(pyproject)
    if len(found) != 1:
        raise Refused(f"{PYPROJECT} must have exactly one `version = \"...\"` line (found {len(found)})")
    return found[0]


def unreleased_body(changelog: str) -> tuple[int, int]:
    """(start, end) offsets of the Unreleased section's body: after its heading, up to the next release or link."""
    headings = list(HEADING.finditer(changelog))
    current = [m for m in headings if m["name"].lower() == UNRELEASED.lower()]
    if not current:
        raise Refused(f"{CHANGELOG} has no `## [{UNRELEASED}]` section to release")
    start = current[0].end()
    later = [m.start() for m in headings if m.start() > start] + [m.start() for m in LINK.finditer(changelog)
                                                                    if m.start() > start]
    return start, min(later, default=len(changelog))


def has_entries(body: str) -> bool:
    """True when the section says something: a line that is neither blank nor a heading (### Added)."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in body.splitlines())


def released_changelog(changelog: str, version: str, date: str) -> str:
    """CHANGELOG.md with the Unreleased entries moved under `## [version] - date` and its link added."""
    previous = newest_release(changelog)
    start, end = unreleased_body(changelog)
    body = changelog[start:end].strip("\n")
    text = f"{changelog[:start]}\n\n## [{version}] - {date}\n\n{body}\n\n{changelog[end:]}"
    links = {m["name"]: m for m in LINK.finditer(text)}
    if previous in links and links[previous]["url"].endswith(f"/{previous}"):
        url = links[previous]["url"][: -len(previous)] + version  # .../releases/tag/<version>
        text = text[: links[previous].start()] + f"[{version}]: {url}\n" + text[links[previous].start():]
    compare = re.compile(rf"^(\[{UNRELEASED}\]: \S+/compare/){re.escape(previous or '')}(\.\.\.\S+)$", re.MULTILINE | re.IGNORECASE)
    return compare.sub(lambda m: f"{m[1]}{version}{m[2]}", text)


def bumped_pyproject(pyproject: str, version: str) -> str:
    pyproject_version(pyproject)
    return PYPROJECT_VERSION.sub(f'version = "{version}"', pyproject)


# ------------------------------------------------------------------------------------------ git

def git(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        output = (proc.stderr or proc.stdout).strip().splitlines()
        raise Refused(f"git {' '.join(args)} failed: {output[-1] if output else f'exit status {proc.returncode}'}")
    return proc.stdout.rstrip() if proc.returncode == 0 else ""


def tag_exists(version: str) -> str:
    """The commit the tag points at, or '' when there is no such tag."""
    return git("rev-parse", "-q", "--verify", f"refs/tags/{version}^{{commit}}", check=False)


def version_tags() -> list[str]:
    return [tag for tag in git("tag", "--list").splitlines() if is_version(tag)]


def show(commit: str, path: str) -> str:
    return git("show", f"{commit}:{path}", check=False)


def log(message: str) -> None:
    print(f"release: {message}", flush=True)


# ------------------------------------------------------------------------------------- commands

def prepare(version: str, date: str) -> None:
    version_key(version)
    try:
        datetime.date.fromisoformat(date)
    except ValueError:
        raise Refused(f"--date {date!r} is not a date (YYYY-MM-DD)") from None
    dirty = git("status", "--porcelain", "--untracked-files=all")
    if dirty:
        raise Refused(f"the working tree is not clean ({len(dirty.splitlines())} changed or untracked paths, "
                      f"e.g. {dirty.splitlines()[0][3:]}): commit or remove them first")
    if tag_exists(version):
        raise Refused(f"tag {version} exists already (releases are never re-tagged): choose a newer version")
    git("var", "GIT_COMMITTER_IDENT")  # no identity: refuse before any file changes, not at the commit
    changelog = Path(CHANGELOG).read_text(encoding="utf-8")
    pyproject = Path(PYPROJECT).read_text(encoding="utf-8")
    known = {f"tag {tag}": tag for tag in version_tags()}
    known.update({f"{CHANGELOG} {name}": name for name, _ in releases(changelog) if is_version(name)})
    known[f"{PYPROJECT} {pyproject_version(pyproject)}"] = pyproject_version(pyproject)
    where, newest = max(known.items(), key=lambda item: version_key(item[1]))
    if version_key(version) <= version_key(newest):
        raise Refused(f"{version} is not newer than {where}: a release must be newer than every earlier one")
    dated = [d for _, d in releases(changelog) if d]
    if dated and date < dated[0]:
        raise Refused(f"--date {date} is before the newest release's date {dated[0]}")
    start, end = unreleased_body(changelog)
    if not has_entries(changelog[start:end]):
        raise Refused(f"the `## [{UNRELEASED}]` section of {CHANGELOG} is empty: list the release's changes there first")
    Path(CHANGELOG).write_text(released_changelog(changelog, version, date), encoding="utf-8")
    Path(PYPROJECT).write_text(bumped_pyproject(pyproject, version), encoding="utf-8")
    log(f"{CHANGELOG}: the Unreleased entries are now ## [{version}] - {date}; {PYPROJECT}: version {version}")
    git("add", "--", CHANGELOG, PYPROJECT)
    git("commit", "--quiet", "-m", f"Release {version}", "--", CHANGELOG, PYPROJECT)
    git("tag", "-a", version, "-m", f"Release {version}")
    log(f"committed and tagged {version} ({git('rev-parse', '--short', 'HEAD')})")
    log(f"publish: git push origin HEAD {version}  (or push the branch: the release workflow tags it)")


def release_commit(version: str) -> str:
    """The oldest commit of HEAD's first-parent history at which both files announce `version`."""
    for commit in git("rev-list", "--first-parent", "--reverse", "HEAD", "--", CHANGELOG, PYPROJECT).splitlines():
        if newest_release(show(commit, CHANGELOG)) != version:
            continue
        try:
            if pyproject_version(show(commit, PYPROJECT)) == version:
                return commit
        except Refused:
            continue
    return ""


def tag(push: str | None) -> None:
    """Tag every release of CHANGELOG.md at HEAD that has no tag yet, oldest first, at its release
    commit; the newest one must also be what pyproject.toml declares. Tags are never moved."""
    changelog = show("HEAD", CHANGELOG)
    newest = newest_release(changelog)
    if newest is None:
        raise Refused(f"{CHANGELOG} at HEAD names no release")
    versions = sorted({name for name, _ in releases(changelog) if is_version(name)}, key=version_key)
    missing = [version for version in versions if not tag_exists(version)]
    if not missing:
        log(f"{newest} is tagged already ({tag_exists(newest)[:12]}); nothing to do")
        return
    if newest in missing:
        declared = pyproject_version(show("HEAD", PYPROJECT))
        if declared != newest:
            raise Refused(f"{CHANGELOG}'s newest release is {newest} but {PYPROJECT} says {declared}: "
                          f"release with `make release VERSION=...`")
        newer = [t for t in version_tags() if version_key(t) >= version_key(newest)]
        if newer:
            raise Refused(f"{newest} is not newer than the existing tag {max(newer, key=version_key)}")
    for version in missing:
        commit = release_commit(version)
        if not commit:
            if version == newest:
                raise Refused(f"no commit of HEAD's first-parent history announces {version} in both files")
            log(f"{version}: no commit announces it in both files; left untagged")
            continue
        git("tag", "-a", version, "-m", f"Release {version}", commit)
        log(f"tagged {version} at {commit[:12]} ({git('log', '-1', '--format=%s', commit)})")
        if push:
            git("push", "--quiet", push, f"refs/tags/{version}")
            log(f"pushed tag {version} to {push}")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(f"Release **{version}** tagged at `{commit[:12]}`; `copier update` now offers it.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="turn the Unreleased section into VERSION, commit and tag")
    p.add_argument("version", help="PEP 440 version in canonical form, e.g. 0.3.0 or 0.3.0rc1")
    p.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
                   help="release date for the CHANGELOG heading (default: today, UTC)")
    t = commands.add_parser("tag", help="tag each release of CHANGELOG.md that no tag names yet")
    t.add_argument("--push", metavar="REMOTE", help="push the new tag to REMOTE")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            prepare(args.version, args.date)
        else:
            tag(args.push)
    except Refused as refused:
        print(f"release: refused: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
