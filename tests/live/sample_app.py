"""Builds the sample Petory application deployed by the live tests.

* Backend: a plain-Java stand-in for the Petory Spring Boot app
  (tests/fixtures/petory_app/backend/src), compiled with the Debian JDK and packaged with
  Debian's MariaDB Connector/J (``libmariadb-java``) into a self-contained fat jar that runs
  with ``java -jar app.jar`` on a bare JRE. No Maven/Gradle: there is no Maven Central here.
* Frontend: a static Create-React-App-shaped build (tests/fixtures/petory_app/frontend),
  bundled by Python: hashed ``static/js/main.<hash>.js`` / ``static/css/main.<hash>.css``,
  ``index.html``, ``asset-manifest.json``, ``manifest.json``, ``robots.txt``, ``favicon.ico``.

Public API (used by the live tests): :func:`build_backend_jar`, :func:`build_frontend`,
:func:`connector_jar`.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
from pathlib import Path

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "petory_app"
BACKEND_SRC = FIXTURE_DIR / "backend" / "src"
FRONTEND_DIR = FIXTURE_DIR / "frontend"

MAIN_CLASS = "com.petory.fixture.PetoryApplication"
BUILD_RESOURCE = "petory-build.properties"  # read by AppConfig.loadBuildInfo()

# Bump when the packaging below changes, to invalidate cached jars.
_PACKAGING_REVISION = "1"
# Fixed entry timestamp: identical inputs give byte-identical jars.
_ZIP_DATE = (2024, 1, 1, 0, 0, 0)

_CONNECTOR_ENV = "PETORY_MARIADB_CONNECTOR_JAR"
_CONNECTOR_DIRS = (Path("/usr/share/java"),)
_JDK_PACKAGE = "openjdk-17-jdk-headless"
_CONNECTOR_PACKAGE = "libmariadb-java"

# Bundle order: dependencies before dependants (purely cosmetic, modules are lazy).
_JS_MODULES = ("config.js", "dom.js", "api.js", "i18n.js", "breeds.js", "App.js", "index.js")


# --------------------------------------------------------------------------- backend


def connector_jar() -> Path:
    """Path of Debian's MariaDB Connector/J jar (``$PETORY_MARIADB_CONNECTOR_JAR`` overrides)."""
    override = os.environ.get(_CONNECTOR_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise RuntimeError(
                f"{_CONNECTOR_ENV}={override} does not exist; unset it to use the Debian package "
                f"(apt-get install -y {_CONNECTOR_PACKAGE})"
            )
        return path
    for directory in _CONNECTOR_DIRS:
        # Debian ships mariadb-java-client.jar plus a versioned symlink to it.
        candidates = [directory / "mariadb-java-client.jar"]
        candidates += sorted(directory.glob("mariadb-java-client-*.jar"), reverse=True)
        for candidate in candidates:
            if candidate.is_file():
                return candidate.resolve()
    raise RuntimeError(
        "MariaDB Connector/J jar not found in /usr/share/java: install the Debian package "
        f"with `apt-get install -y {_CONNECTOR_PACKAGE}`"
    )


def connector_version(jar: Path | None = None) -> str:
    """Connector version from the jar's Maven metadata or OSGi manifest, e.g. ``2.7.6``."""
    jar = jar or connector_jar()
    with zipfile.ZipFile(jar) as zf:
        for name in zf.namelist():
            if name.startswith("META-INF/maven/") and name.endswith("/pom.properties"):
                for line in zf.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith("version="):
                        return line.split("=", 1)[1].strip()
        for line in zf.read("META-INF/MANIFEST.MF").decode("utf-8", "replace").splitlines():
            if line.startswith(("Bundle-Version:", "Implementation-Version:")):
                return line.split(":", 1)[1].strip()
    return "unknown"


def _javac() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return str(Path(java_home) / "bin" / "javac")
    found = shutil.which("javac")
    if not found:
        raise RuntimeError(
            "javac not found (a JDK 17+ is needed to build the sample backend): install the "
            f"Debian package with `apt-get install -y {_JDK_PACKAGE}`"
        )
    return found


def _cache_root() -> Path:
    return Path(os.environ.get("PETORY_FIXTURE_CACHE") or "~/.cache/petory-fixture").expanduser()


def _java_sources() -> list[Path]:
    sources = sorted(BACKEND_SRC.rglob("*.java"))
    if not sources:
        raise RuntimeError(f"no Java sources under {BACKEND_SRC}")
    return sources


def _sources_hash(sources: list[Path]) -> str:
    digest = hashlib.sha256(_PACKAGING_REVISION.encode())
    for src in sources:
        digest.update(b"\0" + src.relative_to(BACKEND_SRC).as_posix().encode() + b"\0")
        digest.update(src.read_bytes())
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compile(javac: str, sources: list[Path], src_hash: str) -> Path:
    """javac --release 17 into the cache; classes depend only on the sources, not on version."""
    classes_root = _cache_root() / "classes"
    final = classes_root / src_hash[:24]
    if final.is_dir():
        return final
    classes_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="javac-", dir=classes_root))
    try:
        out = work / "out"
        cmd = [javac, "--release", "17", "-encoding", "UTF-8", "-nowarn", "-d", str(out)]
        cmd += [str(s) for s in sources]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"javac failed ({result.returncode}) compiling {BACKEND_SRC}:\n"
                f"{result.stdout}{result.stderr}"
            )
        try:
            os.rename(out, final)  # atomic publish; a concurrent builder may have won the race
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _manifest(version: str, healthy: bool, connector_ver: str) -> bytes:
    def header(key: str, value: str) -> bytes:
        # Manifest lines are limited to 72 bytes; continuation lines start with one space.
        # Split on character boundaries so multi-byte UTF-8 stays intact.
        lines, current = [], b""
        for ch in f"{key}: {value}":
            encoded = ch.encode()
            if len(current) + len(encoded) > 72:
                lines.append(current)
                current = b" "
            current += encoded
        lines.append(current)
        return b"".join(line + b"\r\n" for line in lines)

    return (
        header("Manifest-Version", "1.0")
        + header("Main-Class", MAIN_CLASS)
        + header("Implementation-Title", "petory")
        + header("Implementation-Version", version)
        + header("Petory-Healthy", "true" if healthy else "false")
        + header("Petory-Bundled-Connector", f"mariadb-java-client {connector_ver}")
        + header("Created-By", "tests/live/sample_app.py")
        + b"\r\n"
    )


