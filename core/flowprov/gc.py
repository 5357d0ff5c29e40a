"""Objects in flowprov's storage that no record references (`flowprov gc`).

Files copied in are written to ``<root>/.flowprov/objects/<hash><suffix>`` before their record
commits (a record never points at nothing). A batch killed between the two, a database
re-created by `init`, or a copy reused by a record kept in another root leaves objects that no
record names, and `.part-<hex>` leftovers of copies cut short. This module finds them in every
root flowprov can reach (never the host root `/`, never outside `.flowprov/objects/`) and, on
request, removes them.

What counts as referenced: an artifact row of *that* storage recorded as a managed copy with the
same hash and suffix — or any record whose key names the entry itself (a file read in place from
another root's objects folder).

What is removed, and what is kept:

- an object is removed only when it is older than `min_age` (default 1 h: a running batch
  uploads its bytes before its record commits), judged by the newest change time of the entry
  (and, for a folder, of anything in it) — ctime included, which copying tools cannot set back;
- an object whose content *is* recorded elsewhere (another root's copy, a file in place) is
  removed only when such a recorded copy is still there with its recorded size: otherwise this
  orphan is the last copy of recorded bytes, and it is kept and said so;
- entries not named like flowprov's objects are listed and never removed.

Just before removing, the entry's references and age are read again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from . import schema as S
from .errors import FlowprovError, StorageError, ValidationError
from .storage import HOST_ROOT, OBJECTS_DIR, StorageRoot

DEFAULT_MIN_AGE = 3600.0
_OBJECT = re.compile(r"^(?P<hash>[0-9a-f]{16,128})(?P<suffix>\.[^/]*)?$")
_PARTIAL = re.compile(r"^(?P<object>.+)\.part-[0-9a-f]+$")
_CHUNK = 500


@dataclass
class Orphan:
    root: str
    name: str  # the entry's name in <root>/.flowprov/objects/
    path: str
    kind: str  # "object" | "partial" (a copy cut short)
    size: int | None = None
    age: float | None = None  # seconds since the entry (or anything in it) last changed
    recorded_as: str | None = None  # "uid at place" when the same content is recorded elsewhere
    keep: str | None = None  # why --delete leaves it (None: it would be removed)
    removed: bool = False


@dataclass
class GcReport:
    roots: list[str] = field(default_factory=list)  # the roots whose objects were listed
    skipped: dict[str, str] = field(default_factory=dict)  # root → why it was not listed
    orphans: list[Orphan] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # paths not named like objects: left alone
    referenced: int = 0  # objects that records reference
    min_age: float = DEFAULT_MIN_AGE

    @property
    def deletable(self) -> list[Orphan]:
        return [o for o in self.orphans if o.keep is None and not o.removed]

    @property
    def removed(self) -> list[Orphan]:
        return [o for o in self.orphans if o.removed]

    @property
    def size(self) -> int:
        return sum(o.size or 0 for o in self.orphans)


def parse_age(s: str | float | int) -> float:
    """'1h', '30m', '2d', '90s', '0' → seconds."""
    if isinstance(s, (int, float)):
        if s < 0:
            raise ValidationError(f"--min-age cannot be negative: {s}")
        return float(s)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(s))
    if not m:
        raise ValidationError(f"--min-age takes a duration such as 90s, 30m, 1h or 2d, not {s!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return float(m.group(1)) * unit


def scan(inst, storage: str | None = None, min_age: float = DEFAULT_MIN_AGE) -> GcReport:
    """List the unreferenced objects of every reachable root (or of `storage` only). Changes
    nothing."""
    report = GcReport(min_age=min_age)
    roots = _roots(inst, storage)
    for sid, root in roots.items():
        if root.is_local and not os.path.isdir(root.root):
            report.skipped[root.root] = "no such folder (moved? see `flowprov storage move`)"
            continue
        try:
            entries = _list(root)
        except FileNotFoundError:
            continue  # no objects folder: nothing was ever copied into this root
        except (OSError, FlowprovError) as e:
            report.skipped[root.root] = str(e)
            continue
        report.roots.append(root.root)
        named = []
        for e in entries:
            if _PARTIAL.match(e.name) or _OBJECT.match(e.name):
                named.append(e)
            else:
                report.foreign.append(e.path)
        used = _referenced(inst, sid, root, [e.name for e in named])
        for e in named:
            if e.name in used:
                report.referenced += 1
                continue
            kind = "partial" if _PARTIAL.match(e.name) else "object"
            report.orphans.append(
                Orphan(root.root, e.name, e.path, kind, size=e.size(), age=e.age())
            )
    _judge(inst, report, min_age)
    return report


def collect(
    inst,
    delete: bool = False,
    storage: str | None = None,
    min_age: float = DEFAULT_MIN_AGE,
    progress=None,
) -> GcReport:
    """scan(), then with `delete` remove the orphans old enough (rights checked first)."""
    if delete:
        from .rights import WRITE, require

        require(inst, WRITE, "delete unreferenced objects from its storage")
    report = scan(inst, storage, min_age)
    if delete:
        remove(inst, report, progress)
    return report


def remove(inst, report: GcReport, progress=None) -> None:
    """Remove report's deletable orphans, each after reading its references and age again."""
    roots = {r.root: (sid, r) for sid, r in _roots(inst, None).items()}
    by_root: dict[str, list[Orphan]] = {}
    for o in report.deletable:
        by_root.setdefault(o.root, []).append(o)
    for root_s, orphans in by_root.items():
        if root_s not in roots:  # re-pointed meanwhile: its listing is out of date
            for o in orphans:
                o.keep = "its storage root changed since it was listed"
            continue
        sid, root = roots[root_s]
        for i in range(0, len(orphans), _CHUNK):
            chunk = orphans[i : i + _CHUNK]
            used = _referenced(inst, sid, root, [o.name for o in chunk])
            for o in chunk:
                if "/" in o.name or o.name in ("", ".", ".."):  # never outside objects/
                    o.keep = "not an entry of the objects folder"
                    continue
                if o.name in used:
                    o.keep = "a record references it now"
                    continue
                age = _age_now(root, o)
                if age is None or age < report.min_age:
                    o.keep = "changed since it was listed"
                    continue
                try:
                    root.remove(f"{OBJECTS_DIR}/{o.name}")
                except (OSError, FlowprovError) as e:
                    o.keep = f"could not remove it: {e}"
                    continue
                o.removed = True
                if progress is not None:
                    progress(o)


