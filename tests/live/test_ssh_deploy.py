"""The staging deploy job, executed for real: its shell steps run here against an SSH server.

The job is deploy-environment.yml's, as deploy-pipeline.yml's deploy-staging job calls it: its
`${{ inputs.* }}` are the caller's `with:` values. The generated repository plays the GitHub
repository and the runner's checkout (two commits, a bare clone as `origin`), the host plays the
runner, and a container built from tests/live/ssh/ plays the staging server: sshd with a
`deploy` user, git, the Docker CLI and Compose, talking to the host's engine through the mounted
socket. The server holds a checkout of the repository with deploy/env/staging.env, as the
generated docs tell an operator to prepare it. Images of each commit are built from the sample
app the way the pipeline's image jobs build them and pushed to a registry on 127.0.0.1.

The `run:` steps (deploy/scripts/ci/*.sh) are taken from the rendered workflow unchanged and run
by tests/live/workflow_runner.py: with `bash --noprofile --norc -eo pipefail`, as GitHub runs
them, in the order and under the `if:` conditions of the workflow. The one `uses:` step,
actions/checkout, is the repository already checked out. `${{ ... }}` expressions in `env:` are
replaced by test values, and any other expression fails the test. SSH uses a key generated here
and a known_hosts built from the container's host key, with StrictHostKeyChecking=yes; the public
URL reaches the edge on 127.0.0.1 through curl's connect-to (a .curlrc), with the site's
certificate as CA.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry import LocalRegistry
from sample_app import build_backend_jar, build_frontend
from ssh_server import Server, server_base_image, sh
from stack import Stack, free_port, render
from workflow_runner import JobRun, Runner

HERE = Path(__file__).resolve().parent
DOMAIN = "staging.petory.app"  # a real-looking domain: the deploy job refuses placeholders
JAR = "backend/build/libs/petory-0.0.1-SNAPSHOT.jar"


def git(repo: Path, *args) -> str:
    return sh("git", "-C", repo, "-c", "user.name=CI", "-c", "user.email=ci@example.invalid", *args).stdout.strip()


# --------------------------------------------------------------------------- the server side

@dataclass
class Setup:
    repo: Path
    deploy_dir: Path
    runner: Runner
    server: Server
    stack: Stack
    registry: LocalRegistry
    private_key: str
    commits: list[str]
    curl_home: Path

    def version(self, sha: str) -> str:
        return f"sha-{sha[:7]}"

    def run_job(self, sha: str, known_hosts: str | None = None, https_port: int | None = None) -> JobRun:
        (self.curl_home / ".curlrc").write_text(
            f"connect-to = {DOMAIN}:443:127.0.0.1:{https_port or self.stack.https_port}\n"
            f"cacert = {self.curl_home / 'ca.pem'}\n")
        git(self.repo, "checkout", "-q", sha)  # the runner's checkout is at the commit being deployed
        runner = self.runner
        runner.expressions["secrets.SSH_KNOWN_HOSTS"] = known_hosts or self.server.known_hosts()
        runner.expressions["needs.version.outputs.version"] = self.version(sha)  # the pipeline's version job
        # The job's own token, which the GHCR deploy hands to the server for its pull: none here, where
        # the images are in a registry on 127.0.0.1 without authentication (so no login is made;
        # tests/test_workflows.py runs the login against a stub docker).
        runner.expressions["github.actor"] = "petory-ci"
        runner.expressions["github.token"] = ""
        return runner.run(sha, {"HOME": str(self.curl_home), "CURL_HOME": str(self.curl_home)})

    def served_versions(self) -> tuple[str, str]:
        api = self.stack.request("GET", "/api/version", timeout=10)
        page = self.stack.request("GET", "/", timeout=10)
        match = re.search(r'name="petory-version" content="([^"]+)"', page.text)
        return (api.json().get("version", "") if api.status == 200 else f"HTTP {api.status}",
                match.group(1) if match else f"HTTP {page.status}")

    def server_head(self) -> str:
        return self.server.exec("git", "-C", self.deploy_dir, "rev-parse", "HEAD", user="deploy").stdout.strip()


def publish(repo: Path, registry: LocalRegistry, answers: dict, sha: str) -> None:
    """What the pipeline's image job does for one commit: bootJar and npm build, then build and push."""
    version = f"sha-{sha[:7]}"
    build_backend_jar(repo / JAR, version)
    build_frontend(repo / "frontend/build", version)
    for app in ("backend", "frontend"):
        image = f"{answers[f'{app}_image']}:{version}"
        sh("docker", "build", "-q", "-f", f"deploy/docker/{app}/Dockerfile", "--build-arg", f"APP_VERSION={version}",
           "--build-arg", f"VCS_REF={sha}", "-t", image, ".", cwd=repo,
           env={"PATH": os.environ["PATH"], "DOCKER_BUILDKIT": "0"}, timeout=900)
        sh("docker", "push", "-q", image, timeout=600)
        sh("docker", "image", "rm", image)  # the server must pull it


