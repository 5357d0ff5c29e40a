"""Every run that produced an artifact's bytes, not only the first (identical outputs of two
jobs — empty logs, flags — are one artifact made by both). Backfilled from artifacts.run_id.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_outputs",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name=op.f("fk_run_outputs_artifact_id_artifacts")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_outputs_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "artifact_id", name=op.f("pk_run_outputs")),
    )
    op.create_index("ix_run_outputs_artifact_id", "run_outputs", ["artifact_id"])
    op.execute(
        "INSERT INTO run_outputs (run_id, artifact_id, created_at) "
        "SELECT run_id, id, created_at FROM artifacts WHERE run_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_run_outputs_artifact_id", table_name="run_outputs")
    op.drop_table("run_outputs")
