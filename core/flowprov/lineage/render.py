"""Pictures of a lineage Graph: Graphviz (DOT text, SVG, PNG — through the `graphviz` package and
Graphviz's own `dot`), Mermaid text, and one self-contained HTML page.

Look: artifacts are blue notes, runs green rounded boxes (failed runs red, with ✗), transforms
violet components; the start is drawn bold, the current run and its inputs orange. A run's
enclosing run (a Snakemake workflow, a Prefect flow) is a dashed box around its members. Data
flows top to bottom. Above `collapse` (default 12) outputs of one run that lead nowhere else in
the graph are drawn as one node with a count — and likewise many raw inputs of one run — so a
run with 1,000 outputs stays readable.
"""

from __future__ import annotations

import copy
import json
from collections import Counter, defaultdict
from importlib.resources import files
from pathlib import Path

from ..errors import FlowprovError, ValidationError
from .graph import Edge, Graph, Node

COLLAPSE = 12
FORMATS = ("html", "svg", "png", "mermaid", "dot", "json")
SUFFIX_FORMAT = {
    ".html": "html",
    ".htm": "html",
    ".svg": "svg",
    ".png": "png",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
    ".json": "json",
}

STYLE = {
    "artifact": dict(shape="note", style="filled", fillcolor="#dbeafe", color="#1d4ed8"),
    "run": dict(shape="box", style="rounded,filled", fillcolor="#dcfce7", color="#15803d"),
    "failed": dict(
        shape="box", style="rounded,filled", fillcolor="#fecaca", color="#b91c1c", penwidth="2.5"
    ),
    "running": dict(shape="box", style="rounded,filled", fillcolor="#fef9c3", color="#a16207"),
    "transform": dict(shape="component", style="filled", fillcolor="#ede9fe", color="#6d28d9"),
    "collapsed": dict(shape="folder", style="filled", fillcolor="#e0f2fe", color="#0369a1"),
}
HIGHLIGHT = dict(color="#ea580c", penwidth="3", fillcolor="#ffedd5")
FAILED = ("failed", "crashed", "errored")


def _style(n: Node) -> dict:
    if n.kind == "run" and n.status in FAILED:
        s = dict(STYLE["failed"])
    elif n.kind == "run" and n.status in ("running", "started", "pending"):
        s = dict(STYLE["running"])
    else:
        s = dict(STYLE[n.kind if n.kind != "group" else "collapsed"])
    if n.highlight:
        s.update(HIGHLIGHT)
    return s


def _label(n: Node) -> str:
    if n.kind == "run" and n.status in FAILED:
        return f"✗ {n.status.upper()}\n{n.label}"
    return n.label


# -- collapsing --------------------------------------------------------------------------------


def drawable(g: Graph, transforms: bool = False, threshold: int | None = COLLAPSE) -> Graph:
    """What a picture shows: in a data lineage graph, transforms are named on their runs (and
    their enclosing runs' boxes) rather than drawn, unless `transforms`; then collapsed."""
    if not transforms and any(e.kind == "run_of" for e in g.edges):
        h = copy.copy(g)
        h.nodes = {k: n for k, n in g.nodes.items() if n.kind != "transform"}
        h.edges = [e for e in g.edges if e.kind != "run_of"]
        g = h
    return collapse(g, threshold)


