"""Jinja extension loaded by copier.yml (`_jinja_extensions`): the bridge from templates to Python.

Templates stay thin: anything with arithmetic, randomness or validation rules is a function here,
implemented in a sibling module that has its own unit tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jinja2.ext import Extension

sys.path.insert(0, str(Path(__file__).resolve().parent))

import answers_rules  # noqa: E402
import env_files  # noqa: E402
import sizing  # noqa: E402


class PetoryExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.globals.update(
            sizing_plan=sizing.plan,
            sizing_fit_error=sizing.fit_error,
            sizing_max_replicas=sizing.max_replicas,
            sizing_preset=sizing.preset,
            compose_resources=sizing.compose_resources,
            new_secret=env_files.new_secret,
            env_entries=answers_rules.env_entries,
            answer_error=answers_rules.answer_error,
        )
