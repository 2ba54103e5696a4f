#!/usr/bin/env python3
"""Copier migration (stage `before`, every update): keep derived and advanced answers true.

Copier offers each recorded answer as the default of the next update, so an accepted derived
default (acme_email = ops@<domain>) would never follow a new domain. Before Copier reads the
answers file, this script:

1. drops every recorded answer that still equals its derivation from the recorded answers
   (hooks/derived.py; answer files of 0.1.0 and 0.2.0 used the same derivations), so Copier
   derives it again from the new sources; answers the operator changed are kept;
2. sets `advanced: true` when the file has no `advanced` answer yet (releases before 0.3.0) and
   any question that 0.3.0 moved behind `advanced` holds a non-default value: a question
   hidden by `when` is not recorded, so its customised answer would silently return to its
   default;
3. records, for each answer a later release added whose default would change what a running
   installation runs (`KEEP_AS_IT_WAS`), the value that keeps it as it was, when the file
   predates that answer: an update never starts new services or shrinks the application's
   limits unasked (the operator opts in with `copier update --data NAME=VALUE`).

It prints one line per change and rewrites only the lines it changes (the file's comments stay).
Usage: follow_derived.py ANSWERS_FILE   (run by Copier in the project directory)
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import yaml

HOOKS = Path(__file__).resolve().parent.parent
COPIER_YML = HOOKS.parent / "copier.yml"
# answer -> (the value an older installation keeps, the release that added it, what the default would do)
KEEP_AS_IT_WAS = {
    "monitoring": ("off", "0.6.0", "start the monitoring stack and give the application less memory"),
}


def _module(name: str, **siblings):
    spec = importlib.util.spec_from_file_location(f"follow_derived_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(siblings)
    spec.loader.exec_module(module)
    return module


def _advanced_questions(questions: dict) -> dict[str, object]:
    """Question -> static default, for each question whose `when` needs `advanced`."""
    return {name: spec.get("default") for name, spec in questions.items()
            if isinstance(spec, dict) and re.search(r"\badvanced\b", str(spec.get("when", "")))}


def _is_default(name: str, recorded_value, default, derived, answers: dict) -> bool:
    if name in derived.DERIVED:
        try:
            return str(derived.value(name, answers)) == str(recorded_value)
        except (KeyError, TypeError, ValueError, AttributeError):
            return False  # a source is missing: treat the answer as the operator's
    return recorded_value == default


def plan(recorded: dict, questions: dict, derived, normalized) -> tuple[list[str], bool]:
    """(answers to drop, whether to switch `advanced` on) for this answers file."""
    answers = normalized(recorded)
    drop = derived.still_derived(answers)
    switch_on = "advanced" not in recorded and any(
        name in recorded and not _is_default(name, answers[name], default, derived, answers)
        for name, default in _advanced_questions(questions).items()
    )
    return drop, switch_on


def kept_as_it_was(recorded: dict) -> dict[str, str]:
    """The answers of KEEP_AS_IT_WAS that this answers file predates, with the value to record."""
    return {name: value for name, (value, _, _) in KEEP_AS_IT_WAS.items() if name not in recorded}


def rewrite(text: str, drop: list[str], switch_on: bool, add: dict[str, str] | None = None) -> str:
    """The answers file without the `drop` keys (top-level, one line each), plus `advanced` and `add`."""
    lines = [line for line in text.splitlines(keepends=True)
             if not any(re.match(rf"{re.escape(name)}:(\s|$)", line) for name in drop)]
    if switch_on:
        lines.append("advanced: true\n")
    # Quoted: YAML 1.1 (PyYAML) reads a bare `off` as false.
    lines += [f"{name}: {json.dumps(value)}\n" for name, value in (add or {}).items()]
    return "".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: follow_derived.py ANSWERS_FILE", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"follow_derived: no answers file at {path}; nothing to migrate", file=sys.stderr)
        return 0
    text = path.read_text(encoding="utf-8")
    recorded = yaml.safe_load(text) or {}
    sizing = _module("sizing")
    rules = _module("answers_rules", sizing=sizing)
    deployment = _module("deployment", sizing=sizing, answers_rules=rules, provisioning=_module("provisioning"))
    derived = _module("derived", deployment=deployment)
    questions = yaml.safe_load(COPIER_YML.read_text(encoding="utf-8"))
    drop, switch_on = plan(recorded, questions, derived, rules.normalized)
    for name in drop:
        sources = ", ".join(derived.DERIVED[name].sources)
        print(f"follow_derived: {name} follows {sources} again (was the default {recorded[name]!r})")
    if switch_on:
        print("follow_derived: advanced: true (this installation customised an advanced setting)")
    add = kept_as_it_was(recorded)
    for name, value in add.items():
        _, release, change = KEEP_AS_IT_WAS[name]
        print(f"follow_derived: {name}: {value} (new in {release}; its default would {change}; "
              f"to have it: copier update --trust --data {name}=<value>)")
    new_text = rewrite(text, drop, switch_on, add)
    if new_text != text:
        path.write_text(new_text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
