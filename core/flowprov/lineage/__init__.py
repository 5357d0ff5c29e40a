"""Lineage: the graph around a record (as data, from recursive SQL), its pictures, what is
downstream (impact) and what is out of date (stale).

    g = artifact.lineage(direction="upstream", depth=None)   # Graph: nodes + edges
    artifact.view_lineage()                                   # the picture (inline in Jupyter)
    transform.view_parents()                                  # transforms feeding a transform
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from .. import schema as S
from .graph import Edge, Graph, Node
from .render import COLLAPSE, FORMATS

__all__ = ["COLLAPSE", "FORMATS", "Edge", "Graph", "Node", "lineage", "transform_graph", "view"]

logger = logging.getLogger("flowprov")


def lineage(
    record,
    direction: str = "upstream",
    depth: int | None = None,
    highlight_run=None,
) -> Graph:
    """The data lineage graph around an Artifact, a Run, or a Transform (all of its runs).

    direction: "upstream" (where it came from), "downstream" (what came of it) or "both";
    depth: steps (runs) to walk, None for no limit; highlight_run: a Run whose inputs in the graph
    are highlighted (the run is added below them)."""
    from ..db import read_connection
    from ..instance import current
    from ..records import Artifact, Run, Transform

    rid = record._require_id()
    hl = highlight_run._require_id() if highlight_run is not None else None
    with read_connection(current().engine) as conn:
        if isinstance(record, Artifact):
            return _build(
                conn, artifact_ids=[rid], direction=direction, depth=depth, highlight_run=hl
            )
        if isinstance(record, Run):
            return _build(conn, run_ids=[rid], direction=direction, depth=depth, highlight_run=hl)
        if isinstance(record, Transform):
            runs = [
                r for (r,) in conn.execute(select(S.runs.c.id).where(S.runs.c.transform_id == rid))
            ]
            return _build(conn, run_ids=runs, direction=direction, depth=depth, highlight_run=hl)
    from ..errors import ValidationError

    raise ValidationError(
        f"lineage is drawn for artifacts, runs and transforms, not {type(record).__name__}"
    )


def _build(conn, **kw) -> Graph:
    from .graph import build

    return build(conn, **kw)


def transform_graph(transform, direction: str = "upstream", depth: int | None = None) -> Graph:
    """Transforms feeding (upstream) or fed by (downstream) a transform, as a graph of transforms."""
    from ..db import read_connection
    from ..instance import current
    from .graph import build_transforms

    with read_connection(current().engine) as conn:
        return build_transforms(conn, transform._require_id(), direction, depth)


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def view(
    g: Graph,
    path=None,
    format: str | None = None,
    title: str | None = None,
    collapse_over: int | None = COLLAPSE,
) -> Path | None:
    """Show a graph: in Jupyter, inline as SVG (and saved too if `path` is given); elsewhere,
    written to `path` (default: ./lineage_<uid>.html) — the path is returned and logged."""
    if _in_jupyter() and path is None:
        from IPython.display import SVG, display

        from .render import render_graphviz

        display(SVG(render_graphviz(g, "svg", collapse_over, title)))
        return None
    if path is None:
        first = g.nodes.get(g.start[0]) if g.start else None
        path = Path.cwd() / f"lineage_{first.uid if first else 'graph'}.html"
    p = g.save(path, format, collapse_over=collapse_over, title=title).resolve()
    logger.warning("lineage picture written to %s", p)
    return p


def title_of(record, direction: str) -> str:
    from ..records import Artifact, Run

    if isinstance(record, Artifact):
        name = record.key or record.description or record.uid
        return f"{direction} of artifact {name} ({record.uid})"
    if isinstance(record, Run):
        return f"{direction} of run {record.uid} of {record.transform.name}"
    return f"{direction} of transform {record.name} ({record.uid})"
