"""A lineage's recorded history as OpenLineage RunEvents, for a backfill: START and the final
event of every run of the graph (and of the workflows and flows enclosing them), in time order,
one JSON document per line — what the live emitter would have sent."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StorageError


def graph_events(graph, inst, ns: str | None = None) -> list:
    from ..db import read_connection
    from .emitter import namespace
    from .facts import run_facts
    from .mapping import final_event, start_event

    ns = ns or namespace(inst)
    ids = {int(n.id[1:]) for n in graph.runs} | {int(i[1:]) for i in graph.groups}
    with read_connection(inst.engine) as conn:
        facts = run_facts(conn, ids)
        # the enclosing runs of enclosing runs (a Nextflow launch above its sub-workflow)
        more = {f.parent_uid for f in facts.values()} - {f.uid for f in facts.values()} - {None}
        if more:
            facts.update(run_facts(conn, uids=more))
    timed = []
    for f in facts.values():
        if f.status == "scheduled":
            continue  # it has not begun: nothing to say
        timed.append((f.started_at, 0, f.id, start_event(f, ns)))
        if f.status != "started":  # it ended: how, and when
            timed.append((f.finished_at or f.started_at, 1, f.id, final_event(f, ns)))
    timed.sort(key=lambda x: (x[0], x[1], x[2]))
    return [x[3] for x in timed]


def write_events(graph, path: str | os.PathLike, inst=None) -> tuple[Path, int]:
    """Write the RunEvents of a lineage graph to `path` as newline-delimited JSON; returns the
    path and how many events."""
    from openlineage.client.serde import Serde

    from ..instance import current

    inst = inst or current()
    events = graph_events(graph, inst)
    path = Path(path).expanduser().absolute()
    text = "".join(Serde.to_json(e) + "\n" for e in events)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e
    return path, len(events)
