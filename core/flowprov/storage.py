"""Storage roots through fsspec: a local folder, ``s3://bucket/prefix``, ``gs://bucket/prefix``.

Files flowprov copies in ("managed" objects) are content-addressed under
``<root>/.flowprov/objects/<hash><suffix>``: versions never overwrite each other, a replayed
registration writes the same object, and `flowprov delete --force` knows exactly which files are
its own. Files already inside a root are registered in place under their relative path (the key).
"""

from __future__ import annotations

import os
import posixpath
import secrets
from pathlib import Path, PurePosixPath

from .errors import StorageError, ValidationError

SYSTEM_DIR = ".flowprov"
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
        """The key of an absolute local path if it lies inside this (local) root."""
        if not self.is_local:
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
        return self.fs.exists(self.path(key))

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
                self.fs.put(src, dst, recursive=os.path.isdir(src))
        except OSError as e:
            raise StorageError(f"could not copy {src} to {dst}: {e}") from e

    def remove(self, key: str) -> None:
        if self.is_local:
            _remove_local(self.path(key))
        else:
            try:
                self.fs.rm(self.path(key), recursive=True)
            except FileNotFoundError:
                pass

    def open(self, key: str, mode: str = "rb"):
        if self.is_local:
            return open(self.path(key), mode)
        return self.fs.open(self.path(key), mode)


def _remove_local(path: str) -> None:
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
