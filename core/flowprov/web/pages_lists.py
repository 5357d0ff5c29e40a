"""Lists of artifacts, runs, transforms, users, storages: filters, sorting, pagination.

Every list page makes the same three statements, whatever the size of the instance:

1. the ids of the page: the filters and the sort on the record's own table, LIMIT size + 1
   OFFSET (page - 1) * size — one more row than shown says whether there is a next page;
2. the rows of those ids, joined (by primary key) to the records they point at — names,
   handles, roots — so the join never drives the plan;
3. how many match, counted up to COUNT_CAP rows only: past it the page says "more than
   10,000" (an exact count of a million rows costs more than the page; skipped altogether when
   the first page holds every match).

Sorting takes a whitelisted field, `-` first for descending; ties are broken by id in the same
direction so that pages never overlap. Values the filters name (a user's handle, a storage's
uid) are looked up first: an unknown one is a 400 saying so, not an empty list.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from sqlalchemy import Boolean, and_, func, or_, select
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.operators import custom_op
from starlette.requests import Request
from starlette.routing import Route

from .. import schema as S
from ..events import RUN_STATUSES, TRANSFORM_TYPES
from ..records import Artifact, Storage, Transform, User
from .params import choice_param, date_param, paging, text_param
from .respond import BadRequest, page

A, R, T, U, ST, ENV = S.artifacts, S.runs, S.transforms, S.users, S.storages, S.environments
# made once: building an alias's columns costs more than the page's queries
_RUN, _TRANSFORM, _PARENT_RUN, _PARENT_TRANSFORM = (
    R.alias("r"),
    T.alias("t"),
    R.alias("p"),
    T.alias("pt"),
)

COUNT_CAP = 10_000
COUNT_BUDGET = 0.025  # seconds a list may spend counting its matches
_PROGRESS_STEPS = 2000  # SQLite virtual-machine steps between two looks at the clock
# matches of a set term count as dense when they are one row in DENSE of the table or more: a
# walk of the sort's index then reads about size × DENSE rows for the first page
DENSE = 100
# the engines that record runs (runs.engine); a run without one is of its transform's type
ENGINES = ("nextflow", "prefect", "snakemake")
RUN_KINDS = (*ENGINES, *TRANSFORM_TYPES)
FAILED = ("failed", "crashed", "aborted", "cancelled")


def _engine():
    from ..instance import current

    return current().engine


def _utc(v):
    """Times as UTC (SQLite gives them back naive, PostgreSQL in the session's zone)."""
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v


def contains(conn, model, fields, text: str):
    """`text` inside any of the `fields` of `model`, ignoring case: the lists' "key contains" /
    "name contains". Through the search index (search_index.contains_clause: SQLite's FTS5
    trigram table, PostgreSQL's pg_trgm GIN index) where the instance has one; else an escaped
    LIKE, right but a scan."""
    from ..search_index import contains_clause

    return or_(*(contains_clause(model, f, text, conn) for f in fields))


class Where(list):
    """The WHERE clauses of a list page. `sets` are those among them that test membership in a
    set found elsewhere — the ids a trigram index matched, the runs of some transforms: the
    database finds them all, then sorts them, which is slow when they are many (see run_list).
    A set is `cheap` when an index counts its members without finding the set anew each time
    (the runs of some transforms: yes; a trigram match: no)."""

    def __init__(self, clauses=()):
        super().__init__(clauses)
        self.sets: list[tuple] = []  # (clause, cheap)

    def add_set(self, clause, cheap: bool) -> None:
        self.append(clause)
        self.sets.append((clause, cheap))


def _among(clause, sets) -> bool:
    return any(clause is c for c, _ in sets)


def _unindexed(clause):
    """SQLite: `+(clause)` — a term no index may answer, so that the planner walks the sort's
    index and tests the term row by row."""
    return UnaryExpression(clause.self_group(), operator=custom_op("+"), type_=Boolean())


def count_within(conn, stmt, budget: float) -> int | None:
    """The scalar of a count statement, or None if it would take longer than `budget` seconds:
    an exact count of a filter that no single index answers (two filters, a common "contains")
    can read a million rows. SQLite: a progress handler interrupts it; PostgreSQL: a
    statement_timeout inside a savepoint (the read transaction goes on)."""
    from sqlalchemy.exc import OperationalError

    dialect = conn.dialect.name
    if dialect == "sqlite":
        raw = conn.connection.driver_connection
        deadline = time.perf_counter() + budget
        raw.set_progress_handler(lambda: time.perf_counter() > deadline, _PROGRESS_STEPS)
        try:
            return conn.execute(stmt).scalar()
        except OperationalError as e:
            if "interrupted" in str(e.orig):
                return None
            raise
        finally:
            raw.set_progress_handler(None, 0)
    if dialect == "postgresql":
        before = conn.exec_driver_sql("SHOW statement_timeout").scalar()
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(int(budget * 1000), 1)}")
                n = conn.execute(stmt).scalar()
                conn.exec_driver_sql("SELECT set_config('statement_timeout', %s, true)", (before,))
                return n
        except OperationalError as e:
            if getattr(e.orig, "sqlstate", None) == "57014":  # query_canceled: the timeout
                return None
            raise
    return conn.execute(stmt).scalar()


