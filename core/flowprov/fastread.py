"""A read-only fast path for the CLI's listings on SQLite instances.

Importing SQLAlchemy alone takes ~0.2 s of process time on a 2-core machine, half the 0.4 s a
`flowprov ls` may take. Plain listings (no filters) of an SQLite instance whose schema is current
therefore read through the standard library's sqlite3, opened read-only. Anything else — filters,
PostgreSQL, a schema that needs a migration — returns None and the caller takes the full path.
"""

from __future__ import annotations

import sqlite3

from .migrations import SCHEMA_HEAD

_TABLES = {"artifacts", "transforms", "runs", "users", "storages"}


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///") :]
    return path or None


def list_rows(db_url: str, table: str, select_sql: str, labels, limit: int | None):
    """(rows as dicts, total count of `table`) of a listing's SELECT (views.LISTINGS, newest
    first), or None if the fast path does not apply."""
    path = _sqlite_path(db_url)
    if path is None or table not in _TABLES:
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        rev = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if rev is None or rev[0] != SCHEMA_HEAD:
            return None
        cur = conn.execute(select_sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        rows = [dict(zip(labels, r, strict=True)) for r in cur]
        total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return rows, total