def collapse(g: Graph, threshold: int | None = COLLAPSE) -> Graph:
    """A copy of g where, above `threshold`, a run's dead-end outputs (read by no run in the graph)
    and its source inputs (made by no run in the graph) become one node with a count each. The
    start and highlighted artifacts are never folded away."""
    if not threshold:
        return g
    producers, readers = defaultdict(set), defaultdict(set)  # artifact → run ids
    for e in g.edges:
        if e.kind == "generated":
            producers[e.target].add(e.source)
        elif e.kind == "used":
            readers[e.source].add(e.target)
    keep = set(g.start) | {n.id for n in g.nodes.values() if n.highlight}
    # dead ends: outputs read by no run of the graph, inputs made by none; folded together when
    # they hang off the same runs
    bunches: dict[tuple[str, frozenset], list[str]] = defaultdict(list)
    for n in g.nodes.values():
        if n.kind != "artifact" or n.id in keep:
            continue
        if producers[n.id] and not readers[n.id]:
            bunches[("outputs", frozenset(producers[n.id]))].append(n.id)
        elif readers[n.id] and not producers[n.id]:
            bunches[("inputs", frozenset(readers[n.id]))].append(n.id)
    fold: dict[str, str] = {}  # artifact node id → collapsed node id
    new_nodes: list[Node] = []
    for (side, runs), loose in bunches.items():
        if len(loose) <= threshold:
            continue
        first = sorted(runs)[0]
        gid = f"{first}_{side}" if len(runs) == 1 else f"{first}_{side}_{len(new_nodes)}"
        suffixes = Counter(g.nodes[a].record.get("suffix") or "(none)" for a in loose)
        kinds = ", ".join(f"{s} ×{c}" for s, c in suffixes.most_common(3))
        more = "…" if len(suffixes) > 3 else ""
        size = sum(g.nodes[a].record.get("size") or 0 for a in loose)
        new_nodes.append(
            Node(
                gid,
                "group",
                gid,
                f"{len(loose):,} {side}\n{kinds}{more}",
                {
                    "collapsed": len(loose),
                    "of runs": sorted(g.nodes[r].uid for r in runs),
                    "side": side,
                    "suffixes": dict(suffixes),
                    "total size": size,
                    "uids (first 50)": [g.nodes[a].uid for a in sorted(loose)[:50]],
                },
            )
        )
        for a in loose:
            fold[a] = gid
    if not fold:
        return g
    h = copy.copy(g)
    h.nodes = {k: v for k, v in g.nodes.items() if k not in fold}
    for n in new_nodes:
        h.nodes[n.id] = n
    seen, edges = set(), []
    for e in g.edges:
        e2 = Edge(fold.get(e.source, e.source), fold.get(e.target, e.target), e.kind)
        if (e2.source, e2.target) not in seen:
            seen.add((e2.source, e2.target))
            edges.append(e2)
    h.edges = edges
    return h


# -- Graphviz ----------------------------------------------------------------------------------


def _digraph(g: Graph, title: str | None = None):
    import graphviz

    esc = graphviz.escape
    dot = graphviz.Digraph(
        "lineage",
        graph_attr=dict(
            rankdir="TB",
            fontname="Helvetica",
            fontsize="11",
            nodesep="0.3",
            ranksep="0.45",
            tooltip=" ",
        ),
    )
    dot.attr("node", fontname="Helvetica", fontsize="10", margin="0.12,0.06")
    dot.attr("edge", color="#475569", arrowsize="0.7")
    if title:
        dot.attr(label=esc(title), labelloc="t", fontsize="13")

    def node_attrs(n: Node) -> dict:
        a = _style(n)
        if n.id in g.start:
            a["penwidth"] = "3"
            a["fontname"] = "Helvetica-Bold"
        a["id"] = n.id
        a["tooltip"] = n.uid
        return a

    def text(s: str) -> str:
        return "\\n".join(esc(part) for part in s.split("\n"))

    # clusters: a node sits in the box of its enclosing run; boxes nest like the runs do
    members: dict[str | None, list[Node]] = defaultdict(list)
    for n in g.nodes.values():
        members[n.group if n.group in g.groups else None].append(n)
    sub_boxes: dict[str | None, list[str]] = defaultdict(list)
    for gid, box in g.groups.items():
        sub_boxes[box.group if box.group in g.groups else None].append(gid)

    def fill(target, parent: str | None) -> None:
        for n in members.get(parent, []):
            if n.id in g.groups:
                continue  # a box that is also a node: drawn by its own cluster below
            target.node(n.id, text(_label(n)), **node_attrs(n))
        for gid in sorted(sub_boxes.get(parent, [])):
            box = g.groups[gid]
            with target.subgraph(name=f"cluster_{gid}") as c:
                c.attr(
                    label=text(_label(box)),
                    style="rounded,dashed",
                    color="#64748b",
                    fontcolor="#334155",
                    id=f"box_{gid}",
                    tooltip=box.uid,
                    labeljust="l",
                )
                if gid in g.nodes:
                    n = g.nodes[gid]
                    c.node(n.id, text(_label(n)), **node_attrs(n))
                fill(c, gid)

    fill(dot, None)
    for e in g.edges:
        attrs = {"color": "#64748b"} if e.kind == "used" else {}
        if e.kind == "run_of":
            attrs = {"style": "dashed", "color": "#6d28d9", "arrowhead": "none"}
        if (
            g.nodes.get(e.source)
            and g.nodes[e.source].highlight
            and g.nodes.get(e.target)
            and g.nodes[e.target].highlight
        ):
            attrs.update(color=HIGHLIGHT["color"], penwidth="2")
        dot.edge(e.source, e.target, **attrs)
    return dot


