"""GitHub's part of a CI run, played here: the sample application repository and the actions' stand-ins.

tests/live/workflow_runner.py runs a job's `run:` steps unchanged; the `uses:` steps are these
stand-ins. checkout clones the local repository (the application's at `ref` into `path`);
setup-java, setup-gradle, setup-buildx and login do nothing; setup-node fails without the lock file
its `cache-dependency-path` names, as the action does, and puts the npm stub on PATH;
metadata-action gives the tags and labels the step asks for; build-push-action runs `docker build`
with the classic builder (DOCKER_BUILDKIT=0) over the stand-in base images, with
`<Dockerfile>.dockerignore` copied to the context's `.dockerignore` (BuildKit reads the first, the
classic builder only the second), and pushes when the step says `push: true` and `push` is set
here (tests/live/test_first_ci_run.py names its images after a closed port and pushes nothing).

The application is the sample (tests/fixtures/petory_app) with the files a real one has for its
build. Its `backend/gradlew` and the `npm` that setup-node puts on PATH are stubs
(tests/live/first_ci/): they record their directory and arguments and write the sample's jar and
frontend build (tests/live/sample_app.py) where Gradle and the bundler would. The real Gradle and
npm builds run only on GitHub's runners.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from sample_app import FIXTURE_DIR
from workflow_runner import ActionCall, ActionFailed

STUBS = Path(__file__).resolve().parent / "first_ci"
APP_REPOSITORY = "petory-team/petory"
JAR_NAME = "petory-0.0.1-SNAPSHOT.jar"  # matches the default backend_jar_glob, *-SNAPSHOT.jar
# The application's own build files, beside the sample's sources.
APP_FILES = {
    ".gitignore": "build/\ndist/\nnode_modules/\n",
    "frontend/package.json": '{"name": "petory-frontend", "private": true, "scripts": {"build": "vite build"}}\n',
    "frontend/package-lock.json": '{"name": "petory-frontend", "lockfileVersion": 3, "packages": {}}\n',
}


def sh(*cmd) -> bytes:
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, timeout=300)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr.decode()[-3000:]}")
    return proc.stdout


def git(repo: Path, *args) -> str:
    return sh("git", "-C", repo, "-c", "user.name=CI", "-c", "user.email=ci@example.invalid", *args).decode().strip()


def commit_all(repo: Path, message: str) -> None:
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def application_repository(path: Path) -> Path:
    """The sample application with its build files and the Gradle wrapper stub, committed."""
    shutil.copytree(FIXTURE_DIR, path)
    for name, text in APP_FILES.items():
        (path / name).write_text(text)
    shutil.copy2(STUBS / "gradlew", path / "backend/gradlew")
    commit_all(path, "The Petory application")
    return path


def stub_environment(samples: Path, log: Path, build_dir: Path | str) -> dict[str, str]:
    """What the stubs read: where to record their calls and where the sample's build output is."""
    return {"STUB_LOG": str(log), "STUB_SAMPLES": str(samples), "STUB_BUILD_DIR": str(build_dir)}


def nothing(call: ActionCall) -> None:
    """An action whose effect the stubs make unnecessary here (Java, Gradle's cache, buildx, a login)."""


def metadata(call: ActionCall) -> dict[str, str]:
    """docker/metadata-action for the tag rules the pipeline uses: raw values, and the git tag on a tag push."""
    tags = []
    for rule in call.inputs["tags"].splitlines():
        spec = dict(part.split("=", 1) for part in rule.split(","))
        if spec["type"] == "raw":
            tags.append(f"{call.inputs['images']}:{spec['value']}")
        elif spec == {"type": "ref", "event": "tag"}:
            if call.runner.lookup("github.ref_type") == "tag":
                tags.append(f"{call.inputs['images']}:{call.runner.lookup('github.ref_name')}")
        else:
            raise AssertionError(f"this test cannot evaluate the tag rule {rule!r}")
    return {"tags": "\n".join(tags), "labels": call.inputs.get("labels", "")}


@dataclass
class Actions:
    """The stand-ins of one repository's workflows; `images` collects every tag built."""

    deployment: Path  # the repository the workflows belong to
    application: Path  # the application repository (the same one in the app-repo layout)
    npm_bin: Path  # the npm stub alone, which setup-node's stand-in puts on PATH
    push: bool = False
    images: list[str] = field(default_factory=list)

    def mapping(self):
        return {"actions/checkout": self.checkout, "actions/setup-java": nothing,
                "gradle/actions/setup-gradle": nothing, "actions/setup-node": self.setup_node,
                "docker/setup-buildx-action": nothing, "docker/login-action": nothing,
                "docker/metadata-action": metadata, "docker/build-push-action": self.build_push}

    def checkout(self, call: ActionCall) -> None:
        repository = call.inputs.get("repository")
        assert repository in (None, APP_REPOSITORY), repository
        source = self.application if repository else self.deployment
        dest = call.workspace / call.inputs.get("path", "")
        git(source, "clone", "-q", source, dest)
        if call.inputs.get("ref"):
            git(dest, "checkout", "-q", call.inputs["ref"])

    def setup_node(self, call: ActionCall) -> None:
        lock = call.workspace / call.inputs["cache-dependency-path"]
        if not lock.is_file():
            raise ActionFailed(f"Dependencies lock file is not found in {lock}")
        call.runner.path.append(str(self.npm_bin))

    def build_push(self, call: ActionCall) -> None:
        context = call.workspace / call.inputs["context"]
        dockerfile = call.workspace / call.inputs["file"]
        ignore = dockerfile.with_name(f"{dockerfile.name}.dockerignore")
        if ignore.is_file():
            shutil.copyfile(ignore, context / ".dockerignore")
        tags = [t for t in call.inputs["tags"].replace(",", "\n").splitlines() if t]
        command = ["docker", "build", "-q", "-f", str(dockerfile)]
        for option, key in (("--build-arg", "build-args"), ("-t", "tags"), ("--label", "labels")):
            values = tags if key == "tags" else call.inputs.get(key, "").splitlines()
            command += [part for value in values if value for part in (option, value)]
        environ = {"PATH": os.environ["PATH"], "HOME": call.env["HOME"], "DOCKER_BUILDKIT": "0"}
        proc = subprocess.run([*command, str(context)], capture_output=True, text=True, timeout=600, env=environ)
        self.images.extend(tags)
        if proc.returncode:
            raise ActionFailed(proc.stderr[-3000:])
        if self.push and call.inputs.get("push") == "true":
            for tag in tags:
                pushed = subprocess.run(["docker", "push", "-q", tag], capture_output=True, text=True, timeout=600,
                                        env=environ)
                if pushed.returncode:
                    raise ActionFailed(pushed.stderr[-3000:])