def duration(started, finished) -> float | None:
    if started is None or finished is None:
        return None
    return max((_utc(finished) - _utc(started)).total_seconds(), 0.0)


# -- the parameters every list shares ---------------------------------------------------------
def sort_param(request: Request, fields: dict, default: str):
    """(the sort as given, ORDER BY clauses): a field of `fields`, `-` first for descending.
    A field names its column, or its columns (ties broken by the next: runs of one status newest
    first, as the (status, started_at) index holds them); then by id, all in one direction."""
    allowed = {*fields, *(f"-{f}" for f in fields)}
    v = choice_param(request, "sort", allowed, default)
    desc = v.startswith("-")
    cols = fields[v.lstrip("-")]
    cols = list(cols) if isinstance(cols, list | tuple) else [cols]
    cols.append(cols[0].table.c.id)
    return v, [c.desc() if desc else c.asc() for c in cols]


def flag_param(request: Request, name: str) -> bool:
    return choice_param(request, name, ("0", "1", "true", "false"), "0") in ("1", "true")


def time_range(request: Request, col, lo: str = "from", hi: str = "to") -> list:
    """`from` ≤ col ≤ `to`; a date alone for `to` includes that whole UTC day."""
    out = []
    start, end = date_param(request, lo), date_param(request, hi)
    if start is not None:
        out.append(col >= start)
    if end is not None:
        if _date_only(request.query_params[hi]):
            from datetime import timedelta

            out.append(col < end + timedelta(days=1))
        else:
            out.append(col <= end)
    if start is not None and end is not None and start > end:
        raise BadRequest(f"{lo} ({start:%Y-%m-%d %H:%M}) is after {hi} ({end:%Y-%m-%d %H:%M})")
    return out


def _date_only(v: str) -> bool:
    return re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", v) is not None


def user_id(conn, handle: str | None) -> int | None:
    if handle is None:
        return None
    uid = conn.execute(select(U.c.id).where(U.c.handle == handle)).scalar()
    if uid is None:
        raise BadRequest(f"user: no user with the handle {handle[:60]!r}")
    return uid


def _link_url(request: Request, **params) -> str:
    """This page's path and query with `params` replaced (None removes one)."""
    u = request.url.remove_query_params([k for k in params])
    keep = {k: v for k, v in params.items() if v is not None}
    if keep:
        u = u.include_query_params(**keep)
    return f"{u.path}?{u.query}" if u.query else u.path


def _filter(name, label, kind="text", value=None, choices=None, placeholder=None) -> dict:
    """One control of the page's filter form (also in the JSON twin: what was applied)."""
    if isinstance(value, datetime):
        value = value.isoformat()
    return dict(
        name=name,
        label=label,
        kind=kind,
        value=value,
        choices=list(choices) if choices else None,
        placeholder=placeholder,
    )


