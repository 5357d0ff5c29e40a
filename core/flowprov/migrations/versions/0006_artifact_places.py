"""An artifact is a place: one row per (storage, key, hash) instead of one per hash.

Until 0005 equal bytes at two paths were one artifact named after the first path (the others
were lost). From here each place has its own artifact and versions; equal content joins lineage
through the `hash` column. Old merged records stay as they were — one artifact at the place that
was registered first, made by every run that wrote those bytes anywhere; the other paths were
never stored and cannot be recovered (re-ingesting or re-running records them at their places).

Also: `file_name` (the original name of a file copied in without a key), `removed` /
`removed_at` (a file an engine deleted on purpose, e.g. Snakemake's temp()).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_artifacts_hash", type_="unique")
        batch_op.drop_index("ix_artifacts_storage_key")
        batch_op.add_column(sa.Column("file_name", sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column("removed", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_artifacts_hash", ["hash"], unique=False)
        batch_op.create_unique_constraint(
            "uq_artifacts_storage_id_key_hash", ["storage_id", "key", "hash"]
        )
    op.create_index(
        "uq_artifacts_keyless_hash",
        "artifacts",
        ["hash"],
        unique=True,
        sqlite_where=sa.text("key IS NULL"),
        postgresql_where=sa.text("key IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_artifacts_keyless_hash", table_name="artifacts")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_artifacts_storage_id_key_hash", type_="unique")
        batch_op.drop_index("ix_artifacts_hash")
        batch_op.drop_column("removed_at")
        batch_op.drop_column("removed")
        batch_op.drop_column("file_name")
        batch_op.create_index("ix_artifacts_storage_key", ["storage_id", "key"], unique=False)
        batch_op.create_unique_constraint("uq_artifacts_hash", ["hash"])
