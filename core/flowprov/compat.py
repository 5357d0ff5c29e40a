"""Reading a database at an older schema revision without migrating it.

Each connection gets temporary views, named like the tables, that present the current schema:
a column an older revision lacks reads as NULL, a table it lacks as empty — or, where an
earlier revision kept the same facts elsewhere, as the query the migration's backfill runs
(`run_outputs` from `artifacts.run_id`). Temporary objects shadow the real tables for unqualified
names on both databases (SQLite searches `temp` first; PostgreSQL searches `pg_temp` first for
relations), need no write right on the database, and vanish with the connection. Nothing is
written: a client newer than its database refuses writes until `flowprov migrate` (db.py).
"""

from __future__ import annotations

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection, Engine

from . import schema as S

# What a migration's backfill computes, for a table an older schema lacks: {real_schema}
# names the schema holding the real tables.
_DERIVED = {
    "run_outputs": (
        "SELECT run_id, id AS artifact_id, created_at FROM {real_schema}.artifacts "
        "WHERE run_id IS NOT NULL"
    ),
}


def view_statements(conn: Connection) -> list[str]:
    """CREATE TEMP VIEW statements that make the database at `conn` look like the current
    schema (empty when it already does)."""
    dialect = conn.dialect
    q = dialect.identifier_preparer.quote
    real = (
        "main"
        if dialect.name == "sqlite"
        else conn.exec_driver_sql("SELECT current_schema()").scalar()
    )
    insp = inspect(conn)
    present = set(insp.get_table_names())
    out = []
    for table in S.metadata.sorted_tables:
        if table.name in present:
            have = {c["name"] for c in insp.get_columns(table.name)}
            if all(c.name in have for c in table.columns):
                continue
            body = f"SELECT {_columns(table, have, dialect)} FROM {q(real)}.{q(table.name)}"
        elif table.name in _DERIVED:
            body = _DERIVED[table.name].format(real_schema=q(real))
        else:
            body = f"SELECT {_columns(table, set(), dialect)} WHERE 1 = 0"
        out.append(f"CREATE TEMP VIEW {q(table.name)} AS {body}")
    return out


def _columns(table, have: set[str], dialect) -> str:
    q = dialect.identifier_preparer.quote
    return ", ".join(
        q(c.name)
        if c.name in have
        else f"CAST(NULL AS {c.type.compile(dialect=dialect)}) AS {q(c.name)}"
        for c in table.columns
    )


def install(engine: Engine, statements: list[str]) -> None:
    """Create the views on every new connection of `engine` (connections made before stay as
    they were: dispose of them first)."""
    if not statements:
        return

    @event.listens_for(engine, "connect")
    def _views(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        for stmt in statements:
            cur.execute(stmt)
        cur.close()
        if engine.dialect.name != "sqlite":
            dbapi_conn.commit()  # psycopg opened a transaction: keep the session's views