def to_dot(
    g: Graph,
    collapse_over: int | None = COLLAPSE,
    title: str | None = None,
    transforms: bool = False,
) -> str:
    return _digraph(drawable(g, transforms, collapse_over), title).source


def render_graphviz(
    g: Graph,
    fmt: str,
    collapse_over: int | None = COLLAPSE,
    title: str | None = None,
    transforms: bool = False,
) -> bytes:
    import graphviz

    try:
        return _digraph(drawable(g, transforms, collapse_over), title).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise FlowprovError(
            "Graphviz's `dot` program is not installed: install it (Debian/Ubuntu: apt-get install "
            "graphviz; macOS: brew install graphviz; conda: conda install graphviz), or use "
            "--format mermaid / dot, which need no program"
        ) from None
    except graphviz.CalledProcessError as e:
        raise FlowprovError(
            f"Graphviz could not draw the graph: {e.stderr.decode(errors='replace')[-500:]}"
        ) from None


# -- Mermaid -----------------------------------------------------------------------------------


def _mm_text(s: str) -> str:
    return (
        s.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", "<br>")
    )


def to_mermaid(
    g: Graph,
    collapse_over: int | None = COLLAPSE,
    title: str | None = None,
    transforms: bool = False,
) -> str:
    g = drawable(g, transforms, collapse_over)
    lines = []
    if title:
        lines += ["---", f"title: {json.dumps(title)}", "---"]
    lines.append("flowchart TD")
    shapes = {
        "artifact": ('[/"', '"/]'),
        "run": ('("', '")'),
        "transform": ('[["', '"]]'),
        "group": ('[("', '")]'),
    }

    members: dict[str | None, list[Node]] = defaultdict(list)
    for n in g.nodes.values():
        members[n.group if n.group in g.groups else None].append(n)
    sub_boxes: dict[str | None, list[str]] = defaultdict(list)
    for gid, box in g.groups.items():
        sub_boxes[box.group if box.group in g.groups else None].append(gid)

    def emit(parent: str | None, indent: str) -> None:
        for n in members.get(parent, []):
            if n.id in g.groups:
                continue
            o, c = shapes[n.kind]
            lines.append(f"{indent}{n.id}{o}{_mm_text(_label(n))}{c}")
        for gid in sorted(sub_boxes.get(parent, [])):
            lines.append(f'{indent}subgraph box_{gid}["{_mm_text(_label(g.groups[gid]))}"]')
            if gid in g.nodes:
                n = g.nodes[gid]
                o, c = shapes[n.kind]
                lines.append(f"{indent}  {n.id}{o}{_mm_text(_label(n))}{c}")
            emit(gid, indent + "  ")
            lines.append(f"{indent}end")

    emit(None, "  ")
    for e in g.edges:
        arrow = {"used": "-.->", "run_of": "-.-"}.get(e.kind, "-->")
        lines.append(f"  {e.source} {arrow} {e.target}")
    lines += [
        "  classDef artifact fill:#dbeafe,stroke:#1d4ed8",
        "  classDef run fill:#dcfce7,stroke:#15803d",
        "  classDef failed fill:#fecaca,stroke:#b91c1c,stroke-width:3px",
        "  classDef transform fill:#ede9fe,stroke:#6d28d9",
        "  classDef collapsed fill:#e0f2fe,stroke:#0369a1",
        "  classDef start stroke-width:4px",
        "  classDef highlight fill:#ffedd5,stroke:#ea580c,stroke-width:3px",
    ]
    by_class = defaultdict(list)
    for n in g.nodes.values():
        cls = "collapsed" if n.kind == "group" else n.kind
        if n.kind == "run" and n.status in FAILED:
            cls = "failed"
        by_class[cls].append(n.id)
        if n.id in g.start:
            by_class["start"].append(n.id)
        if n.highlight:
            by_class["highlight"].append(n.id)
    for cls, ids in by_class.items():
        lines.append(f"  class {','.join(ids)} {cls}")
    return "\n".join(lines) + "\n"


