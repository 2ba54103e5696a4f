"""The docs agree with the files they describe (issue 12, item 10).

For every supported answer set (its shared render, in its docs_language), the operator README and
docs name only what exists: each `make <task>` is a target of the rendered Makefile, each relative
path (scripts/..., nginx/..., ../.github/...) is in the render, each path under a server's directory
maps to a file of the repository, each other absolute path appears in the generated configuration
(a compose mount, an nginx location, a script), and each link and #anchor resolves. Sections about
the servers never say `make up`: on a server the first `make deploy` starts the stack (`make up`
would run the image tag `local`). Which sections those are is read from the language files: the
headings and paragraphs inside a `part()` whose condition implies a server (SERVER_PARTS), and the
`when()` sentences of those conditions. Also: the template README's layout table names every
generated script and folder.
"""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from answer_sets import SUPPORTED

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "partials" / "docs"
# part()/when() conditions (partials/docs/_facts.jinja P) that hold only where a server environment
# exists: dev never runs Let's Encrypt or provided certificates.
SERVER_PARTS = {"servers", "staging", "prod", "two_servers", "letsencrypt", "provided", "x_letsencrypt", "x_provided"}
MAKE_UP = re.compile(r"\bmake\s+(?:-C\s+\S+\s+)?up\b")
# Relative paths that exist only on a host, created there at run time and gitignored: the deploy
# state and the database dumps (docs/02 and docs/06 describe both).
SERVER_ONLY = (".deploy/", "backups/")
# Absolute paths on a host that no generated file names: the operator's own copy script (docs/06
# backups), the system CA store (docs/04, trusting the local CA), sshd's host keys (docs/03).
SERVER_SYSTEM = ("/usr/local/bin/", "/usr/local/share/ca-certificates/", "/etc/ssh/")
# Files the operator makes on a workstation: the deploy key pair (docs/03, ssh-keygen -f deploy_key)
# and the copy of an environment's CA certificate to trust (docs/04, scp .../ca.pem <slug>-<env>-ca.pem).
OPERATOR_FILES = ("deploy_key", "deploy_key.pub", "*-ca.pem")
# The application repository's own files that the docs mention (layout app-repo): never generated.
APPLICATION_FILES = {".github/workflows/ci.yml"}
# Files of the template repository that the docs point to (read before `copier update`).
TEMPLATE_FILES = {"CHANGELOG.md", "docs/UPGRADING.md"}

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```$", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"(?:^\s*|[;&|(]\s*|\bsudo\s+)make\s+(?:-C\s+(\S+)\s+)?([a-z][\w-]*)", re.M)  # make as the command
TOKEN = re.compile(r"[^\s\"'`()\[\]|;,<>]*(?:<[\w.-]+>[^\s\"'`()\[\]|;,<>]*)*")
FILE_NAME = re.compile(r"[\w][\w.-]*\.(?:ya?ml|sh|py|conf|cnf|md|env|pem|key|html|json|txt|types|example|sql|gz|jar|flag|lock|previous|pub)")


# --------------------------------------------------------------------------- the rendered tree

def operator_docs(project: Path) -> list[Path]:
    """deploy/README.md and deploy/docs/*.md: rendered from the language files of partials/docs/."""
    return [project / "deploy/README.md", *sorted((project / "deploy/docs").glob("*.md"))]


def doc_files(project: Path) -> list[Path]:
    """The operator docs, and the root README of a separate deployment repository."""
    return operator_docs(project) + ([project / "README.md"] if (project / "README.md").is_file() else [])


def code_of(text: str) -> list[str]:
    """Fenced blocks and inline code spans: where commands and paths are written."""
    return FENCE.findall(text) + SPAN.findall(FENCE.sub("", text))


def make_targets(makefile: Path) -> set[str]:
    targets = set()
    for line in makefile.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][\w.-]*(?:[ \t]+[A-Za-z0-9][\w.-]*)*)[ \t]*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def generated_text(project: Path) -> str:
    """Everything the render holds but the docs: where the docs' absolute paths must come from."""
    skip = set(doc_files(project))
    return "\n".join(p.read_text(errors="replace") for p in sorted(project.rglob("*"))
                     if p.is_file() and p not in skip and ".git" not in p.parts)


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def tree(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() + ("/" if p.is_dir() else "") for p in project.rglob("*")
                  if ".git" not in p.relative_to(project).parts)


# ------------------------------------------------------------------------------------- paths

