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
from .storage_check import StorageCheckError
from .storage_settings import environment_options, validate_options

__all__ = [
    "StorageCheckError",
    "StorageRoot",
    "environment_options",
    "validate_options",
]

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


# The retry budget of everyday S3 calls. Left alone, a server that accepts connections and never
# answers held one call for 411 s (s3fs's 5 tries × botocore's 5 attempts × a 15 s read timeout).
# botocore: 3 attempts in its "standard" mode (backoff, retries throttling and 5xx) unless the
# AWS config or AWS_MAX_ATTEMPTS / AWS_RETRY_MODE say otherwise; s3fs: 2 tries around them.
S3_MAX_ATTEMPTS = 3
S3_WRAPPER_RETRIES = 2


def _s3_budget(flat: dict, for_check: bool) -> None:
    """Fill in botocore's timeouts and retries (flat `config_kwargs.*` options) in place."""
    from .storage_check import CHECK_CONNECT_TIMEOUT, CHECK_READ_TIMEOUT

    if for_check:  # one attempt, short timeouts, whatever was configured
        flat["config_kwargs.connect_timeout"] = CHECK_CONNECT_TIMEOUT
        flat["config_kwargs.read_timeout"] = CHECK_READ_TIMEOUT
        for k in [k for k in flat if k.startswith("config_kwargs.retries.")]:
            del flat[k]
        flat["config_kwargs.retries.max_attempts"] = 1
        flat["config_kwargs.retries.mode"] = "standard"
        return
    if any(k.startswith("config_kwargs.retries.") for k in flat):
        return
    if not _aws_retries_configured():
        flat["config_kwargs.retries.max_attempts"] = S3_MAX_ATTEMPTS
        flat["config_kwargs.retries.mode"] = "standard"


def _aws_retries_configured() -> bool:
    """Whether the user set botocore's retries (AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, or the AWS
    profile in ~/.aws/config): then they are theirs (an explicit botocore Config would win)."""
    if os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE"):
        return True
    try:
        import botocore.session

        scoped = botocore.session.Session().get_scoped_config()
    except Exception:  # noqa: BLE001 - a broken AWS config is botocore's to report, later
        return False
    return "max_attempts" in scoped or "retry_mode" in scoped


