#!/usr/bin/env python3
"""Per-environment env files: secrets made with a CSPRNG, missing keys found and added.

Used three ways:
- by the template (Jinja globals `env_entries` and `fill_value`) when Copier first renders
  env/.env.example and env/<env>.env;
- by the Copier task and `make env-sync` in the generated repository, to add keys that a
  template update introduced in env/.env.example but that the gitignored env files lack;
- by scripts/validate.py, to report such keys.

`env/.env.example` is the tracked contract: one `KEY=value` line per key, with the value
`<generated:N>` for a secret of N characters. Nothing here ever rewrites an existing value.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import string
import sys
from pathlib import Path

ALPHABET = string.ascii_letters + string.digits  # safe in URLs, shells, YAML and MySQL/Redis configs
GENERATED = re.compile(r"^<generated:(\d+)>$")
ENVIRONMENTS = ("dev", "staging", "prod")
# Environments that run on a server (hooks/deployment.py's model and scripts/lib/common.sh use the
# same list). Their env file holds the secrets their database and Redis were created with: it is
# copied from the secret store, and `--add-missing` creates one from nothing only with `--force`.
SERVER_ENVIRONMENTS = ("staging", "prod")
SECRET_FILE_MODE = 0o600
# A PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL that has always passed: the previous key is never accepted.
NEVER = "1970-01-01T00:00:00Z"
# Credentials the operator pastes into the env file (no CSPRNG can make them): empty until then,
# which `make validate` reports (a failure before a deploy, like a placeholder domain).
SUPPLIED_SECRETS = frozenset({"ALERT_WEBHOOK_URL"})
# Keys that only one environment's file has: the monitoring stack watches production alone
# (deployment.MONITORED_ENV), so env/dev.env and env/staging.env neither need nor get them.
ONLY_IN = {"GRAFANA_ADMIN_PASSWORD": "prod", "MYSQL_EXPORTER_PASSWORD": "prod", "ALERT_WEBHOOK_URL": "prod"}
KEY_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def new_secret(length: int = 40) -> str:
    """A random string from the OS CSPRNG; 40 alphanumerics carry about 238 bits."""
    if length < 24:
        raise ValueError("secrets shorter than 24 characters are refused")
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def parse_env(text: str) -> dict[str, str]:
    """KEY=value pairs in file order; comments and blank lines ignored, no shell expansion."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        match = KEY_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            pairs[match.group(1)] = match.group(2).strip()
    return pairs


def generated_length(example_value: str) -> int | None:
    """N for a `<generated:N>` placeholder, None for a plain default."""
    match = GENERATED.match(example_value)
    return int(match.group(1)) if match else None


def fill_value(example_value: str) -> str:
    """The value a new key gets: a fresh secret for `<generated:N>`, else the example's default."""
    length = generated_length(example_value)
    return example_value if length is None else new_secret(length)


def env_entries(env: str, slug: str, bundled_mysql: bool, bundled_redis: bool,
                monitoring: dict | None = None) -> list[dict]:
    """The keys of env/<env>.env, in file order: the contract env/.env.example is rendered from.

    `value` is what a new env/<env>.env gets through `fill_value` (so `<generated:N>` becomes a
    fresh secret); `example` is what env/.env.example shows for it. `monitoring` is
    deployment.monitoring (None when off).
    """
    dev = env == "dev"
    entries = [
        ("Compose", "COMPOSE_PROJECT_NAME", f"{slug}-{env}", f"{slug}-prod",
         "one Compose project per environment, so dev and staging can share a host"),
        ("Compose", "APP_VERSION", "local", "local",
         "image tag `make up` runs before the first deploy; afterwards scripts/deploy.sh records each colour's tag in .deploy/<env>/colours.env"),
        ("Compose", "EDGE_BIND_ADDRESS", "127.0.0.1" if dev else "0.0.0.0", "0.0.0.0",
         "address the edge publishes 80/443 on; 127.0.0.1 keeps a dev stack private"),
        ("Compose", "EDGE_HTTP_PORT", "8080" if dev else "80", "80", "host port for HTTP (redirects to HTTPS)"),
        ("Compose", "EDGE_HTTPS_PORT", "8443" if dev else "443", "443", "host port for HTTPS"),
    ]
    if bundled_mysql:
        entries.append(("Secrets", "MYSQL_ROOT_PASSWORD", "<generated:40>", "<generated:40>",
                        "MySQL root; used only by the MySQL container and backups"))
    entries += [
        ("Secrets", "MYSQL_PASSWORD", "<generated:40>", "<generated:40>",
         "password of the application's MySQL user" + ("" if bundled_mysql else " (set it to the external database's)")),
        ("Secrets", "REDIS_PASSWORD", "<generated:40>", "<generated:40>",
         "Redis AUTH password" + ("" if bundled_redis else " (set it to the external Redis's)")),
        ("Secrets", "PETORY_JWT_SECRET", "<generated:64>", "<generated:64>",
         "HMAC key the backend signs and verifies JWTs with (64 characters = 512 bits for HS512)"),
        ("Secrets", "PETORY_JWT_PREVIOUS_SECRET", "<generated:64>", "<generated:64>",
         "the key before the last rotation: verifies tokens until the time below, never signs (scripts/rotate-secret.sh jwt)"),
        ("Secrets", "PETORY_JWT_PREVIOUS_SECRET_VALID_UNTIL", NEVER, NEVER,
         "UTC instant until which tokens signed with the previous key are accepted; the epoch = never"),
    ]
    # The monitoring stack's keys: in env/.env.example (rendered for prod) and the watched
    # environment's file only (ONLY_IN).
    if monitoring:
        entries += [entry for entry in _monitoring_entries(monitoring, bundled_mysql)
                    if ONLY_IN.get(entry[1], env) == env]
    keys = ("section", "key", "value", "example", "comment")
    # A secret the operator supplied (not generated): docs and examples show only `example`.
    return [{**dict(zip(keys, entry)), "secret": entry[1] in SUPPLIED_SECRETS} for entry in entries]


