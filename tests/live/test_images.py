"""Both backend build modes build with the classic builder and carry the promised metadata."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from sample_app import build_backend_jar
from stack import render

FAKE_GRADLEW = """#!/bin/sh
# Stand-in for the Gradle wrapper (no Gradle distribution can be downloaded here): `bootJar`
# "builds" the jar that the test compiled beforehand, exactly where Gradle would put it.
set -eu
case " $* " in
  *" bootJar "*) mkdir -p build/libs && cp src/prebuilt/app.jar build/libs/petory-0.0.1-SNAPSHOT.jar ;;
  *) echo "fake gradlew: $*" ;;
esac
"""


def inspect(image: str) -> dict:
    return json.loads(subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True,
                                     check=True).stdout)[0]


@pytest.mark.parametrize("mode", ["ci-jar", "source"])
def test_backend_image_builds_in_both_modes(mode, base_images, tmp_path):
    answers = {"environments": ["prod"], "backend_build": mode, **base_images}
    if mode == "source":
        answers["jdk_image"] = base_images["jre_image"]  # the fake wrapper needs no compiler
    project = render(tmp_path / "repo", answers)
    if mode == "source":
        backend = project / "backend"
        (backend / "gradle" / "wrapper").mkdir(parents=True)
        (backend / "build.gradle").write_text("// fake project for the source-mode build test\n")
        (backend / "gradlew").write_text(FAKE_GRADLEW)
        (backend / "gradlew").chmod(0o755)
        build_backend_jar(backend / "src" / "prebuilt" / "app.jar", "2.0.0")
    else:
        build_backend_jar(project / "backend/build/libs/petory-0.0.1-SNAPSHOT.jar", "2.0.0")
    image = f"petory-live/backend-{mode}:{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(["docker", "build", "-q", "-f", "deploy/docker/backend/Dockerfile", "--build-arg", "APP_VERSION=2.0.0",
                           "--build-arg", "VCS_REF=abc1234", "-t", image, "."], cwd=project, capture_output=True,
                          text=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/local/bin"})
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        config = inspect(image)["Config"]
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == "2.0.0"
        assert labels["org.opencontainers.image.revision"] == "abc1234"
        assert config["User"] == "10001:10001"
        assert "/actuator/health" in " ".join(config["Healthcheck"]["Test"])
        assert any(arg.startswith("-XX:MaxRAMPercentage=") for arg in config["Entrypoint"])
        listing = subprocess.run(["docker", "run", "--rm", "--entrypoint", "ls", image, "-l", "/app/app.jar"],
                                 capture_output=True, text=True, check=True).stdout
        assert " root root " in listing  # the app user cannot modify its own code
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
