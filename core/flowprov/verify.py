"""Integrity checks: re-hash artifacts' files against their records.

`verify()` reads every byte again (the hash cache is bypassed: a check that trusts a cache checks
nothing). A file whose size differs is reported modified without being read. Remote objects are
hashed by streaming. `files_changed()` is the cheap variant `stale` uses: it trusts the hash
cache, which is keyed by (path, size, mtime, ctime, inode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import BigInteger, bindparam, cast, func, literal, select

from . import schema as S
from .errors import FileMissingError, FlowprovError, ValidationError

# removed: an engine deleted the file on purpose (Snakemake's temp()) — recorded, not a fault
STATUSES = ("ok", "modified", "missing", "removed", "error")


@dataclass
class Check:
    uid: str
    key: str | None
    path: str
    status: str  # ok | modified | missing | removed | error
    hash_type: str
    expected: str
    found: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "removed")


def parse_sample(sample: str | int | float | None) -> tuple[int | None, float | None]:
    """--sample N (that many artifacts) or --sample P% (that share of them)."""
    if sample is None:
        return None, None
    s = str(sample).strip()
    try:
        if s.endswith("%"):
            p = float(s[:-1])
            if not 0 < p <= 100:
                raise ValueError
            return None, p / 100
        n = int(s)
        if n <= 0:
            raise ValueError
        return n, None
    except ValueError:
        raise ValidationError(
            f"--sample takes a count (e.g. 1000) or a percentage (e.g. 5%), not {sample!r}"
        ) from None


# what check_row needs of an artifact (verify and `storage move`'s sampling select these)
CHECK_COLUMNS = tuple(
    S.artifacts.c[n]
    for n in (
        "id",
        "uid",
        "key",
        "hash",
        "hash_type",
        "size",
        "suffix",
        "managed",
        "storage_id",
        "removed",
    )
)


def _select(uids: Iterable[str] | None, sample) -> tuple:
    a = S.artifacts
    q = select(*CHECK_COLUMNS)
    uids = list(uids or ())
    if uids:
        q = q.where(a.c.uid.in_(bindparam("uids", expanding=True)))
    n, share = parse_sample(sample)
    return q, uids, n, share


def artifact_rows(
    uids: Iterable[str] | None = None,
    sample=None,
    seed: int | None = None,
    all_versions: bool = False,
) -> list:
    """The artifacts to check: all of them, the given uids, or a random sample (chosen in SQL).

    Older versions of a file recorded in place are left out unless named or `all_versions`:
    their successor overwrote them, as pipelines do. Copies flowprov keeps are always checked."""
    from .db import read_connection
    from .instance import current

    q, uids, n, share = _select(uids, sample)
    if not uids and not all_versions:
        a = S.artifacts
        q = q.where(a.c.is_latest.is_(True) | a.c.managed.is_(True))
    with read_connection(current().engine) as conn:
        if share is not None:
            total = conn.execute(select(func.count()).select_from(S.artifacts)).scalar()
            n = max(1, round(total * share))
        if n is not None:
            if seed is not None:  # repeatable: a hash of the id instead of random()
                k = cast(S.artifacts.c.id, BigInteger) * literal(2654435761, BigInteger)
                q = q.order_by((k + literal(seed, BigInteger)) % literal(4294967291, BigInteger))
            else:
                q = q.order_by(func.random())
            q = q.limit(n)
        else:
            q = q.order_by(S.artifacts.c.id)
        rows = conn.execute(q, {"uids": uids} if uids else {}).mappings().all()
    if uids:
        missing = set(uids) - {r["uid"] for r in rows}
        if missing:
            from .errors import DoesNotExist

            raise DoesNotExist(f"no artifact has uid {', '.join(sorted(missing))}")
    return rows


def check_row(row, roots: dict, use_cache: bool = False) -> Check:
    from .hashing import ENGINE_MARKERS, hash_path, hash_url
    from .storage import object_key

    root = roots[row["storage_id"]]
    key = object_key(row["hash"], row["suffix"]) if row["managed"] else row["key"]
    path = root.path(key)
    algo = row["hash_type"].removesuffix("-dir")
    c = Check(row["uid"], row["key"], path, "ok", row["hash_type"], row["hash"])
    try:
        if root.is_local:
            is_dir = row["hash_type"].endswith("-dir")
            if not is_dir and row["size"] is not None:
                size = os.stat(path).st_size  # FileNotFoundError → missing
                if size != row["size"]:
                    c.status, c.detail = (
                        "modified",
                        f"size {size:,} bytes, recorded {row['size']:,}",
                    )
                    return c
            digest = hash_path(path, algo, ENGINE_MARKERS, use_cache=use_cache)
        else:
            digest = hash_url(path, algo)
    except (FileNotFoundError, FileMissingError):
        if row.get("removed"):
            c.status, c.detail = "removed", f"deleted on purpose by its engine ({row['removed']})"
        else:
            c.status, c.detail = "missing", "no file or object at this path"
        return c
    except (OSError, FlowprovError) as e:
        c.status, c.detail = "error", str(e)
        return c
    c.found = digest.hash
    if digest.hash != row["hash"]:
        c.status = "modified"
        c.detail = (
            f"content hash differs ({digest.size:,} bytes now, {row['size'] or 0:,} recorded)"
        )
    return c


def verify(
    uids: Iterable[str] | None = None,
    sample=None,
    seed: int | None = None,
    workers: int = 4,
    progress: Callable[[Check], None] | None = None,
    all_versions: bool = False,
) -> list[Check]:
    """Re-hash the files of all artifacts (or of `uids`, or a random `sample`: a count or "5%")
    and compare with their records. Returns one Check per artifact, in id order."""
    return check_rows(artifact_rows(uids, sample, seed, all_versions), workers, progress)


def check_rows(
    rows, workers: int = 4, progress: Callable[[Check], None] | None = None
) -> list[Check]:
    """Re-hash the files of the given artifact rows (from artifact_rows), in parallel."""
    from .instance import current

    roots = current().storages(refresh=True)
    out: list[Check] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for c in pool.map(lambda r: check_row(r, roots), rows):
            out.append(c)
            if progress is not None:
                progress(c)
    return out
