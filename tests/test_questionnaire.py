"""The interactive questionnaire as an operator sees it: `copier copy` in an 80-column pty.

One run answers every question with Enter (the default path), except that it first types a URL
as the domain, reads the validation message, and corrects it. It proves what the unit tests in
tests/test_answers_rules.py cannot: how many questions the default path really asks, and that a
message is shown whole at 80 columns (Copier cuts it at the terminal's width).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parent.parent
COPIER = Path(sys.executable).parent / "copier"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
MAX_DEFAULT_QUESTIONS = 20
WRONG_DOMAIN = "https://petory.example.com"
WRONG_DOMAIN_MESSAGE = "Validation error for question 'domain': a URL, not a host name"


def _screen(raw: str) -> str:
    return ANSI.sub("", raw)


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    dest = tmp_path_factory.mktemp("pty") / "petory"
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "80", "LINES": "40"}
    child = pexpect.spawn(str(COPIER), ["copy", "--trust", "--vcs-ref", "HEAD", "--skip-tasks", str(ROOT), str(dest)],
                          dimensions=(40, 80), encoding="utf-8", timeout=90, env=env)
    helps, message = [], ""
    try:
        while (found := child.expect(["\x1b\\[6n", "\U0001f3a4([^\r\n]*)", pexpect.EOF])) != 2:
            if found == 0:  # prompt_toolkit asks where the cursor is; a terminal answers at once
                child.send("\x1b[1;1R")
                continue
            help_text = _screen(child.match.group(1)).strip()
            if helps and helps[-1] == help_text:
                continue  # Copier prints a question again with its answer once it is answered
            helps.append(help_text)
            time.sleep(0.2)  # the prompt reads keys only once it is drawn
            if help_text.startswith("Production domain") and not message:
                # Ctrl-U clears the pre-filled default; Copier validates on Enter and keeps the prompt.
                child.send("\x15" + WRONG_DOMAIN + "\r")
                child.expect_exact("not a host name")
                message = _screen(child.before + child.after)
                child.send("\x15petory.example.com")
                time.sleep(0.2)
            child.send("\r")
    finally:
        child.close(force=True)
    return {"helps": helps, "message": message, "answers": dest / ".copier-answers.yml"}


def test_the_default_path_asks_at_most_twenty_questions(session):
    helps = session["helps"]
    assert 0 < len(helps) <= MAX_DEFAULT_QUESTIONS, f"{len(helps)} questions:\n" + "\n".join(helps)
    answers = yaml.safe_load(session["answers"].read_text())
    assert answers["advanced"] is False and answers["domain"] == "petory.example.com"
    assert "mysql_image" not in answers, "an advanced question was asked on the default path"


def test_a_validation_message_is_shown_whole_at_80_columns(session):
    assert WRONG_DOMAIN_MESSAGE in session["message"], session["message"][-600:]
