"""Software environments: `environments` (one row per content digest) and their `packages` as
rows; `runs.environment_id` links a run to the software it used.

`runs.environment` (JSON) becomes `runs.runtime`: from here it holds only the run's runtime facts
(exit code or signal, command line), and clients of 0007, which read `environment`, must
upgrade. What flowprov < 0.3 kept there —
the Python version, the platform and the versions of the *imported* distributions — becomes an
environment marked incomplete (it never listed everything installed), shared by every run that
had the same.

Revision ID: 0008
Revises: 0007
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=128), nullable=False),
        sa.Column("interpreter", sa.String(length=255), nullable=True),
        sa.Column("os", sa.String(length=255), nullable=True),
        sa.Column("container_image", sa.String(length=1024), nullable=True),
        sa.Column("container_digest", sa.String(length=255), nullable=True),
        sa.Column("container_engine", sa.String(length=32), nullable=True),
        sa.Column("spec_file_id", sa.Integer(), nullable=True),
        sa.Column("deployed", sa.Boolean(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("n_packages", sa.Integer(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_environments_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
        sa.UniqueConstraint("hash", name=op.f("uq_environments_hash")),
        sa.UniqueConstraint("uid", name=op.f("uq_environments_uid")),
    )
    op.create_index("ix_environments_container_image", "environments", ["container_image"])
    op.create_index("ix_environments_spec_file_id", "environments", ["spec_file_id"])
    op.create_table(
        "packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("build", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_packages_environment_id_environments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
    )
    op.create_index("ix_packages_environment_id", "packages", ["environment_id"])
    op.create_index("ix_packages_name_version", "packages", ["name", "version"])
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("environment_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_runs_environment_id_environments", "environments", ["environment_id"], ["id"]
        )
        batch_op.create_index("ix_runs_environment_id", ["environment_id"])
        batch_op.alter_column("environment", new_column_name="runtime")
    _move_legacy_environments(op.get_bind())


def _move_legacy_environments(conn) -> None:
    """Each distinct pre-0.3 `runs.environment` becomes an environment record (deduplicated by
    digest, as the store does); the run keeps only its runtime facts."""
    from flowprov.events import legacy_environment

    runs = sa.table(
        "runs",
        sa.column("id", sa.Integer),
        sa.column("runtime", sa.JSON),
        sa.column("environment_id", sa.Integer),
    )
    envs = sa.table(
        "environments",
        *(sa.column(c) for c in ("id", "uid", "hash", "interpreter", "os", "deployed", "complete")),
        sa.column("n_packages", sa.Integer),
        sa.column("details", sa.JSON),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    pkgs = sa.table(
        "packages", *(sa.column(c) for c in ("environment_id", "name", "version", "source"))
    )
    env_ids: dict[str, int] = {}
    now = datetime.now(UTC)
    rows = conn.execute(
        sa.select(runs.c.id, runs.c.runtime).where(runs.c.runtime.isnot(None))
    ).all()
    for rid, value in rows:
        if isinstance(value, str):  # a driver handing JSON back as text
            value = json.loads(value)
        if not isinstance(value, dict):
            continue
        spec, rest = legacy_environment(value)
        if spec is None:
            continue
        digest = spec.digest()
        eid = env_ids.get(digest)
        if eid is None:
            eid = conn.execute(
                envs.insert().returning(envs.c.id),
                dict(
                    uid=digest[:16],
                    hash=digest,
                    interpreter=spec.interpreter,
                    os=spec.os,
                    deployed=spec.deployed,
                    complete=False,
                    n_packages=len(spec.packages),
                    details=spec.details,
                    created_at=now,
                ),
            ).scalar_one()
            if spec.packages:
                conn.execute(
                    pkgs.insert(),
                    [
                        dict(environment_id=eid, name=p.name, version=p.version, source=p.source)
                        for p in spec.packages
                    ],
                )
            env_ids[digest] = eid
        conn.execute(
            runs.update()
            .where(runs.c.id == rid)
            .values(runtime=sa.null() if rest is None else rest, environment_id=eid)
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.alter_column("runtime", new_column_name="environment")
        batch_op.drop_index("ix_runs_environment_id")
        batch_op.drop_constraint("fk_runs_environment_id_environments", type_="foreignkey")
        batch_op.drop_column("environment_id")
    op.drop_table("packages")
    op.drop_table("environments")
