"""Jinja extension loaded by copier.yml (`_jinja_extensions`): the bridge from templates to Python.

Templates stay thin: anything with arithmetic, randomness or validation rules is a function here,
implemented in a sibling module that has its own unit tests.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

from jinja2 import pass_context
from jinja2.ext import Extension

HOOKS = Path(__file__).resolve().parent
DOCS_STRINGS = HOOKS.parent / "partials" / "docs"


def _load(name: str, **siblings):
    """Import hooks/<name>.py under a name unique to this template checkout.

    `copier update` renders the old and the new template version in one process; a plain
    `import sizing` would hand the new version the old version's cached module.
    """
    unique = f"petory_hooks_{abs(hash(str(HOOKS)))}_{name}"
    if unique not in sys.modules:
        spec = importlib.util.spec_from_file_location(unique, HOOKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(siblings)  # sibling modules of this checkout, not a cached `import`
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    return sys.modules[unique]


answers_rules = _load("answers_rules")
env_files = _load("env_files")
sizing = _load("sizing")
deployment = _load("deployment", sizing=sizing)


@functools.lru_cache(maxsize=None)
def docs_strings(language: str) -> dict:
    """The per-language labels and sentences of the generated docs (partials/docs/strings.<language>.yaml).

    Read once per process: every doc imports the facts layer, which asks for them.
    """
    import yaml  # Copier's own dependency

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((DOCS_STRINGS / f"strings.{language}.yaml").read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (a safe loader)


def _from_answers(function):
    """A Jinja global that calls `function(answers, *args)` with the answers of the render context."""
    return pass_context(lambda context, *args: function(deployment.answers_from_context(context), *args))


def _reuse_compiled_strings(environment) -> None:
    """Compile each distinct template string once per render.

    Copier compiles the answers-file name and every path part again for each file it renders
    (about 1,200 compiles of some 100 distinct strings per copy, 0.3-0.5 s); the
    compiled code is immutable, so it can be reused as is.
    """
    compile_source = environment.compile
    compiled: dict[tuple, object] = {}

    def compile_once(source, name=None, filename=None, raw=False, defer_init=False):
        if not isinstance(source, str):  # an already parsed template: nothing to share
            return compile_source(source, name, filename, raw, defer_init)
        key = (source, name, filename, raw, defer_init)
        if key not in compiled:
            compiled[key] = compile_source(source, name, filename, raw, defer_init)
        return compiled[key]

    environment.compile = compile_once


class PetoryExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        _reuse_compiled_strings(environment)
        environment.globals.update(
            # copier.yml: the computed `deployment`, and the defaults and conditions it shares.
            deployment_model=_from_answers(deployment.build),
            default_image=_from_answers(deployment.default_image),
            default_replicas=_from_answers(deployment.default_replicas),
            uses_letsencrypt=_from_answers(deployment.uses_letsencrypt),
            uses_tls_mode=_from_answers(deployment.uses_tls_mode),
            sizing_plan=sizing.plan,
            sizing_fit_error=sizing.fit_error,
            sizing_preset=sizing.preset,
            compose_resources=sizing.compose_resources,
            env_entries=env_files.env_entries,
            fill_value=env_files.fill_value,
            generated_length=env_files.generated_length,
            answer_error=answers_rules.answer_error,
            # partials/docs/: the docs' shared macros print these labels and sentences.
            docs_strings=docs_strings,
        )
