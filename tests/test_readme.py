"""README.md documents every question and the two commands."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_every_question_is_in_the_answer_reference():
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    readme = (ROOT / "README.md").read_text()
    reference = readme.split("## Answers", 1)[1]
    questions = [k for k, v in config.items() if not k.startswith("_") and isinstance(v, dict)]
    missing = [q for q in questions if f"`{q}`" not in reference]
    assert not missing, f"README.md's answer reference lacks {missing}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("## Run the tests", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    assert command == "sudo tests/run.sh"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash tests/run.sh" in ci
