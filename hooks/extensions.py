"""Jinja extension loaded by copier.yml (`_jinja_extensions`): the bridge from templates to Python.

Templates stay thin: anything with arithmetic, randomness or validation rules is a function here,
implemented in a sibling module that has its own unit tests.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from pathlib import Path

from jinja2 import pass_context
from jinja2.bccache import Bucket, FileSystemBytecodeCache
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


env_files = _load("env_files")
sizing = _load("sizing")
answers_rules = _load("answers_rules", sizing=sizing)
# The alerting half of deployment.monitoring (hooks/monitoring.py), merged by deployment.build.
monitoring = _load("monitoring", sizing=sizing) if (HOOKS / "monitoring.py").exists() else None
# Host provisioning (hooks/provisioning.py), deployment.provision; absent in template versions before it.
provisioning = _load("provisioning") if (HOOKS / "provisioning.py").exists() else None
deployment = _load("deployment", sizing=sizing, answers_rules=answers_rules, monitoring=monitoring,
                   provisioning=provisioning)
derived = _load("derived", deployment=deployment)


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


def _from_context(function):
    """A Jinja global that calls `function(name, answers)` with every answer given so far, normalised."""
    return pass_context(lambda context, name: function(name, answers_rules.normalized(context.get_all())))


# Compiled template code, kept for the life of the process (one `copier update` renders the
# template three times; a test session hundreds of times). The key holds the whole source and
# the environment's syntax settings, so an edited template or another environment never hits.
_COMPILED = sys.modules.setdefault("petory_template_compiled_code", type(sys)("petory_template_compiled_code"))
_COMPILED.__dict__.setdefault("code", {})


def _on_disk(environment, key: tuple, compile_code):
    """The compiled code from Jinja's per-user bytecode cache (a 0700 directory), else compiled and stored."""
    try:
        cache = _COMPILED.__dict__.setdefault("disk", FileSystemBytecodeCache())
    except RuntimeError:  # no private cache directory can be made: compile every time
        return compile_code()
    digest = hashlib.sha256(repr(key).encode()).hexdigest()
    bucket = Bucket(environment, digest, digest)
    try:
        cache.load_bytecode(bucket)
    except (OSError, ValueError, EOFError):
        bucket.reset()
    if bucket.code is None:
        bucket.code = compile_code()
        try:
            cache.dump_bytecode(bucket)
        except OSError:
            pass
    return bucket.code


def _reuse_compiled_code(environment) -> None:
    """Compile each distinct template source once per process instead of once per use.

    Copier compiles the answers-file name and every path part again for each file it renders
    (about 1,200 compiles of some 100 distinct strings per copy), and every copy compiles the
    docs' macros again: together about half of a render's time. Compiled code depends only on
    the source and the syntax settings, so it can be reused as is: in memory for this process,
    and across processes through Jinja's own bytecode cache (a private per-user directory).
    """
    compile_source = environment.compile
    code = _COMPILED.code

    def settings() -> tuple:  # read at the first compile: the extensions are loaded by then
        e = environment
        return (type(e).__qualname__, e.block_start_string, e.variable_start_string, e.comment_start_string,
                e.line_statement_prefix, e.trim_blocks, e.lstrip_blocks, e.keep_trailing_newline,
                e.newline_sequence, e.optimized, tuple(sorted(e.extensions)),
                tuple(sorted(getattr(e, "intercepted_binops", ()))), tuple(sorted(getattr(e, "intercepted_unops", ()))))

    def compile_once(source, name=None, filename=None, raw=False, defer_init=False):
        if raw or not isinstance(source, str):  # generated Python source or a parsed tree: not shared
            return compile_source(source, name, filename, raw, defer_init)
        key = (source, name, defer_init, settings())
        if key not in code:
            code[key] = _on_disk(environment, key, lambda: compile_source(source, name, filename, raw, defer_init))
        return code[key]

    environment.compile = compile_once


class PetoryExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        _reuse_compiled_code(environment)
        environment.globals.update(
            # copier.yml: the computed `deployment`, and the defaults and conditions it shares.
            deployment_model=_from_answers(deployment.build),
            # copier.yml's defaults and validators: `derived('acme_email')`, `check('domain')`.
            derived=_from_context(derived.value),
            check=_from_context(answers_rules.question_error),
            uses_letsencrypt=_from_answers(deployment.uses_letsencrypt),
            uses_tls_mode=_from_answers(deployment.uses_tls_mode),
            monitoring_mode=_from_answers(deployment.monitoring_mode),
            has_servers=_from_answers(lambda answers: bool(deployment.servers_of(answers))),
            sizing_plan=sizing.plan,
            sizing_preset=sizing.preset,
            compose_resources=sizing.compose_resources,
            env_entries=env_files.env_entries,
            fill_value=env_files.fill_value,
            generated_length=env_files.generated_length,
            # partials/docs/: the docs' shared macros print these labels and sentences.
            docs_strings=docs_strings,
        )
