"""The database schema (SQLAlchemy Core). Changes here need a migration in migrations/versions/.

Idempotency is enforced by the database, not by Python checks alone, so that concurrent writers
(cluster jobs, several notebooks) cannot create duplicates:

- transforms: one row per (family, version_tag) — family is the key (or type+name), version_tag
  the version string and source hash;
- runs: one row per uid, and per (engine, reference) when an engine gives its own id;
- artifacts: one row per version of a place — (storage, key, hash) — so the same bytes at two
  places are two artifacts with equal hashes; a file copied in without a key (key NULL) is its
  content: one row per hash among those;
- run_inputs, run_outputs: one row per (run, artifact version);
- environments: one row per content digest (the software of every run that used it), its
  packages as rows.

An artifact row is one version of a place (all versions share its `stem`; `is_latest` marks the
content the place holds now). Its `run_id` is the run that first produced that version;
`run_outputs` holds every run that wrote those bytes there (a rerun that rewrote them unchanged
too). Equal content at other places is the lineage join ("same content as"): the walks follow it
through the indexed `hash` column, see lineage/walk.py.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _ts(name: str, **kw) -> Column:
    return Column(name, DateTime(timezone=True), **kw)


users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(8), nullable=False, unique=True),
    Column("handle", String(150), nullable=False, unique=True),
    Column("name", String(255)),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
)

storages = Table(
    "storages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(12), nullable=False, unique=True),
    Column("root", String(1024), nullable=False, unique=True),
    Column("type", String(16), nullable=False),  # local, s3, gs, ...
    Column("region", String(64)),
    Column("description", Text),
    Column("is_default", Boolean, nullable=False, default=False),
    # non-secret fsspec options shared by every member: endpoint_url, region_name, ...
    Column("options", JSON),
    Column("created_by_id", Integer, ForeignKey("users.id")),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
)

transforms = Table(
    "transforms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(16), nullable=False, unique=True),
    Column("stem", String(12), nullable=False, index=True),
    Column("family", String(1024), nullable=False),
    Column("version_tag", String(128), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("key", String(1024), index=True),
    Column("description", Text),
    Column("type", String(20), nullable=False, index=True),
    Column("version", String(64)),
    Column("is_latest", Boolean, nullable=False, default=True),
    Column("reference", String(1024)),
    Column("reference_type", String(64)),
    Column("source_code", Text),
    Column("hash", String(128)),
    # the enclosing transform: a rule's or process's pipeline, a task's flow
    Column("parent_id", Integer, ForeignKey("transforms.id"), index=True),
    Column("created_by_id", Integer, ForeignKey("users.id"), index=True),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    UniqueConstraint("family", "version_tag"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(20), nullable=False, unique=True),
    Column("transform_id", Integer, ForeignKey("transforms.id"), nullable=False, index=True),
    Column("name", String(255)),
    _ts("started_at", nullable=False, index=True),
    _ts("finished_at"),
    Column("status", String(16), nullable=False),
    Column("params", JSON),
    # how the run ran beyond its software: exit code or signal, command line (JSON). Until 0008
    # this was `environment` and also held the Python version, platform and imported packages,
    # now an environment record.
    Column("runtime", JSON),
    Column("environment_id", Integer, ForeignKey("environments.id"), index=True),
    Column("error", Text),
    Column("parent_id", Integer, ForeignKey("runs.id")),
    Column("engine", String(32)),
    Column("reference", String(255)),
    Column("reference_type", String(64)),
    Column("created_by_id", Integer, ForeignKey("users.id")),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    UniqueConstraint("engine", "reference"),
    # lists filter by one of these and show the newest first (0010): one index serves both, and
    # its leading column still serves lookups by that column alone
    Index("ix_runs_status_started_at", "status", "started_at"),
    Index("ix_runs_parent_started_at", "parent_id", "started_at"),
    Index("ix_runs_created_by_started_at", "created_by_id", "started_at"),
    Index("ix_runs_engine_started_at", "engine", "started_at"),
    # what just ended, top-level runs (`flowprov status`, the web app's home)
    Index("ix_runs_parent_finished_at", "parent_id", "finished_at"),
)

# The software a run used, identified by content: `hash` is EnvironmentSpec.digest() (events.py)
environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(16), nullable=False, unique=True),  # the digest's first 16 characters
    Column("hash", String(128), nullable=False, unique=True),
    Column("interpreter", String(255)),
    Column("os", String(255)),
    Column("container_image", String(1024), index=True),
    Column("container_digest", String(255)),
    Column("container_engine", String(32)),
    # not a foreign key: artifacts → runs → environments → artifacts would be a cycle of them
    Column("spec_file_id", Integer, index=True),
    Column("deployed", Boolean),  # True: what ran; False: declared, not deployed; NULL: unknown
    Column("complete", Boolean, nullable=False, default=False),  # packages is the whole set
    Column("n_packages", Integer, nullable=False, default=0),
    Column("details", JSON),
    Column("created_by_id", Integer, ForeignKey("users.id")),
    _ts("created_at", nullable=False),
)

packages = Table(
    "packages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("environment_id", Integer, ForeignKey("environments.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("version", String(255)),
    Column("build", String(255)),
    Column("source", String(16), nullable=False),
    Column("channel", String(1024)),
    Index("ix_packages_name_version", "name", "version"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(20), nullable=False, unique=True),
    Column("stem", String(16), nullable=False, index=True),
    Column("key", String(1024), index=True),
    Column("key_is_virtual", Boolean, nullable=False, default=False),
    Column("description", Text),
    Column("suffix", String(32), nullable=False, default=""),
    Column("size", BigInteger),
    Column("hash", String(128), nullable=False, index=True),
    Column("hash_type", String(32), nullable=False),
    # the original name of a file copied in without a key (its only name)
    Column("file_name", String(1024)),
    # an engine deleted the file on purpose (Snakemake's temp()): why, and when
    Column("removed", String(32)),
    _ts("removed_at"),
    Column("checksums", JSON),  # other systems' checksums of the same bytes, by name
    Column("n_objects", Integer, nullable=False, default=1),
    Column("is_latest", Boolean, nullable=False, default=True),
    # managed: flowprov copied the bytes into its storage root (and so may delete them)
    Column("managed", Boolean, nullable=False, default=False),
    Column("storage_id", Integer, ForeignKey("storages.id"), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id"), index=True),
    Column("created_by_id", Integer, ForeignKey("users.id")),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    UniqueConstraint("storage_id", "key", "hash"),
    # without a key, the artifact is its content: one row per hash
    Index(
        "uq_artifacts_keyless_hash",
        "hash",
        unique=True,
        sqlite_where=text("key IS NULL"),
        postgresql_where=text("key IS NULL"),
    ),
    Index("ix_artifacts_created_at", "created_at"),
    # lists filter by one of these and show the newest first (0010)
    Index("ix_artifacts_storage_created_at", "storage_id", "created_at"),
    Index("ix_artifacts_created_by_created_at", "created_by_id", "created_at"),
    Index("ix_artifacts_suffix_created_at", "suffix", "created_at"),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), primary_key=True, index=True),
    _ts("created_at", nullable=False),
)

run_outputs = Table(
    "run_outputs",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("artifact_id", Integer, ForeignKey("artifacts.id"), primary_key=True, index=True),
    _ts("created_at", nullable=False),
)

# what the instance says about itself: its uid, the oldest schema (and flowprov release) whose
# clients may still use it — see migrations/__init__.py
instance_meta = Table(
    "instance_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

TABLES = {
    "users": users,
    "storages": storages,
    "transforms": transforms,
    "runs": runs,
    "artifacts": artifacts,
    "environments": environments,
}
