"""The operator docs write their logic once: language files hold sentences and macro calls only.

partials/docs/_facts.jinja owns every condition, loop, table and code block; the language files
(NN-*.{ko,en}.md.jinja, README.{ko,en}.md.jinja) and the strings files hold the words. Rendering
every supported answer set in both languages, the two renders of each doc must agree on all facts:
the same fenced code blocks in the same order, and the same non-prose table cells.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
from pathlib import Path

import copier
import pytest
import yaml

from answer_sets import SUPPORTED

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "partials" / "docs"
LANGUAGES = ("ko", "en")
LANGUAGE_FILES = sorted(DOCS.glob("*.ko.md.jinja")) + sorted(DOCS.glob("*.en.md.jinja"))
CONDITION = re.compile(r"\{%-?\s*(?:if .*?|endif)\s*-?%\}")  # a templated file name's condition
# Every doc the template can generate, conditional ones too (deploy/docs/08-alert-runbooks.md needs monitoring);
# a render has only those its answers make.
DOC_PATHS = ["deploy/README.md", *(f"deploy/docs/{CONDITION.sub('', p.name)[:-len('.jinja')]}"
                                   for p in sorted(ROOT.glob("template/deploy/docs/*.jinja")))]
MAX_LINES = 3300  # grew with the change runbook, secret rotation, TLS to MySQL, verified backups and PITR (0.4.0), alert runbooks (issue 13)
BANNED = ("stand-in", "standin", "pytest", "harness", "fixture", "petory-live", "mariadb-based test")

CONTROL_TAG = re.compile(r"{%-?\s*(if|elif|else|for|endif|endfor)\b")
CALL = re.compile(r"{%-?\s*call\s+f\.(\w+)\(([^)]*)\)|{{-?\s*f\.(\w+)\(([^)]*)\)")


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize("path", LANGUAGE_FILES, ids=lambda p: p.name)
def test_language_files_hold_no_conditions_or_loops(path):
    tags = [m.group(0) for m in CONTROL_TAG.finditer(path.read_text(encoding="utf-8"))]
    assert not tags, f"{path.name}: move {tags} into partials/docs/_facts.jinja (part/when or a macro)"


@pytest.mark.parametrize("path", sorted(DOCS.glob("strings.*.yaml")), ids=lambda p: p.name)
def test_strings_files_are_plain_text(path):
    """Strings are labels and sentences: no Jinja at all (macros fill `%(name)s`)."""
    text = path.read_text(encoding="utf-8")
    assert "{%" not in text and "{{" not in text, f"{path.name} holds Jinja"


def test_ko_and_en_call_the_same_macros_in_the_same_order():
    """Each doc's two language files differ only in words: same parts, tables and blocks, same order."""
    for ko in sorted(DOCS.glob("*.ko.md.jinja")):
        en = ko.with_name(ko.name.replace(".ko.", ".en."))
        calls = [[m.group(0).split("(")[0].split("f.")[-1] + "(" + (m.group(2) or m.group(4) or "") + ")"
                  for m in CALL.finditer(p.read_text(encoding="utf-8"))] for p in (ko, en)]
        assert calls[0] == calls[1], f"{ko.name} and {en.name} call different macros"


def test_strings_files_have_the_same_keys():
    def keys(data, prefix=""):
        out = set()
        for key, value in data.items():
            out.add(prefix + str(key))
            if isinstance(value, dict):
                out |= keys(value, f"{prefix}{key}.")
        return out

    ko, en = (yaml.safe_load((DOCS / f"strings.{lang}.yaml").read_text(encoding="utf-8")) for lang in LANGUAGES)
    # English may fall back to deployment.tasks' and deployment.metrics' own help texts, and to the
    # section names and comments of env_entries (the env/.env.example contract).
    fallback = ("tasks.", "metrics.", "sections.", "env_keys.")
    assert {k for k in keys(ko) if not k.startswith(fallback)} == {k for k in keys(en) if not k.startswith(fallback)}


def test_every_task_and_metric_has_a_korean_sentence():
    import deployment

    ko = yaml.safe_load((DOCS / "strings.ko.yaml").read_text(encoding="utf-8"))
    assert {name for name, *_ in deployment.TASKS} <= set(ko["tasks"])
    assert set(deployment.METRICS) <= set(ko["metrics"])


def test_every_env_key_and_section_has_a_korean_sentence():
    import env_files

    ko = yaml.safe_load((DOCS / "strings.ko.yaml").read_text(encoding="utf-8"))
    for mysql in (True, False):
        for redis in (True, False):
            for entry in env_files.env_entries("prod", "petory", mysql, redis):
                assert entry["key"] in ko["env_keys"] and entry["section"] in ko["sections"], entry


def test_doc_partials_fit_the_line_budget():
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in DOCS.iterdir() if p.is_file())
    assert lines <= MAX_LINES, f"partials/docs/ has {lines} lines, the budget is {MAX_LINES}"


