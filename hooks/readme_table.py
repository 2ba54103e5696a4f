#!/usr/bin/env python3
"""README.md's answers table, generated from copier.yml so the two cannot drift.

    python3 hooks/readme_table.py           # print the table
    python3 hooks/readme_table.py --write   # replace the table in README.md
    python3 hooks/readme_table.py --check   # exit 1 when README.md's table differs (tests/test_readme.py)

One row per entry of copier.yml: its name, when it is asked, its default, and its `help` text
verbatim. A derived default (hooks/derived.py) shows its derivation; another default that calls
one of the template's functions (sizing presets) is shown as derived; `when: false` entries are
computed from the others and never asked.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import derived  # noqa: E402  (hooks/derived.py, beside this script)

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- answers table: generated from copier.yml by `python3 hooks/readme_table.py --write` -->"
END = "<!-- end of answers table -->"
FILTER = re.compile(r"\|\s*\w+(?:\([^)]*\))?")  # | replace('-', '_'): shown as written
CALL = re.compile(r"\b\w+\(")  # {{ default_image('backend') }}: a function of the template


def questions(config: dict) -> dict[str, dict]:
    """The questions and computed answers, in copier.yml order."""
    return {k: v for k, v in config.items() if not k.startswith("_") and isinstance(v, dict)}


def _cell(text: str) -> str:
    """One table cell: on one line, `|` escaped, and `<domain>` kept visible (not taken as HTML)."""
    return " ".join(str(text).split()).replace("|", r"\|").replace("<", "&lt;")


def _code(text: str) -> str:
    """A cell's code span: on one line, `|` escaped (inside backticks `<` needs no escape)."""
    return " ".join(str(text).split()).replace("|", r"\|")


def _default(name: str, value) -> str:
    if name in derived.DERIVED:
        return _code(derived.describe(name))
    if isinstance(value, str) and "{{" in value and CALL.search(FILTER.sub("", value)):
        return "(derived, see copier.yml)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _code(value)


def _asked(question: dict) -> str:
    """`always`, `advanced` (only with advanced=true), or `if ...` (another answer decides)."""
    when = question.get("when", True)
    if when is True:
        return "always"
    condition = re.sub(r"^\{\{\s*|\s*\}\}$", "", str(when))
    if condition == "advanced":
        return "advanced"
    if condition.startswith("advanced and "):
        return f"advanced, if `{_code(condition[len('advanced and '):])}`"
    return f"if `{_code(condition)}`"


def _row(name: str, question: dict) -> str:
    if question.get("when") is False:
        return f"| `{name}` | never | (computed) | {_cell(question.get('help', ''))} |"
    default = f"`{_default(name, question.get('default'))}`"
    return f"| `{name}` | {_asked(question)} | {default} | {_cell(question.get('help', ''))} |"


def table(config: dict) -> str:
    lines = ["| answer | asked | default | what it sets |", "|---|---|---|---|"]
    lines += [_row(name, question) for name, question in questions(config).items()]
    return "\n".join([BEGIN, *lines, END])


def current(readme: str) -> str:
    """The generated block as README.md has it now ("" when the markers are missing)."""
    if BEGIN not in readme or END not in readme:
        return ""
    return BEGIN + readme.split(BEGIN, 1)[1].split(END, 1)[0] + END


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate README.md's answers table from copier.yml.")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="replace the table in README.md")
    action.add_argument("--check", action="store_true", help="exit 1 when README.md's table differs")
    args = parser.parse_args(argv)

    expected = table(yaml.safe_load((ROOT / "copier.yml").read_text(encoding="utf-8")))
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    if args.write:
        old = current(readme)
        if not old:
            print(f"readme_table: {readme_path} lacks the markers {BEGIN!r} ... {END!r}", file=sys.stderr)
            return 1
        readme_path.write_text(readme.replace(old, expected), encoding="utf-8")
        return 0
    if args.check:
        if current(readme) != expected:
            print("readme_table: README.md's answers table differs from copier.yml; run "
                  "python3 hooks/readme_table.py --write", file=sys.stderr)
            return 1
        return 0
    print(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