def _properties_escape(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"value must be a single line: {value!r}")
    return value.replace("\\", "\\\\")


def _skip_connector_entry(name: str) -> bool:
    upper = name.upper()
    if upper == "META-INF/MANIFEST.MF" or upper.endswith("MODULE-INFO.CLASS"):
        return True
    # Signature files would no longer match the repackaged jar.
    return upper.startswith("META-INF/") and upper.endswith((".SF", ".RSA", ".DSA", ".EC"))


def _write_fat_jar(path: Path, classes: Path, connector: Path, version: str, healthy: bool) -> None:
    written: set[str] = set()

    def add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        if name in written:
            return
        written.add(name)
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
        info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
        info.compress_type = zipfile.ZIP_STORED if name.endswith("/") else zipfile.ZIP_DEFLATED
        zf.writestr(info, data)

    def add_dirs(zf: zipfile.ZipFile, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            add(zf, "/".join(parts[:i]) + "/", b"")

    with zipfile.ZipFile(path, "w") as zf:
        # java.util.jar.JarInputStream expects the manifest first.
        add(zf, "META-INF/", b"")
        add(zf, "META-INF/MANIFEST.MF", _manifest(version, healthy, connector_version(connector)))
        props = (
            "# Baked in by tests/live/sample_app.py; APP_VERSION overrides the version at run time\n"
            f"version={_properties_escape(version)}\n"
            f"healthy={'true' if healthy else 'false'}\n"
        )
        add(zf, BUILD_RESOURCE, props.encode("utf-8"))
        for cls in sorted(classes.rglob("*")):
            if cls.is_file():
                name = cls.relative_to(classes).as_posix()
                add_dirs(zf, name)
                add(zf, name, cls.read_bytes())
        # Unpack the connector, keeping META-INF/services/java.sql.Driver so DriverManager finds it.
        with zipfile.ZipFile(connector) as conn:
            for entry in conn.infolist():
                if _skip_connector_entry(entry.filename):
                    continue
                if entry.is_dir():
                    add(zf, entry.filename, b"")
                else:
                    add_dirs(zf, entry.filename)
                    add(zf, entry.filename, conn.read(entry))


def build_backend_jar(dest: Path, version: str, healthy: bool = True) -> Path:
    """Builds the sample backend fat jar at ``dest`` (a file path) with ``version`` baked in.

    ``healthy=False`` builds the broken variant whose health and readiness always report DOWN.
    Compiled classes (keyed by the sources) and jars (keyed by sources, connector, version,
    healthy) are cached under ``${PETORY_FIXTURE_CACHE:-~/.cache/petory-fixture}``.
    """
    dest = Path(dest)
    javac = _javac()
    connector = connector_jar()
    sources = _java_sources()
    src_hash = _sources_hash(sources)
    key = hashlib.sha256(
        "\0".join([src_hash, _file_hash(connector), version, str(bool(healthy))]).encode()
    ).hexdigest()[:24]
    jars = _cache_root() / "jars"
    cached = jars / f"petory-{key}.jar"
    if not cached.is_file():
        classes = _compile(javac, sources, src_hash)
        jars.mkdir(parents=True, exist_ok=True)
        tmp = jars / f".{cached.name}.{os.getpid()}.tmp"
        try:
            _write_fat_jar(tmp, classes, connector, version, healthy)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, dest)
    return dest


