"""Search indexes: the database preselects search candidates instead of flowprov reading every
row — SQLite FTS5 trigram tables kept current by triggers, PostgreSQL pg_trgm GIN indexes (see
flowprov/search_index.py). Indexes only: older clients keep working, and keep the indexes
current, since triggers and indexes live in the database. Where they cannot be made, search
reads every row, as before; `instance_meta` says which (key `search_index`).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# the records' search fields at this revision (frozen here: later changes need a migration)
TABLES = {
    "users": ("handle", "name"),
    "storages": ("root", "description"),
    "transforms": ("name", "key", "description"),
    "runs": ("name", "reference"),
    "artifacts": ("key", "file_name", "description"),
    "environments": ("interpreter", "container_image"),
}


def upgrade() -> None:
    from flowprov import search_index as si
    from flowprov.db import write_meta

    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        why = si.install_sqlite(conn, TABLES)
        done = "sqlite fts5 trigram"
    elif conn.dialect.name == "postgresql":
        why = si.install_postgresql(conn, TABLES)
        done = "postgresql pg_trgm"
    else:
        why, done = f"no search index for {conn.dialect.name}; search reads every row", ""
    write_meta(conn, {si.META_KEY: why or done})


def downgrade() -> None:
    from flowprov import search_index as si

    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for table in TABLES:
            for stmt in si.sqlite_drop_statements(table):
                conn.exec_driver_sql(stmt)
    elif conn.dialect.name == "postgresql":
        si.drop_postgresql(conn, TABLES)
    conn.exec_driver_sql(f"DELETE FROM instance_meta WHERE key = '{si.META_KEY}'")
