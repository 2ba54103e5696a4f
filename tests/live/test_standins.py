"""The registry-free stand-ins honour the contracts of the official images they replace.

Each check is one a healthcheck, a Dockerfile step or the generated stack relies on, so what
passes here on a stand-in also holds on nginx:1.28-alpine, mysql:8.0, redis:7-alpine and
eclipse-temurin:17-jre. Containers are named with a unique prefix, reached only through ports
published on 127.0.0.1 or `docker exec`, and always removed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import standins  # noqa: E402

pytestmark = pytest.mark.live

PREFIX = f"petory-standin-test-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# helpers


def docker(*args: str, check: bool = True, timeout: float = 120, input_text: str | None = None):
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          input=input_text)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def sh(container: str, script: str, *, user: str | None = None, check: bool = True):
    """Run a /bin/sh script in a running container."""
    args = ["exec"] + (["-u", user] if user else []) + [container, "sh", "-c", script]
    return docker(*args, check=check)


class Containers:
    """Creates uniquely named containers and volumes; removes all of them at teardown."""

    def __init__(self):
        self.names: list[str] = []
        self.volumes: list[str] = []

    def name(self, role: str) -> str:
        name = f"{PREFIX}-{role}-{uuid.uuid4().hex[:6]}"
        self.names.append(name)
        return name

    def volume(self, role: str) -> str:
        name = f"{PREFIX}-{role}-{uuid.uuid4().hex[:6]}"
        self.volumes.append(name)
        docker("volume", "create", name)
        return name

    def run(self, role: str, image: str, *args: str) -> str:
        name = self.name(role)
        docker("run", "-d", "--name", name, *_split(args, image))
        return name

    def cleanup(self):
        for name in reversed(self.names):
            docker("rm", "-f", "-v", name, check=False)
        for volume in self.volumes:
            docker("volume", "rm", "-f", volume, check=False)
        left = docker("ps", "-a", "-q", "--filter", f"name={PREFIX}", check=False).stdout.split()
        assert not left, f"containers left behind: {left}"


def _split(args: tuple[str, ...], image: str) -> list[str]:
    """Docker options before "--", the command after it: run(role, image, *opts, "--", *cmd)."""
    if "--" in args:
        i = args.index("--")
        return [*args[:i], image, *args[i + 1:]]
    return [*args, image]


def published_port(container: str, port: int) -> int:
    out = docker("port", container, f"{port}/tcp").stdout.strip().splitlines()
    for line in out:
        host, _, number = line.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0"):
            return int(number)
    raise AssertionError(f"{container}: port {port} not published: {out}")


def wait_for(predicate, what: str, timeout: float = 60, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def http_get(port: int, path: str = "/", host: str = "localhost") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - fixed local URL
        return response.status, response.read().decode()


def logs(container: str) -> str:
    proc = docker("logs", container, check=False)
    return proc.stdout + proc.stderr


def shared_dir() -> Path:
    """A host directory the containers' non-root users can read (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="petory-standin-test-"))
    path.chmod(0o755)
    return path


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.parents:
        if parent == Path(tempfile.gettempdir()):
            break
        parent.chmod(0o755)
    path.write_text(text)
    path.chmod(mode)
    return path


def image_config(image: str) -> dict:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def images(docker_engine, summary):
    started = time.monotonic()
    lines: list[str] = []
    result = standins.ensure_standin_images(log=lines.append)
    print("\n".join(lines))
    summary.append(f"standins: ensure_standin_images took {time.monotonic() - started:.1f}s")
    return result


@pytest.fixture
def containers():
    made = Containers()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def workdir():
    path = shared_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the Python API


def test_api_mapping_is_the_fixed_contract():
    assert standins.STANDIN_IMAGES == {
        "nginx": "petory-standin/nginx:alpine",
        "frontend_nginx": "petory-standin/nginx:alpine",
        "mysql": "petory-standin/mysql:8.0",
        "redis": "petory-standin/redis:7",
        "jre": "petory-standin/jre:17",
    }


