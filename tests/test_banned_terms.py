"""Operator-facing files never mention the template's own tests (issue 10, item 8), and nothing a
user reads uses the template's working jargon (issue 12, item 10).

Every supported answer set's render (conftest.py's shared `rendered` fixture, so no extra copy)
is searched, file contents and paths, for the terms below. Only .copier-answers.yml is exempt:
it is Copier's bookkeeping, not something an operator reads. The jargon is also looked for in the
template's own reader-facing text: README.md, CHANGELOG.md, docs/UPGRADING.md and the questions
and messages of copier.yml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from answer_sets import SUPPORTED

EXEMPT = {".copier-answers.yml"}
BANNED = re.compile(
    r"\bstand-?ins?\b"  # stand-in, standin, "test stand-in"
    r"|\bpytest\b|\bharness(?:es)?\b|\bfixtures?\b|petory-live|MariaDB[- ]based"
    # The same in the Korean docs: "MariaDB-based", "stand-in" (not 대역폭, bandwidth), "the template's own tests".
    r"|MariaDB 기반|대역(?!폭)|템플릿 자체의 테스트",
    re.IGNORECASE,
)
# Words of the template's making that a reader cannot know: "the seed" (the first design brief).
# The folder docker/mysql/seed/ and its script keep their names: a path is not jargon.
JARGON = re.compile(r"\b(?:the|a|our) seed\b(?![/-])|\bseed's\b", re.IGNORECASE)
READER_FILES = ("README.md", "CHANGELOG.md", "docs/UPGRADING.md")
ROOT = Path(__file__).resolve().parent.parent


def hits(project: Path) -> list[str]:
    found = []
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if str(relative) in EXEMPT or ".git" in relative.parts:
            continue
        if BANNED.search(str(relative)) or JARGON.search(str(relative)):
            found.append(f"{relative}: banned term in the path")
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{relative}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                  if BANNED.search(line) or JARGON.search(line)]
    return found


def test_the_pattern_catches_each_term_and_spares_ordinary_words():
    for text in ("the test stand-in", "Standin image", "run pytest", "the harness", "a fixture", "fixtures",
                 "petory-live-mysql", "a MariaDB-based server", "MariaDB 기반의 대역을", "템플릿 자체의 테스트는"):
        assert BANNED.search(text), text
    for text in ("standing by", "outstanding", "fixtured_ok_word", "understand-in-depth", "네트워크 대역폭"):
        assert not BANNED.search(text), text


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_generated_files_never_mention_the_template_tests(rendered, name):
    found = hits(rendered(name))
    assert not found, f"{name}: operator-facing files mention the template's tests:\n" + "\n".join(found)


def test_the_jargon_pattern_catches_the_seed_and_spares_the_seed_folder():
    for text in ("the seed's budgets", "as the seed says", "The Seed", "per the seed."):
        assert JARGON.search(text), text
    for text in ("docker/mysql/seed/", "seed/staging.sql", "90-seed-test-data.sh", "/petory-seed", "the seed/ folder",
                 "seeded test data", "seed: Test data"):
        assert not JARGON.search(text), text


def strings_of(value) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_of(k) + strings_of(v)]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    return [value] if isinstance(value, str) else []


def test_the_template_readers_text_has_no_jargon():
    import yaml

    found = [f"{name}:{n}: {line.strip()}" for name in READER_FILES
             for n, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1) if JARGON.search(line)]
    config = yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8"))
    found += [f"copier.yml: {text.strip()}" for text in strings_of(config) if JARGON.search(text)]
    assert not found, "jargon in what users read:\n" + "\n".join(found)