class StorageRoot:
    """File operations on one root; local paths use the OS directly, URLs go through fsspec,
    built with the options stored with the instance (endpoint, region...) under the environment
    variables that override them (see storage_settings)."""

    def __init__(self, root: str, options: dict | None = None):
        self.root = normalize_root(root)
        self.type = storage_type(self.root)
        self.options: dict = dict(options or {})  # as stored (validated when they were stored)
        self._fs = None

    def __repr__(self) -> str:
        opts = f", {self.options!r}" if self.options else ""
        return f"StorageRoot({self.root!r}{opts})"

    @property
    def is_local(self) -> bool:
        return self.type == "local"

    def effective_options(self) -> dict[str, tuple]:
        """The options in force, by dotted name ("endpoint_url", "client_kwargs.region_name"):
        (value, source), source being "instance", "environment VAR" or "fsspec configuration".
        Credentials the environment gives show as ***. Empty for a local root."""
        if self.is_local:
            return {}
        from .storage_settings import mask, resolve

        return {
            k: (mask(k, v), src)
            for k, (v, src) in resolve(self.type, self.root, self.options).items()
        }

    def build_fs(self, for_check: bool = False):
        """A new fsspec filesystem with the options in force (`fs` caches one); `for_check`:
        uncached, with the short timeouts and single attempt of `check`."""
        import fsspec

        from .storage_settings import nest, resolve

        flat = {k: v for k, (v, _) in resolve(self.type, self.root, self.options).items()}
        if self.type == "s3":
            _s3_budget(flat, for_check)
        kwargs = nest(flat)
        if for_check:
            kwargs["skip_instance_cache"] = True
        try:
            fs, _ = fsspec.core.url_to_fs(self.root, **kwargs)
        except ImportError as e:
            raise StorageError(
                f"cannot open storage {self.root}: {e}. For s3:// install flowprov[s3], for "
                "gs:// install flowprov[gcs]"
            ) from e
        except (ValueError, TypeError) as e:  # an option the filesystem does not take
            shown = {k: v for k, (v, _) in self.effective_options().items()}
            raise StorageError(
                f"cannot open storage {self.root} with the options {shown}: {e}"
            ) from e
        if self.type == "s3":
            # s3fs retries on its own around botocore's attempts: keep its loop short
            fs.retries = 1 if for_check else S3_WRAPPER_RETRIES
        return fs

    @property
    def fs(self):
        if self._fs is None:
            self._fs = self.build_fs()
        return self._fs

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if not self.is_local else os.path.join(self.root, key)

    def key_of(self, path: str) -> str | None:
        """The key of an absolute local path (or a URL, for a remote root) inside this root."""
        if not self.is_local:
            if is_url(path) and path.startswith(self.root + "/") and len(path) > len(self.root) + 1:
                return path[len(self.root) + 1 :]
            return None
        prefix = self.root.rstrip(os.sep) + os.sep
        # the usual cases, without relpath's own normalising: a plain absolute path (no empty,
        # `.` or `..` component) is inside the (resolved) root exactly when it starts with it
        if path.startswith(prefix):
            rel = path[len(prefix) :]
            if rel and not any(part in ("", ".", "..") for part in rel.split(os.sep)):
                return rel.replace(os.sep, "/")
        elif path.startswith(os.sep) and not any(
            part in ("", ".", "..") for part in path[1:].split(os.sep)
        ):
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

    def check(self, timeout: float | None = None) -> None:
        """Fail with a StorageError (a StorageCheckError saying which: unknown key, no permission,
        no such bucket, endpoint does not speak S3/GCS, cannot connect, no answer) unless the root
        can be listed; within `timeout` seconds (6 by default) whatever the endpoint does."""
        if self.is_local:
            return
        from .storage_check import CHECK_SECONDS, check_root

        check_root(self, CHECK_SECONDS if timeout is None else timeout)

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


def merge_options(base: dict, over: dict) -> dict:
    """Nested storage options: `over` wins, key by key."""
    out = dict(base)
    for k, v in over.items():
        both = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = merge_options(out[k], v) if both else v
    return out


def url_fs(url: str, roots=None):
    """(filesystem, fsspec path) of a remote URL, built with the options of the instance: those of
    the longest declared root containing it, else of a declared root on the same kind of store
    (the default root first) — so an object outside every root is read from the instance's
    endpoint, not from whatever the environment names. `roots`: the declared StorageRoots
    (default: the current instance's; none when there is no instance)."""
    if roots is None:
        roots = _instance_roots()
    kind = storage_type(url)
    best = None
    for r in roots:
        if r.type != kind:
            continue
        if r.key_of(url) is not None and (best is None or len(r.root) > len(best.root)):
            best = r
    if best is None:
        same = [r for r in roots if r.type == kind]
        lender = same[0] if same else None
        bucket = url.split("://", 1)[1].split("/", 1)[0]
        best = StorageRoot(f"{kind}://{bucket}", lender.options if lender else None)
    fs = best.fs
    return fs, type(fs)._strip_protocol(url)


def _instance_roots() -> list:
    from .errors import FlowprovError

    try:
        from .instance import current

        inst = current()
        roots = list(inst.storages().values())
    except FlowprovError:
        return []
    default = inst.config.storage
    return sorted(roots, key=lambda r: r.root != default)  # the default root first


@contextlib.contextmanager
def remote_errors(doing: str):
    """Turn what an fsspec backend raises (botocore, aiohttp, gcsfs HttpError, OSError...) into a
    StorageError saying what we were doing; FileNotFoundError passes (callers handle it)."""
    try:
        yield
    except (FileNotFoundError, FlowprovError):
        raise
    except Exception as e:  # noqa: BLE001 - every backend has its own exception types
        from .storage_check import store_reason

        msg = store_reason(e) or f"{type(e).__name__}: {str(e) or type(e).__name__}"
        raise StorageError(f"cannot {doing}: {msg}") from e


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
