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
from collections.abc import Callable
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
SAME = dict(style="dashed", color="#0369a1", arrowhead="none")  # a copy of the same bytes
BOX = "#64748b"  # an enclosing run's box
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


def _label(n: Node, text: str | None = None) -> str:
    text = n.label if text is None else text
    if n.kind in ("run", "group") and n.status in FAILED:
        return f"✗ {n.status.upper()}\n{text}"
    return text


def _without_time(n: Node) -> str:
    """A run's label without the start time the graph puts at its end."""
    started = str(n.record.get("started_at") or "")
    tail = f" · {started[:16]}" if started else " · "
    return n.label[: -len(tail)] if n.label.endswith(tail) else n.label


def _artifact_text(n: Node) -> str:
    """A file copied in without a key is shown by the name it had (under its description)."""
    rec = n.record
    name = rec.get("file_name")
    if rec.get("key") or not name:
        return n.label
    return f"{rec['description']}\n{name}" if rec.get("description") else name


def _distinct_times(same: list[Node]) -> list[str]:
    """The shortest start times that tell apart runs which look alike otherwise."""
    stamps = [str(n.record.get("started_at") or "") for n in same]
    one_day = len({s[:10] for s in stamps}) == 1
    for cut in ((11 if one_day else 0, 16), (11 if one_day else 0, 19)):
        shown = [s[cut[0] : cut[1]] for s in stamps]
        if all(shown) and len(set(shown)) == len(shown):
            return shown
    return [f"{s[:19]} · {n.uid[:8]}".lstrip(" ·") for s, n in zip(stamps, same, strict=True)]


def labels(g: Graph) -> dict[str, str]:
    """The text of every node and box: a run shows its start time only where it tells apart runs
    that would look the same without it (same code, type and user)."""
    out = {n.id: _artifact_text(n) if n.kind == "artifact" else n.label for n in g.nodes.values()}
    runs = {n.id: n for n in g.nodes.values() if n.kind == "run"} | dict(g.groups)
    alike: dict[str, list[Node]] = defaultdict(list)
    for n in runs.values():
        alike[_without_time(n)].append(n)
    for text, same in alike.items():
        if len(same) == 1 or text == same[0].label:  # no time on them (transforms): as they are
            for n in same:
                out[n.id] = text
            continue
        same.sort(key=lambda n: (str(n.record.get("started_at") or ""), n.uid))
        for n, time in zip(same, _distinct_times(same), strict=True):
            out[n.id] = f"{text} · {time}"
    return out


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


def legend_entries(g: Graph) -> list[tuple[str, dict]]:
    """What the shapes, colours and lines of this picture mean: (text, style) for each that
    occurs in it (style: Graphviz node attributes; "line" for an edge's colour and dashes)."""
    kinds = {n.kind for n in g.nodes.values()} | {_as_member(b).kind for b in g.groups.values()}
    runs = [n for n in g.nodes.values() if n.kind == "run"] + list(g.groups.values())
    out = []
    if "artifact" in kinds:
        out.append(("artifact (file)", STYLE["artifact"]))
    if "run" in kinds:
        out.append(("run", STYLE["run"]))
    if any(n.status in FAILED for n in runs):
        out.append(("✗ failed run", STYLE["failed"]))
    if any(n.status in ("running", "started", "pending") for n in runs):
        out.append(("unfinished run", STYLE["running"]))
    if "transform" in kinds:
        out.append(("transform", STYLE["transform"]))
    if "group" in kinds:
        out.append(("collapsed files", STYLE["collapsed"]))
    if g.groups:
        out.append(("enclosing run: a box, its run on top", {"style": "dashed", "color": BOX}))
    if any(n.highlight for n in g.nodes.values()):
        out.append(("current run and its inputs", HIGHLIGHT))
    if g.start:
        out.append(("start (bold)", {"color": "#0f172a", "penwidth": "3"}))
    if any(e.kind == "same_content" for e in g.edges):
        out.append(("- - same content (a copy)", {"line": SAME["color"]}))
    out.append(("arrows: data flows down", {"line": "#475569"}))
    return out


