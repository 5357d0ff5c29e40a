"""Registering files and folders as Artifacts: hash, place the bytes, record — all or nothing.

Files already inside a registered storage root are recorded in place (key = relative path).
Files elsewhere are copied into the default root as content-addressed objects. Engines record
their files where they are: inside a declared root by relative path, anywhere else by absolute
location under the one host-filesystem root (HOST_ROOT) — never a new root per folder. The record is
written only after the bytes are in place, and bytes copied for a record that then fails to be
written are removed again, so a record never points at nothing and nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Sequence

from sqlalchemy import select

from . import schema as S
from ._settings import settings
from .errors import FileMissingError, ValidationError
from .hashing import hash_path
from .storage import HOST_ROOT, SYSTEM_DIR, StorageRoot, is_url, object_key, validate_key
from .uids import ARTIFACT_STEM, random_uid

logger = logging.getLogger("flowprov")

_MULTI_SUFFIXES = {".gz", ".bz2", ".xz", ".zst", ".zip"}


def suffix_of(path: str, is_dir: bool | None = None) -> str:
    """'.tsv.gz' for matrix.tsv.gz, '.parquet' for x.parquet, '' for folders (`is_dir`, when the
    caller knows). (PurePath's suffix and suffixes, without building a Path for every file of a
    batch.)"""
    if os.path.isdir(path) if is_dir is None else is_dir:
        return ""
    name = os.path.basename(path.rstrip(os.sep)) if path.strip(os.sep) else ""
    i = name.rfind(".")
    suffix = name[i:] if 0 < i < len(name) - 1 else ""
    if suffix in _MULTI_SUFFIXES:
        suffixes = [] if name.endswith(".") else name.lstrip(".").split(".")[1:]
        if len(suffixes) > 1:
            return "." + ".".join(suffixes[-2:])
    return suffix


def _containing_root(path: str, roots: Sequence[StorageRoot]) -> tuple[StorageRoot, str] | None:
    """(root, key) of the first-declared root containing path — as given, else with symlinks
    resolved (only when needed: realpath costs a stat per path component). The first-declared,
    not the deepest: declaring a root inside another later never changes a file's key. The host
    root is not a candidate (it holds everything); callers fall back to it."""

    def first(candidate: str):
        for root in roots:  # in declaration order (instance.storages() is ordered by id)
            if root.root == HOST_ROOT:
                continue
            key = root.key_of(candidate)
            if key is not None:
                return root, key
        return None

    found = first(path)
    if found is None:
        real = os.path.realpath(path)
        found = first(real) if real != path else None
    return found


def host_place(path: str) -> tuple[str, str]:
    """(HOST_ROOT, key) of a local file outside every declared root: its absolute location."""
    return HOST_ROOT, os.path.abspath(path).lstrip(os.sep).replace(os.sep, "/")


def in_place_event(
    path: str,
    *,
    roots: Sequence[StorageRoot],
    run=None,
    description: str | None = None,
    algorithm: str | None = None,
    created_by: str | None = None,
    at=None,
    ignore: frozenset[str] = frozenset(),
    digest=None,
):
    """The ArtifactRegistered event of a file, folder or remote object recorded where it is.

    This is how engine adapters register their files: never copied, hashed in full. A local path
    gets the first-declared of `roots` that contains it, else the host root (its absolute
    location); a URL (s3://, gs://, ...) is hashed by streaming and rooted at its bucket. Files named in `ignore`
    are left out of a folder's content (an engine's own marker files). `digest` is a hash the
    caller already took (e.g. of a file the engine has deleted since).
    """
    from .events import ArtifactRegistered, now

    algorithm = algorithm or settings.hash_algorithm
    checksums = None
    if is_url(path):
        digest, checksums = remote_digest(path, algorithm)
        root_s, key_s = remote_place(path, roots)
        suffix = "" if digest.hash_type.endswith("-dir") else suffix_of(key_s)
    else:
        src = os.path.abspath(path)
        if digest is None:
            digest = hash_path(src, algorithm, ignore)  # FileMissingError if it is not there
        found = _containing_root(src, roots)
        if found is not None:
            root_s, key_s = found[0].root, found[1]
        else:
            root_s, key_s = host_place(src)
        suffix = "" if digest.hash_type.endswith("-dir") else suffix_of(src)
        if key_s is not None and key_s.split("/", 1)[0] == SYSTEM_DIR:
            # flowprov's own copy (what Artifact.cache() hands out): that copied-in artifact,
            # known by its content — never a record of a path inside flowprov's folder
            key_s = None
    return ArtifactRegistered(
        stem=random_uid(ARTIFACT_STEM),
        storage_root=root_s,
        key=key_s,
        managed=key_s is None,
        description=description,
        suffix=suffix,
        size=digest.size,
        hash=digest.hash,
        hash_type=digest.hash_type,
        n_objects=digest.n_objects,
        checksums=checksums or None,
        run=run,
        created_by=created_by,
        at=at or now(),
    )


def input_events(path: str, *, run, roots: Sequence[StorageRoot], **kw) -> list:
    """The events of a run reading a file or folder: its place and content as it is now
    (ArtifactRegistered with no producer — the place's latest version if the bytes are new), then
    the ArtifactUsed naming exactly that version. kw as for in_place_event."""
    from .events import ArtifactUsed

    reg = in_place_event(path, roots=roots, **kw)
    used = ArtifactUsed(run=run, artifact=ref_of(reg), created_by=reg.created_by, at=reg.at)
    return [reg, used]


def ref_of(event):
    """The ArtifactRef naming the version an ArtifactRegistered event records."""
    from .events import ArtifactRef

    if event.key is None:
        return ArtifactRef(hash=event.hash)
    return ArtifactRef(storage_root=event.storage_root, key=event.key, hash=event.hash)


def remote_digest(url: str, algorithm: str):
    """(our Digest, the store's own checksums) of a remote object, hashed by streaming."""
    from .hashing import hash_url
    from .storage import object_checksums, remote_errors, url_fs

    digest = hash_url(url, algorithm)
    if digest.hash_type.endswith("-dir"):
        return digest, {}
    with remote_errors(f"read {url}"):
        fs, p = url_fs(url)
    return digest, object_checksums(fs, p)


def remote_place(url: str, roots: Sequence[StorageRoot]) -> tuple[str, str]:
    """(root, key) of a URL: the longest registered root containing it, else its bucket."""
    best = None
    for root in roots:
        key = root.key_of(url)
        if key is not None and (best is None or len(root.root) > len(best[0])):
            best = (root.root, key)
    if best is not None:
        return best
    proto, rest = url.split("://", 1)
    bucket, _, key = rest.partition("/")
    if not key:
        raise ValidationError(f"{url} is a bucket, not an object: name an object or a prefix in it")
    return f"{proto}://{bucket}", key.rstrip("/")


def register(artifacts: Sequence) -> None:
    """Save a batch of unsaved Artifact objects in one transaction (they are updated in place)."""
    from .context import current_run, instance_for_save
    from .events import ArtifactRegistered, RunRef

    inst = instance_for_save(artifacts)  # a run's outputs go where the run lives
    default = inst.storage
    prepared = []  # (artifact, event fields)
    folders: dict[str, str] = {}  # the batch's folders, resolved (_refuse_escape)
    roots = list(inst.storages().values())
    for art in artifacts:
        if is_url(art._source):  # an object already in a bucket: recorded where it is
            prepared.append((art, art._source, _remote_fields(inst, art)))
            continue
        src = os.path.abspath(art._source)
        try:  # one stat per file: what it is, whether it is a link (and then where it leads)
            st = os.lstat(src)
            is_link = stat.S_ISLNK(st.st_mode)
            if is_link:
                st = os.stat(src)
        except OSError:  # as os.path.exists says: a dangling link, a folder that cannot be read
            raise FileMissingError(
                f"cannot register {art._source}: no such file or folder ({src})"
            ) from None
        digest = hash_path(src, art._algorithm or settings.hash_algorithm, st=st)
        user_key = validate_key(art.key) if art.key is not None else None
        inside = _in_place(roots, src)
        if inside is not None:
            root, key = inside
            _refuse_escape(src, root, folders, is_link)
            if user_key is not None and user_key != key:
                raise ValidationError(
                    f"{src} is inside storage {root.root} at key {key!r}; it is registered in place,"
                    f" so its key cannot be {user_key!r}"
                )
            fields = dict(storage_root=root.root, key=key, key_is_virtual=False, managed=False)
        else:
            fields = dict(
                storage_root=default.root,
                key=user_key,
                key_is_virtual=user_key is not None,
                managed=True,
                # without a key, the original name is the only name it has (search finds it)
                file_name=os.path.basename(src) if user_key is None else None,
            )
        run = art.__dict__.get("_run") or current_run()
        if run is not None:
            run.save()
        fields.update(
            stem=random_uid(ARTIFACT_STEM),
            description=art.description,
            suffix=suffix_of(src, stat.S_ISDIR(st.st_mode)),
            size=digest.size,
            hash=digest.hash,
            hash_type=digest.hash_type,
            n_objects=digest.n_objects,
            run=RunRef(uid=run.uid) if run is not None else None,
        )
        prepared.append((art, src, fields))

    # Bytes first, record second: a record never points at an object that is not there.
    copied: dict[str, str] = {}  # hash → object key we wrote
    reused: dict[str, tuple[str, str]] = {}  # hash → (object key already there, source)
    try:
        _copy_in(default, prepared, copied, reused)
        results = inst.store.apply([ArtifactRegistered(**f) for _, _, f in prepared])
    except BaseException:
        _remove_unrecorded(inst, default, copied)
        raise
    _keep_reused(default, reused)
    for (art, _src, _f), res in zip(prepared, results, strict=True):
        art._set_row(res.row)
        object.__setattr__(art, "existed", res.existed)
        if res.existed:
            logger.info(
                "returning existing Artifact('%s'): %s",
                res.uid,
                "its place already holds these bytes"
                if res.row["key"] is not None
                else "the same content was copied in before",
            )
            key = copied.pop(res.row["hash"], None)
            if key is not None and not res.row["managed"]:
                default.remove(key)  # the content lives elsewhere (registered in place)


def _remote_fields(inst, art) -> dict:
    """Event fields of an object already in a bucket (hashed by streaming, never copied)."""
    from .context import current_run
    from .events import RunRef

    url = art._source.rstrip("/")
    if art.key is not None:
        raise ValidationError(
            f"{url} is registered where it is: its key is its path, not {art.key!r}"
        )
    digest, checksums = remote_digest(url, art._algorithm or settings.hash_algorithm)
    root, key = remote_place(url, list(inst.storages().values()))
    run = art.__dict__.get("_run") or current_run()
    if run is not None:
        run.save()
    return dict(
        storage_root=root,
        key=key,
        key_is_virtual=False,
        managed=False,
        stem=random_uid(ARTIFACT_STEM),
        description=art.description,
        suffix="" if digest.hash_type.endswith("-dir") else suffix_of(key),
        size=digest.size,
        hash=digest.hash,
        hash_type=digest.hash_type,
        n_objects=digest.n_objects,
        checksums=checksums or None,
        run=RunRef(uid=run.uid) if run is not None else None,
    )


def _refuse_escape(src: str, root: StorageRoot, folders: dict[str, str], is_link: bool) -> None:
    """A path inside a root through a symlink that leads outside it is refused: its key would
    name bytes the root does not hold. (Roots are stored resolved; src is absolute; `is_link`:
    src itself is a symlink, from the caller's lstat.) `folders` keeps the resolved folders of
    one batch: its files then cost nothing more here, not one lstat per component of their
    path."""
    folder, name = os.path.split(src)
    real_folder = folders.get(folder)
    if real_folder is None:
        real_folder = folders[folder] = os.path.realpath(folder)
    real = os.path.realpath(src) if is_link else os.path.join(real_folder, name)
    if real != src and root.key_of(real) is None:
        raise ValidationError(
            f"{src} is a symlink leading outside storage {root.root} (to {real}): "
            "register the file it points to, or copy it into the storage"
        )


def _copy_in(root: StorageRoot, prepared, copied: dict[str, str], reused: dict) -> None:
    """Copy the managed files not yet in storage. (Serially: a thread pool was measured slower
    for small files on 2 cores — file creation here is CPU and journal bound, not latency.)

    An object already there may be an orphan that `flowprov gc --delete` is about to remove: a
    local one is touched (gc removes only objects unchanged for --min-age), and every reused one
    is looked for again once the record has committed (_keep_reused)."""
    for _art, src, f in prepared:
        if f["managed"] and f["hash"] not in copied and f["hash"] not in reused:
            key = object_key(f["hash"], f["suffix"])
            if not root.exists(key):
                root.put(src, key)
                copied[f["hash"]] = key
            else:
                if root.is_local:
                    with contextlib.suppress(OSError):
                        os.utime(root.path(key))
                reused[f["hash"]] = (key, src)


def _keep_reused(root: StorageRoot, reused: dict[str, tuple[str, str]]) -> None:
    """Put back a reused object that vanished before its record committed (gc raced us)."""
    for key, src in reused.values():
        if not root.exists(key):
            logger.warning("%s vanished while being recorded (flowprov gc?): copied again", key)
            root.put(src, key)


def _in_place(roots: list[StorageRoot], src: str) -> tuple[StorageRoot, str] | None:
    """(root, key) if src lies inside one of the registered storage roots (outside flowprov's
    own folder)."""
    found = _containing_root(src, roots)
    if found is None or found[1].split("/", 1)[0] == SYSTEM_DIR:
        return None
    return found


def _remove_unrecorded(inst, root: StorageRoot, copied: dict[str, str]) -> None:
    """Remove objects we wrote whose record was not written — unless a concurrent writer's record
    now uses the same content."""
    if not copied:
        return
    try:
        used = _known_hashes(inst, list(copied))
    except Exception:  # noqa: BLE001 - the database may be what failed; then nobody can use them
        used = set()
    for h, key in copied.items():
        if h not in used:
            root.remove(key)


def _known_hashes(inst, hashes: list[str]) -> set[str]:
    from .db import read_connection

    out: set[str] = set()
    with read_connection(inst.engine) as conn:
        for i in range(0, len(hashes), 500):
            chunk = hashes[i : i + 500]
            out.update(
                conn.execute(
                    select(S.artifacts.c.hash).where(S.artifacts.c.hash.in_(chunk))
                ).scalars()
            )
    return out


def save(records) -> list:
    """Save many records at once (``fp.save``); Artifacts are hashed, placed and recorded in one
    transaction."""
    from .records import Artifact

    records = list(records)
    pending = [r for r in records if isinstance(r, Artifact) and r._row.get("id") is None]
    if pending:
        register(pending)
    for r in records:
        if not isinstance(r, Artifact):
            r.save()
    return records
