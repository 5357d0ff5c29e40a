"""One record's page: artifact (and its download), run, transform.

Each page is one read of the record through the record API, then a handful of joined queries on
one connection for what it points at (names resolved in the query, never a query per row); long
lists (a pipeline run's thousands of tasks, a transform's runs, an artifact's readers) are pages
of their own, each list with its own page parameter (`children_page`, `runs_page`, ...).

The download serves only a local file inside a registered storage root — symlinks resolved
before the check — and only while it still holds the version's bytes (size, then the hash
through the hash cache): a page never hands out other bytes under a version's uid.
"""

from __future__ import annotations

import math
import os
import re
import stat
from datetime import UTC, datetime
from functools import cache
from urllib.parse import quote

from sqlalchemy import Integer, bindparam, func, or_, select
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from .. import schema as S
from ..db import read_connection
from ..errors import ContentChanged, FlowprovError
from .params import int_param
from .respond import NotFound, page

MAX_UID = 128  # longer is no uid of any record
PAGE_SIZE = 50
VERSIONS_SHOWN = 200
SAME_BYTES_SHOWN = 50
FEEDS_SHOWN = 100
FEEDS_RUNS_AT_ONCE = 2000  # runs of a transform above which its feeding transforms wait for a click
PACKAGES_SHOWN = 5000
LOGS_SHOWN = 10
LOG_BYTES = 64 * 1024
HIGHLIGHT_MAX = 256 * 1024  # characters of source code Pygments highlights; longer is plain text
DIFF_TEXT_MAX = 64 * 1024
CHUNK = 1024 * 1024

# Which outputs are a run's logs: no field says so (Snakemake's `log:` files are registered as
# outputs like any other), so a log is an output named like one.
LOG_SUFFIXES = (".log", ".err", ".out", ".stderr", ".stdout")


# -- finding records ---------------------------------------------------------------------------


def find(model, uid: str, what: str):
    """The record with exactly this uid (a page's URL is stable: no prefix matching)."""
    if len(uid) > MAX_UID:
        raise NotFound(f"no {what} has a uid of {len(uid)} characters")
    rec = model.filter(uid=uid).one_or_none()
    if rec is None:
        raise NotFound(f"no {what} has uid {uid!r}")
    return rec


def page_url(kind: str, uid: str) -> str:
    """The stable URL of a record's page (kind: artifact, run, transform)."""
    return f"/{kind}/{quote(uid, safe='')}"


def _utc(v):
    """Times as UTC (SQLite gives them back naive, PostgreSQL in the session's zone)."""
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v


def _seconds(start, end) -> float | None:
    if start is None or end is None:
        return None
    return round((_utc(end) - _utc(start)).total_seconds(), 3)


def _engine():
    from ..instance import current

    return current().engine


# -- rows as the pages list them ---------------------------------------------------------------


@cache
def _runs_select():
    r, t, u = S.runs, S.transforms, S.users
    return select(
        r.c.id,
        r.c.uid,
        r.c.name,
        r.c.status,
        r.c.started_at,
        r.c.finished_at,
        r.c.engine,
        r.c.reference,
        t.c.uid.label("t_uid"),
        t.c.name.label("t_name"),
        t.c.version.label("t_version"),
        t.c.type.label("t_type"),
        u.c.handle.label("user"),
    ).select_from(r.join(t, t.c.id == r.c.transform_id).outerjoin(u, u.c.id == r.c.created_by_id))


def _run_item(row) -> dict:
    return {
        "uid": row["uid"],
        "name": row["name"],
        "status": row["status"],
        "started_at": _utc(row["started_at"]),
        "finished_at": _utc(row["finished_at"]),
        "duration": _seconds(row["started_at"], row["finished_at"]),
        "engine": row["engine"],
        "reference": row["reference"],
        "transform": {
            "uid": row["t_uid"],
            "name": row["t_name"],
            "version": row["t_version"],
            "type": row["t_type"],
        },
        "user": row["user"],
    }


