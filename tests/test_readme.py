"""README.md documents every question (copier.yml's help, verbatim) and the two commands."""

from pathlib import Path

import readme_table
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_answers_table_is_copier_yml_help_verbatim():
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    readme = (ROOT / "README.md").read_text()
    reference = readme.split("## Answers", 1)[1].split("\n## ", 1)[0]
    assert readme_table.current(reference) == readme_table.table(config), (
        "README.md's answers table differs from copier.yml; run python3 hooks/readme_table.py --write")


def test_every_question_has_one_row_with_its_help_and_default():
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    rows = {line.split("|")[1].strip().strip("`"): line
            for line in readme_table.current((ROOT / "README.md").read_text()).splitlines() if line.startswith("| `")}
    assert list(rows) == list(readme_table.questions(config))
    assert config["layout"]["help"] in rows["layout"] and f"`{config['layout']['default']}`" in rows["layout"]
    assert "| if `layout == 'deploy-repo'` | `<project_slug>-team/<project_slug>` |" in rows["app_repository"]
    assert "| advanced | `" in rows["tls_profile"]  # the advanced group says so


def test_a_changed_help_text_is_caught():
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    config["domain"]["help"] += " (changed)"
    assert readme_table.current((ROOT / "README.md").read_text()) != readme_table.table(config)


def test_table_cells_escape_markdown():
    config = {"a": {"help": "x | y <domain>", "default": "{{ b | lower }}"}, "c": {"help": "h", "default": "{{ f(1) }}"},
              "d": {"help": "computed", "when": False}, "_skip": True}
    lines = readme_table.table(config).splitlines()
    assert r"| `a` | always | `{{ b \| lower }}` | x \| y &lt;domain> |" in lines
    assert "| `c` | always | `(derived, see copier.yml)` | h |" in lines
    assert "| `d` | never | (computed) | computed |" in lines


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("## Run the tests", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    assert command == "sudo tests/run.sh"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash tests/run.sh" in ci


def test_readme_opens_with_the_three_commands_the_copy_message_prints_for_prod():
    import sys
    sys.path.insert(0, str(ROOT / "hooks"))
    import deployment

    readme = (ROOT / "README.md").read_text()
    opening = readme.split("\n## ", 1)[0].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("   #", 1)[0].rstrip() for line in opening.splitlines()]
    expected = [step["command"].replace("make ", "make -C deploy ", 1) for step in deployment._go_live(["prod"])["prod"]]
    assert commands == expected