def count_orphans(inst) -> int:
    """How many entries of flowprov's objects folders no record references, over every root
    that can be reached (any age; unreachable roots are passed over). For `verify`'s hint."""
    n = 0
    for sid, root in _roots(inst, None).items():
        try:
            entries = _list(root)
        except (OSError, FlowprovError):
            continue
        names = [e.name for e in entries if _PARTIAL.match(e.name) or _OBJECT.match(e.name)]
        try:
            used = _referenced(inst, sid, root, names)
        except FlowprovError:
            return n
        n += sum(1 for name in names if name not in used)
    return n


def orphans_hint(inst) -> str | None:
    """The line `verify` prints when objects lie unreferenced, or None."""
    n = count_orphans(inst)
    if not n:
        return None
    return f"{n} object{'s' if n != 1 else ''} in flowprov's storage no record references: see `flowprov gc`"


# -- roots and their objects ---------------------------------------------------------------------


def _roots(inst, storage: str | None) -> dict[int, StorageRoot]:
    from .storage import normalize_root

    roots = {sid: r for sid, r in inst.storages(refresh=True).items() if r.root != HOST_ROOT}
    if storage is None:
        return roots
    want = normalize_root(storage)
    chosen = {sid: r for sid, r in roots.items() if r.root == want}
    if not chosen:
        names = ", ".join(r.root for r in roots.values()) or "none"
        raise ValidationError(f"{want} is not a declared storage root (declared: {names})")
    return chosen