@pytest.fixture(scope="module")
def setup(base_images, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ssh-deploy")
    registry = LocalRegistry(workdir)
    registry.start()
    # What the server sees, mounted at the same path in its container: the deploy directory and
    # `origin`. Outside pytest's private tmp directory, so that the deploy user can reach it.
    server_root = Path(tempfile.mkdtemp(prefix="petory-ssh-deploy-"))
    server_root.chmod(0o755)
    deploy_dir = server_root / "srv" / "petory-deploy"
    answers = {
        "environments": ["staging"], "tls_mode_staging": "self-signed", "server_size": "small", "advanced": True,
        "domain": "petory.app",
        "staging_ssh_host": "127.0.0.1", "staging_ssh_user": "deploy", "staging_deploy_dir": str(deploy_dir),
        "backend_image": f"{registry.host}/petory/petory-backend",
        "frontend_image": f"{registry.host}/petory/petory-frontend",
        **base_images,
    }
    server = stack = None
    try:
        # The GitHub repository: the generated files, two commits, the app's build output ignored.
        repo = render(workdir / "repo", answers)
        sh("git", "init", "-q", "-b", "main", repo)
        (repo / ".git/info/exclude").write_text("backend/build/\nfrontend/build/\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "Deployment from the Petory template")
        first = git(repo, "rev-parse", "HEAD")
        publish(repo, registry, answers, first)
        readme = repo / "deploy/README.md"
        readme.write_text(readme.read_text() + "\nSecond release.\n")
        git(repo, "commit", "-q", "-am", "Second release")
        second = git(repo, "rev-parse", "HEAD")
        publish(repo, registry, answers, second)
        origin = server_root / "origin.git"
        sh("git", "clone", "-q", "--bare", repo, origin)

        # The server, prepared as deploy/docs/03-cicd-pipeline.md says: a checkout of the repository
        # and deploy/env/staging.env with the generated secrets. Loopback ports and a unique project here.
        sh("git", "clone", "-q", origin, deploy_dir)
        git(deploy_dir, "checkout", "-q", first)
        project_name = f"petory-ssh-{uuid.uuid4().hex[:8]}"
        stack = Stack(deploy_dir, "staging", DOMAIN, version=None, name=project_name,
                      backend_image=answers["backend_image"], frontend_image=answers["frontend_image"])
        env_text = (repo / "deploy/env/staging.env").read_text()
        for key, value in (("COMPOSE_PROJECT_NAME", project_name), ("EDGE_BIND_ADDRESS", "127.0.0.1"),
                           ("EDGE_HTTP_PORT", str(stack.http_port)), ("EDGE_HTTPS_PORT", str(stack.https_port))):
            env_text, count = re.subn(rf"(?m)^{key}=.*$", f"{key}={value}", env_text)
            assert count == 1, key
        (deploy_dir / "deploy/env/staging.env").write_text(env_text)
        (deploy_dir / "deploy/env/staging.env").chmod(0o600)
        sh("chown", "-R", "1000:1000", deploy_dir, origin)

        # The deploy key, made for this purpose only; the workflow gets the private half as a secret.
        keys = workdir / "keys"
        keys.mkdir()
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "github-actions-deploy", "-f", keys / "id")
        server = Server(server_root, (keys / "id.pub").read_text().strip(), server_base_image())
        server.start()
        # The operator's one-time step before the first deploy (`make certs ENV=staging`); the
        # runner's curl trusts the resulting self-signed certificate.
        server.exec("sh", "-c", f"cd {deploy_dir} && deploy/scripts/init-certificates.sh staging", user="deploy")
        curl_home = workdir / "runner-home"
        curl_home.mkdir()
        volume = f"{project_name}_certs"
        (curl_home / "ca.pem").write_text(sh(
            "docker", "run", "--rm", "-v", f"{volume}:/c:ro", "--entrypoint", "cat", base_images["edge_nginx_image"],
            f"/c/live/{DOMAIN}/fullchain.pem").stdout)

        pipeline = repo / ".github/workflows/deploy-pipeline.yml"
        private_key = (keys / "id").read_text()
        expressions = {
            "vars.SSH_PORT || '22'": str(server.port),
            "vars.SMOKE_API_PATH || '/api/'": "/api/",
            "secrets.SSH_PRIVATE_KEY": private_key,
        }
        runner = Runner.called_by(pipeline, "deploy-staging", repo, workdir, expressions)
        yield Setup(repo, deploy_dir, runner, server, stack, registry, private_key, [first, second], curl_home)
    finally:
        try:
            if stack is not None:
                stack.down(volumes=True)
                assert not stack.leftovers(), stack.leftovers()
        finally:
            if server is not None:
                server.stop()
            registry.stop()
            images = sh("docker", "image", "ls", "-q", f"{registry.host}/petory/*", check=False).stdout.split()
            if images:
                sh("docker", "image", "rm", "-f", *set(images), check=False)
            shutil.rmtree(server_root, ignore_errors=True)


def assert_no_secret_in(run: JobRun, private_key: str) -> None:
    body = "".join(private_key.strip().splitlines()[1:-1])
    for chunk in (body[i:i + 24] for i in range(0, len(body), 24)):
        assert chunk not in run.output.replace("\n", ""), "a piece of the private key reached the log"


def test_a_wrong_host_key_stops_the_job_before_anything_runs_on_the_server(setup):
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "impostor", "-f", setup.curl_home / "impostor")
    impostor = (setup.curl_home / "impostor.pub").read_text().split()
    run = setup.run_job(setup.commits[0], known_hosts=f"[127.0.0.1]:{setup.server.port} {impostor[0]} {impostor[1]}")
    assert run.outcome("Set up SSH") == "failure", run.output
    assert "Host key verification failed" in run.output or "REMOTE HOST IDENTIFICATION HAS CHANGED" in run.output
    assert run.outcome("Deploy") == "skipped" and run.outcome("Roll back") == "skipped"
    assert run.outcome("Remove the SSH key") == "success"
    assert setup.server_head() == setup.commits[0]  # nothing happened on the server
    assert_no_secret_in(run, setup.private_key)


