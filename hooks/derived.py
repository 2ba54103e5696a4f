"""Answers whose default is derived from other answers, and how they follow their sources.

Copier records every answer, accepted defaults included, and on `copier update` offers the
recorded value as the new default. A derived default that was simply accepted (`acme_email`
= ops@<domain>) would stay on the old domain forever after `--data domain=...`. So every
derived default is defined here, once: copier.yml's defaults call `derived('<question>')`, and
the migration hooks/migrations/follow_derived.py (before every update) drops each recorded
answer that still equals its derivation from the recorded sources, so Copier derives it anew.
An answer the operator changed differs from its derivation and is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

if "deployment" not in globals():  # hooks/extensions.py injects this checkout's own copy
    import deployment


class Derivation(NamedTuple):
    sources: tuple[str, ...]  # the answers it reads; earlier questions in copier.yml
    value: Callable[[Mapping], object]
    shown: str = ""  # how README.md's answers table shows it, e.g. ops@<domain>


def _format(pattern: str, *sources: str) -> Derivation:
    shown = pattern.replace("{", "<").replace("}", ">")
    return Derivation(sources, lambda answers: pattern.format(**{name: answers[name] for name in sources}), shown)


def describe(name: str) -> str:
    """The derivation in words: its pattern, or the answers it is computed from."""
    derivation = DERIVED[name]
    return derivation.shown or "from " + ", ".join(derivation.sources)


def _slug(answers: Mapping) -> str:
    return "-".join(str(answers["project_name"]).lower().split())


# Question -> derivation, in copier.yml order (a source always comes before what it feeds).
DERIVED: dict[str, Derivation] = {
    "project_slug": Derivation(("project_name",), _slug, "<project_name>, lower case, '-' for spaces"),
    "app_repository": _format("{project_slug}-team/{project_slug}", "project_slug"),
    "staging_domain": _format("staging.{domain}", "domain"),
    "acme_email": _format("ops@{domain}", "domain"),
    "db_host": _format("mysql.{domain}", "domain"),
    "db_tls": Derivation(("database",), lambda answers: deployment.default_db_tls(answers),
                         "verify-identity if bundled, else required"),
    "db_name": Derivation(("project_slug",), lambda answers: answers["project_slug"].replace("-", "_"),
                          "<project_slug> with '_' for '-'"),
    "redis_host": _format("redis.{domain}", "domain"),
    "backend_replicas": Derivation(("server_size", "host_cpus", "host_memory_gb", "database", "redis"),
                                   lambda answers: deployment.default_replicas(answers),
                                   "the size's preset, or as many as fit (at most 2)"),
    "monitoring": Derivation(("server_size", "host_cpus", "host_memory_gb", "backend_replicas", "database", "redis"),
                             lambda answers: deployment.default_monitoring(answers),
                             "bundled where it fits beside the apps (medium, large), else off"),
    "backend_jar_glob": _format("{backend_dir}/build/libs/*-SNAPSHOT.jar", "backend_dir"),
    "frontend_build_dir": _format("{frontend_dir}/build", "frontend_dir"),
    "registry_owner": _format("{project_slug}-team", "project_slug"),
    "backend_image": Derivation(("registry", "registry_host", "registry_owner", "project_slug"),
                                lambda answers: deployment.default_image(answers, "backend"),
                                "<registry host>/<registry_owner>/<project_slug>-backend"),
    "frontend_image": Derivation(("registry", "registry_host", "registry_owner", "project_slug"),
                                 lambda answers: deployment.default_image(answers, "frontend"),
                                 "<registry host>/<registry_owner>/<project_slug>-frontend"),
    "jre_image": _format("eclipse-temurin:{java_version}-jre", "java_version"),
    "jdk_image": _format("eclipse-temurin:{java_version}-jdk", "java_version"),
    "staging_ssh_host": _format("{staging_domain}", "staging_domain"),
    "staging_deploy_dir": _format("/srv/{project_slug}", "project_slug"),
    "prod_ssh_host": _format("{domain}", "domain"),
    "prod_deploy_dir": _format("/srv/{project_slug}", "project_slug"),
}


def value(name: str, answers: Mapping) -> object:
    """The derived default of question `name` from the (normalised) answers given so far."""
    return DERIVED[name].value(answers)


def still_derived(recorded: Mapping) -> list[str]:
    """The recorded answers that equal their derivation from the recorded sources.

    These were accepted defaults (or typed as the same value): they follow their sources from
    now on. A source that is not recorded (hidden by `when`) takes its own derived value, as in
    Copier's render; a derivation that still lacks a source is skipped.
    """
    answers, found = dict(recorded), []
    for name, derivation in DERIVED.items():
        try:
            expected = derivation.value(answers)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if name not in recorded:
            answers[name] = expected
        elif str(expected) == str(recorded[name]):
            found.append(name)
    return found
