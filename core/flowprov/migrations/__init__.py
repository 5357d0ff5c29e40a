"""Alembic migrations of the flowprov schema (run by flowprov.db.migrate)."""

# The newest migration this flowprov knows; a test checks it equals Alembic's head.
SCHEMA_HEAD = "0006"