def _monitoring_entries(monitoring: dict, bundled_mysql: bool) -> list[tuple]:
    entries = []
    if monitoring["mode"] == "bundled":
        entries.append(("Monitoring", "GRAFANA_ADMIN_PASSWORD", "<generated:32>", "<generated:32>",
                        "Grafana's admin login (user admin), reached only through `make grafana`"))
    if bundled_mysql:
        entries.append(("Monitoring", "MYSQL_EXPORTER_PASSWORD", "<generated:40>", "<generated:40>",
                        "MySQL user exporter of mysqld-exporter (PROCESS, REPLICATION CLIENT, performance_schema)"))
    if monitoring["receivers"]["webhook"]:
        entries.append(("Monitoring", "ALERT_WEBHOOK_URL", "", "https://hooks.slack.com/services/...",
                        "paste the Slack-compatible incoming webhook's URL: Alertmanager posts alerts there (a credential)"))
    return entries


def env_of(env_file: Path) -> str:
    """The environment of env/<env>.env."""
    return env_file.name.removesuffix(".env")


def wanted_keys(example: Path, env: str) -> dict[str, str]:
    """The keys of env/.env.example that env/<env>.env must have, with their example values."""
    return {key: value for key, value in parse_env(example.read_text()).items() if ONLY_IN.get(key, env) == env}


def missing_keys(example: Path, env_file: Path) -> list[str]:
    wanted = wanted_keys(example, env_of(env_file))
    have = parse_env(env_file.read_text()) if env_file.exists() else {}
    return [key for key in wanted if key not in have]


def unfilled_keys(env_file: Path) -> list[str]:
    """Keys still holding a `<generated:N>` placeholder or an empty value."""
    return [k for k, v in parse_env(env_file.read_text()).items() if GENERATED.match(v) or v == ""]


def add_missing(example: Path, env_file: Path) -> list[str]:
    """Append the keys that env_file lacks, with generated or default values. Returns their names."""
    wanted = wanted_keys(example, env_of(env_file))
    keys = missing_keys(example, env_file)
    if keys:
        existing = env_file.read_text() if env_file.exists() else ""
        lines = [f"{key}={fill_value(wanted[key])}" for key in keys]
        sep = "" if not existing or existing.endswith("\n") else "\n"
        header = "# added by scripts/env_files.py from env/.env.example\n"
        env_file.write_text(existing + sep + header + "\n".join(lines) + "\n")
    if env_file.exists():
        os.chmod(env_file, SECRET_FILE_MODE)
    return keys


KEY_REFERENCE = re.compile(r"^<key:([A-Za-z_][A-Za-z0-9_]*)>$")


