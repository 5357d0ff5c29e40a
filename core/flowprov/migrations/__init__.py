"""Alembic migrations of the flowprov schema (run by `flowprov migrate`, never by opening).

Compatibility rule (README "Upgrading an existing instance"):

- A client reads and writes a database at its own schema revision.
- A client NEWER than the database reads it as it is (missing tables and columns appear empty,
  through temporary views) and writes nothing until a member with the rights runs
  `flowprov migrate`; it says that a migration is available.
- A client OLDER than the database keeps working when every migration after its revision is
  marked compatible below (it only adds what older code may ignore); otherwise it refuses and
  names the flowprov release to install. The database keeps that floor in `instance_meta`
  (written by each migration), so clients need not know the newer migrations to decide.
"""

# The newest migration this flowprov knows; a test checks it equals Alembic's head.
SCHEMA_HEAD = "0010"

# revision -> (flowprov release that brought it, whether clients of the previous revision may
# keep using the database after it)
COMPATIBILITY: dict[str, tuple[str, bool]] = {
    "0001": ("0.1.0", False),
    "0002": ("0.1.0", True),  # indexes only
    "0003": ("0.1.0", True),  # a nullable column
    "0004": ("0.1.0", True),  # a nullable column
    "0005": ("0.1.0", False),  # run_outputs: older writers would not fill it
    "0006": ("0.1.0", False),  # an artifact is a place: older writers merge places
    "0007": ("0.2.0", True),  # instance_meta, storages.options: both optional
    # environments, packages; runs.environment (JSON) renamed runtime: older clients read it
    "0008": ("0.3.0", False),
    # search indexes (SQLite FTS5 + triggers, PostgreSQL pg_trgm): they live in the database,
    # so older writers keep them current
    "0009": ("0.4.0", True),
    "0010": ("0.4.0", True),  # indexes only: (column, time) pairs for lists
}


def compatibility_floor(revision: str) -> str:
    """The oldest revision whose clients may use a database at `revision`."""
    order = sorted(COMPATIBILITY)
    i = order.index(revision)
    while i > 0 and COMPATIBILITY[order[i]][1]:
        i -= 1
    return order[i]


def include_name(name, type_, parent_names) -> bool:
    """What schema comparisons (Alembic's autogenerate, the schema test) look at: everything but
    the search index (migration 0009: FTS5 tables and their shadow tables, pg_trgm indexes),
    which statements make, not the metadata."""
    from ..search_index import is_search_object

    return not is_search_object(name)