# --------------------------------------------------------------------------- renders


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(answer set, language) -> {doc path: text}; each combination rendered once, without tasks.

    The working tree is copied once to a folder without git, so Copier renders it as it is (dirty
    changes included) without cloning it for every render.
    """
    cache: dict[tuple[str, str], dict[str, str]] = {}
    template = tmp_path_factory.mktemp("template") / "t"
    shutil.copytree(ROOT, template, ignore=shutil.ignore_patterns(".git", ".venv", "tests", "bench", "*.egg-info", "__pycache__"))
    keep = {"deploy/README.md.jinja", "deploy/Makefile.jinja"}
    for path in sorted((template / "template").rglob("*"), reverse=True):  # only the docs need rendering here
        relative = path.relative_to(template / "template").as_posix()
        if path.is_file() and relative not in keep and not relative.startswith("deploy/docs/"):
            path.unlink()

    def render(name: str, language: str) -> dict[str, str]:
        if (name, language) not in cache:
            dst = tmp_path_factory.mktemp(f"docs-{name}-{language}")
            copier.run_copy(str(template), dst, data={**SUPPORTED[name], "docs_language": language}, defaults=True,
                            unsafe=True, skip_tasks=True, quiet=True)
            cache[(name, language)] = {p: (dst / p).read_text(encoding="utf-8") for p in (*DOC_PATHS, "deploy/Makefile")
                                       if (dst / p).exists()}
        return cache[(name, language)]

    return render


FENCE = re.compile(r"^```[^\n]*\n.*?^```$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]+`")
UNITS = re.compile(r"\b(?:MB|GB|KB|ms|s|r/s|r/min)\b")


def code_blocks(text: str) -> list[str]:
    return FENCE.findall(text)


def tables(text: str) -> list[list[list[str]]]:
    """Markdown tables outside code blocks: rows of cells (the |---| line dropped)."""
    found, current = [], []
    for line in FENCE.sub("", text).splitlines():
        if line.startswith("|"):
            if not re.fullmatch(r"\|(?:\s*:?-+:?\s*\|)+", line):
                current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def is_prose(cell: str) -> bool:
    """A cell is prose when a letter is left after removing code spans, units and emphasis.

    Everything else (code spans, numbers, sizes, paths in backticks, `-`) is a fact cell and must be
    identical in every language; a prose cell must still carry the same code spans.
    """
    rest = UNITS.sub("", CODE_SPAN.sub("", cell)).replace("*", "")
    return any(unicodedata.category(ch).startswith("L") for ch in rest)


def fact_cells(table: list[list[str]]) -> list[tuple]:
    out = []
    for r, row in enumerate(table):
        for c, cell in enumerate(row):
            out.append((r, c, "prose", sorted(CODE_SPAN.findall(cell))) if is_prose(cell) else (r, c, "fact", cell))
    return out


def test_prose_and_fact_cells_are_told_apart():
    assert not is_prose("`sha-1a2b3c4`") and not is_prose("1024 MB") and not is_prose("**2.5**") and not is_prose("-")
    assert is_prose("generated (40 chars)") and is_prose("생성됨(40자)") and is_prose("`sha-<commit>` pushed")


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_ko_and_en_renders_agree_on_every_fact(rendered, name):
    ko, en = rendered(name, "ko"), rendered(name, "en")
    assert set(ko) == set(en), f"{name}: ko and en generate different docs"
    for path in set(DOC_PATHS) & set(ko):
        assert code_blocks(ko[path]) == code_blocks(en[path]), f"{name}: {path} has different code blocks in ko and en"
        ko_tables, en_tables = tables(ko[path]), tables(en[path])
        assert [len(t) for t in ko_tables] == [len(t) for t in en_tables], f"{name}: {path} has different tables"
        for number, (a, b) in enumerate(zip(ko_tables, en_tables)):
            assert [len(r) for r in a] == [len(r) for r in b], f"{name}: {path} table {number} has different shapes"
            assert fact_cells(a) == fact_cells(b), f"{name}: {path} table {number} differs in its facts"


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_rendered_docs_name_no_test_machinery_and_leave_nothing_unfilled(rendered, name):
    for language in LANGUAGES:
        for path, text in rendered(name, language).items():
            if path not in DOC_PATHS:
                continue
            hits = [term for term in BANNED if term in text.lower()]
            assert not hits, f"{name}/{language}: {path} mentions {hits}"
            leftover = re.search(r"\bNone\b|%\(\w+\)s|\{\{|\{%", text)
            assert not leftover, f"{name}/{language}: {path} holds an unfilled {leftover.group(0)!r}"


@pytest.mark.parametrize("name", ["defaults", "dev-only", "external-db", "tls-self-signed", "minimal"])
def test_docs_describe_the_deploy_folder_layout(rendered, name):
    text = "\n".join(rendered(name, "en").values())
    for fact in ("make -C deploy", "deploy-ci.yml", "deploy-template-drift.yml", "make validate FULL=1", "dependabot.yml"):
        assert fact in text, f"{name}: the docs never mention {fact}"
    if SUPPORTED[name].get("environments", ["dev", "staging", "prod"]) != ["dev"]:
        for fact in ("deploy-pipeline.yml", "deploy-environment.yml", "deploy/scripts/deploy.sh"):
            assert fact in text, f"{name}: the docs never mention {fact}"


def test_self_signed_docs_say_how_to_trust_the_local_ca(rendered):
    for language in LANGUAGES:
        doc = rendered("tls-self-signed", language)["deploy/docs/04-nginx-configuration.md"]
        assert re.search(r"\.deploy/(staging|prod)/ca/ca\.pem", doc) and "update-ca-certificates" in doc


def test_task_table_lists_exactly_the_generated_tasks(rendered):
    """The README's task table comes from deployment.tasks, as deploy/Makefile's targets do."""
    for name in ("defaults", "external-db", "dev-only", "external-redis"):
        docs = rendered(name, "ko")
        listed = re.findall(r"^\| `make ([a-z-]+)", docs["deploy/README.md"], re.M)
        assert listed == re.findall(r"^([a-z-]+):.*## ", docs["deploy/Makefile"], re.M), name
