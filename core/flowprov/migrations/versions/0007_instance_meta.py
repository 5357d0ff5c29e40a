"""The instance describes itself: `instance_meta` holds the instance's uid (so every member sees
the same instance) and the compatibility floor (the oldest schema revision, and the flowprov
release, whose clients may still use this database); `storages.options` holds a root's
non-secret fsspec options (endpoint, region), shared by every member.

Both additions are optional to older code: a client that knows only 0006 could keep working.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_instance_meta")),
    )
    with op.batch_alter_table("storages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("storages", schema=None) as batch_op:
        batch_op.drop_column("options")
    op.drop_table("instance_meta")