def test_first_deploy_over_ssh_checks_out_the_commit_and_serves_its_images(setup, summary):
    sha = setup.commits[0]
    # Before: the server's checkout is on main (the second commit), not on the commit to deploy.
    setup.server.exec("git", "-C", setup.deploy_dir, "checkout", "-q", "main", user="deploy")
    assert setup.server_head() == setup.commits[1]
    began = time.monotonic()
    run = setup.run_job(sha)
    summary.append(f"ssh deploy: first deploy of {setup.version(sha)} through deploy-environment.yml's steps took "
                   f"{time.monotonic() - began:.1f} s")
    assert run.ok, run.output
    assert run.outcome("Roll back") == "skipped"
    assert "host key verified" in run.output and "smoke: GET https://" in run.output
    assert setup.server_head() == sha
    assert setup.served_versions() == (setup.version(sha), setup.version(sha))
    assert not list(Path(setup.runner.workdir).glob("runner-temp-*/ssh"))  # the key is gone from the runner
    assert_no_secret_in(run, setup.private_key)


def test_next_commit_is_deployed_blue_green(setup, summary):
    sha = setup.commits[1]
    began = time.monotonic()
    run = setup.run_job(sha)
    summary.append(f"ssh deploy: {setup.version(setup.commits[0])} -> {setup.version(sha)} took "
                   f"{time.monotonic() - began:.1f} s")
    assert run.ok, run.output
    assert setup.server_head() == sha
    assert "Second release." in (setup.deploy_dir / "deploy/README.md").read_text()
    assert setup.served_versions() == (setup.version(sha), setup.version(sha))
    history = (setup.deploy_dir / "deploy/.deploy/staging/history").read_text().split()
    assert setup.version(sha) in history


def test_failed_smoke_check_runs_the_rollback_script(setup, summary):
    # The public URL is unreachable (the name points at a closed port): the smoke check fails
    # although the deploy itself succeeded, and the job rolls back to the previous version.
    closed = free_port()
    began = time.monotonic()
    run = setup.run_job(setup.commits[1], https_port=closed)
    summary.append(f"ssh deploy: failed smoke check and rollback took {time.monotonic() - began:.1f} s")
    assert not run.ok
    assert run.outcome("Deploy") == "success" and run.outcome("Smoke check") == "failure"
    assert run.outcome("Roll back") == "success", run.output
    assert run.outcome("Remove the SSH key") == "success"
    assert setup.served_versions() == (setup.version(setup.commits[0]), setup.version(setup.commits[0]))
    assert_no_secret_in(run, setup.private_key)