def path_tokens(code: str) -> list[str]:
    """The path-like words of a command or code span."""
    out = []
    for token in TOKEN.findall(code):
        token = token.rstrip(".,:")
        if (not token.strip("/") or token.startswith(("-", "~", "#")) or "://" in token or any(c in token for c in ":@=$%{}\\")
                or "..." in token or re.search(r"\d\.\.\d", token) or re.fullmatch(r"\d+(?:/\d+)*(?:/tcp|/udp)?", token)):
            continue
        if "/" in token.strip("/") or token.endswith("/") or FILE_NAME.fullmatch(token):
            out.append(token)
    return out


def exists(project: Path, doc: Path, token: str, names: list[str]) -> bool:
    """Does the relative path (placeholders <x> and * as wildcards) name something in the render?"""
    pattern = re.sub(r"<[^>]+>", "*", token).rstrip("/")
    bases = ["deploy", doc.parent.relative_to(project).as_posix()] + ([""] if not pattern.startswith("../") else [])
    for base in bases:
        parts: list[str] = []
        for part in f"{base}/{pattern}".split("/"):  # resolve ../ textually
            if part == ".." and parts:
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        candidate = "/".join(parts)
        if any(fnmatch(name.rstrip("/"), candidate) for name in names):
            return True
    # Written relative to the folder a section is about (conf.d/40-upstreams.conf in nginx/).
    return any(fnmatch(name.rstrip("/"), "*/" + pattern) or fnmatch(name.rstrip("/"), pattern) for name in names)


def server_dirs(project: Path) -> list[str]:
    """The servers' checkouts of this repository: deploy-pipeline.yml's ssh_dir of each environment."""
    pipeline = project / ".github/workflows/deploy-pipeline.yml"
    if not pipeline.is_file():
        return []
    jobs = yaml.safe_load(pipeline.read_text())["jobs"].values()
    return sorted({str(job["with"]["ssh_dir"]).rstrip("/") for job in jobs if "ssh_dir" in job.get("with", {})})


def named_by(generated: str, token: str) -> bool:
    """The generated configuration names the path (up to its first placeholder), or its folder and its name."""
    cut = re.sub(r"[<*].*", "", token).rstrip("/")
    if cut and cut in generated:
        return True
    parent, _, last = cut.rpartition("/")
    return (bool(parent and last) and re.search(rf"{re.escape(parent)}(?![\w.-])", generated) is not None
            and re.search(rf"(?<![\w.-]){re.escape(last)}(?![\w-])", generated) is not None)


def missing_paths(project: Path) -> list[str]:
    names, servers, generated = tree(project), server_dirs(project), generated_text(project)
    state = tuple(SERVER_ONLY) + tuple(f"deploy/{p}" for p in SERVER_ONLY)
    problems = []
    for doc in doc_files(project):
        for code in code_of(doc.read_text()):
            for token in path_tokens(code):
                where = f"{doc.relative_to(project)}: `{token}`"
                inside = [d for d in servers if token.rstrip("/") == d or token.startswith(d + "/")]
                if inside:  # a server's checkout of this repository: the rest is a repository path
                    relative = token[len(inside[0]) + 1:]
                    if relative and not relative.startswith(state) and not exists(project, project / "README.md", relative, names):
                        problems.append(f"{where}: the repository has no {relative}")
                elif token.startswith("/"):
                    if not token.startswith(SERVER_SYSTEM) and not named_by(generated, token):
                        problems.append(f"{where}: no generated file (compose mount, nginx location, script) names it")
                elif token in TEMPLATE_FILES:
                    if not (ROOT / token).is_file():
                        problems.append(f"{where}: the template has no {token}")
                elif not (token.startswith(state) or token in APPLICATION_FILES or any(fnmatch(token, f) for f in OPERATOR_FILES)
                          or exists(project, doc, token, names) or named_by(generated, token)):
                    problems.append(f"{where} is not in the render, and no generated file names it")
    return problems