def _count(conn, table, where) -> int | None:
    """Rows matching `where`, up to COUNT_CAP + 1, within COUNT_BUDGET; None past the budget."""
    matching = select(table.c.id).where(*where).limit(COUNT_CAP + 1).subquery()
    return count_within(conn, select(func.count()).select_from(matching), COUNT_BUDGET)


def run_list(
    request: Request,
    *,
    name: str,
    title: str,
    table,
    where_of,
    sorts: dict,
    default_sort: str,
    fetch,
    filters,
    template: str,
):
    """The page of a list. where_of(conn) → WHERE clauses (it may look values up and raise
    BadRequest); fetch(conn, ids) → the rows of those ids, in any order."""
    from ..db import read_connection

    pg, size = paging(request)
    sort, order = sort_param(request, sorts, default_sort)
    offset = (pg - 1) * size
    with read_connection(_engine()) as conn:
        where = where_of(conn)
        counted, n, window = False, None, False
        sets = getattr(where, "sets", None) or []
        # Matches of a set term (see Where) are found whole, then sorted: fine for a few
        # hundred, slow for tens of thousands. PostgreSQL's statistics choose between that and
        # walking the sort's index (stopping at the page's last row); SQLite has none, so:
        if sets and conn.dialect.name == "sqlite":
            if any(not cheap for _, cheap in sets):
                # finding the set is the cost (a trigram match, always found whole): found
                # once, then sorted and counted in the same statement. (Not on PostgreSQL: a
                # count over the window would keep its walk of the index from stopping early.)
                window = True
            else:
                # counted first (an index answers): when the matches are dense, the set terms
                # are kept off indexes, so that SQLite walks the sort's index and stops at the
                # page's last row, having read about size × DENSE rows
                n, counted = _count(conn, table, where), True
                top = conn.execute(select(func.max(table.c.id))).scalar() or 0
                if n is not None and (n > COUNT_CAP or n * DENSE >= top):
                    where = [_unindexed(c) if _among(c, sets) else c for c in where]
        q = select(table.c.id).where(*where).order_by(*order).limit(size + 1).offset(offset)
        if window:
            q = q.add_columns(func.count().over().label("n"))
            found = conn.execute(q).all()
            ids = [r[0] for r in found]
            if found:
                n, counted = found[0][1], True
        else:
            ids = list(conn.execute(q).scalars())
        more = len(ids) > size
        ids = ids[:size]
        by_id = {r["id"]: r for r in fetch(conn, ids)} if ids else {}
        seen = offset + len(ids)  # rows up to the end of this page
        stopped = None  # why the count is not exact: "cap" or "time"
        if not more and (ids or pg == 1):
            total = seen  # this page holds the last match
        elif more and seen >= COUNT_CAP and not window:
            total, stopped = seen, "cap"  # past the cap already: no count to make
        else:
            if not counted:
                n = _count(conn, table, where)
            if n is None:
                total, stopped = seen, "time"
            elif n > COUNT_CAP and not window:
                total, stopped = COUNT_CAP, "cap"
            else:
                total = n  # a window count is exact: every match was sorted anyway
    rows = []
    for i in ids:
        r = dict(by_id[i])
        r.pop("id", None)
        rows.append({k: _utc(v) for k, v in r.items()})
    data = dict(
        list=name,
        title=title,
        filters=filters,
        sort=sort,
        sorts=sorted(sorts),
        page=pg,
        size=size,
        total=total,
        total_exact=stopped is None,
        # past COUNT_CAP rows ("cap"), or COUNT_BUDGET seconds ("time"), the count stops:
        # `total` is then a lower bound ("more than")
        count_stopped=stopped,
        count_cap=COUNT_CAP,
        count_budget_ms=round(COUNT_BUDGET * 1000),
        first=offset + 1 if rows else 0,
        last=offset + len(rows),
        prev=_link_url(request, page=str(pg - 1) if pg > 2 else None) if pg > 1 else None,
        next=_link_url(request, page=str(pg + 1)) if more else None,
        rows=rows,
    )
    return page(request, template, data)