def _legend(g: Graph, title: str | None) -> str:
    """The graph's label: the title, then the legend. A graph label, not a node: edges are never
    routed through it and the layout is unchanged."""
    from html import escape

    def cell(text: str, style: dict) -> str:
        if "line" in style:
            return f'<TD><FONT COLOR="{style["line"]}">{escape(text)}</FONT></TD>'
        look = "rounded" if "rounded" in style.get("style", "") else style.get("style", "")
        look = f' STYLE="{look}"' if look in ("rounded", "dashed") else ""
        fill = f' BGCOLOR="{style["fillcolor"]}"' if "fillcolor" in style else ""
        width = 3 if style.get("penwidth") == "3" else 1
        return f'<TD BORDER="{width}" COLOR="{style["color"]}"{fill}{look}>{escape(text)}</TD>'

    entries = [cell(text, style) for text, style in legend_entries(g)]
    rows = []
    if title:  # control characters are not allowed in Graphviz's HTML labels
        title = "".join(c if c.isprintable() else " " for c in title)
        rows.append(
            f'<TR><TD ALIGN="LEFT" COLSPAN="{len(entries)}"><FONT POINT-SIZE="13">'
            f"{escape(title)}</FONT></TD></TR>"
        )
    rows.append(f"<TR>{''.join(entries)}</TR>")
    return (
        '<<FONT POINT-SIZE="9"><TABLE BORDER="0" CELLSPACING="4" CELLPADDING="3">'
        + "".join(rows)
        + "</TABLE></FONT>>"
    )


def _legend_html(g: Graph) -> str:
    """The same legend for the HTML page, as spans."""
    from html import escape

    spans = []
    for text, style in legend_entries(g):
        if "line" in style:
            css = f"border-color: transparent; color: {style['line']}"
        else:
            css = f"background: {style.get('fillcolor', 'transparent')}; "
            css += f"border-color: {style['color']}; border-width: "
            css += "3px" if style.get("penwidth") == "3" else "1.5px"
            css += "; border-radius: 9px" if "rounded" in style.get("style", "") else ""
            css += "; border-style: dashed" if style.get("style") == "dashed" else ""
        spans.append(f'<span style="{css}">{escape(text)}</span>')
    return "".join(spans)


def _digraph(g: Graph, title: str | None = None, legend: bool = True):
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
            newrank="true",  # rank across boxes: a file between two runs of a box sits between
        ),
    )
    dot.attr("node", fontname="Helvetica", fontsize="10", margin="0.12,0.06")
    dot.attr("edge", color="#475569", arrowsize="0.7")
    if legend:
        dot.attr(label=_legend(g, title), labelloc="t", labeljust="l")
    elif title:
        dot.attr(label=esc(title), labelloc="t", fontsize="13")
    texts = labels(g)

    def node_attrs(n: Node) -> dict:
        a = _style(n)
        if n.id in g.start:
            a["penwidth"] = "3"
            a["fontname"] = "Helvetica-Bold"
        a["id"] = n.id
        a["tooltip"] = n.uid
        return a

    def text(n: Node) -> str:
        return "\\n".join(esc(part) for part in _label(n, texts[n.id]).split("\n"))

    # clusters: a node sits in the box of its enclosing run; boxes nest like the runs do. A box
    # has no label of its own (Graphviz routes edges through cluster labels): its run is drawn
    # once, as the node on top of the box, and the box's members hang below it
    members: dict[str | None, list[Node]] = defaultdict(list)
    for n_id, box in _placement(g).items():
        members[box].append(g.nodes[n_id])
    sub_boxes: dict[str | None, list[str]] = defaultdict(list)
    for gid, box in g.groups.items():
        sub_boxes[box.group if box.group in g.groups else None].append(gid)

    def fill(target, parent: str | None) -> None:
        for n in members.get(parent, []):
            if n.id in g.groups:
                continue  # a box's own run: drawn on top of its box below
            target.node(n.id, text(n), **node_attrs(n))
        for gid in sorted(sub_boxes.get(parent, [])):
            box = g.groups[gid]
            head = g.nodes.get(gid, box)
            with target.subgraph(name=f"cluster_{gid}") as c:
                c.attr(
                    label="",
                    style="rounded,dashed",
                    color=BOX,
                    id=f"box_{gid}",
                    tooltip=" ",  # the run on top of the box names it
                )
                attrs = node_attrs(head)
                if head is box:  # not otherwise in the graph: drawn like a run of its kind
                    attrs.update({k: v for k, v in _style(_as_member(box)).items()}, id=gid)
                c.node(gid, text(head), **attrs)
                fill(c, gid)
            # the box's run above everything in it (invisible edges only rank, never draw)
            inside = [n.id for n in members.get(gid, []) if n.id != gid] + sub_boxes.get(gid, [])
            for m in inside:
                dot.edge(gid, m, style="invis")

    fill(dot, None)
    for e in g.edges:
        attrs = {"color": "#64748b"} if e.kind == "used" else {}
        if e.kind == "run_of":
            attrs = {"style": "dashed", "color": "#6d28d9", "arrowhead": "none"}
        elif e.kind == "same_content":
            attrs = dict(SAME)
        if (
            g.nodes.get(e.source)
            and g.nodes[e.source].highlight
            and g.nodes.get(e.target)
            and g.nodes[e.target].highlight
        ):
            attrs.update(color=HIGHLIGHT["color"], penwidth="2")
        dot.edge(e.source, e.target, **attrs)
    return dot


