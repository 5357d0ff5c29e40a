"""Listings: the newest records of a table as people read them — uids, names and handles, not
numeric ids — for `flowprov ls` / `view` and `fp.view()`.

Each listing is one SQL statement: the table joined (LEFT JOIN, by primary key) to the records
it points at, so resolving names costs no query per row. The SQL is plain text that SQLite and
PostgreSQL both read, so the CLI's fast path (fastread, the standard library's sqlite3) and the
full path (SQLAlchemy, with filters) run the very same statement. This module imports nothing
heavy at the top: the fast path must not pay for SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Listing:
    model: str  # the record type
    joins: str  # FROM clause: the table as `x`, joined to what it points at
    columns: tuple[tuple[str, str], ...]  # (label, SQL expression) shown by default
    ids: tuple[tuple[str, str], ...]  # the numeric ids, shown on request (--ids)

    def select(self, ids: bool = False) -> tuple[tuple[str, str], ...]:
        return (*self.ids[:1], *self.columns, *self.ids[1:]) if ids else self.columns

    def sql(self, ids: bool = False) -> str:
        """SELECT ... FROM ... newest first (no LIMIT, no WHERE)."""
        cols = ", ".join(f'{expr} AS "{label}"' for label, expr in self.select(ids))
        return f"SELECT {cols} FROM {self.joins} ORDER BY x.id DESC"


def _named(alias: str) -> str:
    """A transform as 'name (uid)'; NULL when there is none."""
    return f"{alias}.name || ' (' || {alias}.uid || ')'"


_BY = "LEFT JOIN users AS u ON u.id = x.created_by_id"

LISTINGS: dict[str, Listing] = {
    "users": Listing(
        "User",
        "users AS x",
        (
            ("uid", "x.uid"),
            ("handle", "x.handle"),
            ("name", "x.name"),
            ("created_at", "x.created_at"),
        ),
        (("id", "x.id"),),
    ),
    "storages": Listing(
        "Storage",
        f"storages AS x {_BY}",
        (
            ("uid", "x.uid"),
            ("root", "x.root"),
            ("type", "x.type"),
            ("region", "x.region"),
            ("is_default", "x.is_default"),
            ("created_by", "u.handle"),
            ("created_at", "x.created_at"),
        ),
        (("id", "x.id"), ("created_by_id", "x.created_by_id")),
    ),
    "transforms": Listing(
        "Transform",
        f"transforms AS x LEFT JOIN transforms AS p ON p.id = x.parent_id {_BY}",
        (
            ("uid", "x.uid"),
            ("name", "x.name"),
            ("key", "x.key"),
            ("type", "x.type"),
            ("version", "x.version"),
            ("is_latest", "x.is_latest"),
            ("reference", "x.reference"),
            ("parent", _named("p")),  # the enclosing transform: a rule's workflow
            ("created_by", "u.handle"),
            ("created_at", "x.created_at"),
        ),
        (("id", "x.id"), ("parent_id", "x.parent_id"), ("created_by_id", "x.created_by_id")),
    ),
    "runs": Listing(
        "Run",
        "runs AS x LEFT JOIN transforms AS t ON t.id = x.transform_id "
        f"LEFT JOIN runs AS p ON p.id = x.parent_id {_BY}",
        (
            ("uid", "x.uid"),
            ("transform", _named("t")),
            ("status", "x.status"),
            ("started_at", "x.started_at"),
            ("finished_at", "x.finished_at"),
            ("parent", "p.uid"),
            ("reference", "x.reference"),
            ("created_by", "u.handle"),
        ),
        (
            ("id", "x.id"),
            ("transform_id", "x.transform_id"),
            ("parent_id", "x.parent_id"),
            ("created_by_id", "x.created_by_id"),
        ),
    ),
    "artifacts": Listing(
        "Artifact",
        "artifacts AS x LEFT JOIN storages AS s ON s.id = x.storage_id "
        "LEFT JOIN runs AS r ON r.id = x.run_id "
        f"LEFT JOIN transforms AS t ON t.id = r.transform_id {_BY}",
        (
            ("uid", "x.uid"),
            # a file copied in without a key has only the name it came with
            ("key", "COALESCE(x.key, x.file_name || ' (file name)')"),
            ("description", "x.description"),
            ("size", "x.size"),
            ("hash", "x.hash"),
            ("is_latest", "x.is_latest"),
            ("storage", "s.root"),
            ("run", "r.uid"),
            ("transform", _named("t")),
            ("created_by", "u.handle"),
            ("created_at", "x.created_at"),
        ),
        (
            ("id", "x.id"),
            ("storage_id", "x.storage_id"),
            ("run_id", "x.run_id"),
            ("created_by_id", "x.created_by_id"),
        ),
    ),
}
TABLE_OF_MODEL = {listing.model: table for table, listing in LISTINGS.items()}


def labels(table: str, ids: bool = False) -> tuple[str, ...]:
    return tuple(label for label, _ in LISTINGS[table].select(ids))


def listing_rows(
    table: str,
    lookups: dict | None = None,
    limit: int | None = None,
    ids: bool = False,
    clauses: tuple = (),
) -> tuple[list[dict], int]:
    """(the newest `limit` rows of the listing matching Django-style lookups and SQL clauses on
    the record's table — a QuerySet's — and how many match)."""
    from sqlalchemy import Boolean, DateTime, literal_column, select, text

    from .db import read_connection
    from .instance import current
    from .records import MODELS

    listing = LISTINGS[table]
    qs = MODELS[listing.model].filter(*clauses, **(lookups or {}))

    def typed(label: str, expr: str):
        # the driver turns SQLite's stored text into datetimes and booleans only when told
        kind = DateTime(timezone=True) if label.endswith("_at") else None
        kind = Boolean() if label.startswith("is_") else kind
        return literal_column(expr, type_=kind).label(label)

    q = select(*(typed(label, expr) for label, expr in listing.select(ids))).select_from(
        text(listing.joins)
    )
    if qs._where:
        matching = select(MODELS[listing.model]._table.c.id).where(*qs._where)
        q = q.where(literal_column("x.id").in_(matching))
    q = q.order_by(literal_column("x.id").desc())
    if limit:
        q = q.limit(limit)
    with read_connection(current().engine) as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    total = len(rows) if not limit or len(rows) < limit else qs.count()
    return rows, total


def _in_utc(v):
    """Times as UTC (SQLite gives them back naive, PostgreSQL in the session's zone)."""
    from datetime import UTC, datetime

    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v


def view(n: int = 7, ids: bool = False) -> dict:
    """{record type: DataFrame of its n newest records}, with uids, names and handles in place
    of numeric ids (``ids=True`` adds them). In Jupyter, also displays them."""
    import pandas as pd

    frames = {}
    for table, listing in LISTINGS.items():
        rows, _ = listing_rows(table, limit=n, ids=ids)
        rows = [{k: _in_utc(v) for k, v in r.items()} for r in rows]
        frames[listing.model] = pd.DataFrame(rows, columns=list(labels(table, ids)))
    try:
        from IPython import get_ipython

        if get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell":
            from IPython.display import Markdown, display

            for name, df in frames.items():
                display(Markdown(f"**{name}**"))
                display(df)
    except ImportError:
        pass
    return frames
