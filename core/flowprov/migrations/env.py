"""Alembic environment: flowprov runs migrations programmatically (see flowprov.db.migrate).

The caller passes an open SQLAlchemy connection in ``config.attributes["connection"]``.
"""

from alembic import context

from flowprov.migrations import include_name
from flowprov.schema import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch ALTERs
    compare_type=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