def test_second_call_is_cached_and_fast(images):
    lines: list[str] = []
    started = time.monotonic()
    assert standins.ensure_standin_images(log=lines.append) == standins.STANDIN_IMAGES
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"cached call took {elapsed:.1f}s: {lines}"
    for tag in set(standins.STANDIN_IMAGES.values()):
        assert f"standins: {tag} up to date" in lines, lines
        label = image_config(tag)["Labels"][standins.HASH_LABEL]
        assert re.fullmatch(r"[0-9a-f]{64}", label), label
    for tag in standins.BASE_IMAGES.values():
        assert docker("image", "inspect", tag, check=False).returncode == 0


def test_cli_help():
    proc = subprocess.run([sys.executable, str(Path(standins.__file__)), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "debootstrap" in proc.stdout and "--force" in proc.stdout


def test_shell_scripts_and_dockerfiles_lint():
    bindir = Path(sys.executable).parent
    scripts = sorted(p for p in standins.STANDINS_DIR.rglob("*") if p.suffix in (".sh", ".envsh"))
    assert scripts
    shellcheck = shutil.which("shellcheck", path=str(bindir)) or shutil.which("shellcheck")
    hadolint = shutil.which("hadolint", path=str(bindir)) or shutil.which("hadolint")
    assert shellcheck and hadolint, "shellcheck and hadolint are test dependencies"
    proc = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    for dockerfile in sorted(standins.STANDINS_DIR.glob("*/Dockerfile")):
        text = dockerfile.read_text()
        assert "# syntax=" not in text and "--mount" not in text and "--chmod" not in text
        proc = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{dockerfile}: {proc.stdout}"


# ---------------------------------------------------------------------------------------------
# nginx (edge and frontend): nginx:1.28-alpine


NGINX = standins.STANDIN_IMAGES["nginx"]


def test_nginx_image_metadata(images):
    config = image_config(NGINX)
    assert config["Entrypoint"] == ["/docker-entrypoint.sh"]
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert config["StopSignal"] == "SIGQUIT"
    assert "80/tcp" in config["ExposedPorts"]
    assert standins.STANDIN_IMAGES["frontend_nginx"] == NGINX


def test_nginx_user_files_and_tools(images):
    out = docker("run", "--rm", NGINX, "sh", "-c", """
        id nginx
        ls -l /var/log/nginx/access.log /var/log/nginx/error.log
        test -f /usr/share/nginx/html/index.html && echo index-ok
        test -f /etc/nginx/mime.types && echo mime-ok
        grep -q 'include /etc/nginx/conf.d/\\*.conf;' /etc/nginx/nginx.conf && echo include-ok
        grep -Eq '^user +nginx;' /etc/nginx/nginx.conf && echo user-ok
        grep -Eq '^pid +(/var)?/run/nginx.pid;' /etc/nginx/nginx.conf && echo pid-ok
        for d in /var/cache/nginx/*_temp; do su -s /bin/sh nginx -c "test -w $d" || echo "not writable: $d"; done
        for tool in curl envsubst; do command -v $tool >/dev/null && echo "has $tool"; done
        for tool in bash openssl; do command -v $tool >/dev/null && echo "unexpected $tool"; done
        true
    """).stdout
    assert "uid=101(nginx) gid=101(nginx)" in out
    assert "/var/log/nginx/access.log -> /dev/stdout" in out
    assert "/var/log/nginx/error.log -> /dev/stderr" in out
    for marker in ("index-ok", "mime-ok", "include-ok", "user-ok", "pid-ok", "has curl", "has envsubst"):
        assert marker in out, out
    assert "not writable" not in out and "unexpected" not in out, out


def test_nginx_version_and_upstream_resolve(images, summary):
    version_out = docker("run", "--rm", NGINX, "nginx", "-v").stderr
    version = re.search(r"nginx/(\d+\.\d+\.\d+)", version_out).group(1)
    assert version_tuple(version) >= (1, 25, 0), version_out
    modules = docker("run", "--rm", NGINX, "nginx", "-V").stderr
    # `server ... resolve` in an upstream with a zone (nginx 1.27.3+), checked by nginx -t
    check = docker("run", "--rm", NGINX, "sh", "-c", """
        cat > /etc/nginx/conf.d/resolve.conf <<'EOF'
resolver 127.0.0.11 valid=10s;
upstream backend { zone backend 64k; server backend-blue:8080 resolve; }
server { listen 8081; location / { proxy_pass http://backend; } }
EOF
        nginx -t
    """, check=False)
    resolve = check.returncode == 0
    summary.append(f"standins: nginx stand-in {version}; upstream `server ... resolve`: "
                   f"{'supported' if resolve else 'NOT supported'}; "
                   f"sub module: {'yes' if '--with-http_sub_module' in modules else 'no'}")
    assert resolve, f"nginx {version} rejects `server ... resolve`:\n{check.stderr}"
    for module in ("http_ssl_module", "http_v2_module", "http_realip_module"):
        assert f"--with-{module}" in modules


def test_nginx_serves_port_80_and_reloads(images, containers):
    name = containers.run("nginx", NGINX, "-p", "127.0.0.1::80")
    port = published_port(name, 80)
    status, body = wait_for(lambda: http_get(port), "nginx on port 80")
    assert status == 200 and "Welcome to nginx!" in body
    assert "Configuration complete; ready for start up" in logs(name)
    # the official operator commands work as-is
    sh(name, "nginx -t && nginx -s reload")
    status, _ = wait_for(lambda: http_get(port), "nginx after reload")
    assert status == 200
    # workers run as nginx, the master as root
    uids = sh(name, """
        for p in /proc/[0-9]*; do
            case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in
                "nginx: worker process"*) awk '/^Uid/{print $2}' $p/status ;;
            esac
        done
    """).stdout.split()
    assert uids and set(uids) == {"101"}, uids


def test_nginx_templates_and_entrypoint_scripts(images, containers, workdir):
    write(workdir / "templates/petory.conf.template",
          "server {\n    listen 8080;\n"
          "    location / { return 200 \"foo=${FOO} envsh=${FROM_ENVSH} host=$host\\n\"; }\n}\n")
    write(workdir / "templates/sub/extra.conf.template", "# ${FOO} $remote_addr\n")
    write(workdir / "05-petory.envsh", "export FROM_ENVSH=sourced\n", 0o755)
    write(workdir / "40-petory.sh", "#!/bin/sh\necho \"petory-hook ran as $(id -u)\" > /tmp/hook\n", 0o755)
    write(workdir / "41-not-executable.sh", "#!/bin/sh\ntouch /tmp/should-not-exist\n", 0o644)
    name = containers.run(
        "nginx-tpl", NGINX, "-p", "127.0.0.1::8080", "-e", "FOO=bar",
        "-v", f"{workdir / 'templates'}:/etc/nginx/templates:ro",
        "-v", f"{workdir / '05-petory.envsh'}:/docker-entrypoint.d/05-petory.envsh:ro",
        "-v", f"{workdir / '40-petory.sh'}:/docker-entrypoint.d/40-petory.sh:ro",
        "-v", f"{workdir / '41-not-executable.sh'}:/docker-entrypoint.d/41-not-executable.sh:ro",
    )
    port = published_port(name, 8080)
    status, body = wait_for(lambda: http_get(port, host="petory.test"), "templated server")
    assert body.strip() == "foo=bar envsh=sourced host=petory.test"
    rendered = sh(name, "cat /etc/nginx/conf.d/petory.conf").stdout
    assert "foo=bar" in rendered and "$host" in rendered and "${FOO}" not in rendered
    assert sh(name, "cat /etc/nginx/conf.d/sub/extra.conf").stdout.strip() == "# bar $remote_addr"
    assert sh(name, "cat /tmp/hook").stdout.strip() == "petory-hook ran as 0"
    assert sh(name, "test -e /tmp/should-not-exist", check=False).returncode != 0
    output = logs(name)
    assert "/docker-entrypoint.sh: Sourcing /docker-entrypoint.d/05-petory.envsh" in output
    assert "/docker-entrypoint.sh: Launching /docker-entrypoint.d/40-petory.sh" in output
    assert "Ignoring /docker-entrypoint.d/41-not-executable.sh, not executable" in output
    assert ("20-envsubst-on-templates.sh: Running envsubst on /etc/nginx/templates/petory.conf.template"
            " to /etc/nginx/conf.d/petory.conf") in output


def test_nginx_envsubst_options_and_quiet_logs(images, workdir):
    write(workdir / "in/site.tpl", "a=${FOO_A} b=${BAR_B} $uri\n")
    (workdir / "out").mkdir(mode=0o777)
    proc = docker(
        "run", "--rm", "-e", "FOO_A=1", "-e", "BAR_B=2", "-e", "NGINX_ENVSUBST_FILTER=^FOO_",
        "-e", "NGINX_ENVSUBST_TEMPLATE_DIR=/in", "-e", "NGINX_ENVSUBST_TEMPLATE_SUFFIX=.tpl",
        "-e", "NGINX_ENVSUBST_OUTPUT_DIR=/out", "-e", "NGINX_ENTRYPOINT_QUIET_LOGS=1",
        "-v", f"{workdir / 'in'}:/in:ro", "-v", f"{workdir / 'out'}:/out",
        NGINX, "nginx", "-t",
    )
    assert (workdir / "out/site").read_text() == "a=1 b=${BAR_B} $uri\n"
    assert "docker-entrypoint" not in proc.stdout + proc.stderr  # quiet
    assert "test is successful" in proc.stderr


# ---------------------------------------------------------------------------------------------
# mysql: mysql:8.0


MYSQL = standins.STANDIN_IMAGES["mysql"]
MYSQL_ENV = {
    "MYSQL_ROOT_PASSWORD": "root-secret",
    "MYSQL_DATABASE": "petory",
    "MYSQL_USER": "petory_app",
    "MYSQL_PASSWORD": "app-secret",
}


def _mysql_files(workdir: Path) -> tuple[Path, Path]:
    conf = workdir / "conf.d"
    initdb = workdir / "initdb"
    write(conf / "petory.cnf", "[mysqld]\nmax_connections=77\n")
    # options MariaDB does not know: the server would refuse to start if it read them
    write(conf / "zz-petory-mysql80-only.cnf",
          "[mysqld]\ndefault_authentication_plugin=caching_sha2_password\nmysqlx=OFF\n")
    # sourced (not executable): uses the official helper and the "${mysql[@]}" array
    write(initdb / "10-schema.sh",
          'docker_process_sql --database="$MYSQL_DATABASE" <<<"CREATE TABLE pets (id INT PRIMARY KEY, name VARCHAR(40));"\n'
          '"${mysql[@]}" <<<"INSERT INTO pets VALUES (1, \'from-sh\');"\n')
    write(initdb / "20-data.sql", "INSERT INTO pets VALUES (2, 'from-sql');\n"
                                  "CREATE TABLE owners (id INT PRIMARY KEY);\n")
    return conf, initdb


def _mysql_query(container: str, sql: str, user: str = "petory_app", password: str = "app-secret",
                 database: str = "petory") -> str:
    # over TCP inside the container, as another container on the network would connect
    return docker("exec", container, "mysql", "-h127.0.0.1", "-P3306", f"-u{user}",
                  f"-p{password}", "-N", "-B", database, "-e", sql).stdout


def _start_mysql(containers: Containers, volume: str, conf: Path, initdb: Path) -> str:
    env = [arg for key, value in MYSQL_ENV.items() for arg in ("-e", f"{key}={value}")]
    name = containers.run("mysql", MYSQL, *env, "-p", "127.0.0.1::3306",
                          "-v", f"{volume}:/var/lib/mysql",
                          "-v", f"{conf}:/etc/mysql/conf.d:ro",
                          "-v", f"{initdb}:/docker-entrypoint-initdb.d:ro")
    # TCP answers only once the real server runs (the init server has networking disabled)
    wait_for(lambda: docker("exec", name, "mysqladmin", "-uroot", "-proot-secret", "-h127.0.0.1",
                            "ping", check=False).returncode == 0, "mysqld on TCP", timeout=180)
    return name


def test_mysql_image_metadata(images):
    config = image_config(MYSQL)
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["mysqld"]
    assert "/var/lib/mysql" in config["Volumes"]
    assert "3306/tcp" in config["ExposedPorts"]
    out = docker("run", "--rm", "--entrypoint", "sh", MYSQL, "-c",
                 "id mysql; for t in mysql mysqladmin mysqldump gzip bash; do command -v $t; done; "
                 "grep -c includedir /etc/my.cnf").stdout
    assert "uid=999(mysql) gid=999(mysql)" in out
    for tool in ("mysql", "mysqladmin", "mysqldump", "gzip", "bash"):
        assert re.search(rf"/{tool}$", out, re.M), out


def test_mysql_init_conf_and_persistence(images, containers, workdir):
    conf, initdb = _mysql_files(workdir)
    volume = containers.volume("mysql-data")
    name = _start_mysql(containers, volume, conf, initdb)
    output = logs(name)
    assert re.search(r"stand-in: MariaDB 11\.\d+\.\d+ standing in for MySQL 8\.0", output), output
    assert ("stand-in: skipping MySQL-8.0-only settings in "
            "/etc/mysql/conf.d/zz-petory-mysql80-only.cnf") in output
    assert "sourcing /docker-entrypoint-initdb.d/10-schema.sh" in output
    assert "running /docker-entrypoint-initdb.d/20-data.sql" in output

    # the user logs in and sees the init objects; other .cnf files are read
    assert _mysql_query(name, "SELECT name FROM pets ORDER BY id").split() == ["from-sh", "from-sql"]
    assert _mysql_query(name, "SHOW TABLES").split() == ["owners", "pets"]
    assert _mysql_query(name, "SELECT @@max_connections").strip() == "77"
    assert _mysql_query(name, "SELECT @@collation_server").strip() == "utf8mb4_0900_ai_ci"
    grants = _mysql_query(name, "SHOW GRANTS")
    assert "GRANT ALL PRIVILEGES ON `petory`.*" in grants
    denied = docker("exec", name, "mysql", "-h127.0.0.1", "-upetory_app", "-papp-secret", "mysql",
                    "-e", "SELECT 1", check=False)
    assert denied.returncode != 0  # ALL on MYSQL_DATABASE only
    # root with the password from anywhere (MYSQL_ROOT_HOST defaults to %)
    assert _mysql_query(name, "SELECT 1", user="root", password="root-secret").strip() == "1"

    # server runs as 999 and listens on 3306 on all interfaces (the published port answers)
    status = sh(name, "grep -E '^(Name|Uid)' /proc/1/status").stdout
    assert "mariadbd" in status and re.search(r"Uid:\s+999\s", status), status
    port = published_port(name, 3306)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        greeting = sock.recv(1024)
    assert b"mysql_native_password" in greeting or b"MariaDB" in greeting

    # graceful stop on SIGTERM, then the data survives a new container on the same volume
    started = time.monotonic()
    docker("stop", "-t", "30", name)
    assert time.monotonic() - started < 25
    assert "Shutdown complete" in logs(name)
    docker("rm", name)
    again = _start_mysql(containers, volume, conf, initdb)
    assert "init process done" not in logs(again)  # existing datadir: no second init
    assert _mysql_query(again, "SELECT COUNT(*) FROM pets").strip() == "2"


def test_mysql_refuses_uninitialised_without_password(images, containers):
    name = containers.name("mysql-nopw")
    proc = docker("run", "--name", name, MYSQL, check=False, timeout=120)
    assert proc.returncode != 0
    assert "password option is not specified" in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# redis: redis:7-alpine


REDIS = standins.STANDIN_IMAGES["redis"]


def test_redis_image_metadata_and_tools(images):
    config = image_config(REDIS)
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["redis-server"]
    assert config["WorkingDir"] == "/data"
    assert "/data" in config["Volumes"]
    assert "6379/tcp" in config["ExposedPorts"]
    out = docker("run", "--rm", REDIS, "sh", "-c",
                 "id redis; stat -c '%U %u' /data; for t in redis-cli redis-server curl wget bash; do "
                 "command -v $t >/dev/null && echo has-$t || echo no-$t; done").stdout
    assert "uid=999(redis) gid=1000(redis)" in out
    assert "redis 999" in out
    assert "has-redis-cli" in out and "has-redis-server" in out
    assert "no-curl" in out and "no-wget" in out and "no-bash" in out


def test_redis_runs_as_redis_with_password_and_aof(images, containers):
    volume = containers.volume("redis-data")
    name = containers.run("redis", REDIS, "-p", "127.0.0.1::6379", "-v", f"{volume}:/data",
                          "--", "redis-server", "--requirepass", "x", "--appendonly", "yes")
    port = published_port(name, 6379)

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"AUTH x\r\nPING\r\nSET petory ok\r\n")
            data = b""
            while data.count(b"\r\n") < 3:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
        return data == b"+OK\r\n+PONG\r\n+OK\r\n"

    wait_for(ping, "redis AUTH/PING/SET over the published port")
    noauth = docker("exec", name, "redis-cli", "ping").stdout
    assert "NOAUTH" in noauth
    status = sh(name, "grep -E '^(Uid|Gid)' /proc/1/status").stdout
    assert re.search(r"Uid:\s+999\s", status) and re.search(r"Gid:\s+1000\s", status), status
    listing = sh(name, "ls -ln /data /data/appendonlydir").stdout
    assert "appendonlydir" in listing
    assert re.search(r"appendonly\.aof\.\d+\.incr\.aof", listing), listing
    owners = {line.split()[2] for line in listing.splitlines() if line.startswith(("-", "d"))}
    assert owners == {"999"}, listing
    assert "yes" in docker("exec", name, "redis-cli", "-a", "x", "--no-auth-warning",
                           "config", "get", "appendonly").stdout
    # the official binary's compiled-in default
    assert "no" in docker("exec", name, "redis-cli", "-a", "x", "--no-auth-warning",
                          "config", "get", "protected-mode").stdout.split()[-1]


def test_redis_entrypoint_argument_rules(images, containers, workdir):
    write(workdir / "redis.conf", "port 6380\nprotected-mode yes\n")
    name = containers.run("redis-conf", REDIS, "-v", f"{workdir / 'redis.conf'}:/etc/petory-redis.conf:ro",
                          "--", "/etc/petory-redis.conf")
    wait_for(lambda: "PONG" in docker("exec", name, "redis-cli", "-p", "6380", "ping", check=False).stdout,
             "redis with a .conf first argument")
    # a config file that sets protected-mode keeps its value
    assert docker("exec", name, "redis-cli", "-p", "6380", "config", "get",
                  "protected-mode").stdout.split()[-1] == "yes"
    flags = containers.run("redis-flags", REDIS, "--", "--port", "6390")
    wait_for(lambda: "PONG" in docker("exec", flags, "redis-cli", "-p", "6390", "ping", check=False).stdout,
             "redis with a -- first argument")
    assert "Redis server v=7." in docker("run", "--rm", REDIS, "redis-server", "--version").stdout


# ---------------------------------------------------------------------------------------------
# jre: eclipse-temurin:17-jre


JRE = standins.STANDIN_IMAGES["jre"]


def test_jre_java_tools_and_environment(images):
    config = image_config(JRE)
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["JAVA_HOME"] == "/opt/java/openjdk"
    assert env["PATH"].startswith("/opt/java/openjdk/bin:")
    assert env["LANG"] == "en_US.UTF-8" and env["LC_ALL"] == "en_US.UTF-8"
    assert config["Entrypoint"] == ["/__cacert_entrypoint.sh"]
    version = docker("run", "--rm", JRE, "java", "-version").stderr
    assert re.search(r'version "17[.\d]*"', version), version
    out = docker("run", "--rm", JRE, "sh", "-c", """
        test -x "$JAVA_HOME/bin/java" && echo java-home-ok
        [ "$(command -v java)" = "$JAVA_HOME/bin/java" ] && echo java-on-path
        for t in curl wget fc-list; do command -v $t >/dev/null && echo has-$t; done
        test -f /etc/ssl/certs/ca-certificates.crt && echo ca-ok
        test -f /usr/share/zoneinfo/Asia/Seoul && echo tz-ok
        locale 2>&1 | grep -q 'Cannot' || echo locale-ok
        getent passwd | awk -F: '$3 >= 1000 && $3 < 65534 {print "user:" $1}'
    """).stdout
    for marker in ("java-home-ok", "java-on-path", "has-curl", "has-wget", "has-fc-list", "ca-ok",
                   "tz-ok", "locale-ok"):
        assert marker in out, out
    # no application user: only the Ubuntu base image's "ubuntu" (1000)
    assert [line for line in out.splitlines() if line.startswith("user:")] == ["user:ubuntu"]
    # file.encoding defaults to UTF-8 like on Temurin
    props = docker("run", "--rm", JRE, "java", "-XshowSettings:properties", "-version").stderr
    assert re.search(r"file\.encoding = UTF-8", props), props


def test_jre_cacert_entrypoint(images):
    out = docker("run", "--rm", "-e", "USE_SYSTEM_CA_CERTS=1", JRE, "sh", "-c",
                 'echo "cacerts=$JRE_CACERTS_PATH"', timeout=180).stdout
    assert "cacerts=/opt/java/openjdk/lib/security/cacerts" in out