def _boxes(g: Graph, node_id: str) -> list[str]:
    """The boxes a run is in, innermost first (a box's own run is in its box)."""
    out, at = [], node_id if node_id in g.groups else g.nodes[node_id].group
    while at in g.groups and at not in out:
        out.append(at)
        at = g.groups[at].group
    return out


def _placement(g: Graph) -> dict[str, str | None]:
    """The box each node is drawn in: a run in its enclosing run's; a file that runs of one box
    made and only runs of that box read (a flow's intermediate file) in that box; else none."""
    near: dict[str, list[str]] = defaultdict(list)  # artifact → the runs that made or read it
    made, read, copies = set(), set(), set()
    for e in g.edges:
        if e.kind == "generated":
            near[e.target].append(e.source)
            made.add(e.target)
        elif e.kind == "used":
            near[e.source].append(e.target)
            read.add(e.source)
        elif e.kind == "same_content":
            copies |= {e.source, e.target}
    between, apart = made & read, copies | set(g.start)
    out: dict[str, str | None] = {}
    for n in g.nodes.values():
        out[n.id] = n.group if n.group in g.groups else None
        if n.kind != "artifact" or n.id not in between or n.id in apart:
            continue  # a final result stays outside, where it is seen
        chains = [_boxes(g, r) for r in near[n.id]]
        # the innermost box every one of them is in
        out[n.id] = next((b for b in chains[0] if all(b in c for c in chains[1:])), None)
    return out


