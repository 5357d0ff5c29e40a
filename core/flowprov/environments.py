"""Software environments as the sources that know them report them.

- `python_environment()`: the running interpreter — every installed distribution (not only the
  imported ones, read with importlib.metadata) and, when the interpreter lives in a conda
  environment, that prefix's conda packages. Read once per interpreter: kept in memory for the
  process and on disk (`<cache_dir>/environments/`) keyed by the interpreter and the
  modification times of its package folders, which installing or removing a package changes.
- `conda_meta_packages(prefix)`: a conda prefix's resolved packages from `conda-meta/*.json`,
  the records conda writes for every package it links (name, version, build, channel).

The records themselves (`EnvironmentSpec`, `Package`) are part of the engines' contract
(events.py). A process remembers the specs it made (`remember`), so a run that names its
environment by digest — sent once, then referred to — is never recorded without it.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import sys
import threading
from pathlib import Path

import blake3

from .events import EnvironmentSpec, Package

logger = logging.getLogger("flowprov")

_known: dict[str, EnvironmentSpec] = {}
_known_lock = threading.Lock()


def remember(spec: EnvironmentSpec) -> str:
    """Keep `spec` for this process; returns its digest."""
    digest = spec.digest()
    with _known_lock:
        _known.setdefault(digest, spec)
    return digest


def known_spec(digest: str) -> EnvironmentSpec | None:
    return _known.get(digest)


class Announcer:
    """Sends an environment in full the first time, then by digest (a Prefect flow of 1,000 tasks
    in one interpreter sends its 300 packages once per sink, not once per task)."""

    def __init__(self):
        self._sent: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, spec: EnvironmentSpec | None) -> EnvironmentSpec | str | None:
        if spec is None:
            return None
        digest = remember(spec)
        with self._lock:
            if digest in self._sent:
                return digest
            self._sent.add(digest)
        return spec


# -- conda ---------------------------------------------------------------------------------------
def conda_meta_packages(prefix: str | os.PathLike) -> list[Package] | None:
    """The conda packages linked into `prefix`, from its `conda-meta/<name>-<version>-<build>
    .json` records; None when `prefix` has no conda-meta folder. A record that cannot be read is
    skipped with a warning naming it."""
    meta = Path(prefix) / "conda-meta"
    if not meta.is_dir():
        return None
    out = []
    for f in sorted(meta.glob("*.json")):
        try:
            rec = json.loads(f.read_text())
            name, version = rec["name"], rec["version"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("flowprov: cannot read the conda package record %s (%s); skipped", f, e)
            continue
        out.append(
            Package(
                name=str(name),
                version=str(version),
                build=str(rec["build"]) if rec.get("build") is not None else None,
                source="conda",
                channel=_channel(rec),
            )
        )
    return out


def _channel(rec: dict) -> str | None:
    """The channel a conda package came from, as conda shows it ("conda-forge", "bioconda"): the
    record's `channel` is a name or a URL ending in the platform subdir."""
    ch = rec.get("channel") or rec.get("schannel")
    if not ch:
        return None
    ch = str(ch).rstrip("/")
    m = re.match(r"https?://conda\.anaconda\.org/([^/]+)(/[^/]+)?$", ch)
    if m:
        return m.group(1)
    subdir = rec.get("subdir")
    if subdir and ch.endswith("/" + subdir):
        ch = ch[: -len(subdir) - 1]
    return ch


def conda_prefix_of_interpreter() -> Path | None:
    """The conda environment the running interpreter belongs to, if any."""
    prefix = Path(sys.prefix)
    return prefix if (prefix / "conda-meta").is_dir() else None


# -- the running interpreter ----------------------------------------------------------------------
def interpreter() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def os_name() -> str:
    """The operating system and machine ("Debian GNU/Linux 12 (bookworm) x86_64", "macOS 14.4
    arm64"): not the kernel release, which changes with every host update and is not software a
    result depends on."""
    machine = platform.machine()
    system = platform.system()
    if system == "Linux":
        try:
            name = platform.freedesktop_os_release().get("PRETTY_NAME") or "Linux"
        except OSError:
            name = "Linux"
        libc, ver = platform.libc_ver()
        return f"{name} {machine}" + (f" {libc} {ver}" if libc and ver else "")
    if system == "Darwin":
        return f"macOS {platform.mac_ver()[0]} {machine}"
    return f"{system} {platform.release()} {machine}"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_packages(conda_names: set[str]) -> list[Package]:
    """Every distribution importable from sys.path (the first of a name wins, as for import);
    those conda installed (INSTALLER "conda") are left to their conda records."""
    from importlib.metadata import distributions

    seen: set[str] = set()
    out = []
    for dist in distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:  # noqa: BLE001 - a broken metadata folder must not break a run
            continue
        if not name or _normal(name) in seen:
            continue
        seen.add(_normal(name))
        installer = (dist.read_text("INSTALLER") or "").strip()
        if installer == "conda" and _normal(name) in conda_names:
            continue
        out.append(Package(name=name, version=version, source="pip", channel=_direct_url(dist)))
    return out