def set_values(env_file: Path, values: dict[str, str]) -> None:
    """Replace the values of existing keys in place: `<generated:N>` makes a new secret, and
    `<key:NAME>` takes NAME's value before the change (so no secret is on a command line).

    Written to a new file in the same folder, then renamed over the old one: a reader sees the
    old file or the new one, never half of it, and the mode stays 0600.
    """
    text = env_file.read_text()
    current = parse_env(text)
    lines = text.splitlines(keepends=True)
    references = {m.group(1) for m in map(KEY_REFERENCE.match, values.values()) if m}
    missing = (set(values) | references) - set(current)
    if missing:
        raise KeyError(f"{env_file} has no {', '.join(sorted(missing))}; run make env-sync first")
    for index, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if match and not line.lstrip().startswith("#") and match.group(1) in values:
            key = match.group(1)
            reference = KEY_REFERENCE.match(values[key])
            lines[index] = f"{key}={current[reference.group(1)] if reference else fill_value(values[key])}\n"
    tmp = env_file.with_name(f".{env_file.name}.{os.getpid()}.tmp")
    try:
        tmp.touch(mode=SECRET_FILE_MODE)
        os.chmod(tmp, SECRET_FILE_MODE)
        tmp.write_text("".join(lines))
        os.replace(tmp, env_file)
    finally:
        tmp.unlink(missing_ok=True)


def key_value(text: str) -> tuple[str, str]:
    """argparse type of --set: KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    return key, value


def environments_in(repo: Path) -> list[str]:
    return [env for env in ENVIRONMENTS if (repo / f"compose.{env}.yaml").exists()]


def missing_file_advice(env: str) -> str:
    """What to do about a missing env/<env>.env: a server's comes from the secret store."""
    if env in SERVER_ENVIRONMENTS:
        return (f"copy it from the secret store (new secrets would not match the {env} database); "
                f"only for a new server: python3 scripts/env_files.py --env {env} --add-missing --force")
    return f"create it with: make env-sync ENV={env}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Check or complete the gitignored env/<env>.env files against env/.env.example.",
    )
    # The deployment folder is the parent of scripts/ (not resolved: in the template this file is a symlink).
    parser.add_argument("--repo", type=Path, default=Path(__file__).absolute().parent.parent,
                        help="the deployment folder (default: the one holding this script)")
    parser.add_argument("--env", action="append", choices=ENVIRONMENTS, help="environment (default: all generated)")
    parser.add_argument("--add-missing", action="store_true", help="append missing keys with new secrets")
    parser.add_argument("--force", action="store_true",
                        help=f"with --add-missing, also create a missing env file of a server environment "
                             f"({', '.join(SERVER_ENVIRONMENTS)}) with all-new secrets")
    parser.add_argument("--secure", action="store_true", help="only set mode 0600 on existing env files")
    parser.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="replace the value of an existing key of one --env (VALUE <generated:N> makes a new "
                             "secret); used by scripts/rotate-secret.sh")
    args = parser.parse_args(argv)
    if args.set and len(args.env or []) != 1:
        parser.error("--set needs exactly one --env")

    example = args.repo / "env" / ".env.example"
    if not example.exists():
        print(f"env-sync: {example} is missing", file=sys.stderr)
        return 1
    generated = environments_in(args.repo)
    unknown = [env for env in args.env or [] if env not in generated]
    if unknown:
        print(f"env-sync: {', '.join(unknown)} is not an environment of {args.repo} (no compose.<env>.yaml); "
              f"use one of: {', '.join(generated)}", file=sys.stderr)
        return 2
    status = 0
    for env in args.env or generated:
        env_file = args.repo / "env" / f"{env}.env"
        if args.set:
            if not env_file.exists():
                print(f"env-sync: {env_file} is missing: {missing_file_advice(env)}", file=sys.stderr)
                return 1
            try:
                set_values(env_file, dict(args.set))
            except KeyError as err:
                print(f"env-sync: {err.args[0]}", file=sys.stderr)
                return 1
            print(f"env-sync: {env_file}: set {', '.join(key for key, _ in args.set)}")
            continue
        if args.secure:
            if env_file.exists():
                os.chmod(env_file, SECRET_FILE_MODE)
            continue
        if not env_file.exists() and (not args.add_missing or (env in SERVER_ENVIRONMENTS and not args.force)):
            status = 1
            print(f"env-sync: {env_file} is missing: {missing_file_advice(env)}", file=sys.stderr)
            continue
        if args.add_missing:
            created = not env_file.exists()
            added = add_missing(example, env_file)
            print(f"env-sync: {env_file}: " + ("created with new secrets" if created
                                                else f"added {', '.join(added)}" if added else "complete"))
            continue
        keys = missing_keys(example, env_file)
        if keys:
            status = 1
            print(f"env-sync: {env_file} lacks {', '.join(keys)}; add them with: make env-sync ENV={env}")
        else:
            print(f"env-sync: {env_file}: complete")
    return status


if __name__ == "__main__":
    sys.exit(main())