# -- artifacts ---------------------------------------------------------------------------------
_SUFFIX = re.compile(r"\.?[A-Za-z0-9_+\-.]{1,31}")


def artifacts(request: Request):
    suffix = text_param(request, "suffix", 32)
    if suffix is not None:
        if not _SUFFIX.fullmatch(suffix):
            raise BadRequest(f"suffix must look like .csv or .tar.gz, not {suffix[:40]!r}")
        suffix = suffix if suffix.startswith(".") else f".{suffix}"
    storage = text_param(request, "storage", 64)
    key = text_param(request, "key")
    handle = text_param(request, "user", 150)
    latest = flag_param(request, "latest")
    created = time_range(request, A.c.created_at)

    def where_of(conn):
        w = Where(created)
        if suffix is not None:
            w.append(A.c.suffix == suffix)
        if storage is not None:
            sid = conn.execute(select(ST.c.id).where(ST.c.uid == storage)).scalar()
            if sid is None:
                raise BadRequest(f"storage: no storage with the uid {storage[:60]!r}")
            w.append(A.c.storage_id == sid)
        if handle is not None:
            # who recorded it: for an artifact a run made, the user who ran that run
            w.append(A.c.created_by_id == user_id(conn, handle))
        if key is not None:
            w.add_set(contains(conn, Artifact, ("key", "file_name"), key), cheap=False)
        if latest:
            w.append(A.c.is_latest.is_(True))
        return w

    from ..db import read_connection

    with read_connection(_engine()) as conn:  # a few rows: offered by root in the form
        roots = conn.execute(select(ST.c.uid, ST.c.root).order_by(ST.c.root).limit(201)).all()
    filters = [
        _filter("key", "key contains", value=key, placeholder="figures/"),
        _filter("suffix", "suffix", value=suffix, placeholder=".csv"),
        _filter("storage", "storage", "choice", storage, [[u, r] for u, r in roots])
        if len(roots) <= 200
        else _filter("storage", "storage (uid)", value=storage),
        _filter("user", "user (handle)", value=handle),
        _filter("from", "created from", "date", request.query_params.get("from")),
        _filter("to", "created to", "date", request.query_params.get("to")),
        _filter("latest", "latest versions only", "flag", "1" if latest else None),
    ]
    return run_list(
        request,
        name="artifacts",
        title="Artifacts",
        table=A,
        where_of=where_of,
        sorts={"created_at": A.c.created_at, "key": A.c.key},
        default_sort="-created_at",
        fetch=_artifact_rows,
        filters=filters,
        template="list_artifacts.html",
    )


def _artifact_rows(conn, ids):
    r, t = _RUN, _TRANSFORM
    q = (
        select(
            A.c.id,
            A.c.uid,
            A.c.key,
            A.c.file_name,
            A.c.description,
            A.c.suffix,
            A.c.size,
            A.c.n_objects,
            A.c.is_latest,
            A.c.removed,
            A.c.created_at,
            ST.c.uid.label("storage_uid"),
            ST.c.root.label("storage_root"),
            r.c.uid.label("run_uid"),
            t.c.uid.label("transform_uid"),
            t.c.name.label("transform_name"),
            U.c.handle.label("user"),
        )
        .select_from(
            A.join(ST, ST.c.id == A.c.storage_id)
            .outerjoin(r, r.c.id == A.c.run_id)
            .outerjoin(t, t.c.id == r.c.transform_id)
            .outerjoin(U, U.c.id == A.c.created_by_id)
        )
        .where(A.c.id.in_(ids))
    )
    return [dict(m) for m in conn.execute(q).mappings()]


# -- runs --------------------------------------------------------------------------------------
def kind_clause(kind: str):
    """Runs of an engine (runs.engine), or of a transform type among runs no engine recorded —
    as `flowprov status` names a run's kind."""
    if kind in ENGINES:
        return R.c.engine == kind
    return and_(R.c.engine.is_(None), R.c.transform_id.in_(select(T.c.id).where(T.c.type == kind)))