# -- HTML --------------------------------------------------------------------------------------


def to_html(
    g: Graph,
    collapse_over: int | None = COLLAPSE,
    title: str | None = None,
    transforms: bool = False,
) -> str:
    """One page, no network needed: the SVG inline, every node's record as JSON, a little script
    that shows a node's record when it is clicked."""
    h = drawable(g, transforms, collapse_over)
    svg = render_graphviz(h, "svg", collapse_over=None, title=None, transforms=True).decode()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype
    records = {
        n.id: {
            "kind": n.kind,
            "uid": n.uid,
            "label": _label(n),
            "start": n.id in h.start,
            "highlight": n.highlight,
            **n.record,
        }
        for n in list(h.nodes.values()) + list(h.groups.values())
    }
    for gid in h.groups:  # the boxes are clickable too
        records[f"box_{gid}"] = records[gid]
    data = json.dumps({"title": title or "", "nodes": records}, default=str)
    data = data.replace("</", "<\\/")  # never close the script element early
    page = files("flowprov.lineage").joinpath("page.html").read_text(encoding="utf-8")
    from html import escape

    return (
        page.replace("{{TITLE}}", escape(title or "flowprov lineage"))
        .replace("{{SVG}}", svg)
        .replace("{{DATA}}", data)
    )


# -- files -------------------------------------------------------------------------------------


def format_of(path: str | Path, fmt: str | None) -> str:
    if fmt is None:
        fmt = SUFFIX_FORMAT.get(Path(path).suffix.lower())
        if fmt is None:
            raise ValidationError(
                f"cannot tell the picture format from {str(path)!r}: give --format "
                f"({', '.join(FORMATS)}) or a file ending in {', '.join(SUFFIX_FORMAT)}"
            )
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def render(
    g: Graph,
    fmt: str,
    collapse_over: int | None = COLLAPSE,
    title: str | None = None,
    transforms: bool = False,
) -> bytes:
    if fmt == "html":
        return to_html(g, collapse_over, title, transforms).encode()
    if fmt in ("svg", "png"):
        return render_graphviz(g, fmt, collapse_over, title, transforms)
    if fmt == "mermaid":
        return to_mermaid(g, collapse_over, title, transforms).encode()
    if fmt == "dot":
        return to_dot(g, collapse_over, title, transforms).encode()
    if fmt == "json":
        from dataclasses import asdict

        return json.dumps(asdict(g), indent=1, default=str).encode()
    raise ValidationError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def save(
    g: Graph,
    path,
    fmt: str | None = None,
    collapse_over: int | None = COLLAPSE,
    title: str | None = None,
    transforms: bool = False,
) -> Path:
    """Write the picture to path (format from the suffix unless given); returns the path."""
    fmt = format_of(path, fmt)
    data = render(g, fmt, collapse_over, title, transforms)
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(p)
    except OSError as e:
        raise FlowprovError(f"cannot write {p}: {e.strerror or e}") from None
    return p
