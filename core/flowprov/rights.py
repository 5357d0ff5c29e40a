"""What this member may do to an instance, asked of the database before any file or table is
touched.

Two rights matter:

- ``write``: add and change records (insert/update/delete on flowprov's tables). Needed by
  `storage move`, `gc --delete` (removing shared objects is a writer's act, even though no row
  changes) and every record a run makes.
- ``owner``: change or drop the schema (`migrate`, `delete`). PostgreSQL allows ALTER and DROP only
  to a table's owner (or a member of the owning role, or a superuser); SQLite to whoever may
  write the database file and its folder.

A refusal is a PermissionDenied with one line naming the action, the role and what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import text

from .db import read_connection, safe_url, sqlite_path
from .errors import PermissionDenied

WRITE = "write"
OWNER = "owner"

# every table flowprov made; `alembic_version` and `instance_meta` travel with the schema
_TABLES_SQL = (
    "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner,"
    " pg_has_role(current_user, c.relowner, 'USAGE') AS owns,"
    " has_table_privilege(current_user, c.oid, 'INSERT')"
    "  AND has_table_privilege(current_user, c.oid, 'UPDATE')"
    "  AND has_table_privilege(current_user, c.oid, 'DELETE') AS writes"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
)


def check(inst, right: str) -> str | None:
    """None when this connection has `right` on the instance, else the reason it has not."""
    engine = inst.engine_unchecked
    if engine.dialect.name == "sqlite":
        return _sqlite_missing(sqlite_path(engine.url), right)
    with read_connection(engine) as conn:
        who = conn.execute(text("SELECT current_user")).scalar()
        superuser = conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
        if superuser:
            return None
        rows = conn.execute(text(_TABLES_SQL)).all()
        schema_create = conn.execute(
            text("SELECT has_schema_privilege(current_user, current_schema(), 'CREATE')")
        ).scalar()
    if not rows:
        return f"role {who!r} sees no flowprov tables"
    if right == OWNER:
        foreign = sorted({r.owner for r in rows if not r.owns})
        if foreign:
            return (
                f"role {who!r} does not own the tables (owned by {', '.join(foreign)}); "
                "only the owner may change or drop the schema"
            )
        if not schema_create:
            return f"role {who!r} may not create objects in the schema"
        return None
    missing = sorted(r.relname for r in rows if not r.writes and r.relname != "alembic_version")
    if missing:
        return (
            f"role {who!r} may only read (no INSERT/UPDATE/DELETE on {', '.join(missing[:3])}"
            + (" …" if len(missing) > 3 else "")
            + ")"
        )
    return None


def require(inst, right: str, action: str) -> None:
    """Refuse `action` with a PermissionDenied unless this member has `right`."""
    why = check(inst, right)
    if why is not None:
        where = safe_url(inst.config.db)
        raise PermissionDenied(
            f"not allowed to {action} on instance {inst.name!r} ({where}): {why}. Nothing was changed."
        )


def _sqlite_missing(path: str | None, right: str) -> str | None:
    if not path:  # an in-memory database belongs to its process
        return None
    p = Path(path)
    # WAL mode writes beside the file (-wal, -shm): the folder must be writable too
    if not os.access(p, os.W_OK):
        return f"the database file {p} is read-only for this account"
    if not os.access(p.parent, os.W_OK | os.X_OK):
        return f"the folder {p.parent} of the database is read-only for this account"
    return None