def runs(request: Request):
    kind = choice_param(request, "engine", RUN_KINDS)
    status = choice_param(request, "status", RUN_STATUSES)
    handle = text_param(request, "user", 150)
    transform = text_param(request, "transform")
    environment = text_param(request, "environment", 64)
    top = flag_param(request, "top")
    started = time_range(request, R.c.started_at)

    def where_of(conn):
        w = Where(started)
        if kind in ENGINES:
            w.append(kind_clause(kind))
        elif kind is not None:
            w.add_set(kind_clause(kind), cheap=True)  # the runs of transforms of a type
        if status is not None:
            w.append(R.c.status == status)
        if handle is not None:
            w.append(R.c.created_by_id == user_id(conn, handle))
        if environment is not None:
            eid = conn.execute(select(ENV.c.id).where(ENV.c.uid == environment)).scalar()
            if eid is None:
                raise BadRequest(f"environment: no environment with the uid {environment[:60]!r}")
            w.append(R.c.environment_id == eid)
        if transform is not None:
            w.add_set(
                R.c.transform_id.in_(
                    select(T.c.id).where(contains(conn, Transform, ("name", "key"), transform))
                ),
                cheap=True,  # a few transforms: their runs counted through transform_id
            )
        if top:
            w.append(R.c.parent_id.is_(None))
        return w

    filters = [
        _filter("transform", "transform name or key contains", value=transform),
        _filter("engine", "engine or kind", "choice", kind, RUN_KINDS),
        _filter("status", "status", "choice", status, RUN_STATUSES),
        _filter("user", "user (handle)", value=handle),
        _filter("from", "started from", "date", request.query_params.get("from")),
        _filter("to", "started to", "date", request.query_params.get("to")),
        _filter("environment", "environment (uid)", value=environment),
        _filter("top", "top-level only", "flag", "1" if top else None),
    ]
    return run_list(
        request,
        name="runs",
        title="Runs",
        table=R,
        where_of=where_of,
        sorts={"started_at": R.c.started_at, "status": (R.c.status, R.c.started_at)},
        default_sort="-started_at",
        fetch=run_rows,
        filters=filters,
        template="list_runs.html",
    )


def run_rows(conn, ids):
    """Runs as the lists and the home page show them: transform, kind, user, parent, duration."""
    p = _PARENT_RUN
    q = (
        select(
            R.c.id,
            R.c.uid,
            R.c.name,
            R.c.status,
            R.c.engine,
            R.c.started_at,
            R.c.finished_at,
            R.c.error,
            T.c.uid.label("transform_uid"),
            T.c.name.label("transform_name"),
            T.c.type.label("transform_type"),
            T.c.version.label("transform_version"),
            p.c.uid.label("parent_uid"),
            U.c.handle.label("user"),
        )
        .select_from(
            R.join(T, T.c.id == R.c.transform_id)
            .outerjoin(p, p.c.id == R.c.parent_id)
            .outerjoin(U, U.c.id == R.c.created_by_id)
        )
        .where(R.c.id.in_(ids))
    )
    out = []
    for m in conn.execute(q).mappings():
        r = dict(m)
        r["kind"] = r["engine"] or r["transform_type"]
        r["duration"] = duration(r["started_at"], r["finished_at"])
        err = r.pop("error")
        # its last line (a traceback's exception) only: the run's page shows the whole text
        r["error"] = err.strip().splitlines()[-1][:300] if err and err.strip() else None
        out.append(r)
    return out