@cache
def _artifacts_select():
    a, s, r, t, u = S.artifacts, S.storages, S.runs, S.transforms, S.users
    return select(
        a.c.id,
        a.c.uid,
        a.c.key,
        a.c.file_name,
        a.c.description,
        a.c.suffix,
        a.c.size,
        a.c.hash,
        a.c.hash_type,
        a.c.n_objects,
        a.c.is_latest,
        a.c.removed,
        a.c.created_at,
        s.c.uid.label("s_uid"),
        s.c.root.label("s_root"),
        s.c.type.label("s_type"),
        r.c.uid.label("r_uid"),
        t.c.uid.label("t_uid"),
        t.c.name.label("t_name"),
        t.c.version.label("t_version"),
        u.c.handle.label("user"),
    ).select_from(
        a.join(s, s.c.id == a.c.storage_id)
        .outerjoin(r, r.c.id == a.c.run_id)
        .outerjoin(t, t.c.id == r.c.transform_id)
        .outerjoin(u, u.c.id == a.c.created_by_id)
    )


def _artifact_item(row) -> dict:
    return {
        "uid": row["uid"],
        "key": row["key"],
        "file_name": row["file_name"],
        "description": row["description"],
        "suffix": row["suffix"],
        "size": row["size"],
        "hash": row["hash"],
        "hash_type": row["hash_type"],
        "n_objects": row["n_objects"],
        "is_latest": row["is_latest"],
        "removed": row["removed"],
        "created_at": _utc(row["created_at"]),
        "storage": {"uid": row["s_uid"], "root": row["s_root"], "type": row["s_type"]},
        "run": row["r_uid"],
        "transform": (
            {"uid": row["t_uid"], "name": row["t_name"], "version": row["t_version"]}
            if row["t_uid"]
            else None
        ),
        "user": row["user"],
    }


def _id(name: str = "id"):
    return bindparam(name, type_=Integer)


@cache
def _lists() -> dict:
    """Every paged list as (rows in order, their count), prebuilt with the record's id in `id`
    (building a statement costs more than running it on a page's small lists)."""
    r, ar, ri, ro, T = S.runs, S.artifacts, S.run_inputs, S.run_outputs, S.transforms
    limit = bindparam("limit", type_=Integer)
    offset = bindparam("offset", type_=Integer)

    def paged(q):
        return q.limit(limit).offset(offset)

    return {
        "readers": (
            paged(
                _runs_select()
                .where(r.c.id.in_(select(ri.c.run_id).where(ri.c.artifact_id == _id())))
                .order_by(r.c.id.desc())
            ),
            _count(ri, ri.c.artifact_id == _id()),
        ),
        "children": (
            paged(_runs_select().where(r.c.parent_id == _id()).order_by(r.c.id)),
            _count(r, r.c.parent_id == _id()),
        ),
        "inputs": (
            paged(
                _artifacts_select()
                .where(ar.c.id.in_(select(ri.c.artifact_id).where(ri.c.run_id == _id())))
                .order_by(ar.c.id)
            ),
            _count(ri, ri.c.run_id == _id()),
        ),
        "outputs": (
            paged(
                _artifacts_select()
                .where(ar.c.id.in_(select(ro.c.artifact_id).where(ro.c.run_id == _id())))
                .order_by(ar.c.id)
            ),
            _count(ro, ro.c.run_id == _id()),
        ),
        "runs": (
            paged(_runs_select().where(r.c.transform_id == _id()).order_by(r.c.id.desc())),
            _count(r, r.c.transform_id == _id()),
        ),
        "members": (
            paged(select(T).where(T.c.parent_id == _id()).order_by(T.c.name)),
            _count(T, T.c.parent_id == _id()),
        ),
    }


def _paged(conn, request: Request, name: str, record_id: int, to_item, param: str) -> dict:
    """One page of a list (see _lists) of one record: the page asked for in the query
    parameter `param`, its rows, how many there are in all."""
    items, count = _lists()[name]
    number = int_param(request, param, 1, 1, 1_000_000)
    total = conn.execute(count, {"id": record_id}).scalar_one()
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if number > pages:
        from .respond import BadRequest

        raise BadRequest(f"{param} {number} is past the last page ({pages})")
    rows = conn.execute(
        items, {"id": record_id, "limit": PAGE_SIZE, "offset": (number - 1) * PAGE_SIZE}
    ).mappings()
    return {
        "total": total,
        "page": number,
        "pages": pages,
        "size": PAGE_SIZE,
        "param": param,
        "items": [to_item(r) for r in rows],
    }


def _count(table, *where):
    return select(func.count()).select_from(table).where(*where)


