"""Transforms get an enclosing transform: a Snakemake rule's workflow, a Nextflow process's
pipeline, a Prefect task's flow.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transforms") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_index("ix_transforms_parent_id", ["parent_id"])
        batch.create_foreign_key(
            "fk_transforms_parent_id_transforms", "transforms", ["parent_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("transforms") as batch:
        batch.drop_constraint("fk_transforms_parent_id_transforms", type_="foreignkey")
        batch.drop_index("ix_transforms_parent_id")
        batch.drop_column("parent_id")
