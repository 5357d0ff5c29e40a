"""Storage roots through fsspec: a local folder, ``s3://bucket/prefix``, ``gs://bucket/prefix``.

Files flowprov copies in ("managed" objects) are content-addressed under
``<root>/.flowprov/objects/<hash><suffix>``: versions never overwrite each other, a replayed
registration writes the same object, and `flowprov delete --force` knows exactly which files are
its own. Files already inside a root are registered in place under their relative path (the key).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
from pathlib import Path, PurePosixPath

from .errors import FlowprovError, StorageError, ValidationError

SYSTEM_DIR = ".flowprov"
# Local files outside every declared root are recorded where they are, by absolute location,
# under this one root (created on first use) — never a new root per folder they happen to be in.
HOST_ROOT = "/"
OBJECTS_DIR = f"{SYSTEM_DIR}/objects"


def is_url(s: str) -> bool:
    return "://" in s and not s.startswith("file://")


def normalize_root(root: str | os.PathLike) -> str:
    """An absolute local path, or a URL without a trailing slash."""
    s = os.fspath(root)
    if s.startswith("file://"):
        s = s[len("file://") :]
    if is_url(s):
        return s.rstrip("/")
    return str(Path(s).expanduser().resolve())


def storage_type(root: str) -> str:
    if not is_url(root):
        return "local"
    proto = root.split("://", 1)[0]
    return {"gcs": "gs", "s3a": "s3"}.get(proto, proto)


def validate_key(key: str) -> str:
    """A key is a relative posix path inside a storage root, never escaping it."""
    if not isinstance(key, str) or not key.strip():
        raise ValidationError(f"invalid key {key!r}: a key is a non-empty relative path")
    if "\\" in key:
        raise ValidationError(f"invalid key {key!r}: use '/' as the separator")
    p = PurePosixPath(key)
    if p.is_absolute() or key.startswith("~"):
        raise ValidationError(
            f"invalid key {key!r}: a key is relative to the storage root, not absolute"
        )
    if any(part == ".." for part in p.parts):
        raise ValidationError(f"invalid key {key!r}: '..' would leave the storage root")
    norm = posixpath.normpath(key)
    if norm == "." or norm.split("/")[0] == SYSTEM_DIR:
        raise ValidationError(f"invalid key {key!r}: {SYSTEM_DIR}/ is reserved for flowprov")
    return norm


def object_key(hash_: str, suffix: str) -> str:
    return f"{OBJECTS_DIR}/{hash_}{suffix}"


class StorageRoot:
    """File operations on one root; local paths use the OS directly, URLs go through fsspec."""

    def __init__(self, root: str):
        self.root = normalize_root(root)
        self.type = storage_type(self.root)
        self._fs = None

    @property
    def is_local(self) -> bool:
        return self.type == "local"

    @property
    def fs(self):
        if self._fs is None:
            import fsspec

            try:
                self._fs, _ = fsspec.core.url_to_fs(self.root)
            except (ImportError, ValueError) as e:
                raise StorageError(
                    f"cannot open storage {self.root}: {e}. For s3:// install flowprov[s3], for "
                    "gs:// install flowprov[gcs]"
                ) from e
        return self._fs

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if not self.is_local else os.path.join(self.root, key)

    def key_of(self, path: str) -> str | None:
        """The key of an absolute local path (or a URL, for a remote root) inside this root."""
        if not self.is_local:
            if is_url(path) and path.startswith(self.root + "/") and len(path) > len(self.root) + 1:
                return path[len(self.root) + 1 :]
            return None
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:
            return None
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None
        return rel.replace(os.sep, "/")

    def exists(self, key: str) -> bool:
        if self.is_local:
            return os.path.exists(self.path(key))
        with remote_errors(f"check {self.path(key)}"):
            return self.fs.exists(self.path(key))

    def check(self) -> None:
        """Fail with a StorageError unless the root can be reached (a bucket that exists)."""
        if self.is_local:
            return
        bucket = self.root.split("://", 1)[1].split("/", 1)[0]
        try:
            with remote_errors(f"reach storage {self.root}"):
                self.fs.info(bucket)  # `exists` would hide a connection error as False
        except FileNotFoundError:
            raise StorageError(
                f"storage {self.root}: bucket {bucket!r} does not exist or is not visible "
                "with these credentials"
            ) from None

    def put(self, src: str, key: str) -> None:
        """Copy a local file or folder to key, atomically (a partial copy is never visible)."""
        dst = self.path(key)
        try:
            if self.is_local:
                import shutil

                os.makedirs(os.path.dirname(dst), exist_ok=True)
                tmp = f"{dst}.part-{secrets.token_hex(4)}"
                try:
                    if os.path.isdir(src):
                        shutil.copytree(src, tmp)
                    else:
                        shutil.copyfile(src, tmp)
                    os.replace(tmp, dst)
                except BaseException:
                    _remove_local(tmp)
                    raise
            else:
                with remote_errors(f"upload {src} to {dst}"):
                    self.fs.put(src, dst, recursive=os.path.isdir(src))
        except OSError as e:
            raise StorageError(f"could not copy {src} to {dst}: {e}") from e

    def remove(self, key: str) -> None:
        if self.is_local:
            _remove_local(self.path(key))
        else:
            try:
                with remote_errors(f"remove {self.path(key)}"):
                    self.fs.rm(self.path(key), recursive=True)
            except FileNotFoundError:
                pass

    def open(self, key: str, mode: str = "rb"):
        if self.is_local:
            return open(self.path(key), mode)
        with remote_errors(f"open {self.path(key)}"):
            return self.fs.open(self.path(key), mode)

    def get(self, key: str, dst: str, recursive: bool = False) -> None:
        """Download an object (or a prefix) to a local path."""
        with remote_errors(f"download {self.path(key)}"):
            self.fs.get(self.path(key), dst, recursive=recursive)


@contextlib.contextmanager
def remote_errors(doing: str):
    """Turn what an fsspec backend raises (botocore, aiohttp, gcsfs HttpError, OSError...) into a
    StorageError saying what we were doing; FileNotFoundError passes (callers handle it)."""
    try:
        yield
    except (FileNotFoundError, FlowprovError):
        raise
    except Exception as e:  # noqa: BLE001 - every backend has its own exception types
        msg = str(e) or type(e).__name__
        raise StorageError(f"cannot {doing}: {type(e).__name__}: {msg}") from e


def object_checksums(fs, path: str) -> dict[str, str]:
    """The object store's own checksums of an object, named by store, plus a plain `md5` (hex)
    where the store's value is one (an S3 ETag of a single-part upload; GCS md5Hash)."""
    import base64

    try:
        info = fs.info(path)
    except Exception:  # noqa: BLE001 - checksums are extra information, never a failure
        return {}
    out: dict[str, str] = {}
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if "md5Hash" in info or "crc32c" in info:  # Google Cloud Storage
        for name in ("md5Hash", "crc32c"):
            if info.get(name):
                out[f"gcs:{name}"] = info[name]
        if info.get("md5Hash"):
            out["md5"] = base64.b64decode(info["md5Hash"]).hex()
    elif etag:  # S3 and S3-compatible stores
        out["s3:etag"] = etag
        for name in ("ChecksumSHA256", "ChecksumCRC32C", "ChecksumCRC32", "ChecksumSHA1"):
            if info.get(name):
                out[f"s3:{name}"] = info[name]
        if len(etag) == 32 and "-" not in etag:
            out["md5"] = etag
    return out


def _remove_local(path: str) -> None:
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
