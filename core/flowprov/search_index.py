"""The database side of search: trigram indexes that preselect candidates (flowprov.search ranks
them), and `contains_clause` for "key contains" filters on a million rows.

- SQLite: one FTS5 table per searched table, ``tokenize='trigram'`` (SQLite ≥ 3.34), named
  ``search_<table>``, holding no copy of the text (external content: the table itself), kept in
  step by AFTER INSERT / UPDATE / DELETE triggers. Triggers live in the database, so every writer
  — older flowprov releases, raw SQL — keeps the index current. A quoted phrase of ≥ 3 characters
  MATCHes the rows holding it as a substring, case-insensitively.
- PostgreSQL: the ``pg_trgm`` extension (trusted since PostgreSQL 13: the database owner may
  create it) and a GIN ``gin_trgm_ops`` index ``search_<table>_<column>`` per searched column;
  ``column ILIKE '%text%'`` uses them. Readers need nothing from the extension.

Where the index cannot be made (no FTS5 or no trigram tokenizer, pg_trgm refused), migration 0009
records why in ``instance_meta`` (key ``search_index``) and search reads every row instead —
right, only slow. Every object here is named ``search_*``: schema comparisons leave them out with
`is_search_object`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy is imported only when used: the CLI's fast search does without
    from sqlalchemy.engine import Connection

# What migration 0009 indexes: table -> columns, the records' _search_fields (a test checks that
# they agree). A migration that changes a searched column must rebuild that table's index.
SEARCH_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("handle", "name"),
    "storages": ("root", "description"),
    "transforms": ("name", "key", "description"),
    "runs": ("name", "reference"),
    "artifacts": ("key", "file_name", "description"),
    "environments": ("interpreter", "container_image"),
}

PREFIX = "search_"
META_KEY = "search_index"  # instance_meta: what preselects search candidates, or why nothing


def is_search_object(name: str | None) -> bool:
    """A table, trigger or index of the search index (schema comparisons leave them out)."""
    return bool(name) and name.startswith(PREFIX)


def fts_name(table: str) -> str:
    return f"{PREFIX}{table}"


def pg_index_name(table: str, column: str) -> str:
    return f"{PREFIX}{table}_{column}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- SQLite ------------------------------------------------------------------------------------


def sqlite_index_statements(table: str, columns: tuple[str, ...]) -> list[str]:
    """CREATE statements of one table's FTS5 index and the triggers that keep it current
    (idempotent: IF NOT EXISTS). Does not fill it: see sqlite_rebuild_statements."""
    fts = fts_name(table)
    cols = ", ".join(_q(c) for c in columns)
    new = ", ".join(f"new.{_q(c)}" for c in columns)
    old = ", ".join(f"old.{_q(c)}" for c in columns)
    changed = " OR ".join(f"old.{_q(c)} IS NOT new.{_q(c)}" for c in columns)
    add = f"INSERT INTO {_q(fts)}(rowid, {cols}) VALUES (new.id, {new});"
    # an external-content index forgets a row when told the values it indexed
    forget = f"INSERT INTO {_q(fts)}({_q(fts)}, rowid, {cols}) VALUES ('delete', old.id, {old});"
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {_q(fts)} USING fts5({cols}, "
        f"content={_q(table)}, content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER IF NOT EXISTS {_q(fts + '_insert')} AFTER INSERT ON {_q(table)} "
        f"BEGIN {add} END",
        f"CREATE TRIGGER IF NOT EXISTS {_q(fts + '_delete')} AFTER DELETE ON {_q(table)} "
        f"BEGIN {forget} END",
        # only when a searched column really changed: runs are updated often (status, ends,
        # heartbeats), their names rarely
        f"CREATE TRIGGER IF NOT EXISTS {_q(fts + '_update')} AFTER UPDATE OF {cols} "
        f"ON {_q(table)} WHEN {changed} BEGIN {forget} {add} END",
    ]


def sqlite_rebuild_statements(table: str) -> list[str]:
    """Fill one table's index from the table (all rows), then merge it into one segment."""
    fts = _q(fts_name(table))
    return [
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
        f"INSERT INTO {fts}({fts}) VALUES ('optimize')",
    ]


def sqlite_drop_statements(table: str) -> list[str]:
    fts = fts_name(table)
    return [
        f"DROP TRIGGER IF EXISTS {_q(fts + '_' + what)}" for what in ("insert", "update", "delete")
    ] + [f"DROP TABLE IF EXISTS {_q(fts)}"]


@contextmanager
def sqlite_indexed_after(cursor, table: str):
    """Around many rows inserted into `table` in the caller's transaction (a DB-API cursor's):
    index them for search with one INSERT … SELECT after them, not row by row in the insert
    trigger — half the cost of a trace's task rows. The trigger is dropped and put back, as it
    was written, inside the transaction: no other writer writes in between, and a rollback puts
    everything back. Rows are found by id (the block inserts rows with new ids only)."""
    columns = SEARCH_COLUMNS.get(table)
    trigger = fts_name(table) + "_insert"
    found = (
        columns
        and cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (trigger,)
        ).fetchone()
    )
    if not found or not cursor.connection.in_transaction:
        yield  # no index to keep (or nothing to undo it with): the rows go in as they are
        return
    (before,) = cursor.execute(f"SELECT max(id) FROM {_q(table)}").fetchone()
    cursor.execute(f"DROP TRIGGER {_q(trigger)}")
    try:
        yield
    finally:
        # an error that rolled the transaction back has already put the trigger back
        if cursor.connection.in_transaction:
            cols = ", ".join(_q(c) for c in columns)
            cursor.execute(
                f"INSERT INTO {_q(fts_name(table))}(rowid, {cols}) "
                f"SELECT id, {cols} FROM {_q(table)} WHERE id > ?",
                (before or 0,),
            )
            cursor.execute(found[0])


