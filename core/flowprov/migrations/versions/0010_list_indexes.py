"""Indexes for lists filtered by one column and shown newest first (`flowprov serve`, `ls`,
`status`): (column, time) pairs. Each replaces the single-column index it starts with, which it
serves as well. Indexes only: older clients keep working.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (table, new index, its columns, the single-column index it replaces or None)
INDEXES = [
    ("runs", "ix_runs_status_started_at", ["status", "started_at"], "ix_runs_status"),
    ("runs", "ix_runs_parent_started_at", ["parent_id", "started_at"], "ix_runs_parent_id"),
    (
        "runs",
        "ix_runs_created_by_started_at",
        ["created_by_id", "started_at"],
        "ix_runs_created_by_id",
    ),
    ("runs", "ix_runs_engine_started_at", ["engine", "started_at"], None),
    ("runs", "ix_runs_parent_finished_at", ["parent_id", "finished_at"], None),
    (
        "artifacts",
        "ix_artifacts_storage_created_at",
        ["storage_id", "created_at"],
        "ix_artifacts_storage_id",
    ),
    (
        "artifacts",
        "ix_artifacts_created_by_created_at",
        ["created_by_id", "created_at"],
        "ix_artifacts_created_by_id",
    ),
    ("artifacts", "ix_artifacts_suffix_created_at", ["suffix", "created_at"], None),
]


def upgrade() -> None:
    for table, name, columns, replaces in INDEXES:
        op.create_index(name, table, columns)
        if replaces:
            op.drop_index(replaces, table_name=table)


def downgrade() -> None:
    for table, name, columns, replaces in reversed(INDEXES):
        if replaces:
            op.create_index(replaces, table, [columns[0]])
        op.drop_index(name, table_name=table)
