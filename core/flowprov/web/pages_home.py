"""Home (what runs now; recent top-level runs of every engine, failures first; counts per table)
and search (one box, typo-tolerant, across every record type)."""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import quote, urlencode

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.routing import Route

from .. import schema as S
from .pages_lists import FAILED, _engine, _utc, run_rows
from .params import choice_param, int_param, text_param
from .respond import page

RECENT = 30  # top-level runs on the home page
NOW_SHOWN = 50  # runs in progress or just finished shown on the home page
COUNT_CAP = 10_000  # the home page's counts stop here: "more than 10,000 (at most N)"
TABLES = ("artifacts", "runs", "transforms", "users", "storages")


# -- home --------------------------------------------------------------------------------------
def home(request: Request):
    from ..db import read_connection
    from ..status import current_runs

    activity = current_runs()
    with read_connection(_engine()) as conn:
        ids = list(
            conn.execute(
                select(S.runs.c.id)
                .where(S.runs.c.parent_id.is_(None))
                .order_by(S.runs.c.started_at.desc(), S.runs.c.id.desc())
                .limit(RECENT)
            ).scalars()
        )
        by_id = {r["id"]: r for r in run_rows(conn, ids)} if ids else {}
        counts = {t: _capped_count(conn, S.TABLES[t]) for t in TABLES}
    recent = []
    for i in ids:
        r = {k: _utc(v) for k, v in by_id[i].items() if k != "id"}
        recent.append(r)
    # failures first, each group newest first (the query's order; sorted() is stable)
    recent = sorted(recent, key=lambda r: r["status"] not in FAILED)
    now = [_activity(a) for a in activity[:NOW_SHOWN]]
    data = dict(
        now=now,
        now_total=len(activity),
        recent=recent,
        counts=counts,
        count_cap=COUNT_CAP,
    )
    return page(request, "home.html", data)


def _capped_count(conn, table) -> dict:
    """{"n", "exact", "at_most"}: rows counted up to COUNT_CAP (an index scan that stops there);
    past it, the largest id bounds the count from above (ids are positive and unique) — one
    step down the primary key, where an exact count of a million rows reads them all."""
    n = conn.execute(
        select(func.count()).select_from(select(table.c.id).limit(COUNT_CAP + 1).subquery())
    ).scalar()
    if n <= COUNT_CAP:
        return {"n": n, "exact": True, "at_most": n}
    top = conn.execute(select(func.max(table.c.id))).scalar()
    return {"n": COUNT_CAP, "exact": False, "at_most": top}


def _activity(a) -> dict:
    d = asdict(a)
    d["tasks"]["seen"] = a.tasks.seen
    err = d.pop("error")
    d["error"] = err.strip().splitlines()[-1][:300] if err and err.strip() else None
    return d


# -- search ------------------------------------------------------------------------------------
TYPES = {
    "artifact": "Artifact",
    "run": "Run",
    "transform": "Transform",
    "user": "User",
    "storage": "Storage",
    "environment": "Environment",
}
_TYPE_OF_MODEL = {m: t for t, m in TYPES.items()}


def search(request: Request):
    from ..records import MODELS
    from ..search import search_all, search_records

    q = text_param(request, "q", 200)
    kind = choice_param(request, "type", TYPES)
    limit = int_param(request, "limit", 20, 1, 100)
    data = dict(q=q, type=kind, limit=limit, types=list(TYPES), hits=[])
    if q is None:
        return page(request, "search.html", data)
    if kind is not None:
        res = search_records(MODELS[TYPES[kind]], q, limit=limit)
        pairs = list(zip(res.scores, res, strict=True))
    else:
        pairs = search_all(q, limit=limit)
    transforms = _transform_names([rec for _, rec in pairs if type(rec).__name__ == "Run"])
    data["hits"] = [_hit(q, score, rec, transforms) for score, rec in pairs]
    return page(request, "search.html", data)


def _transform_names(run_records) -> dict[int, dict]:
    """{transform id: {uid, name}} of the runs found, in one statement."""
    from ..db import read_connection

    ids = {r.transform_id for r in run_records}
    if not ids:
        return {}
    t = S.transforms
    with read_connection(_engine()) as conn:
        rows = conn.execute(select(t.c.id, t.c.uid, t.c.name).where(t.c.id.in_(ids))).all()
    return {i: {"uid": u, "name": n} for i, u, n in rows}


def _best_field(query: str, rec) -> tuple[str | None, str | None]:
    """(field, value) of the record's searched fields that matches the query best."""
    from rapidfuzz import fuzz, utils

    best = (None, None, -1.0)
    for f in type(rec)._search_fields:
        v = rec._row.get(f)
        if not v:
            continue
        s = max(
            fuzz.WRatio(query, v, processor=utils.default_process),
            fuzz.token_set_ratio(query, v, processor=utils.default_process),
        )
        if s > best[2]:
            best = (f, str(v), s)
    return best[0], best[1]


def _hit(query: str, score: float, rec, transforms: dict) -> dict:
    kind = _TYPE_OF_MODEL[type(rec).__name__]
    field, matched = _best_field(query, rec)
    row = rec._row
    hit = dict(
        type=kind,
        uid=row["uid"],
        score=round(float(score), 1),
        field=field,
        matched=matched,
        url=None,
        title=None,
        detail=None,
    )
    if kind == "artifact":
        hit.update(
            url=f"/artifact/{quote(row['uid'])}",
            title=row["key"] if row["key"] is not None else row["file_name"] or row["uid"],
            detail=row["description"],
        )
    elif kind == "run":
        t = transforms.get(row["transform_id"], {})
        hit.update(
            url=f"/run/{quote(row['uid'])}",
            title=row["name"] or t.get("name") or row["uid"],
            detail=f"run of {t.get('name')} · {row['status']}",
            transform_uid=t.get("uid"),
            status=row["status"],
            started_at=_utc(row["started_at"]),
        )
    elif kind == "transform":
        hit.update(
            url=f"/transform/{quote(row['uid'])}",
            title=row["name"],
            detail=" · ".join(x for x in (row["type"], row["key"], row["version"]) if x),
        )
    elif kind == "user":
        hit.update(
            url="/runs?" + urlencode({"user": row["handle"]}),
            title=row["handle"],
            detail=row["name"],
        )
    elif kind == "storage":
        hit.update(
            url="/artifacts?" + urlencode({"storage": row["uid"]}),
            title=row["root"],
            detail=row["description"],
        )
    else:  # an environment has no page: the runs that used it
        hit.update(
            title=row["container_image"] or row["interpreter"] or row["uid"],
            detail=" · ".join(x for x in (row["interpreter"], row["os"]) if x),
            runs_url="/runs?" + urlencode({"environment": row["uid"]}),
        )
    return hit


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/search", search, methods=["GET"]),
]