# --------------------------------------------------------------------------- frontend


def _short_hash(data: bytes) -> str:
    """CRA-style content hash: first 8 hex chars of sha256."""
    return hashlib.sha256(data).hexdigest()[:8]


def _bundle_js(version: str) -> bytes:
    """Concatenates the CommonJS-style sources into a webpack-shaped IIFE bundle."""
    src_dir = FRONTEND_DIR / "src"
    version_literal = json.dumps(version, ensure_ascii=False)
    parts = [
        f"/*! Petory web {version} | sample build for the deployment tests */\n",
        '(()=>{"use strict";var __petory_modules__={\n',
    ]
    for name in _JS_MODULES:
        source = (src_dir / name).read_text(encoding="utf-8")
        source = source.replace("process.env.REACT_APP_VERSION", version_literal)
        parts.append(f'"./src/{name}":(module,exports,require)=>{{\n{source}\n}},\n')
    parts.append(
        "};var __petory_cache__={};function __petory_require__(id){var c=__petory_cache__[id];"
        "if(c!==undefined)return c.exports;var m=__petory_cache__[id]={exports:{}};"
        "__petory_modules__[id](m,m.exports,__petory_require__);return m.exports}"
        '__petory_require__("./src/index.js")})();\n'
    )
    return "".join(parts).encode("utf-8")


def _favicon() -> bytes:
    """A 16x16 32-bit ICO: an orange disc on a transparent background."""
    size = 16
    pixels = bytearray()
    for y in range(size - 1, -1, -1):  # BMP rows are stored bottom-up
        for x in range(size):
            inside = (x - 7.5) ** 2 + (y - 7.5) ** 2 <= 7.2**2
            pixels += bytes((0x3D, 0x8A, 0xFF, 0xFF)) if inside else bytes(4)  # BGRA
    and_mask = bytes(size * 4)  # 1 bit per pixel, rows padded to 32 bits; alpha is used instead
    bmp = struct.pack("<IiiHHIIiiII", 40, size, size * 2, 1, 32, 0, len(pixels), 0, 0, 0, 0)
    image = bmp + bytes(pixels) + and_mask
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(image), 6 + 16)
    return header + entry + image


def build_frontend(dest: Path, version: str) -> Path:
    """Writes the static frontend build for ``version`` into directory ``dest`` and returns it.

    Existing contents of ``dest`` are removed (the directory itself is kept, so it may be a
    bind-mounted volume).
    """
    dest = Path(dest)
    public = FRONTEND_DIR / "public"
    js = _bundle_js(version)
    css = (FRONTEND_DIR / "src" / "index.css").read_bytes()
    js_path = f"static/js/main.{_short_hash(js)}.js"
    css_path = f"static/css/main.{_short_hash(css)}.css"
    index = (
        (public / "index.html")
        .read_text(encoding="utf-8")
        .replace("%PETORY_VERSION%", html.escape(version, quote=True))
        .replace("%MAIN_JS%", js_path)
        .replace("%MAIN_CSS%", css_path)
    )
    asset_manifest = {
        "files": {"main.css": "/" + css_path, "main.js": "/" + js_path, "index.html": "/index.html"},
        "entrypoints": [css_path, js_path],
    }

    dest.mkdir(parents=True, exist_ok=True)
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    files = {
        "index.html": index.encode("utf-8"),
        js_path: js,
        css_path: css,
        "asset-manifest.json": (json.dumps(asset_manifest, indent=2) + "\n").encode(),
        "manifest.json": (public / "manifest.json").read_bytes(),
        "robots.txt": (public / "robots.txt").read_bytes(),
        "favicon.ico": _favicon(),
    }
    for rel, data in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest
