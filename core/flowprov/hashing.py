"""Full-content hashing of files and folders.

Every byte is read: a one-byte change anywhere changes the hash (unlike partial-hash schemes that
sample the first and last chunks of large files). The default algorithm is BLAKE3 — cryptographic,
~6x MD5 on one core here, and it parallelises within one file (Merkle tree). md5 and sha256 stay
available for object stores and standards that expect them.

Folders hash from their sorted (relative posix path, file hash) pairs; files are hashed in
parallel. Hashes of large files are cached by (path, size, mtime_ns, ctime_ns, inode): the cache
is trusted because any write to a file changes its ctime, which user tools cannot set back. On file
systems that do not maintain ctime (some FUSE/network mounts), turn it off with
``FLOWPROV_HASH_CACHE=0`` or ``fp.settings.hash_cache = False``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blake3

from .errors import FileMissingError, ValidationError

DEFAULT_ALGORITHM = "blake3"
ALGORITHMS = ("blake3", "sha256", "md5")
_MMAP_MIN = 4 << 20  # below this, one read() + one-thread hash beats mmap + thread start-up
CACHE_MIN_SIZE = 1 << 20  # below this, re-hashing is cheaper than a cache lookup
_CHUNK = 1 << 20
# engines' own marker files, never part of a folder's content (Snakemake's directory() marker)
ENGINE_MARKERS = frozenset({".snakemake_timestamp"})


@dataclass(frozen=True)
class Digest:
    hash: str  # lowercase hex of the full digest
    hash_type: str  # "blake3", "sha256", "md5", or "<algo>-dir" for folders
    size: int  # bytes (sum of all files for a folder)
    n_objects: int = 1  # number of files


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValidationError(
            f"unknown hash algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
        )


def _hash_bytes_of_file(path: str, size: int, algorithm: str) -> str:
    if algorithm == "blake3":
        if size >= _MMAP_MIN:
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            h.update_mmap(path)  # releases the GIL; reads every byte
            return h.hexdigest()
        with open(path, "rb") as f:
            return blake3.blake3(f.read()).hexdigest()
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


class HashCache:
    """A small SQLite table in the user's cache folder; failures never fail a hash."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS hashes (path TEXT, algorithm TEXT, size INT,"
                    " mtime_ns INT, ctime_ns INT, inode INT, hash TEXT,"
                    " PRIMARY KEY (path, algorithm))"
                )
            except sqlite3.Error:
                return None
            self._local.conn = conn
        return conn

    def get(self, path: str, st: os.stat_result, algorithm: str) -> str | None:
        conn = self._conn()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT hash FROM hashes WHERE path=? AND algorithm=? AND size=? AND mtime_ns=?"
                " AND ctime_ns=? AND inode=?",
                (path, algorithm, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino),
            ).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row else None

    def put(self, path: str, st: os.stat_result, algorithm: str, digest: str) -> None:
        conn = self._conn()
        if conn is None:
            return
        try:
            conn.execute(
                "INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?)",
                (path, algorithm, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest),
            )
        except sqlite3.Error:
            pass


_cache: HashCache | None = None


def default_cache() -> HashCache | None:
    from ._settings import settings

    global _cache
    if not settings.hash_cache:
        return None
    if _cache is None or _cache.path != settings.cache_dir / "hashes.sqlite":
        _cache = HashCache(settings.cache_dir / "hashes.sqlite")
    return _cache


def hash_file(
    path: str | os.PathLike,
    algorithm: str = DEFAULT_ALGORITHM,
    use_cache: bool = True,
    st: os.stat_result | None = None,
) -> Digest:
    """Hash one regular file, reading every byte (or reuse the cached hash of an unchanged file,
    unless use_cache is False: `verify` re-reads). `st`: the file's os.stat, taken just before by
    a caller that needed it anyway (one stat per file of a batch, not three)."""
    _check_algorithm(algorithm)
    p = os.path.abspath(os.fspath(path))
    try:
        st = st or os.stat(p)
    except FileNotFoundError:
        raise FileMissingError(f"file not found: {p}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValidationError(f"not a regular file: {p}")
    cache = default_cache() if use_cache and st.st_size >= CACHE_MIN_SIZE else None
    if cache is not None:
        cached = cache.get(p, st, algorithm)
        if cached is not None:
            return Digest(cached, algorithm, st.st_size)
    digest = _hash_bytes_of_file(p, st.st_size, algorithm)
    if cache is not None:
        # re-stat: a file that changed while we read it must not be cached under the old stat
        st2 = os.stat(p)
        if (st2.st_size, st2.st_mtime_ns, st2.st_ctime_ns) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            cache.put(p, st, algorithm, digest)
    return Digest(digest, algorithm, st.st_size)


def list_folder(root: str | os.PathLike, ignore: frozenset[str] = frozenset()) -> list[str]:
    """Relative posix paths of every regular file under root (symlinks to files are followed),
    leaving out files whose name is in `ignore` (an engine's own markers)."""
    root = os.fspath(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            if name in ignore:
                continue
            full = os.path.join(dirpath, name)
            if os.path.isfile(full):
                out.append(os.path.relpath(full, root).replace(os.sep, "/"))
    out.sort()
    return out


def folder_digest(pairs: list[tuple[str, str]], algorithm: str) -> str:
    """Digest of a folder from its sorted (relative path, file hash) pairs."""
    h = blake3.blake3() if algorithm == "blake3" else hashlib.new(algorithm)
    for rel, digest in sorted(pairs):
        h.update(rel.encode() + b"\0" + digest.encode() + b"\n")
    return h.hexdigest()


def hash_folder(
    path: str | os.PathLike,
    algorithm: str = DEFAULT_ALGORITHM,
    ignore: frozenset[str] = frozenset(),
    use_cache: bool = True,
) -> Digest:
    _check_algorithm(algorithm)
    root = os.path.abspath(os.fspath(path))
    if not os.path.isdir(root):
        raise FileMissingError(f"folder not found: {root}")
    rels = list_folder(root, ignore)
    workers = min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        digests = list(
            pool.map(lambda r: hash_file(os.path.join(root, r), algorithm, use_cache), rels)
        )
    pairs = [(r, d.hash) for r, d in zip(rels, digests, strict=True)]
    return Digest(
        folder_digest(pairs, algorithm),
        f"{algorithm}-dir",
        sum(d.size for d in digests),
        len(rels),
    )


def hash_path(
    path: str | os.PathLike,
    algorithm: str = DEFAULT_ALGORITHM,
    ignore: frozenset[str] = frozenset(),
    use_cache: bool = True,
    st: os.stat_result | None = None,
) -> Digest:
    """A file or a folder (`st`: its os.stat, if the caller has just taken it)."""
    p = os.fspath(path)
    try:
        st = st or os.stat(p)
    except FileNotFoundError:
        raise FileMissingError(f"no such file or folder: {os.path.abspath(p)}") from None
    if stat.S_ISDIR(st.st_mode):
        return hash_folder(p, algorithm, ignore, use_cache)
    return hash_file(p, algorithm, use_cache, st)


def hash_stream(chunks, algorithm: str = DEFAULT_ALGORITHM) -> tuple[str, int]:
    """Hash an iterable of byte chunks (remote objects are hashed by streaming)."""
    _check_algorithm(algorithm)
    h = blake3.blake3() if algorithm == "blake3" else hashlib.new(algorithm)
    n = 0
    for chunk in chunks:
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


def hash_url(url: str, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
    """Hash a remote object (or every object under a remote prefix) by streaming it through fsspec
    (with the instance's storage options: storage.url_fs)."""
    from .errors import StorageError
    from .storage import remote_errors, url_fs

    try:
        with remote_errors(f"read {url}"):
            return _hash_remote(*url_fs(url), algorithm)
    except FileNotFoundError:
        raise FileMissingError(f"remote object not found: {url}") from None
    except (ImportError, ValueError) as e:
        raise StorageError(
            f"cannot read {url}: {e} (s3:// needs flowprov[s3], gs:// flowprov[gcs])"
        ) from e


def _hash_remote(fs, path: str, algorithm: str) -> Digest:
    """Stream every byte of an object, or of every object under a prefix."""
    if fs.isdir(path):
        files = sorted(f for f in fs.find(path) if not fs.isdir(f))
        pairs, total = [], 0
        for f in files:
            with fs.open(f, "rb") as fh:
                h, n = hash_stream(iter(lambda fh=fh: fh.read(_CHUNK), b""), algorithm)
            pairs.append((f[len(path) :].lstrip("/"), h))
            total += n
        return Digest(folder_digest(pairs, algorithm), f"{algorithm}-dir", total, len(files))
    with fs.open(path, "rb") as fh:
        h, n = hash_stream(iter(lambda: fh.read(_CHUNK), b""), algorithm)
    return Digest(h, algorithm, n)