class _Entry:
    """One entry of an objects folder, its size and age read on demand."""

    def __init__(self, root: StorageRoot, name: str, path: str, info: dict | None = None):
        self.root, self.name, self.path, self.info = root, name, path, info

    def size(self) -> int | None:
        try:
            if self.root.is_local:
                return _local_tree(self.path)[0]
            if self.info is not None and self.info.get("type") != "directory":
                return self.info.get("size")
            return sum(i.get("size") or 0 for i in self._remote_files())
        except (OSError, FlowprovError):
            return None

    def age(self) -> float | None:
        try:
            if self.root.is_local:
                newest = _local_tree(self.path)[1]
            else:
                infos = (
                    [self.info]
                    if self.info is not None and self.info.get("type") != "directory"
                    else self._remote_files()
                )
                stamps = [_remote_mtime(i) for i in infos]
                if not stamps or any(s is None for s in stamps):
                    return None
                newest = max(stamps)
        except (OSError, FlowprovError):
            return None
        return max(0.0, time.time() - newest)

    def _remote_files(self) -> list[dict]:
        from .storage import remote_errors

        with remote_errors(f"list {self.path}"):
            return list(self.root.fs.find(self.path, detail=True).values())


def _list(root: StorageRoot) -> list[_Entry]:
    """The entries of root's objects folder (FileNotFoundError when there is none)."""
    base = root.path(OBJECTS_DIR)
    if root.is_local:
        with os.scandir(base) as it:
            return [_Entry(root, e.name, e.path) for e in it]
    from .storage import remote_errors

    with remote_errors(f"list {base}"):
        infos = root.fs.ls(base, detail=True)
    out = []
    prefix = base.split("://", 1)[-1].rstrip("/") + "/"
    for info in infos:
        full = info["name"].rstrip("/")
        name = full[len(prefix) :] if full.startswith(prefix) else full.rsplit("/", 1)[-1]
        if not name or "/" in name:
            continue
        out.append(_Entry(root, name, f"{root.root}/{OBJECTS_DIR}/{name}", info))
    return out


def _local_tree(path: str) -> tuple[int, float]:
    """(bytes, newest change time) of a file, or of a folder and everything in it. A copied
    folder keeps its source's mtimes, so ctime (set by the copy, never settable) counts too."""
    st = os.lstat(path)
    size, newest = st.st_size, max(st.st_mtime, st.st_ctime)
    if os.path.isdir(path) and not os.path.islink(path):
        size = 0
        for dirpath, dirnames, filenames in os.walk(path):
            for n in dirnames + filenames:
                try:
                    s = os.lstat(os.path.join(dirpath, n))
                except FileNotFoundError:
                    continue
                newest = max(newest, s.st_mtime, s.st_ctime)
                if n in filenames:
                    size += s.st_size
    return size, newest


def _remote_mtime(info: dict) -> float | None:
    from datetime import datetime

    for k in ("LastModified", "last_modified", "updated", "mtime", "timeCreated", "created"):
        v = info.get(k)
        if v is None:
            continue
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, datetime):
            return v.timestamp()
        try:
            return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
    return None


def _age_now(root: StorageRoot, o: Orphan) -> float | None:
    """The entry's age read again just before it is removed (None: gone, or unknown)."""
    info = None
    if not root.is_local:
        from .storage import remote_errors

        try:
            with remote_errors(f"check {o.path}"):
                info = root.fs.info(o.path)
        except (FileNotFoundError, FlowprovError):
            return None
    try:
        return _Entry(root, o.name, o.path, info).age()
    except FileNotFoundError:
        return None


# -- references ---------------------------------------------------------------------------------