def heading_slugs(text: str) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces to '-', repeats numbered."""
    seen: dict[str, int] = {}
    for line in FENCE.sub("", text).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
    return set(seen) | {f"{slug}-{i}" for slug, n in seen.items() for i in range(1, n + 1)}


def broken_links(project: Path) -> list[str]:
    problems = []
    for doc in doc_files(project):
        for target in LINK.findall(FENCE.sub("", doc.read_text())):
            if re.match(r"[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (doc.parent / file_part).resolve() if file_part else doc
            if not linked.exists():
                problems.append(f"{doc.relative_to(project)}: link {target} points at nothing")
            elif anchor and linked.suffix == ".md" and anchor not in heading_slugs(linked.read_text()):
                problems.append(f"{doc.relative_to(project)}: link {target}: {linked.name} has no heading #{anchor}")
    return problems


# -------------------------------------------------------------------------- server sections

PART = re.compile(r"\{%-?\s*call f\.part\('(\w+)'\)\s*-?%\}|\{%-?\s*endcall\s*-?%\}")
WHEN = re.compile(r"\bwhen\('(\w+)'(?:,\s*'(\w+)')?\)")


def source_pattern(line: str) -> str:
    """A regex for the rendered form of a source line: each Jinja expression matches anything."""
    return ".*".join(re.escape(part) for part in re.split(r"\{\{.*?\}\}|\{%.*?%\}", line.strip()))


def server_anchors(source: str) -> list[tuple[int, str]]:
    """(kind, source line) of every server part of a language file.

    kind is a heading's level: the section runs down to the next heading of its level or above. A
    server part without a heading is a paragraph (kind 0) that runs to the next heading, or, when
    it is written inside one line (kind -1), exactly the words it adds there.
    """
    anchors, stack, pos = [], [], 0
    for match in [*PART.finditer(source), None]:
        chunk = source[pos:match.start() if match else len(source)]
        if any(name in SERVER_PARTS for name in stack):
            lines = [line.strip() for line in chunk.splitlines() if re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "", line).strip()]
            headings = [(len(m.group(1)), m.group(2)) for m in (re.match(r"(#{2,6}) (.*)", line) for line in lines) if m]
            kind = 0 if chunk.strip("\n").count("\n") else -1  # a paragraph, or words inside one line
            if headings:
                anchors.extend(headings)
            elif lines and (kind, lines[0]) not in anchors:
                anchors.append((kind, lines[0]))
        if match is None:
            break
        if match.group(1):
            stack.append(match.group(1))
        elif stack:
            stack.pop()
        pos = match.end()
    return anchors


def server_sections(text: str, anchors: list[tuple[int, str]]) -> dict[str, str]:
    """Source line of each anchor -> the rendered text of its section(s)."""
    lines = text.splitlines()
    levels = [len(m.group(1)) if (m := re.match(r"(#{1,6}) ", line)) else 0 for line in lines]
    found: dict[str, str] = {}
    for kind, source in anchors:
        pattern = re.compile(source_pattern(source) + (r"\s*$" if kind > 0 else ""))
        for i, line in enumerate(lines):
            if kind < 0:
                if not levels[i] and (words := pattern.search(line)):
                    found[source] = found.get(source, "") + words.group(0) + "\n"
                continue
            rendered = line[kind + 1:].strip() if kind else line.strip()
            if levels[i] == kind and pattern.match(rendered):
                end = next((j for j in range(i + 1, len(lines)) if levels[j] and (not kind or levels[j] <= kind)), len(lines))
                found[source] = found.get(source, "") + "\n".join(lines[i:end]) + "\n"
    return found


def language_file(doc: Path, language: str) -> Path:
    name = "README" if doc.name == "README.md" else doc.stem
    return DOCS / f"{name}.{language}.md.jinja"


# ------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_make_task_the_docs_name_is_a_makefile_target(rendered, name):
    project = rendered(name)
    problems = []
    for doc in doc_files(project):
        for code in code_of(doc.read_text()):
            for directory, target in MAKE.findall(code):
                makefile = project / (directory or "deploy") / "Makefile"
                if not makefile.is_file():
                    problems.append(f"{doc.relative_to(project)}: `make -C {directory}`: no {makefile.relative_to(project)}")
                elif target not in make_targets(makefile):
                    problems.append(f"{doc.relative_to(project)}: `make {target}` is no target of {makefile.relative_to(project)}")
    assert not problems, f"{name}:\n" + "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_path_the_docs_name_exists(rendered, name):
    problems = missing_paths(rendered(name))
    assert not problems, f"{name}:\n" + "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_every_link_and_anchor_resolves(rendered, name):
    problems = broken_links(rendered(name))
    assert not problems, f"{name}:\n" + "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_server_sections_never_say_make_up(rendered, name):
    project = rendered(name)
    language = answers(project)["docs_language"]
    problems, sections = [], 0
    for doc in operator_docs(project):
        found = server_sections(doc.read_text(), server_anchors(language_file(doc, language).read_text()))
        sections += len(found)
        for anchor, text in found.items():
            problems += [f"{doc.relative_to(project)} ({anchor}): {line.strip()}" for line in text.splitlines()
                         if MAKE_UP.search(line)]
    assert not problems, f"{name}: server sections say `make up`:\n" + "\n".join(problems)
    has_servers = any(env != "dev" for env in answers(project)["environments"])
    assert (sections > 0) == has_servers, f"{name}: {sections} server sections found"


def test_server_sentences_of_the_strings_never_say_make_up():
    keys = set()
    for source in [*DOCS.glob("*.md.jinja"), DOCS / "_facts.jinja"]:
        keys |= {key or condition for condition, key in WHEN.findall(source.read_text()) if condition in SERVER_PARTS}
    assert keys, "no when() sentence with a server condition found: the pattern is stale"
    for language in ("ko", "en"):
        when = yaml.safe_load((DOCS / f"strings.{language}.yaml").read_text())["when"]
        said = {key: when[key] for key in keys if MAKE_UP.search(when.get(key, ""))}
        assert not said, f"strings.{language}.yaml: server sentences say `make up`: {said}"


def test_every_server_anchor_is_found_in_some_render(rendered):
    """The section finder is not stale: each server heading and paragraph of the sources is rendered somewhere.

    The ko and en files of a doc have the same parts in the same order (tests/test_docs.py), so the
    n-th server part of one language is found when either language's render shows it.
    """
    found: dict[str, set[int]] = {}
    for name in SUPPORTED:
        project = rendered(name)
        language = answers(project)["docs_language"]
        for doc in operator_docs(project):
            anchors = server_anchors(language_file(doc, language).read_text())
            sections = server_sections(doc.read_text(), anchors)
            found.setdefault(doc.name, set()).update(i for i, (_, line) in enumerate(anchors) if line in sections)
    for ko in sorted(DOCS.glob("*.ko.md.jinja")):
        en = ko.with_name(ko.name.replace(".ko.", ".en."))
        anchors = {language: server_anchors(path.read_text()) for language, path in (("ko", ko), ("en", en))}
        assert len(anchors["ko"]) == len(anchors["en"]), f"{ko.name} and {en.name} have different server parts"
        doc = "README.md" if ko.name.startswith("README") else ko.name.replace(".ko.md.jinja", ".md")
        never = [anchors["en"][i][1] for i in range(len(anchors["en"])) if i not in found.get(doc, set())]
        assert not never, f"{en.name}: server parts never found in any render: {never}"


def test_the_checks_catch_what_they_look_for(rendered, tmp_path):
    import shutil

    project = tmp_path / "project"
    shutil.copytree(rendered("defaults"), project, symlinks=True)
    docs = project / "deploy/docs/06-deployment-process.md"
    text = docs.read_text()
    first_server_heading = next(line for line in text.splitlines() if line.startswith("## ") and "dev" not in line)
    docs.write_text(text.replace(first_server_heading, first_server_heading + "\n\n`make up ENV=<env>`, "
                                 "`scripts/no-such.sh`, `nginx/conf.d/99-missing.conf`, `/srv/petory/deploy/nothing.sh`, "
                                 "`/etc/no-such-dir/` [x](01-overview.md#no-such-heading)", 1))
    problems = missing_paths(project)
    for token in ("scripts/no-such.sh", "nginx/conf.d/99-missing.conf", "deploy/nothing.sh", "/etc/no-such-dir/"):
        assert any(token in p for p in problems), (token, problems)
    assert any("no-such-heading" in p for p in broken_links(project))
    language = answers(project)["docs_language"]
    found = server_sections(docs.read_text(), server_anchors(language_file(docs, language).read_text()))
    assert any(MAKE_UP.search(t) for t in found.values())


# ------------------------------------------------------------------- the template README's layout

def rendered_name(path: Path) -> str:
    """template/ path -> generated path: conditions in names dropped, .jinja stripped."""
    name = re.sub(r"\{%.*?%\}", "", path.relative_to(ROOT / "template").as_posix())
    return name[: -len(".jinja")] if name.endswith(".jinja") else name


def layout_rows() -> list[tuple[list[str], str]]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| path | what |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows.append((SPAN.findall(cells[0]), line))
    return rows


def test_readme_layout_table_names_every_generated_script_and_folder():
    rows = layout_rows()
    scripts = sorted({rendered_name(p) for p in (ROOT / "template").rglob("*")
                      if p.is_file() and re.search(r"\.(sh|py)(\.jinja)?$", p.name)})
    folders = sorted({rendered_name(p) + "/" for base in (ROOT / "template", ROOT / "template/deploy")
                      for p in base.iterdir() if p.is_dir()} - {"deploy/"})
    assert scripts and folders
    missing = []
    for script in scripts:
        covered = any(f"`{script}`" in line or any(path.endswith("/") and script.startswith(path)
                                                 and f"`{script[len(path):]}`" in line for path in paths)
                      for paths, line in rows)
        if not covered:
            missing.append(script)
    for folder in folders:
        if not any(path.startswith(folder) for paths, _ in rows for path in paths):
            missing.append(folder)
    assert not missing, "README.md's layout table (| path | what |) does not name: " + ", ".join(missing)
