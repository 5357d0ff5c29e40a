"""What an OpenLineage event says about a run, read from the store in bulk.

The live emitter and the backfill export build their events from the same rows: the run as
recorded (after the write that made the event has committed), never from what an engine said
in passing. Three statements per batch of runs, whatever its size: the runs (with their
transform, their parent and grandparent, and the engine's version from their environment), and
their inputs and outputs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import aliased

from .. import schema as S
from ..times import utc

_CHUNK = 500
ENGINES = ("snakemake", "nextflow", "prefect")  # engines whose version a package can tell


@dataclass(frozen=True, slots=True)
class TransformFacts:
    uid: str
    name: str
    type: str
    key: str | None
    version: str | None
    reference: str | None
    reference_type: str | None
    source_code: str | None
    parent_name: str | None  # the enclosing transform's name (a rule's workflow)


@dataclass(frozen=True, slots=True)
class DatasetFacts:
    root: str  # the storage root: a local folder or a URL
    location: str  # where the bytes are: an absolute local path or a URL
    hash: str
    hash_type: str


@dataclass(slots=True)
class RunFacts:
    id: int
    uid: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    engine: str | None
    engine_version: str | None  # the engine package of its environment, when recorded
    interpreter: str | None
    transform: TransformFacts
    parent_uid: str | None = None
    parent_transform: TransformFacts | None = None
    root_uid: str | None = None  # the parent's parent, when there is one
    root_transform: TransformFacts | None = None
    inputs: list[DatasetFacts] = field(default_factory=list)
    outputs: list[DatasetFacts] = field(default_factory=list)


def _transform_cols(t, pt, prefix: str) -> list:
    return [
        t.c.uid.label(f"{prefix}uid"),
        t.c.name.label(f"{prefix}name"),
        t.c.type.label(f"{prefix}type"),
        t.c.key.label(f"{prefix}key"),
        t.c.version.label(f"{prefix}version"),
        t.c.reference.label(f"{prefix}reference"),
        t.c.reference_type.label(f"{prefix}reference_type"),
        t.c.source_code.label(f"{prefix}source_code"),
        pt.c.name.label(f"{prefix}parent_name"),
    ]


def _transform(row, prefix: str) -> TransformFacts | None:
    if row[f"{prefix}uid"] is None:
        return None
    return TransformFacts(
        uid=row[f"{prefix}uid"],
        name=row[f"{prefix}name"],
        type=row[f"{prefix}type"],
        key=row[f"{prefix}key"],
        version=row[f"{prefix}version"],
        reference=row[f"{prefix}reference"],
        reference_type=row[f"{prefix}reference_type"],
        source_code=row[f"{prefix}source_code"],
        parent_name=row[f"{prefix}parent_name"],
    )


@cache  # built once: building the aliased joins costs more than running them
def _runs_query(by: str):
    r = S.runs
    p, g = aliased(S.runs), aliased(S.runs)
    t, pt = aliased(S.transforms), aliased(S.transforms)
    ptf, ptp = aliased(S.transforms), aliased(S.transforms)
    gtf, gtp = aliased(S.transforms), aliased(S.transforms)
    env = S.environments
    return (
        select(
            r.c.id,
            r.c.uid,
            r.c.status,
            r.c.started_at,
            r.c.finished_at,
            r.c.error,
            r.c.engine,
            r.c.environment_id,
            env.c.interpreter,
            p.c.uid.label("parent_uid"),
            g.c.uid.label("root_uid"),
            *_transform_cols(t, pt, "t_"),
            *_transform_cols(ptf, ptp, "p_"),
            *_transform_cols(gtf, gtp, "g_"),
        )
        .select_from(
            r.join(t, t.c.id == r.c.transform_id)
            .outerjoin(pt, pt.c.id == t.c.parent_id)
            .outerjoin(env, env.c.id == r.c.environment_id)
            .outerjoin(p, p.c.id == r.c.parent_id)
            .outerjoin(ptf, ptf.c.id == p.c.transform_id)
            .outerjoin(ptp, ptp.c.id == ptf.c.parent_id)
            .outerjoin(g, g.c.id == p.c.parent_id)
            .outerjoin(gtf, gtf.c.id == g.c.transform_id)
            .outerjoin(gtp, gtp.c.id == gtf.c.parent_id)
        )
        .where(getattr(r.c, by).in_(bindparam("ids", expanding=True)))
    )


@cache
def _engine_versions_query():
    k = S.packages
    return select(k.c.environment_id, k.c.name, k.c.version, k.c.source).where(
        k.c.environment_id.in_(bindparam("ids", expanding=True)),
        k.c.source.in_(("engine", "pip", "conda")),
        func.lower(k.c.name).in_(ENGINES),
    )


@cache
def _datasets_query(link):
    a, s = S.artifacts, S.storages
    return (
        select(
            link.c.run_id,
            a.c.key,
            a.c.hash,
            a.c.hash_type,
            a.c.suffix,
            a.c.managed,
            s.c.root,
        )
        .select_from(link.join(a, a.c.id == link.c.artifact_id).join(s, s.c.id == a.c.storage_id))
        .where(link.c.run_id.in_(bindparam("ids", expanding=True)))
        .order_by(link.c.run_id, a.c.id)
    )


def _chunks(ids):
    ids = sorted(set(ids))
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def resolve(conn, refs: set[tuple[str, str]]) -> dict:
    """The uids of runs an engine names by its own id: {(engine, reference): uid}."""
    out: dict = {}
    r = S.runs
    refs_l = sorted(refs)
    for i in range(0, len(refs_l), _CHUNK):
        part = refs_l[i : i + _CHUNK]
        cond = or_(*(and_(r.c.engine == e, r.c.reference == ref) for e, ref in part))
        for row in conn.execute(select(r.c.uid, r.c.engine, r.c.reference).where(cond)).all():
            out[(row.engine, row.reference)] = row.uid
    return out


def run_facts(conn, ids=(), uids=()) -> dict[int, RunFacts]:
    """The facts of these runs (by ids and/or uids), with their inputs and outputs, by id."""
    from ..exports import _location

    out: dict[int, RunFacts] = {}
    env_ids: dict[int, list[int]] = defaultdict(list)
    for by, keys in (("id", ids), ("uid", uids)):
        for chunk in _chunks(keys):
            for row in conn.execute(_runs_query(by), {"ids": chunk}).mappings():
                if row["id"] in out:
                    continue
                f = RunFacts(
                    id=row["id"],
                    uid=row["uid"],
                    status=row["status"],
                    started_at=utc(row["started_at"]),
                    finished_at=utc(row["finished_at"]),
                    error=row["error"],
                    engine=row["engine"],
                    engine_version=None,
                    interpreter=row["interpreter"],
                    transform=_transform(row, "t_"),
                    parent_uid=row["parent_uid"],
                    parent_transform=_transform(row, "p_"),
                    root_uid=row["root_uid"],
                    root_transform=_transform(row, "g_"),
                )
                out[f.id] = f
                if row["environment_id"] is not None:
                    env_ids[row["environment_id"]].append(f.id)
    for chunk in _chunks(out):
        for link, attr in ((S.run_inputs, "inputs"), (S.run_outputs, "outputs")):
            for row in conn.execute(_datasets_query(link), {"ids": chunk}).mappings():
                getattr(out[row["run_id"]], attr).append(
                    DatasetFacts(row["root"], _location(row), row["hash"], row["hash_type"])
                )
    # the engine's version: the package named like the run's engine in the software it ran in —
    # as the engine reported it (a Snakemake job's environment), else the distribution installed
    # in the interpreter that ran it (a Prefect task's, a Snakemake workflow's own process)
    rank = {"engine": 0, "conda": 1, "pip": 2}
    best: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(env_ids):
        for row in conn.execute(_engine_versions_query(), {"ids": chunk}).all():
            for run_id in env_ids[row.environment_id]:
                f = out[run_id]
                if not row.version or (f.engine or "").lower() != row.name.lower():
                    continue
                if run_id not in best or rank[row.source] < best[run_id][0]:
                    best[run_id] = (rank[row.source], row.version)
    for run_id, (_, version) in best.items():
        out[run_id].engine_version = version
    return out