def _referenced(inst, sid: int, root: StorageRoot, names: list[str]) -> set[str]:
    """Which of `names` (entries of root's objects folder) a record references: a managed copy
    of this storage with that hash and suffix, or a key naming the entry itself."""
    from .db import read_connection

    a = S.artifacts
    hashes: dict[str, list[str]] = {}
    for name in names:
        m = _OBJECT.match(name)
        if m:
            hashes.setdefault(m.group("hash"), []).append(name)
    out: set[str] = set()
    with read_connection(inst.engine) as conn:
        hs = list(hashes)
        for i in range(0, len(hs), _CHUNK):
            q = select(a.c.hash, a.c.suffix).where(
                a.c.storage_id == sid, a.c.managed.is_(True), a.c.hash.in_(hs[i : i + _CHUNK])
            )
            out.update(h + (s or "") for h, s in conn.execute(q))
        # a file of this objects folder recorded in place, under this root or one around it
        for other_id, prefix in _enclosing(inst, root):
            q = select(a.c.key).where(
                a.c.storage_id == other_id, a.c.key.startswith(prefix, autoescape=True)
            )
            for (key,) in conn.execute(q):
                out.add(key[len(prefix) :].split("/", 1)[0])
    return out & set(names)


def _enclosing(inst, root: StorageRoot) -> Iterable[tuple[int, str]]:
    """(storage id, key prefix of root's objects folder) for root and every root containing it
    (the host root `/` contains every local folder)."""
    for sid, other in inst.storages().items():
        if other.is_local != root.is_local:
            continue
        rel = other.key_of(root.root) if other.root != root.root else ""
        if rel is None:
            continue
        yield sid, (f"{rel}/" if rel else "") + f"{OBJECTS_DIR}/"


def _judge(inst, report: GcReport, min_age: float) -> None:
    """Say which orphans --delete would keep, and why."""
    from .db import read_connection

    a = S.artifacts
    for o in report.orphans:
        if o.age is None:
            o.keep = "its age is unknown"
        elif o.age < min_age:
            o.keep = f"younger than {_duration(min_age)} (a batch may still be recording it)"
    # orphans whose content is recorded elsewhere: removed only if a recorded copy is there
    objects = [o for o in report.orphans if o.kind == "object"]
    by_hash: dict[str, list[Orphan]] = {}
    for o in objects:
        by_hash.setdefault(_OBJECT.match(o.name).group("hash"), []).append(o)
    if not by_hash:
        return
    roots = inst.storages()
    hs = list(by_hash)
    with read_connection(inst.engine) as conn:
        for i in range(0, len(hs), _CHUNK):
            q = select(
                a.c.uid,
                a.c.hash,
                a.c.key,
                a.c.suffix,
                a.c.size,
                a.c.managed,
                a.c.hash_type,
                a.c.storage_id,
            ).where(a.c.hash.in_(hs[i : i + _CHUNK]))
            records: dict[str, list] = {}
            for r in conn.execute(q):
                records.setdefault(r.hash, []).append(r)
            for h, rows in records.items():
                first = rows[0]
                root = roots.get(first.storage_id)
                where = root.root if root is not None else f"storage {first.storage_id}"
                place = "a copy flowprov keeps" if first.managed else first.key
                there = any(_held(roots.get(r.storage_id), r) for r in rows)
                for o in by_hash[h]:
                    o.recorded_as = f"{first.uid} ({place} in {where})"
                    if not there and o.keep is None:
                        o.keep = "the last copy of recorded bytes (their recorded file is missing)"


def _held(root: StorageRoot | None, r) -> bool:
    """Is a recorded copy at its place with its recorded size? (No re-hash: cheap.)"""
    from .storage import object_key

    if root is None:
        return False
    key = object_key(r.hash, r.suffix or "") if r.managed else r.key
    if key is None:
        return False
    try:
        if root.is_local:
            st = os.stat(root.path(key))
            return r.hash_type.endswith("-dir") or r.size is None or st.st_size == r.size
        return root.exists(key)
    except (OSError, StorageError, FlowprovError):
        return False


def _duration(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"