def sqlite_trigram_missing(conn: Connection) -> str | None:
    """Why this SQLite cannot hold the index (no FTS5, or no trigram tokenizer), or None."""
    from sqlalchemy.exc import DBAPIError

    try:
        with conn.begin_nested():
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE temp.search_probe USING fts5(x, tokenize='trigram')"
            )
            conn.exec_driver_sql("DROP TABLE temp.search_probe")
    except DBAPIError as e:
        version = conn.exec_driver_sql("SELECT sqlite_version()").scalar()
        return f"SQLite {version} has no FTS5 trigram tokenizer (3.34+ has it): {e.orig}"
    return None


def install_sqlite(conn: Connection, tables: dict[str, tuple[str, ...]]) -> str | None:
    """Create and fill the FTS5 indexes of `tables`; None when done, else why not (nothing is
    created then)."""
    missing = sqlite_trigram_missing(conn)
    if missing:
        return missing
    for table, columns in tables.items():
        for stmt in sqlite_index_statements(table, columns) + sqlite_rebuild_statements(table):
            conn.exec_driver_sql(stmt)
    return None


# -- PostgreSQL --------------------------------------------------------------------------------


def install_postgresql(conn: Connection, tables: dict[str, tuple[str, ...]]) -> str | None:
    """pg_trgm and a GIN trigram index per searched column; None when done, else why not (then
    nothing is left half made: the work runs in a savepoint)."""
    from sqlalchemy.exc import DBAPIError

    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            # the operator class lives in the extension's schema, which may be off our path
            schema = conn.exec_driver_sql(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            ).scalar_one()
            for table, columns in tables.items():
                for col in columns:
                    conn.exec_driver_sql(
                        f"CREATE INDEX IF NOT EXISTS {_q(pg_index_name(table, col))} "
                        f"ON {_q(table)} USING gin ({_q(col)} {_q(schema)}.gin_trgm_ops)"
                    )
    except DBAPIError as e:
        why = str(e.orig).strip().splitlines()[0]
        return f"pg_trgm could not be used ({why}); search reads every row"
    return None


def drop_postgresql(conn: Connection, tables: dict[str, tuple[str, ...]]) -> None:
    for table, columns in tables.items():
        for col in columns:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {_q(pg_index_name(table, col))}")


# -- what a database has -----------------------------------------------------------------------


def indexed_columns(conn: Connection) -> dict[str, tuple[str, ...]]:
    """table -> the columns its search index covers, for the tables that have one (empty on an
    instance without it: older schemas, SQLite without trigram FTS5, pg_trgm refused)."""
    name = conn.dialect.name
    if name == "sqlite":
        have = set(
            conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search\\_%' "
                "ESCAPE '\\' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
            ).scalars()
        )
        out = {}
        from sqlalchemy.exc import DBAPIError

        for table in SEARCH_COLUMNS:
            fts = fts_name(table)
            if fts in have:
                try:  # opens the index: an SQLite without FTS5 or trigram cannot (then: a scan)
                    cols = [r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({_q(fts)})")]
                except DBAPIError:
                    continue
                out[table] = tuple(cols)
        return out
    if name == "postgresql":
        from sqlalchemy import text

        have = set(
            conn.execute(
                text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexname LIKE :p"
                ),
                {"p": PREFIX.replace("_", "\\_") + "%"},
            ).scalars()
        )
        out = {}
        for table, columns in SEARCH_COLUMNS.items():
            cols = tuple(c for c in columns if pg_index_name(table, c) in have)
            if cols:
                out[table] = cols
        return out
    return {}


# -- "contains" for list filters ---------------------------------------------------------------


def like_escape(s: str) -> str:
    """`s` as a literal inside a LIKE pattern with ESCAPE '\\'."""
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_clause(model, field: str, value: str, conn: Connection | None = None):
    """A WHERE clause on `model`'s table: `field` contains `value`, ignoring case (SQLite LIKE's
    ASCII rule; PostgreSQL ILIKE). Uses the search index where it can: SQLite's FTS5 trigram
    index for ≥ 3 characters (a MATCH of the quoted text, so `%`, `_`, quotes and FTS5
    operators are plain characters), PostgreSQL's pg_trgm GIN index through ILIKE; otherwise a
    plain (escaped) LIKE. An empty value is no condition.

    `conn` (optional) is asked which indexes exist; without it, the current instance is."""
    from sqlalchemy import bindparam, false, literal_column, select, text, true

    t = model._table
    col = t.c[field]  # KeyError for an unknown field, as a column lookup gives
    if not value:
        return true()
    if "\x00" in value:  # no text holds NUL; SQLite would cut the pattern there ('%': all)
        return false()
    if conn is None:
        from .db import read_connection
        from .instance import current

        with read_connection(current().engine) as c:
            return contains_clause(model, field, value, c)
    dialect = conn.dialect.name
    pattern = f"%{like_escape(value)}%"
    if dialect == "postgresql":
        return col.ilike(pattern, escape="\\")
    if dialect == "sqlite" and len(value) >= 3 and field in indexed_columns(conn).get(t.name, ()):
        fts = fts_name(t.name)
        phrase = '"' + value.replace('"', '""') + '"'
        sub = (
            select(literal_column("rowid"))
            .select_from(text(_q(fts)))
            .where(
                text(f"{_q(fts)} MATCH :m").bindparams(
                    bindparam("m", f"{_q(field)} : {phrase}", unique=True)
                )
            )
        )
        return t.c.id.in_(sub)
    return col.like(pattern, escape="\\")
