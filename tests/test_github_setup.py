"""make github ENV=<env> (scripts/github-setup.sh): the GitHub environment and its deploy secrets.

It runs against a stub `gh` on PATH that records every call with its stdin and answers the way
the CLI does (`api user --jq .id` prints an id; a deployment policy that exists already fails with
"HTTP 422"). GitHub itself cannot be reached from the machines that run these tests: the calls are
checked against the REST API's documented shapes here, and the first `make github` on a real
repository is the live proof.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from script_helpers import private_copy, reasons

STUB = Path(__file__).resolve().parent / "fixtures/gh_stub.sh"
HOST = "petory.example.com"  # prod's SSH host in the servers-only answers (its domain)


@pytest.fixture(scope="module")
def host_key(tmp_path_factory) -> str:
    """A known_hosts line of the server (ssh-keygen -F skips a key that does not parse)."""
    path = tmp_path_factory.mktemp("host-key") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)
    return HOST + " " + " ".join(path.with_suffix(".pub").read_text().split()[:2])


@pytest.fixture(scope="module")
def deploy(rendered, tmp_path_factory) -> Path:
    return private_copy(rendered, tmp_path_factory.mktemp("github"))


@pytest.fixture
def home(tmp_path, host_key) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", home / ".ssh/petory-prod-ci"], check=True)
    (home / ".ssh/known_hosts").write_text(host_key + "\n")
    (tmp_path / "bin").mkdir()
    shutil.copy2(STUB, tmp_path / "bin/gh")
    (tmp_path / "stub").mkdir()
    return home


def github(deploy: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    stub = home.parent
    return subprocess.run(["make", "github", *args], cwd=deploy, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(home), "PATH": f"{stub / 'bin'}:{os.environ['PATH']}",
                               "STUB_DIR": str(stub / "stub")})


def calls(home: Path) -> list[tuple[str, str | None]]:
    stub = home.parent / "stub"
    lines = (stub / "calls").read_text().splitlines() if (stub / "calls").exists() else []
    return [(line, (stub / f"stdin.{n}").read_text() if (stub / f"stdin.{n}").exists() else None)
            for n, line in enumerate(lines, 1)]


def test_prod_gets_a_reviewed_environment_limited_to_main_and_release_tags_and_both_secrets(deploy, home, host_key):
    proc = github(deploy, home, "ENV=prod")
    assert proc.returncode == 0, proc.stderr
    made = calls(home)
    writes = [(line, stdin) for line, stdin in made if stdin is not None]
    assert [line for line, _ in writes] == [
        "api --silent --method PUT repos/petory/petory-deploy/environments/prod --input -",
        "api --silent --method POST repos/petory/petory-deploy/environments/prod/deployment-branch-policies --input -",
        "api --silent --method POST repos/petory/petory-deploy/environments/prod/deployment-branch-policies --input -",
        "secret set SSH_PRIVATE_KEY --repo petory/petory-deploy --env prod",
        "secret set SSH_KNOWN_HOSTS --repo petory/petory-deploy --env prod",
    ]
    environment, main, tags, key, known_hosts = (stdin for _, stdin in writes)
    assert json.loads(environment) == {"reviewers": [{"type": "User", "id": 4242}],
                                       "deployment_branch_policy": {"protected_branches": False,
                                                                    "custom_branch_policies": True}}
    assert [json.loads(main), json.loads(tags)] == [{"name": "main", "type": "branch"}, {"name": "v*.*.*", "type": "tag"}]
    private = (home / ".ssh/petory-prod-ci").read_text()
    assert key == private and known_hosts == host_key + "\n"
    # The private key travels on stdin only: no call's arguments hold any of it.
    assert not any(part in line for line, _ in made for part in private.splitlines()[1:-1])
    assert reasons(proc)[-1] == "github prod: done; the deploy job of prod logs in to petory.example.com with petory-prod-ci"


def test_staging_is_not_reviewed_and_existing_policies_and_named_reviewers_are_kept(deploy, home, host_key):
    key = home / ".ssh/petory-staging-ci"
    (home / ".ssh/petory-prod-ci").rename(key)
    (home / ".ssh/known_hosts").write_text(host_key.replace(HOST, f"staging.{HOST}") + "\n")
    assert github(deploy, home, "ENV=staging").returncode == 0
    writes = [(line, stdin) for line, stdin in calls(home) if stdin is not None]
    assert writes[0] == ("api --silent --method PUT repos/petory/petory-deploy/environments/staging --input -", "{}\n")
    assert [line.split()[2] for line, _ in writes[1:]] == ["SSH_PRIVATE_KEY", "SSH_KNOWN_HOSTS"]

    key.rename(home / ".ssh/petory-prod-ci")
    (home / ".ssh/known_hosts").write_text(host_key + "\n")
    (home.parent / "stub/policy-main").touch()  # a second run: the policy is there
    proc = github(deploy, home, "ENV=prod", "ARGS=--reviewers alice,bob")
    assert proc.returncode == 0, proc.stderr
    environment = next(stdin for line, stdin in calls(home) if line.endswith("environments/prod --input -"))
    assert json.loads(environment)["reviewers"] == [{"type": "User", "id": 77}, {"type": "User", "id": 77}]


@pytest.mark.parametrize("fault,expected", [
    ("no-host-key", "no host key of petory.example.com in your known_hosts: log in once with ssh admin@petory.example.com"),
    ("no-ci-key", "CI's deploy key {home}/.ssh/petory-prod-ci is missing: make provision ENV=prod creates it"),
    ("public-key", "{home}/.ssh/petory-prod-ci is not a private key; give the file without .pub"),
    ("logged-out", "gh is not logged in: gh auth login"),
    ("unknown-reviewer", "no GitHub account ghost (--reviewers)"),
])
def test_bad_input_stops_with_one_line_before_github_changes(deploy, home, fault, expected):
    args = ["ENV=prod"]
    key = home / ".ssh/petory-prod-ci"
    if fault == "no-host-key":
        (home / ".ssh/known_hosts").write_text("")
    elif fault == "no-ci-key":
        key.unlink()
    elif fault == "public-key":
        key.write_text(key.with_suffix(".pub").read_text())
    elif fault == "logged-out":
        (home.parent / "stub/logged-out").touch()
    else:
        args.append("ARGS=--reviewers ghost")
    proc = github(deploy, home, *args)
    assert proc.returncode != 0
    errors = [line for line in reasons(proc) if line.startswith("ERROR")]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {expected.format(home=home)}"), proc.stderr
    assert not [line for line, stdin in calls(home) if stdin is not None], "GitHub was changed"


def test_a_dry_run_prints_the_calls_and_changes_nothing(deploy, home):
    proc = github(deploy, home, "ENV=prod", "ARGS=--dry-run")
    assert proc.returncode == 0, proc.stderr
    printed = [line for line in proc.stdout.splitlines() if line.startswith("gh ")]
    assert printed[0] == "gh api --silent --method PUT repos/petory/petory-deploy/environments/prod --input -"
    assert printed[-1] == "gh secret set SSH_KNOWN_HOSTS --repo petory/petory-deploy --env prod"
    assert [line for line, _ in calls(home)] == ["repo view --json nameWithOwner --jq .nameWithOwner"]