@cache
def _one() -> dict:
    """One row of a table by id, prebuilt."""
    return {
        "run": _runs_select().where(S.runs.c.id == _id()),
        "artifact": _artifacts_select().where(S.artifacts.c.id == _id()),
        "transform": select(S.transforms).where(S.transforms.c.id == _id()),
        "user": select(S.users.c.handle, S.users.c.name).where(S.users.c.id == _id()),
    }


def _user(conn, user_id) -> dict | None:
    if user_id is None:
        return None
    row = conn.execute(_one()["user"], {"id": user_id}).mappings().first()
    return dict(row) if row else None


def _run_summary(conn, run_id) -> dict | None:
    if run_id is None:
        return None
    row = conn.execute(_one()["run"], {"id": run_id}).mappings().first()
    return _run_item(row) if row else None


# -- artifact ----------------------------------------------------------------------------------


class Refused(Exception):
    """Why a file is not served (the download's 404 reason)."""


def _is_folder(a) -> bool:
    return a.n_objects != 1 or a.hash_type.endswith("-dir")


def locate(a) -> str:
    """The real path (symlinks resolved) of a local artifact's file inside a registered local
    storage root; Refused with the reason otherwise."""
    from ..instance import current

    if _is_folder(a):
        raise Refused(f"Artifact {a.uid} is a folder of {a.n_objects} files: no single download")
    roots = current().storages()
    if a.storage_id not in roots:
        roots = current().storages(refresh=True)
    root = roots[a.storage_id]
    if not root.is_local:
        raise Refused(
            f"Artifact {a.uid} is stored at {root.path(a._object_key)}: only local files are "
            "served here, fetch remote ones from their store"
        )
    if a.removed:
        raise Refused(f"the file of Artifact {a.uid} was removed on purpose ({a.removed})")
    where = root.path(a._object_key)
    real = os.path.realpath(where)
    inside = [
        os.path.realpath(r.root) for r in current().storages().values() if r.is_local
    ]  # a symlink may point into another registered root, never out of all of them
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in inside):
        raise Refused(
            f"the file of Artifact {a.uid} ({where}) resolves outside every registered storage "
            "root: not served"
        )
    if not os.path.exists(real):
        raise Refused(f"the file of Artifact {a.uid} is missing: {where}")
    if not os.path.isfile(real):
        raise Refused(f"{where} is not a regular file: not served")
    return real


def open_checked(a) -> tuple[int, os.stat_result, str]:
    """(an open descriptor, its stat, the path) of the artifact's file, checked to hold this
    version's bytes: the size, then the hash (through the hash cache, so an unchanged file is not
    re-read). Refused with the reason otherwise."""
    real = locate(a)
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise Refused(f"cannot open the file of Artifact {a.uid}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{real} is not a regular file: not served")
        if a.size is not None and st.st_size != a.size:
            raise Refused(
                f"{real} no longer holds Artifact {a.uid}: {st.st_size:,} bytes, recorded "
                f"{a.size:,} (another version replaced it, or it was edited)"
            )
        try:
            a._check_local(real)
        except ContentChanged:
            raise Refused(
                f"{real} no longer holds Artifact {a.uid}: its {a.hash_type} differs from the "
                "recorded one (another version replaced it, or it was edited)"
            ) from None
        now = os.stat(real)
        if (now.st_ino, now.st_dev, now.st_size) != (st.st_ino, st.st_dev, st.st_size):
            raise Refused(f"{real} changed while it was checked: try again")
    except BaseException:
        os.close(fd)
        raise
    return fd, st, real


def _download_name(a) -> str:
    if a.key:
        name = a.key.rstrip("/").rsplit("/", 1)[-1]
    else:
        name = a.file_name or f"{a.uid}{a.suffix}"
    name = "".join(c for c in name if c.isprintable() and c not in "/\\")
    return name or f"{a.uid}{a.suffix}"


