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

from flowprov import schema as S
from sqlalchemy import and_, select
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


def parents_of_tasks(conn, refs: Iterable[str]) -> dict[str, tuple[str, str | None, str | None]]:
    """{task reference: (its pipeline run's reference, that run's reference_type, its status)}
    for the tasks of `refs` recorded with a parent."""
    r, p = S.runs, aliased(S.runs)
    refs = list(dict.fromkeys(refs))
    out = {}
    for i in range(0, len(refs), 500):
        rows = conn.execute(
            select(r.c.reference, p.c.reference, p.c.reference_type, p.c.status)
            .join(p, r.c.parent_id == p.c.id)
            .where(and_(r.c.engine == ENGINE, r.c.reference.in_(refs[i : i + 500])))
        )
        for task, parent, ptype, pstatus in rows:
            out[task] = (parent, ptype, pstatus)
    return out


def launch_of_tasks(conn, refs: Iterable[str]) -> tuple[str | None, str]:
    """(the pipeline run these tasks — full hashes of tasks that ran, not cached rows — are
    recorded under, when it is one recorded launch (receiver or lineage); why not otherwise)."""
    parents = parents_of_tasks(conn, refs)
    launches = {ref for ref, ptype, _ in parents.values() if ptype in (LAUNCH, LINEAGE)}
    if len(launches) == 1:
        return launches.pop(), ""
    if len(launches) > 1:
        return None, f"its tasks are recorded under {len(launches)} different launches"
    return None, "none of its tasks is recorded under a launch"
