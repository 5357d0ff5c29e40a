"""Which recorded pipeline run is one Nextflow launch — the same for every source that tells of it.

A launch is its session id (`runId`, shared by a run and its `-resume`s) and its run name
(`happy_turing`, new per launch). Each source knows a different part of that:

- the weblog receiver hears both: it records the launch as `<runId>/<runName>`
  (reference_type "nextflow launch");
- the lineage store's WorkflowRun has both too (`sessionId`, `name`), but is keyed by its `lid://`:
  the receiver finds such a run by name and session, and lineage finds the receiver's by key;
- a trace file has neither: a trace whose tasks (by full hash, never a cached row) are already
  recorded under one launch *is* that launch — a task runs in one launch only.

Only certain evidence joins two records: a launch whose tasks sit under two pipeline runs, or a
trace whose tasks point at different launches, stays as it is, and the caller says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flowprov import schema as S
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import aliased

ENGINE = "nextflow"
LAUNCH = "nextflow launch"
LINEAGE = "nextflow lid"
TRACE_TYPES = ("nextflow trace (first row)", "nextflow trace (path)")


def launch_reference(session_id: str, run_name: str) -> str:
    return f"{session_id}/{run_name}"


def find_launch(conn, session_id: str, run_name: str) -> str | None:
    """The reference of the pipeline run recorded for this launch (by the receiver, or from a
    lineage store), or None."""
    r = S.runs.c
    ref = launch_reference(session_id, run_name)
    hit = conn.execute(
        select(r.reference).where(and_(r.engine == ENGINE, r.reference == ref))
    ).scalar()
    if hit is not None:
        return hit
    rows = conn.execute(
        select(r.reference, r.params).where(
            and_(r.engine == ENGINE, r.name == run_name, r.reference_type == LINEAGE)
        )
    ).all()
    found = [ref for ref, params in rows if (params or {}).get("sessionId") == session_id]
    return found[0] if len(found) == 1 else None


_P = aliased(S.runs)
# built once: a statement made per call costs more than the query (one per receiver batch)
_PARENTS = (
    select(S.runs.c.reference, _P.c.reference, _P.c.reference_type)
    .join(_P, S.runs.c.parent_id == _P.c.id)
    .where(
        and_(S.runs.c.engine == ENGINE, S.runs.c.reference.in_(bindparam("refs", expanding=True)))
    )
)


def parents_of_tasks(conn, refs: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """{task reference: (its pipeline run's reference, that run's reference_type)} for the tasks
    of `refs` recorded with a parent."""
    refs = list(dict.fromkeys(refs))
    out = {}
    for i in range(0, len(refs), 500):
        for task, parent, ptype in conn.execute(_PARENTS, {"refs": refs[i : i + 500]}):
            out[task] = (parent, ptype)
    return out


@dataclass(frozen=True)
class Recorded:
    """A recorded pipeline run: how it was recorded, its pipeline Transform (uid, and the key its
    processes' keys start with) and its user."""

    reference_type: str | None
    transform_uid: str
    transform_key: str
    user: str | None


def recorded_pipeline(conn, reference: str) -> Recorded:
    r, t, u = S.runs.c, S.transforms.c, S.users.c
    row = conn.execute(
        select(r.reference_type, t.uid, t.key, t.name, u.handle)
        .select_from(S.runs.join(S.transforms, r.transform_id == t.id))
        .outerjoin(S.users, r.created_by_id == u.id)
        .where(and_(r.engine == ENGINE, r.reference == reference))
    ).one()
    return Recorded(row.reference_type, row.uid, row.key or f"nextflow:{row.name}", row.handle)


def launch_of_tasks(conn, refs: Iterable[str]) -> tuple[str | None, str]:
    """(the pipeline run these tasks — full hashes of tasks that ran, not cached rows — are
    recorded under, when it is one recorded launch (receiver or lineage); why not otherwise)."""
    parents = parents_of_tasks(conn, refs)
    launches = {ref for ref, ptype in parents.values() if ptype in (LAUNCH, LINEAGE)}
    if len(launches) == 1:
        return launches.pop(), ""
    if len(launches) > 1:
        return None, f"its tasks are recorded under {len(launches)} different launches"
    return None, "none of its tasks is recorded under a launch"
