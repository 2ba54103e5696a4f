"""Dev's database UI: Adminer, as compose.dev.yaml runs it, lists the application's schema.

The dev stack itself (Gradle, npm) is not started. The `adminer` service of the generated
compose.dev.yaml runs as that file says (image contract, ADMINER_DEFAULT_SERVER, read-only with
/tmp) against the MySQL of the shared staging stack: attached to the stack's data network, where
the service name `mysql` resolves as in dev, and published on 127.0.0.1 only. The shared stacks
accept plaintext (`db_tls: off`, tests/live/conftest.py), as dev's MySQL does for Adminer. The test logs in
through Adminer's HTML login form as the application's database user, like a developer would.
"""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from standins import ensure_tool_images  # noqa: E402
from stack import free_port  # noqa: E402

pytestmark = pytest.mark.live

# The render whose compose.dev.yaml defines the service (tests/answer_sets.py).
DEV_ANSWER_SET = "defaults"


class ComposeLoader(yaml.SafeLoader):
    """YAML of a Compose file: its merge tags (`!reset`, `!override`) read as plain values."""


ComposeLoader.add_multi_constructor("!", lambda loader, _tag, node: loader.construct_scalar(node)
                                    if isinstance(node, yaml.ScalarNode) else None)


def docker(*args: str, check: bool = True, timeout: float = 120):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def adminer_image(official: str, base_images: dict) -> str:
    """The generated default image when the official base images are in use and it pulls, else the stand-in."""
    if base_images.get("mysql_image", "").startswith("mysql:") and docker("pull", "-q", official, check=False).returncode == 0:
        return official
    return ensure_tool_images(["adminer"], log=lambda _: None)["adminer"]


class Browser:
    """HTTP to 127.0.0.1 with a cookie jar: Adminer keeps the login in its session cookies."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, query: str = "") -> str:
        with self.opener.open(self.base + query, timeout=10) as resp:
            return resp.read().decode()

    def post(self, fields: dict[str, str]) -> tuple[int, str, str]:
        """Submit a form to Adminer's front page: the status, final URL (after redirects) and page."""
        try:
            with self.opener.open(self.base, data=urllib.parse.urlencode(fields).encode(), timeout=10) as resp:
                return resp.status, resp.url, resp.read().decode()
        except urllib.error.HTTPError as err:  # a refused login is a 403 page
            with err:
                return err.code, err.url, err.read().decode()


def wait_until_up(browser: Browser, container: str, seconds: float = 20) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return browser.get()
        except (urllib.error.URLError, ConnectionError) as err:
            if time.monotonic() > deadline:
                logs = docker("logs", "--tail", "30", container, check=False)
                raise AssertionError(f"Adminer did not answer within {seconds:.0f}s ({err}):\n{logs.stdout}{logs.stderr}")
            time.sleep(0.3)


@pytest.fixture(scope="module")
def dev_adminer(rendered) -> dict:
    """The `adminer` service of the generated compose.dev.yaml."""
    compose = yaml.load((rendered(DEV_ANSWER_SET) / "deploy/compose.dev.yaml").read_text(), ComposeLoader)  # noqa: S506
    return compose["services"]["adminer"]


@pytest.fixture(scope="module")
def adminer(staging_stack, dev_adminer, base_images):
    """Adminer as dev runs it, attached to the data network of the shared staging stack."""
    image = adminer_image(dev_adminer["image"], base_images)
    name = f"petory-live-adminer-{uuid.uuid4().hex[:8]}"
    port = free_port()
    (host_ip, _, container_port), = [binding.rsplit(":", 2) for binding in dev_adminer["ports"]]
    # Docker publishes no port from an internal network (the staging data network is one; dev's
    # is not): the port goes through a network of the test's own, MySQL through the stack's.
    docker("network", "create", name)
    try:
        docker("run", "-d", "--name", name, "--network", name, "-p", f"{host_ip}:{port}:{container_port}",
               *(["--read-only"] if dev_adminer.get("read_only") else []),
               *[arg for path in dev_adminer.get("tmpfs", []) for arg in ("--tmpfs", path)],
               *[arg for opt in dev_adminer.get("security_opt", []) for arg in ("--security-opt", opt)],
               *[arg for key, value in dev_adminer["environment"].items() for arg in ("-e", f"{key}={value}")],
               image)
        docker("network", "connect", f"{staging_stack.name}_data", name)
        browser = Browser(port)
        yield {"browser": browser, "front_page": wait_until_up(browser, name), "image": image,
               "server": dev_adminer["environment"]["ADMINER_DEFAULT_SERVER"]}
    finally:
        docker("rm", "-f", name, check=False)
        docker("network", "rm", name, check=False)


def mysql_credentials(stack) -> dict[str, str]:
    """The application's database, user and password, as the stack's MySQL container was given them."""
    (mysql,) = stack.containers()["mysql"]
    env = dict(item.split("=", 1) for item in mysql["Config"]["Env"])
    return {"db": env["MYSQL_DATABASE"], "user": env["APP_DB_USER"], "password": env["APP_DB_PASSWORD"]}


def login(browser: Browser, server: str, creds: dict[str, str], password: str) -> tuple[int, str, str]:
    return browser.post({"auth[driver]": "server", "auth[server]": server, "auth[username]": creds["user"],
                         "auth[password]": password, "auth[db]": creds["db"]})


def test_adminer_lists_the_application_schema_of_the_stacks_mysql(adminer, staging_stack, summary):
    browser, server = adminer["browser"], adminer["server"]
    # The login form comes with the server that ADMINER_DEFAULT_SERVER names.
    assert re.search(r'name="auth\[server\]" value="([^"]*)"', adminer["front_page"]).group(1) == server

    creds = mysql_credentials(staging_stack)
    tables = staging_stack.compose("exec", "-T", "mysql", "mysql", "-N", "-u", creds["user"], f"-p{creds['password']}",
                                   "-e", "SHOW TABLES", creds["db"]).stdout.decode().split()
    assert "pets" in tables  # the staging seed (docker/mysql/seed/staging.sql)

    status, url, page = login(browser, server, creds, "wrong-" + creds["password"])
    assert status == 403 and "pets" not in page, (status, url)  # refused: the listing below can fail

    status, url, page = login(browser, server, creds, creds["password"])
    assert status == 200 and f"db={creds['db']}" in url and f"<h2>Database: {creds['db']}</h2>" in page, page[-2000:]
    listed = set(re.findall(r"(?:[?&]|&amp;)table=([A-Za-z0-9_$]+)", page))
    assert set(tables) <= listed, (tables, sorted(listed))
    summary.append(f"live dev tools: Adminer ({adminer['image']}) listed {len(tables)} table(s) of {creds['db']}")