def content_disposition(name: str) -> str:
    """attachment with an ASCII fallback name and the exact name (RFC 6266 / 5987): no quote,
    semicolon or newline of a stored key can reach the header."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._") or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _download_state(a) -> dict:
    """Whether the page offers the download (a cheap look: the download itself checks the
    bytes)."""
    try:
        locate(a)
    except Refused as e:
        return {"available": False, "url": None, "reason": str(e)}
    except FlowprovError as e:
        return {"available": False, "url": None, "reason": str(e)}
    return {"available": True, "url": page_url("artifact", a.uid) + "/download", "reason": None}


def artifact_download(request: Request):
    from ..records import Artifact

    a = find(Artifact, request.path_params["uid"], "artifact")
    try:
        fd, st, _ = open_checked(a)
    except Refused as e:
        raise NotFound(str(e)) from None

    def chunks():
        try:
            while True:
                block = os.read(fd, CHUNK)
                if not block:
                    return
                yield block
        finally:
            os.close(fd)

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",  # never rendered by the browser on this origin
        headers={
            "content-disposition": content_disposition(_download_name(a)),
            "content-length": str(st.st_size),
            "cache-control": "no-store",
        },
    )


def _changes(a, previous_uid: str | None) -> dict | None:
    """What changed from the version before this one (`flowprov diff`, one step upstream)."""
    if previous_uid is None:
        return None
    from ..diff import diff
    from ..records import Artifact

    out = {"previous": previous_uid, "command": f"flowprov diff {previous_uid} {a.uid}"}
    try:
        d = diff(Artifact.filter(uid=previous_uid).one(), a, depth=1)
    except FlowprovError as e:
        return {**out, "error": str(e)}
    start = d.start
    step = d.steps[0] if d.steps else None
    params = None
    if step is not None and not step.params.same:
        params = {
            "added": step.params.added,
            "removed": step.params.removed,
            "changed": {k: {"a": c.a, "b": c.b} for k, c in step.params.changed.items()},
        }
    return {
        **out,
        "identical": d.identical,
        "content": start.content if start else None,
        "size": {"a": d.a.size, "b": d.b.size},
        "origins": [{"kind": o.kind, "summary": o.summary} for o in d.origins],
        "text_diff": _clip(start.text_diff if start else None),
        "text_diff_note": start.text_diff_note if start else None,
        "code_diff": _clip(step.code.diff if step is not None else None),
        "params": params,
        "truncated": d.truncated,
    }


def _clip(text: str | None, limit: int = DIFF_TEXT_MAX) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters)"


@cache
def _artifact_queries() -> dict:
    ar, ro, r = S.artifacts, S.run_outputs, S.runs
    stem, h = bindparam("stem"), bindparam("hash")
    same = (ar.c.hash == h) & (ar.c.id != _id())
    return {
        # the other runs that wrote these bytes there (the first is the producer)
        "also_made": _runs_select()
        .where(
            r.c.id.in_(
                select(ro.c.run_id).where(ro.c.artifact_id == _id(), ro.c.run_id != _id("run_id"))
            )
        )
        .order_by(r.c.id)
        .limit(20),
        "n_versions": _count(ar, ar.c.stem == stem),
        "versions": _artifacts_select()
        .where(ar.c.stem == stem)
        .order_by(ar.c.uid.desc())
        .limit(VERSIONS_SHOWN),
        "previous": select(ar.c.uid)
        .where(ar.c.stem == stem, ar.c.uid < bindparam("uid"))
        .order_by(ar.c.uid.desc())
        .limit(1),
        "n_same": _count(ar, same),
        "same": _artifacts_select().where(same).order_by(ar.c.id).limit(SAME_BYTES_SHOWN),
    }


def artifact_page(request: Request):
    from ..records import Artifact

    a = find(Artifact, request.path_params["uid"], "artifact")
    q = _artifact_queries()
    with read_connection(_engine()) as conn:
        me = conn.execute(_one()["artifact"], {"id": a.id}).mappings().one()
        producer = _run_summary(conn, a.run_id)
        also_made = [
            _run_item(r)
            for r in conn.execute(q["also_made"], {"id": a.id, "run_id": a.run_id or -1}).mappings()
        ]
        readers = _paged(conn, request, "readers", a.id, _run_item, "readers_page")
        n_versions = conn.execute(q["n_versions"], {"stem": a.stem}).scalar_one()
        version_rows = conn.execute(q["versions"], {"stem": a.stem}).mappings()
        versions = [_artifact_item(r) for r in version_rows][::-1]  # oldest first
        previous = conn.execute(q["previous"], {"stem": a.stem, "uid": a.uid}).first()
        n_same = conn.execute(q["n_same"], {"hash": a.hash, "id": a.id}).scalar_one()
        same = [
            _artifact_item(r)
            for r in conn.execute(q["same"], {"hash": a.hash, "id": a.id}).mappings()
        ]
        staleness = _staleness(conn, a)
    item = _artifact_item(me)
    data = {
        "kind": "artifact",
        **item,
        "key_is_virtual": a.key_is_virtual,
        "managed": a.managed,
        "checksums": a.checksums or {},
        "removed_at": _utc(a.removed_at),
        "updated_at": _utc(a.updated_at),
        "path": _path_or_none(a),
        "producer": producer,
        "also_made_by": also_made,
        "readers": readers,
        "versions": {"total": n_versions, "shown": len(versions), "items": versions},
        "changes": _changes(a, previous[0] if previous else None),
        "same_bytes": {
            "total": n_same,
            "items": same,
            # every empty file shares one hash: equal emptiness says nothing about where it came
            "note": "every empty file has this hash" if a.size == 0 else None,
        },
        "download": _download_state(a),
        "stale": staleness,
        "lineage": page_url("lineage", a.uid),
    }
    return page(request, "artifact.html", data)


def _path_or_none(a) -> str | None:
    try:
        return str(a.path)
    except (FlowprovError, KeyError):
        return None


# -- staleness of one artifact -----------------------------------------------------------------


def _staleness(conn, a) -> dict:
    """Is this artifact out of date, and why — `flowprov stale` for one artifact: the causes it
    counts (an older version of something read upstream, an older version of the code of a run
    upstream) searched only upstream of this artifact, then its walk from those causes. Its own
    file is looked at (missing, other size); files upstream are not re-read here."""
    note = (
        "Checked: newer versions of the inputs and code upstream, and this file's presence and "
        "size. Not re-read here: the content of the files upstream (`flowprov stale` does)."
    )
    if not a.is_latest:
        return {
            "stale": None,
            "reasons": [],
            "note": "An older version: a newer version holds this place now (see Versions).",
        }
    reasons = []
    own = _own_file(a)
    if own is not None:
        kind, detail = own
        label = a.key or a.uid
        reasons.append(
            {
                "kind": kind,
                "cause": a.uid,
                "detail": detail,
                "path": [{"uid": a.uid, "label": label, "url": page_url("artifact", a.uid)}],
            }
        )
    reasons += _upstream_reasons(conn, a.id)
    return {"stale": bool(reasons), "reasons": reasons, "note": note}


def _own_file(a) -> tuple[str, str] | None:
    """("file missing" | "file changed", detail) when a glance (no reading) shows the local file
    is not this version; None when it looks right or cannot be looked at here."""
    if a.removed or _is_folder(a):
        return None
    try:
        root = a._root()
    except (FlowprovError, KeyError):
        return None
    if not root.is_local:
        return None
    where = root.path(a._object_key)
    try:
        st = os.stat(where)
    except FileNotFoundError:
        return ("file missing", f"{where}: no such file")
    except OSError:
        return None
    if a.size is not None and st.st_size != a.size:
        return ("file changed", f"{where}: {st.st_size:,} bytes, recorded {a.size:,}")
    return None


@cache
def _cause_queries() -> tuple:
    """The causes `flowprov stale` counts, among the runs upstream of an artifact (`runs`):
    older versions they read — or whose bytes they read as a producer-less copy
    (lineage/walk.copies_of) — and they themselves when their code has a newer version. Each
    query starts from the runs, through indexes: never a scan of every old version."""
    ar, r, t, ri, ro = S.artifacts, S.runs, S.transforms, S.run_inputs, S.run_outputs
    runs = bindparam("runs", expanding=True)
    read, cause, ri2 = ar.alias("cread"), ar.alias("cause"), ri.alias("cread_by")
    read_itself = (
        select(read.c.id)
        .select_from(ri.join(read, read.c.id == ri.c.artifact_id))
        .where(ri.c.run_id.in_(runs), read.c.is_latest.is_(False), read.c.id != _id("aid"))
    )
    copied = (
        select(cause.c.id)
        .select_from(
            ri.join(read, read.c.id == ri.c.artifact_id).join(cause, cause.c.hash == read.c.hash)
        )
        .where(
            ri.c.run_id.in_(runs),
            read.c.run_id.is_(None),
            read.c.size > 0,
            cause.c.is_latest.is_(False),
            cause.c.id != _id("aid"),
            # read by some run (an index probe: an IN list would read every input of the store)
            select(ri2.c.run_id).where(ri2.c.artifact_id == cause.c.id).exists(),
        )
    )
    old_code = (
        select(r.c.id)
        .select_from(r.join(t, t.c.id == r.c.transform_id))
        .where(
            r.c.id.in_(runs),
            t.c.is_latest.is_(False),
            select(ro.c.run_id).where(ro.c.run_id == r.c.id).exists(),
        )
    )
    return read_itself, copied, old_code


def _upstream_reasons(conn, aid: int) -> list[dict]:
    from ..lineage import stale as ST
    from ..lineage.graph import _rows
    from ..lineage.walk import chunks, run_walk_statement

    upstream = {
        r for r, _ in conn.execute(run_walk_statement("upstream", "a", False), {"start": [aid]})
    }
    read_itself, copied, old_code = _cause_queries()
    arts, runs = set(), set()
    for part in chunks(upstream):
        for q in (read_itself, copied):
            arts |= {x for (x,) in conn.execute(q, {"runs": part, "aid": aid})}
        runs |= {x for (x,) in conn.execute(old_code, {"runs": part})}
    arts, runs = sorted(arts), sorted(runs)
    if not arts and not runs:
        return []
    walk = conn.execute(ST._walk(arts, runs), {"arts": arts, "runs": runs}).all()
    pred: dict[tuple[int, int], tuple[int | None, int | None]] = {}
    for art, c, prev, via in walk:
        pred.setdefault((art, c), (prev, via))
    causes = sorted(c for (art, c) in pred if art == aid)
    if not causes:
        return []
    # the records on the paths from each cause to this artifact
    art_ids, run_ids = set(), {-c for c in causes if c < 0}
    for c in causes:
        cur, seen = aid, set()
        while cur is not None and cur not in seen:
            seen.add(cur)
            art_ids.add(cur)
            prev, via = pred.get((cur, c), (None, None))
            if via is not None:
                run_ids.add(via)
            cur = prev
    art_ids |= {c for c in causes if c > 0}
    info = {row["id"]: row for row in _rows(conn, ST._artifact_info(), art_ids)}
    run_info = {
        row["id"]: (row["uid"], row["t_uid"], row["name"])
        for row in _rows(conn, ST._run_info(), run_ids)
    }
    kinds = {u: "run" for u, _, _ in run_info.values()}
    out, said = [], set()
    for c in causes:
        path, labels = ST._path(pred, aid, c, info, run_info)
        if c < 0:
            _, t_uid, t_name = run_info[-c]
            kind, cause_uid = "newer code version", t_uid
            detail = f"{t_name} ({t_uid}) has a newer version"
            path, labels = [t_uid, *path], [f"{t_name} (older version)", *labels]
            kinds[t_uid] = "transform"
        else:
            row = info[c]
            kind, cause_uid = "newer input version", row["uid"]
            detail = f"{row['key'] or row['uid']} has a newer version"
        if (kind, cause_uid) in said:
            continue  # the same reason through another run
        said.add((kind, cause_uid))
        out.append(
            {
                "kind": kind,
                "cause": cause_uid,
                "detail": detail,
                "path": [
                    {
                        "uid": u,
                        "label": label,
                        "url": page_url(kinds.get(u, "artifact"), u),
                    }
                    for u, label in zip(path, labels, strict=True)
                ],
            }
        )
    return out


# -- run ---------------------------------------------------------------------------------------


def _environment(run) -> dict | None:
    env = run.environment
    if env is None:
        return None
    packages = env.packages.all()
    spec = env.spec_file
    return {
        "uid": env.uid,
        "hash": env.hash,
        "interpreter": env.interpreter,
        "os": env.os,
        "container_image": env.container_image,
        "container_digest": env.container_digest,
        "container_engine": env.container_engine,
        "deployed": env.deployed,
        "complete": env.complete,
        "n_packages": env.n_packages,
        "details": env.details,
        "spec_file": {"uid": spec.uid, "key": spec.key or spec.file_name} if spec else None,
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "build": p.build,
                "source": p.source,
                "channel": p.channel,
            }
            for p in packages[:PACKAGES_SHOWN]
        ],
        "packages_shown": min(len(packages), PACKAGES_SHOWN),
    }


@cache
def _logs_query():
    ar, ro = S.artifacts, S.run_outputs
    lower = func.lower(func.coalesce(ar.c.key, ar.c.file_name, ""))
    named = or_(
        *(lower.like(f"%{s}") for s in LOG_SUFFIXES),
        lower.like("logs/%"),
        lower.like("%/logs/%"),
    )
    return (
        select(ar)
        .where(ar.c.id.in_(select(ro.c.artifact_id).where(ro.c.run_id == _id())), named)
        .order_by(ar.c.key)
        .limit(LOGS_SHOWN)
    )


def _logs(conn, run) -> list[dict]:
    """The run's log files (outputs named like logs), the first LOG_BYTES of each as text, read
    only from a local file that still holds the recorded bytes."""
    from ..records import Artifact

    rows = conn.execute(_logs_query(), {"id": run.id}).mappings()
    out = []
    for row in rows:
        a = Artifact._from_row(row)
        entry = {
            "uid": a.uid,
            "key": a.key or a.file_name,
            "size": a.size,
            "text": None,
            "truncated": False,
            "note": None,
        }
        try:
            fd, st, _ = open_checked(a)
        except Refused as e:
            entry["note"] = str(e)
        except FlowprovError as e:
            entry["note"] = str(e)
        else:
            try:
                head = os.read(fd, LOG_BYTES)
            finally:
                os.close(fd)
            entry["text"] = head.decode("utf-8", errors="replace")
            entry["truncated"] = st.st_size > LOG_BYTES
        out.append(entry)
    return out


def run_page(request: Request):
    from ..records import Run

    run = find(Run, request.path_params["uid"], "run")
    with read_connection(_engine()) as conn:
        me = conn.execute(_one()["run"], {"id": run.id}).mappings().one()
        t = conn.execute(_one()["transform"], {"id": run.transform_id}).mappings().one()
        user = _user(conn, run.created_by_id)
        parent = _run_summary(conn, run.parent_id)
        children = _paged(conn, request, "children", run.id, _run_item, "children_page")
        inputs = _paged(conn, request, "inputs", run.id, _artifact_item, "inputs_page")
        outputs = _paged(conn, request, "outputs", run.id, _artifact_item, "outputs_page")
        logs = _logs(conn, run)
    params = run.params
    data = {
        "kind": "run",
        **_run_item(me),
        "transform": {
            "uid": t["uid"],
            "name": t["name"],
            "key": t["key"],
            "type": t["type"],
            "version": t["version"],
            "is_latest": t["is_latest"],
        },
        "user": user,
        "params": params if isinstance(params, dict) or params is None else {"(value)": params},
        "runtime": run.runtime,
        "error": run.error,
        "reference_type": run.reference_type,
        "created_at": _utc(run.created_at),
        "updated_at": _utc(run.updated_at),
        "environment": _environment(run),
        "parent": parent,
        "children": children,
        "inputs": inputs,
        "outputs": outputs,
        "logs": logs,
        "log_bytes": LOG_BYTES,
        "lineage": page_url("lineage", run.uid),
    }
    return page(request, "run.html", data)


# -- transform ---------------------------------------------------------------------------------


def _lexer(t: dict):
    """Pygments' lexer for a transform's code: by what the engine runs, then by file name."""
    from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename
    from pygments.util import ClassNotFound

    by_type = {
        "notebook": "python",
        "flow": "python",
        "task": "python",
        "rule": "python",  # a Snakemake rule: Python with a shell command inside
        "process": "bash",  # a Nextflow process's script block
    }
    key = (t.get("key") or "").rsplit(":", 1)[0]
    tail = key.rsplit("/", 1)[-1]
    if t["type"] in by_type:
        return get_lexer_by_name(by_type[t["type"]], stripnl=False)
    if tail == "Snakefile" or tail.endswith(".smk"):
        return get_lexer_by_name("python", stripnl=False)
    if tail.endswith(".nf"):
        return get_lexer_by_name("groovy", stripnl=False)
    for name in (tail, t.get("name") or ""):
        if "." in name:
            try:
                return get_lexer_for_filename(name, stripnl=False)
            except ClassNotFound:
                pass
    if t["type"] == "script":
        return get_lexer_by_name("python", stripnl=False)
    return TextLexer(stripnl=False)


def highlight(t: dict) -> tuple[str | None, str | None]:
    """(the source code as Pygments' HTML — CSS classes, no inline style; Pygments escapes the
    code —, the lexer's name); (None, None) when there is no code or too much of it."""
    code = t.get("source_code")
    if not code or len(code) > HIGHLIGHT_MAX:
        return None, None
    from pygments import highlight as pyg
    from pygments.formatters import HtmlFormatter

    lexer = _lexer(t)
    html = pyg(code, lexer, HtmlFormatter(cssclass="highlight", linenos="table", wrapcode=True))
    return html, lexer.name


def _feeds(request: Request, tr, n_runs: int) -> dict:
    """The transforms whose runs made what this one's runs read (Transform.parents). Finding
    them reads every input of every run: for a transform of many runs, only when asked
    (`?feeds=all`), so that its page stays quick."""
    from .params import choice_param

    asked = choice_param(request, "feeds", ("all",)) == "all"
    if n_runs > FEEDS_RUNS_AT_ONCE and not asked:
        return {"total": None, "items": [], "deferred": True}
    q = tr.parents.order_by("name")
    items = [_transform_item(row) for row in q._rows(limit=FEEDS_SHOWN)]
    total = len(items) if len(items) < FEEDS_SHOWN else q.count()
    return {"total": total, "items": items, "deferred": False}


@cache
def _transform_versions():
    T, r = S.transforms, S.runs
    n_runs = select(func.count()).where(r.c.transform_id == T.c.id).scalar_subquery()
    return (
        select(
            T.c.uid, T.c.version, T.c.is_latest, T.c.hash, T.c.created_at, n_runs.label("n_runs")
        )
        .where(T.c.stem == bindparam("stem"))
        .order_by(T.c.uid)
        .limit(VERSIONS_SHOWN)
    )


def transform_page(request: Request):
    from ..records import Transform

    tr = find(Transform, request.path_params["uid"], "transform")
    with read_connection(_engine()) as conn:
        me = conn.execute(_one()["transform"], {"id": tr.id}).mappings().one()
        user = _user(conn, tr.created_by_id)
        versions = [
            {
                "uid": v["uid"],
                "version": v["version"],
                "is_latest": v["is_latest"],
                "hash": v["hash"],
                "created_at": _utc(v["created_at"]),
                "runs": v["n_runs"],
            }
            for v in conn.execute(_transform_versions(), {"stem": tr.stem}).mappings()
        ]
        runs = _paged(conn, request, "runs", tr.id, _run_item, "runs_page")
        parent = None
        if tr.parent_id is not None:
            p = conn.execute(_one()["transform"], {"id": tr.parent_id}).mappings().first()
            parent = _transform_item(p) if p else None
        members = _paged(conn, request, "members", tr.id, _transform_item, "members_page")
    feeds = _feeds(request, tr, runs["total"])
    data = {
        "kind": "transform",
        **_transform_item(me),
        "description": me["description"],
        "reference": me["reference"],
        "reference_type": me["reference_type"],
        "hash": me["hash"],
        "source_code": me["source_code"],
        "created_at": _utc(me["created_at"]),
        "updated_at": _utc(me["updated_at"]),
        "created_by": user,
        "versions": versions,
        "runs": runs,
        "parent": parent,
        "members": members,
        "feeds": feeds,
        "lineage": page_url("lineage", tr.uid),
    }
    code_html, language = highlight(me)
    data["language"] = language
    return page(request, "transform.html", data, code_html=code_html)


def _transform_item(row) -> dict:
    return {
        "uid": row["uid"],
        "name": row["name"],
        "key": row["key"],
        "type": row["type"],
        "version": row["version"],
        "is_latest": row["is_latest"],
    }


def pygments_css() -> str:
    """The style sheet of highlighted code (pasted into style.css's records block)."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="highlight").get_style_defs(".highlight")


ROUTES = [
    Route("/artifact/{uid}", artifact_page, methods=["GET"]),
    Route("/artifact/{uid}/download", artifact_download, methods=["GET"]),
    Route("/run/{uid}", run_page, methods=["GET"]),
    Route("/transform/{uid}", transform_page, methods=["GET"]),
]