def _direct_url(dist) -> str | None:
    """Where a distribution installed from a URL, a VCS or a local folder came from (PEP 610):
    the version number alone does not say which code an editable install holds."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        d = json.loads(text)
    except ValueError:
        return None
    url = d.get("url")
    vcs = d.get("vcs_info") or {}
    if vcs.get("commit_id"):
        return f"{vcs.get('vcs', 'vcs')}+{url}@{vcs['commit_id']}"
    if (d.get("dir_info") or {}).get("editable"):
        return f"editable {url}"
    return url


_scanned: dict[str, tuple[int, bool]] = {}  # sys.path entry -> (mtime seen, holds dists)


def _package_folder_mtime(path: str) -> int | None:
    """The modification time of a sys.path entry that holds installed distributions
    (site-packages and the like); None for any other entry. A workflow's own folder, which
    engines put on sys.path and which changes with every run, must not make the software look
    different; a folder is looked into again only when its time changed."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    seen = _scanned.get(path)
    if seen is None or seen[0] != mtime:
        name = os.path.basename(path.rstrip(os.sep))
        holds = name in ("site-packages", "dist-packages")
        if not holds:
            try:
                with os.scandir(path) as it:
                    holds = any(e.name.endswith((".dist-info", ".egg-info")) for e in it)
            except OSError:
                holds = False
        _scanned[path] = seen = (mtime, holds)
    return mtime if seen[1] else None


def _fingerprint() -> str:
    """What the interpreter's installed software depends on: the executable, its version, and
    the modification time of every folder on sys.path that holds distributions, and of the
    prefix's conda-meta (installing or removing a package changes its folder's time)."""
    parts = [sys.executable, sys.version, sys.prefix]
    for p in sys.path:
        if p and (mtime := _package_folder_mtime(p)) is not None:
            parts.append(f"{p}:{mtime}")
    meta = os.path.join(sys.prefix, "conda-meta")
    try:
        parts.append(f"{meta}:{os.stat(meta).st_mtime_ns}")
    except OSError:
        pass
    return blake3.blake3("\0".join(parts).encode()).hexdigest()[:32]


_python_env: tuple[str, EnvironmentSpec] | None = None
_python_lock = threading.Lock()


def python_environment() -> EnvironmentSpec:
    """The running interpreter's environment (complete: every installed distribution, plus the
    conda packages of its prefix). Cached in memory while the interpreter's package folders are
    unchanged, and on disk across processes."""
    global _python_env
    key = _fingerprint()
    cached = _python_env
    if cached is not None and cached[0] == key:
        return cached[1]
    with _python_lock:
        spec = _read_cache(key) or _capture_python()
        _write_cache(key, spec)
        remember(spec)
        _python_env = (key, spec)
    return spec


def _capture_python() -> EnvironmentSpec:
    prefix = conda_prefix_of_interpreter()
    conda = conda_meta_packages(prefix) if prefix else None
    conda_names = {_normal(p.name) for p in conda or ()}
    packages = tuple(conda or ()) + tuple(_distribution_packages(conda_names))
    return EnvironmentSpec(
        interpreter=interpreter(),
        os=os_name(),
        packages=packages,
        deployed=True,
        complete=True,
        details={"conda": True} if prefix else None,
    )


def _cache_file(key: str) -> Path:
    from ._settings import settings

    return settings.cache_dir / "environments" / f"python-{key}.json"


def _read_cache(key: str) -> EnvironmentSpec | None:
    try:
        return EnvironmentSpec.model_validate_json(_cache_file(key).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # a damaged cache file is read again from the source
        return None


def _write_cache(key: str, spec: EnvironmentSpec) -> None:
    path = _cache_file(key)
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(spec.model_dump_json(exclude_defaults=True))
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache folder costs speed, not correctness
        logger.debug("flowprov: cannot cache the Python environment in %s: %s", path, e)