def _as_member(box: Node) -> Node:
    """An enclosing run (or pipeline transform) that is no node of the graph, styled as one."""
    kind = "run" if box.id.startswith("r") else "transform"
    return Node(box.id, kind, box.uid, box.label, box.record, status=box.status)


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
    legend: bool = True,
) -> bytes:
    import graphviz

    try:
        return _digraph(drawable(g, transforms, collapse_over), title, legend).pipe(format=fmt)
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

    texts = labels(g)
    members: dict[str | None, list[Node]] = defaultdict(list)
    for n_id, box in _placement(g).items():
        members[box].append(g.nodes[n_id])
    sub_boxes: dict[str | None, list[str]] = defaultdict(list)
    for gid, box in g.groups.items():
        sub_boxes[box.group if box.group in g.groups else None].append(gid)

    def emit(parent: str | None, indent: str) -> None:
        for n in members.get(parent, []):
            if n.id in g.groups:
                continue
            o, c = shapes[n.kind]
            lines.append(f"{indent}{n.id}{o}{_mm_text(_label(n, texts[n.id]))}{c}")
        for gid in sorted(sub_boxes.get(parent, [])):
            box = g.groups[gid]
            if gid in g.nodes:  # the run is a node in its box (it has edges): drawn once, there
                n = g.nodes[gid]
                o, c = shapes[n.kind]
                lines.append(f'{indent}subgraph box_{gid}[" "]')
                lines.append(f"{indent}  {n.id}{o}{_mm_text(_label(n, texts[n.id]))}{c}")
            else:
                lines.append(f'{indent}subgraph box_{gid}["{_mm_text(_label(box, texts[gid]))}"]')
            emit(gid, indent + "  ")
            lines.append(f"{indent}end")

    emit(None, "  ")
    for e in g.edges:
        arrow = {"used": "-.->", "run_of": "-.-", "same_content": "-. same content .-"}.get(
            e.kind, "-->"
        )
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
    page_url: Callable[[str, str], str | None] | None = None,
    controls: str = "",
    head: str = "",
) -> str:
    """One page, no network needed: the SVG inline, every node's record as JSON, a little script
    that shows a node's record when it is clicked.

    For `flowprov serve`: page_url(kind, uid) gives the URL of a record's own page ("artifact",
    "run" or "transform"; None: none), which the record panel links as "open its page";
    `controls` (markup for the header) and `head` (markup for <head>) are trusted markup the
    caller has escaped. Without them the page is the one `flowprov lineage` writes."""
    h = drawable(g, transforms, collapse_over)
    # the page has its legend above the picture
    svg = render_graphviz(h, "svg", None, None, transforms=True, legend=False).decode()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype
    texts = labels(h)

    def record(n: Node, kind: str) -> dict:
        return {"kind": kind, "uid": n.uid, "label": _label(n, texts[n.id]), **n.record}

    records = {
        gid: record(box, f"enclosing {_as_member(box).kind}") for gid, box in h.groups.items()
    }
    for n in h.nodes.values():  # a box's run that is a node of the graph too: the run it is
        records[n.id] = record(n, "collapsed files" if n.kind == "group" else n.kind)
    for gid in h.groups:  # the boxes are clickable too
        records[f"box_{gid}"] = records[gid]
    # what the page's script needs besides the records (not shown as fields of a record); the
    # runs' environments once each, which run records name by uid
    payload = {
        "title": title or "",
        "nodes": records,
        "start": h.start,
        "environments": {uid: _page_environment(e) for uid, e in h.environments.items()},
    }
    if page_url is not None:
        payload["pages"] = pages_of(records, page_url)
    data = script_safe(json.dumps(payload, default=str))
    page = files("flowprov.lineage").joinpath("page.html").read_text(encoding="utf-8")
    from html import escape

    return (
        # the caller's markup first: no text of the store put in below is taken for a placeholder
        page.replace("{{HEAD}}", head)
        .replace("{{CONTROLS}}", controls)
        .replace("{{TITLE}}", escape(title or "flowprov lineage"))
        .replace("{{LEGEND}}", _legend_html(h))
        .replace("{{SVG}}", svg)
        .replace("{{DATA}}", data)
    )


def pages_of(records: dict[str, dict], page_url: Callable[[str, str], str | None]) -> dict:
    """{node id: URL of its record's page} for the page's records (collapsed files have none)."""
    out = {}
    for node_id, rec in records.items():
        kind = rec["kind"].removeprefix("enclosing ")
        url = page_url(kind, rec["uid"]) if kind in ("artifact", "run", "transform") else None
        if url:
            out[node_id] = url
    return out


def script_safe(text: str) -> str:
    """JSON text that stays inert inside a <script> element: no `</script>` closes it early, no
    `<!--` switches the parser into an escaped state that would swallow the rest of the page.
    <, > and & occur in JSON only inside strings, where \\u escapes mean the same characters."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _page_environment(e) -> dict:
    """An environment for the page: its fields, packages as [name, version, build, source,
    channel] rows (a few hundred of them; names once per environment, not per run)."""
    return {
        "uid": e.uid,
        "interpreter": e.interpreter,
        "os": e.os,
        "container_image": e.container_image,
        "container_digest": e.container_digest,
        "container_engine": e.container_engine,
        "deployed": e.deployed,
        "complete": e.complete,
        "n_packages": e.n_packages,
        "details": e.details,
        "spec_file": e.spec_file,
        "packages": [list(p) for p in e.packages],
    }


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
