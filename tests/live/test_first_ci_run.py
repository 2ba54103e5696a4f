"""The first CI run of a repository generated the way README.md says, in both layouts.

* `app-repo` (the default): `copier copy --defaults` in a checkout of the application repository,
  so the generated files sit beside its backend/ and frontend/ in one commit.
* `deploy-repo`: `--data layout=deploy-repo` into a new directory, a repository of its own; CI
  checks the application repository (`app_repository`) out into app/. Here it also answers
  `frontend_build_dir=frontend/dist` (Vite), so that a fixed `build` anywhere would show.

For each layout, tests/live/workflow_runner.py runs what GitHub runs first, taking the steps from
the rendered workflows unchanged: the first pull request (deploy-ci.yml's `app` job for each
matrix entry: test and build, then the image, not pushed), and the first push to main
(deploy-pipeline.yml's `version` job, the `app` job as its `ci` job calls it, then its `image`
job for each entry).

The actions are tests/live/ci_play.py's stand-ins, and the application is its sample with stub
`gradlew` and `npm`: the real Gradle and npm builds run only on GitHub's runners. Images are named
after a closed port on 127.0.0.1 and not pushed, so the pipeline's look-up of an existing image
finds none, as on a first run, and no request leaves the host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ci_play import (APP_REPOSITORY, JAR_NAME, STUBS, Actions, application_repository, commit_all, git, sh,
                     stub_environment)
from sample_app import build_backend_jar, build_frontend
from stack import free_port, render
from workflow_runner import JobRun, Runner

SAMPLE_VERSION = "first-ci-stub"  # baked into the sample jar and frontend build
PR_NUMBER = "1"
LAYOUTS = {
    "app-repo": {},
    "deploy-repo": {"layout": "deploy-repo", "app_repository": APP_REPOSITORY, "frontend_build_dir": "frontend/dist"},
}
# What the stubs record for each application, with and without --test (build-app.sh).
EXPECTED_CALLS = {
    ("backend", True): ["gradlew build --no-daemon"],
    ("backend", False): ["gradlew bootJar --no-daemon"],
    ("frontend", True): ["npm ci --no-audit --no-fund", "npm test --if-present", "npm run build"],
    ("frontend", False): ["npm ci --no-audit --no-fund", "npm run build"],
}


@dataclass
class Project:
    layout: str
    answers: dict
    deployment: Path  # the repository the workflows belong to
    application: Path  # the application repository (the same one with app-repo)
    workdir: Path
    samples: Path  # what the stubs copy: the sample jar and frontend build
    npm_bin: Path  # the npm stub alone, which setup-node's stand-in puts on PATH
    actions: Actions = None  # the actions' stand-ins; their `images` are removed at the end

    @property
    def app_root(self) -> str:
        return "app/" if self.layout == "deploy-repo" else ""

    @property
    def workflows(self) -> Path:
        return self.deployment / ".github/workflows"

    def job(self, workflow: str, job_id: str, event: str, ref: str, expressions: dict[str, str] | None = None,
            called_by: str | None = None):
        """Runs a job of `workflow` (in deploy-pipeline.yml the one its job `called_by` calls) once per
        matrix entry, each on a fresh runner: yields (entry, run, workspace, the stubs' calls)."""
        def runner(workspace: Path) -> Runner:
            args = (workspace, self.workdir, {**self.expressions(), **(expressions or {})})
            if called_by:
                return Runner.called_by(self.workflows / workflow, called_by, *args, job_id=job_id,
                                        actions=self.actions.mapping())
            return Runner(self.workflows / workflow, job_id, *args, actions=self.actions.mapping())

        build_dir = Path(self.answers.get("frontend_build_dir", "frontend/build")).relative_to("frontend")
        sha = git(self.deployment, "rev-parse", "HEAD")
        for entry in runner(self.workdir).matrix():
            workspace = self.workdir / f"runner-{uuid.uuid4().hex[:6]}"
            workspace.mkdir()
            log = workspace.with_suffix(".calls")
            log.touch()
            env = {"HOME": str(self.workdir / "home"), **stub_environment(self.samples, log, build_dir)}
            run = runner(workspace).run(sha, env, event=event, ref=ref, matrix=entry)
            yield entry, run, workspace, [line.split("\t") for line in log.read_text().splitlines()]

    def expressions(self) -> dict[str, str]:
        return {"github.token": "runner-token", "github.actor": "petory-ci", "secrets.GITHUB_TOKEN": "runner-token",
                "secrets.APP_REPOSITORY_TOKEN": "", "github.event.pull_request.number": PR_NUMBER}


# ------------------------------------------------------------------ the repositories


@pytest.fixture(scope="module", params=list(LAYOUTS))
def project(request, base_images, tmp_path_factory):
    layout = request.param
    workdir = tmp_path_factory.mktemp(f"first-ci-{layout}")
    (workdir / "home").mkdir()
    samples = workdir / "samples"
    build_backend_jar(samples / JAR_NAME, SAMPLE_VERSION)
    build_frontend(samples / "frontend-build", SAMPLE_VERSION)
    npm_bin = workdir / "npm-bin"
    npm_bin.mkdir()
    shutil.copy2(STUBS / "npm", npm_bin / "npm")
    closed = f"127.0.0.1:{free_port()}/petory-first-ci-{layout}"  # nothing listens there
    answers = {"advanced": True, **LAYOUTS[layout], **base_images,
               "backend_image": f"{closed}/petory-backend", "frontend_image": f"{closed}/petory-frontend"}
    application = application_repository(workdir / "petory")
    if layout == "app-repo":  # README.md: copier copy ... . in a clean checkout of the application repository
        deployment = render(application, answers)
    else:  # README.md: --data layout=deploy-repo and a new directory
        deployment = render(workdir / "petory-deploy", answers)
    commit_all(deployment, "Deployment from the Petory template")
    project = Project(layout, answers, deployment, application, workdir, samples, npm_bin,
                      Actions(deployment, application, npm_bin))
    try:
        yield project
    finally:
        if project.actions.images:
            subprocess.run(["docker", "image", "rm", "-f", *set(project.actions.images)], capture_output=True)


# ------------------------------------------------------------------ the checks


def image_file(image: str, path: str) -> bytes:
    return sh("docker", "run", "--rm", "--entrypoint", "cat", image, path)


def image_labels(image: str) -> dict[str, str]:
    return json.loads(sh("docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image))


def assert_built_from_the_stubs(project: Project, app: str, image: str) -> None:
    """The image holds exactly what the stubs wrote: the sample jar, or the sample frontend build."""
    if app == "backend":
        assert image_file(image, "/app/app.jar") == (project.samples / JAR_NAME).read_bytes()
    else:
        index = image_file(image, "/usr/share/nginx/html/index.html")
        assert index == (project.samples / "frontend-build/index.html").read_bytes()
        assert f'content="{SAMPLE_VERSION}"'.encode() in index


def assert_stub_calls(project: Project, workspace: Path, app: str, tested: bool, calls: list[list[str]],
                      run: JobRun) -> None:
    where = workspace / f"{project.app_root}{app}"
    assert calls == [[str(where), call] for call in EXPECTED_CALLS[(app, tested)]], run.output


def test_first_pull_request_builds_and_tests_both_apps_and_their_images(project, summary):
    began = time.monotonic()
    pull_request = {"event": "pull_request", "ref": f"refs/pull/{PR_NUMBER}/merge"}
    for entry, run, workspace, calls in project.job("deploy-ci.yml", "app", **pull_request):
        assert run.ok, run.output
        assert run.outcome("Test and build") == "success" and run.outcome("Build the image") == "success"
        assert_stub_calls(project, workspace, entry["app"], True, calls, run)
        image = f"{entry['image']}:ci"
        assert_built_from_the_stubs(project, entry["app"], image)
        assert image_labels(image)["org.opencontainers.image.version"] == f"pr-{PR_NUMBER}"
    summary.append(f"first CI run ({project.layout}): the pull request's deploy-ci app jobs took "
                   f"{time.monotonic() - began:.1f} s")


def test_first_push_to_main_tests_then_builds_the_images_of_the_application_commit(project, summary):
    began = time.monotonic()
    push = {"event": "push", "ref": "refs/heads/main"}
    ((_, version, _, _),) = project.job("deploy-pipeline.yml", "version", **push)
    assert version.ok, version.output
    commit = git(project.application, "rev-parse", "HEAD")  # the application's commit, in either layout
    assert version.outputs == {"commit": commit, "version": f"sha-{commit[:7]}"}, version.output
    needs = {f"needs.version.outputs.{key}": value for key, value in version.outputs.items()}

    for entry, run, workspace, calls in project.job("deploy-pipeline.yml", "app", expressions=needs, called_by="ci",
                                                    **push):
        assert run.ok, run.output
        assert run.outcome("Build the image") == "skipped"  # pull requests only; the image job builds it
        assert_stub_calls(project, workspace, entry["app"], True, calls, run)
        if project.app_root:
            assert git(workspace / project.app_root, "rev-parse", "HEAD") == commit

    for entry, run, workspace, calls in project.job("deploy-pipeline.yml", "image", expressions=needs, **push):
        assert run.ok, run.output
        assert run.outcome("Look for an image") == "success" and run.outcome("Build and push") == "success"
        assert run.outcome("Add the release tag") == "skipped"
        assert_stub_calls(project, workspace, entry["app"], False, calls, run)
        image = f"{entry['image']}:{version.outputs['version']}"
        assert_built_from_the_stubs(project, entry["app"], image)
        labels = image_labels(image)
        assert labels["org.opencontainers.image.version"] == version.outputs["version"]
        assert labels["org.opencontainers.image.revision"] == commit
        if project.app_root:
            assert labels["org.opencontainers.image.source"] == f"https://github.com/{APP_REPOSITORY}"
    summary.append(f"first CI run ({project.layout}): the push to main's version, ci and image jobs took "
                   f"{time.monotonic() - began:.1f} s")