# -- transforms --------------------------------------------------------------------------------
def transforms(request: Request):
    ttype = choice_param(request, "type", TRANSFORM_TYPES)
    key = text_param(request, "key")
    handle = text_param(request, "user", 150)
    latest = flag_param(request, "latest")

    def where_of(conn):
        w = []
        if ttype is not None:
            w.append(T.c.type == ttype)
        if key is not None:
            w.append(contains(conn, Transform, ("key", "name"), key))
        if handle is not None:
            w.append(T.c.created_by_id == user_id(conn, handle))
        if latest:
            w.append(T.c.is_latest.is_(True))
        return w

    filters = [
        _filter("key", "key or name contains", value=key),
        _filter("type", "type", "choice", ttype, TRANSFORM_TYPES),
        _filter("user", "user (handle)", value=handle),
        _filter("latest", "latest versions only", "flag", "1" if latest else None),
    ]
    return run_list(
        request,
        name="transforms",
        title="Transforms",
        table=T,
        where_of=where_of,
        sorts={"created_at": T.c.created_at, "name": T.c.name, "key": T.c.key, "type": T.c.type},
        default_sort="-created_at",
        fetch=_transform_rows,
        filters=filters,
        template="list_transforms.html",
    )


def _transform_rows(conn, ids):
    p = _PARENT_TRANSFORM
    q = (
        select(
            T.c.id,
            T.c.uid,
            T.c.name,
            T.c.key,
            T.c.type,
            T.c.version,
            T.c.is_latest,
            T.c.created_at,
            p.c.uid.label("parent_uid"),
            p.c.name.label("parent_name"),
            U.c.handle.label("user"),
        )
        .select_from(
            T.outerjoin(p, p.c.id == T.c.parent_id).outerjoin(U, U.c.id == T.c.created_by_id)
        )
        .where(T.c.id.in_(ids))
    )
    return [dict(m) for m in conn.execute(q).mappings()]


# -- users -------------------------------------------------------------------------------------
def users(request: Request):
    text = text_param(request, "q", 150)

    def where_of(conn):
        return [contains(conn, User, ("handle", "name"), text)] if text is not None else []

    return run_list(
        request,
        name="users",
        title="Users",
        table=U,
        where_of=where_of,
        sorts={"handle": U.c.handle, "created_at": U.c.created_at},
        default_sort="handle",
        fetch=lambda conn, ids: [
            dict(m)
            for m in conn.execute(
                select(U.c.id, U.c.uid, U.c.handle, U.c.name, U.c.created_at).where(U.c.id.in_(ids))
            ).mappings()
        ],
        filters=[_filter("q", "handle or name contains", value=text)],
        template="list_users.html",
    )


# -- storages ----------------------------------------------------------------------------------
def storages(request: Request):
    from ..db import read_connection

    with read_connection(_engine()) as conn:  # a handful of rows: the types there are
        types = sorted(conn.execute(select(ST.c.type).distinct()).scalars())
    stype = choice_param(request, "type", types) if types else text_param(request, "type")
    root = text_param(request, "root")

    def where_of(conn):
        w = []
        if stype is not None:
            w.append(ST.c.type == stype)
        if root is not None:
            w.append(contains(conn, Storage, ("root", "description"), root))
        return w

    def fetch(conn, ids):
        q = (
            select(
                ST.c.id,
                ST.c.uid,
                ST.c.root,
                ST.c.type,
                ST.c.region,
                ST.c.description,
                ST.c.is_default,
                ST.c.created_at,
                U.c.handle.label("user"),
            )
            .select_from(ST.outerjoin(U, U.c.id == ST.c.created_by_id))
            .where(ST.c.id.in_(ids))
        )
        return [dict(m) for m in conn.execute(q).mappings()]

    return run_list(
        request,
        name="storages",
        title="Storages",
        table=ST,
        where_of=where_of,
        sorts={"root": ST.c.root, "created_at": ST.c.created_at},
        default_sort="root",
        fetch=fetch,
        filters=[
            _filter("root", "root or description contains", value=root),
            _filter("type", "type", "choice", stype, types),
        ],
        template="list_storages.html",
    )


ROUTES = [
    Route("/artifacts", artifacts, methods=["GET"]),
    Route("/runs", runs, methods=["GET"]),
    Route("/transforms", transforms, methods=["GET"]),
    Route("/users", users, methods=["GET"]),
    Route("/storages", storages, methods=["GET"]),
]
