"""Live-test fixtures: a Docker engine (mandatory in CI), base images, and running stacks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_app import build_backend_jar, build_frontend  # noqa: E402
from stack import Stack, base_image_answers, docker_ok, render  # noqa: E402

# The answers of the live stack: both server environments, self-signed TLS (no ACME server
# needed), the recommended size (2 backend replicas) and the chosen base images.
LIVE_ANSWERS = {
    "environments": ["staging", "prod"],
    # Plaintext to MySQL, as dev has it: dev's Adminer (tests/live/test_dev_tools.py, on the staging
    # stack) connects without TLS. TLS runs on database_stack and in test_deploy.py's stack.
    "advanced": True,
    "db_tls": "off",
    "tls_mode_staging": "self-signed",
    "tls_mode_prod": "self-signed",
    "server_size": "medium",
}


# The modules that provision hosts (a fresh server's container with its own Docker engine, a clean
# Debian host) share nothing with the stacks' modules: tests/run.sh runs the two groups side by side
# on two pytest-xdist workers, each group in its file order on one worker.
HOST_MODULES = {"test_go_live.py", "test_provision.py", "test_tools_clean_host.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/live/" in str(item.fspath):
            item.add_marker(pytest.mark.live)
            group = "hosts" if Path(str(item.fspath)).name in HOST_MODULES else "stacks"
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def docker_engine():
    if docker_ok():
        return
    message = "no Docker engine answers `docker info`: live tests need one (tests/run.sh installs and starts it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def base_images(docker_engine, summary):
    images, kind = base_image_answers()
    summary.append(f"live: base images = {kind}: " + ", ".join(f"{k}={v}" for k, v in images.items()))
    return images


@pytest.fixture(scope="session")
def live_project(base_images, tmp_path_factory):
    """The generated repository used by every live stack, with the sample app built into it."""
    project = render(tmp_path_factory.mktemp("live") / "petory-deploy", {**LIVE_ANSWERS, **base_images})
    build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
    build_frontend(project / "frontend/build", "1.0.0")
    return project


def _running_stack(live_project, env: str):
    domain = {"staging": "staging.petory.example.com", "prod": "petory.example.com"}[env]
    running = Stack(live_project, env, domain)
    try:
        running.up()
        yield running
    finally:
        running.down(volumes=True)
        left = running.leftovers()
        assert not left, f"teardown left {left} behind"


# One running stack per environment for the whole session, shared by every test that only reads
# from it (tests/live/test_stack.py and the stack benchmark's light mode); started cold once each.
@pytest.fixture(scope="session")
def staging_stack(live_project):
    yield from _running_stack(live_project, "staging")


@pytest.fixture(scope="session")
def prod_stack(live_project):
    yield from _running_stack(live_project, "prod")


@pytest.fixture(params=["staging", "prod"])
def stack(request):
    """The shared running stack of one environment; torn down at the end of the session."""
    return request.getfixturevalue(f"{request.param}_stack")


# -- The database tier's stack (issue 15): tests/live/test_db_tls.py, test_backups.py, test_pitr.py --
import subprocess  # noqa: E402
from dataclasses import dataclass  # noqa: E402

# One prod stack for the three: MySQL over verified TLS (db_tls), self-signed edge TLS, the
# recommended size; the API limit is raised because all test traffic comes from one address.
DATABASE_ANSWERS = {
    "environments": ["prod"],
    "tls_mode_prod": "self-signed",
    "server_size": "medium",
    "advanced": True,
    "db_tls": "verify-identity",
    "api_rate_limit": 1000,
}


@dataclass
class DatabaseStack:
    stack: Stack
    age_identity: Path  # age-keygen's file: the private key, which restores and drills decrypt with
    age_recipient: str  # its public key (age1...), the backup_age_recipient answer


@pytest.fixture(scope="session")
def age_key_pair(tmp_path_factory) -> tuple[Path, str]:
    """An age key pair made once per session: (identity file, recipient)."""
    identity = tmp_path_factory.mktemp("age") / "identity.txt"
    try:
        subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    except FileNotFoundError:
        pytest.fail("age-keygen is missing: apt-get install -y age (tests/run.sh installs it)", pytrace=False)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True,
                               text=True).stdout.strip()
    return identity, recipient


@pytest.fixture(scope="session")
def database_stack(base_images, age_key_pair, tmp_path_factory, summary):
    identity, recipient = age_key_pair
    answers = {**DATABASE_ANSWERS, "backup_age_recipient": recipient, **base_images}  # dumps encrypted to it
    project = render(tmp_path_factory.mktemp("database") / "petory-deploy", answers)
    build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "1.0.0")
    build_frontend(project / "frontend/build", "1.0.0")
    running = Stack(project, "prod", "petory.example.com")
    try:
        running.up()
        summary.append(f"database stack: prod with db_tls=verify-identity up in {running.cold_up_seconds:.1f} s (cold)")
        yield DatabaseStack(running, identity, recipient)
    finally:
        running.down(volumes=True)
        left = running.leftovers()
        assert not left, f"teardown left {left} behind"
