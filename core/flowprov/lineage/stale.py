"""Staleness: which current artifacts rest on something that has changed since they were made.

Three kinds of cause:

- ``newer input version`` — an artifact some run read now has a newer version (same key, new
  bytes: its ``is_latest`` is false);
- ``file changed`` / ``file missing`` — an artifact's file on disk no longer matches its hash
  (checked through the hash cache, so unchanged large files are not re-read; `verify` re-reads);
- ``newer code version`` — a run's transform has a newer version (its ``is_latest`` is false).

A run counts only for what it was the LAST to write: an output a newer run rewrote (even with the
same bytes) rests on that newer run's inputs and code, not on the older run's. Files an engine
deleted on purpose (Snakemake's temp()) are neither missing nor a cause. Equal content read
elsewhere (a producer-less copy) carries staleness on, as it carries lineage (walk.copy_source).

Everything downstream of a cause — found with one recursive SQL walk that keeps, for each
artifact it reaches, the artifact and run it came through — is stale if it is itself the latest
version of its key (an older version already has a successor). Each reason carries the path of
records from the cause to the stale artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Integer, and_, bindparam, cast, exists, literal, null, select, union_all

from .. import schema as S
from .walk import copies_of


def _last_writer(ro):
    """Condition on a run_outputs row `ro`: no later run wrote the same artifact version."""
    newer = S.run_outputs.alias("newer")
    return ~exists().where(
        and_(newer.c.artifact_id == ro.c.artifact_id, newer.c.created_at > ro.c.created_at)
    )


@dataclass
class Reason:
    kind: str  # "newer input version" | "file changed" | "file missing" | "newer code version"
    cause: str  # uid of the changed artifact, or of the outdated transform
    detail: str
    path: list[str] = field(default_factory=list)  # uids: cause, run, artifact, run, ..., stale
    labels: list[str] = field(default_factory=list)  # the same records, readable


@dataclass
class Stale:
    uid: str
    key: str | None
    reasons: list[Reason]


def _walk(seed_artifacts: list[int], seed_runs: list[int]):
    """(artifact, cause, prev artifact, via run) rows of everything downstream of the causes.

    Causes are artifacts (cause = the artifact, prev/via = NULL) and runs of outdated code (their
    outputs, cause = -run id, via = the run). UNION over the whole row ends the walk on cycles."""
    ri, ro, a = S.run_inputs, S.run_outputs, S.artifacts
    seeds = []
    if seed_artifacts:
        seeds.append(
            select(
                a.c.id.label("artifact_id"),
                a.c.id.label("cause"),
                cast(null(), Integer).label("prev"),
                cast(null(), Integer).label("via"),
            ).where(a.c.id.in_(bindparam("arts", expanding=True)))
        )
    if seed_runs:
        seeds.append(
            select(
                ro.c.artifact_id,
                (literal(0) - ro.c.run_id).label("cause"),
                cast(null(), Integer).label("prev"),
                ro.c.run_id.label("via"),
            ).where(ro.c.run_id.in_(bindparam("runs", expanding=True)), _last_writer(ro))
        )
    base = seeds[0] if len(seeds) == 1 else union_all(*seeds).subquery().select()
    cte = base.cte("stale_walk", recursive=True)
    ri2, ro2 = ri.alias("si"), ro.alias("so")
    made, read = a.alias("sa1"), a.alias("sa2")
    step = (
        select(ro2.c.artifact_id, cte.c.cause, cte.c.artifact_id, ri2.c.run_id)
        .select_from(
            cte.join(made, made.c.id == cte.c.artifact_id)
            .join(read, copies_of(made, read))
            .join(ri2, ri2.c.artifact_id == read.c.id)
            .join(ro2, ro2.c.run_id == ri2.c.run_id)
        )
        .where(_last_writer(ro2))
    )
    cte = cte.union(step)
    return select(cte.c.artifact_id, cte.c.cause, cte.c.prev, cte.c.via)


def stale(check_files: bool = True, progress=None) -> list[Stale]:
    """Current artifacts that are out of date, each with why (see the module's doc)."""
    from ..db import read_connection
    from ..instance import current
    from ..verify import artifact_rows, check_row

    a, r, t, ri = S.artifacts, S.runs, S.transforms, S.run_inputs
    inst = current()
    causes: dict[int, tuple[str, str]] = {}  # cause id → (kind, detail); runs as -id
    with read_connection(inst.engine) as conn:
        for aid, key, uid in conn.execute(
            select(a.c.id, a.c.key, a.c.uid).where(
                a.c.is_latest.is_(False), a.c.id.in_(select(ri.c.artifact_id))
            )
        ):
            causes[aid] = ("newer input version", f"{key or uid} has a newer version")
        for rid, tname, tuid in conn.execute(
            select(r.c.id, t.c.name, t.c.uid)
            .select_from(r.join(t, t.c.id == r.c.transform_id))
            .where(t.c.is_latest.is_(False), r.c.id.in_(select(S.run_outputs.c.run_id)))
            .order_by(r.c.id)
        ):
            causes[-rid] = ("newer code version", f"{tname} ({tuid}) has a newer version")
    if check_files:  # latest versions (older ones in place were overwritten by their successors)
        roots = inst.storages(refresh=True)
        for row in artifact_rows():
            c = check_row(row, roots, use_cache=True)
            if progress is not None:
                progress(c)
            if c.status in ("modified", "missing"):
                causes[row["id"]] = (
                    f"file {'changed' if c.status == 'modified' else 'missing'}",
                    f"{c.path}: {c.detail}",
                )
    if not causes:
        return []
    arts = [c for c in causes if c > 0]
    runs = [-c for c in causes if c < 0]
    with read_connection(inst.engine) as conn:
        walk = conn.execute(_walk(arts, runs), {"arts": arts, "runs": runs}).all()
        reached = {row[0] for row in walk} | set(arts)
        info = {}
        from .graph import _rows  # chunked reads of a prebuilt statement

        for row in _rows(conn, _artifact_info(), reached):
            info[row["id"]] = row
        run_info = {}  # run id → (run uid, its transform's uid and name)
        vias = {row[3] for row in walk if row[3] is not None}
        for row in _rows(conn, _run_info(), vias | set(runs)):
            run_info[row["id"]] = (row["uid"], row["t_uid"], row["name"])
    pred: dict[tuple[int, int], tuple[int | None, int | None]] = {}
    for aid, cause, prev, via in walk:
        pred.setdefault((aid, cause), (prev, via))
    out: dict[int, Stale] = {}
    for (aid, cause), _ in sorted(pred.items()):
        row = info[aid]
        if not row["is_latest"]:
            continue  # an older version: its successor is what matters
        if cause > 0 and aid == cause and causes[cause][0] == "newer input version":
            continue
        path, labels = _path(pred, aid, cause, info, run_info)
        kind, detail = causes[cause]
        if cause < 0:  # outdated code: the path starts at the transform
            _, t_uid, t_name = run_info[-cause]
            cause_uid = t_uid
            path, labels = [t_uid, *path], [f"{t_name} (older version)", *labels]
        else:
            cause_uid = info[cause]["uid"]
        entry = out.setdefault(aid, Stale(row["uid"], row["key"], []))
        if any((r.kind, r.cause, r.detail) == (kind, cause_uid, detail) for r in entry.reasons):
            continue  # the same reason through another run (several runs of one old transform)
        entry.reasons.append(Reason(kind, cause_uid, detail, path, labels))
    return [out[k] for k in sorted(out)]


def _path(pred, aid: int, cause: int, info, run_info) -> tuple[list[str], list[str]]:
    """uids (and readable labels) from the cause to the artifact, following the walk's
    back-pointers."""
    path, labels, seen, cur = [], [], set(), aid
    while cur is not None and cur not in seen:
        seen.add(cur)
        path.append(info[cur]["uid"])
        labels.append(info[cur]["key"] or info[cur]["uid"])
        prev, via = pred.get((cur, cause), (None, None))
        if via is not None:
            path.append(run_info[via][0])
            labels.append(f"run of {run_info[via][2]}")
        cur = prev
    return path[::-1], labels[::-1]


def _artifact_info():
    a = S.artifacts
    return select(a.c.id, a.c.uid, a.c.key, a.c.is_latest).where(
        a.c.id.in_(bindparam("ids", expanding=True))
    )


def _run_info():
    r, t = S.runs, S.transforms
    return (
        select(r.c.id, r.c.uid, t.c.uid.label("t_uid"), t.c.name)
        .select_from(r.join(t, t.c.id == r.c.transform_id))
        .where(r.c.id.in_(bindparam("ids", expanding=True)))
    )
