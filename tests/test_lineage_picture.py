"""What a lineage picture shows: each run once (an enclosing run on top of its box, never also as
the box's label), times only where they tell runs apart, a legend of what is in it, the name a
keyless file had — on real records, in SVG, Mermaid and the HTML page's data."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import flowprov as fp
import pytest
from flowprov import schema as S
from flowprov.lineage import Graph, Node

from tests.conftest import IN_CI, write

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not IN_CI, reason="Graphviz's `dot` is not installed"
)
SVG = "{http://www.w3.org/2000/svg}"
STAMP = re.compile(r"\b\d{2}:\d{2}(?::\d{2})?\b")


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def node_texts(svg: str) -> dict[str, list[str]]:
    """Each node's id → its lines of text."""
    return {
        g.get("id"): [t.text or "" for t in g.iter(f"{SVG}text")]
        for g in ET.fromstring(svg).iter(f"{SVG}g")
        if g.get("class") == "node"
    }


def started(instance, run, when: datetime) -> None:
    """Give a run a start time of the test's choosing (the store stamps the clock's)."""
    with instance.engine.begin() as c:
        c.execute(S.runs.update().where(S.runs.c.id == run.id).values(started_at=when))


def step(name: str, inputs, out_path, text: str, parent=None):
    t = fp.Transform(name=name, type="script").save()
    run = fp.Run(transform=t, parent=parent).save()
    with run:
        for a in inputs:
            a.cache()
        out = fp.Artifact(write(out_path, text), run=run).save()
    return run, out


@pytest.fixture
def counted(instance, fp_env):
    """raw → count (×3: twice in one minute, once on another day) → counts; counts → plot."""
    root = fp_env / "mydata"
    raw = fp.Artifact(write(root / "raw.txt", "reads\n"), description="raw reads").save()
    runs, outs = [], []
    for i in range(3):
        r, a = step("count", [raw], root / f"counts{i}.tsv", f"counts {i}\n")
        runs.append(r)
        outs.append(a)
    plot, figure = step("plot", outs, root / "figure.png", "PNG")
    started(instance, runs[0], datetime(2026, 3, 2, 10, 15, 7, tzinfo=UTC))
    started(instance, runs[1], datetime(2026, 3, 2, 10, 15, 41, tzinfo=UTC))
    started(instance, runs[2], datetime(2026, 3, 5, 9, 0, 0, tzinfo=UTC))
    started(instance, plot, datetime(2026, 3, 5, 9, 30, 0, tzinfo=UTC))
    return runs, plot, figure


@needs_dot
def test_times_only_where_they_tell_runs_apart(counted):
    runs, plot, figure = counted
    g = figure.lineage()
    shown = node_texts(g.to_svg())
    # three runs of "count" by one user: each with the shortest time that tells it apart
    me = fp.User.current().handle
    count_lines = sorted(line for r in runs for line in shown[f"r{r.id}"] if "script ·" in line)
    assert count_lines == [
        f"script · {me} · 2026-03-02 10:15:07",  # the same minute: seconds tell them apart
        f"script · {me} · 2026-03-02 10:15:41",
        f"script · {me} · 2026-03-05 09:00:00",
    ]
    # the only run of "plot": no time at all
    assert not any(STAMP.search(line) for line in shown[f"r{plot.id}"]), shown[f"r{plot.id}"]
    # no time repeated anywhere in the picture
    stamps = [m for t in texts(g.to_svg()) for m in STAMP.findall(t)]
    assert len(stamps) == len(set(stamps)) == 3
    # the same words in Mermaid
    mm = g.to_mermaid()
    assert "10:15:07" in mm and "10:15:41" in mm and "09:30" not in mm


def test_times_of_one_day_need_no_date(instance, fp_env):
    root = fp_env / "mydata"
    raw = fp.Artifact(write(root / "raw.txt", "reads\n")).save()
    a, b = (step("count", [raw], root / f"c{i}.tsv", f"{i}\n") for i in range(2))
    started(instance, a[0], datetime(2026, 3, 2, 10, 15, 7, tzinfo=UTC))
    started(instance, b[0], datetime(2026, 3, 2, 11, 2, 0, tzinfo=UTC))
    mm = raw.lineage("downstream").to_mermaid()
    assert "· 10:15" in mm and "· 11:02" in mm and "2026-03-02" not in mm


@needs_dot
def test_an_enclosing_run_is_drawn_once_on_top_of_its_box(instance, fp_env):
    root = fp_env / "mydata"
    raw = fp.Artifact(write(root / "raw.txt", "reads\n"), description="raw reads").save()
    flow_t = fp.Transform(name="integrate", type="flow").save()
    flow = fp.Run(transform=flow_t).save()
    with flow:  # the flow body reads the raw file itself, and hands it to its tasks
        raw.cache()
    _, mid = step("embed", [raw], root / "cells.tsv", "cells\n", parent=flow)
    _, figure = step("figure", [mid], root / "figure.png", "PNG", parent=flow)
    flow.finish()
    g = raw.lineage("downstream")
    assert f"r{flow.id}" in g.nodes and f"r{flow.id}" in g.groups  # a node and a box
    svg = g.to_svg()
    root_el = ET.fromstring(svg)
    flow_texts = [t for t in texts(svg) if t.startswith("integrate")]
    assert flow_texts == ["integrate"], flow_texts  # once
    boxes = [e for e in root_el.iter(f"{SVG}g") if e.get("class") == "cluster"]
    assert len(boxes) == 1
    box = boxes[0]
    assert not [t for t in box if t.tag == f"{SVG}text"]  # no label for edges to run through
    # the flow's node is inside its box, above its tasks; the file between two tasks is inside too
    nodes = {e.get("id"): e for e in root_el.iter(f"{SVG}g") if e.get("class") == "node"}

    def top(node_id):
        return min(float(t.get("y")) for t in nodes[node_id].iter(f"{SVG}text"))

    def within(node_id) -> bool:
        xs = [float(v) for v in re.findall(r"(-?[\d.]+),", box.find(f".//{SVG}path").get("d"))]
        ys = [float(v) for v in re.findall(r",(-?[\d.]+)", box.find(f".//{SVG}path").get("d"))]
        t = next(nodes[node_id].iter(f"{SVG}text"))
        return min(xs) < float(t.get("x")) < max(xs) and min(ys) < float(t.get("y")) < max(ys)

    tasks = [i for i in nodes if i.startswith("r") and i != f"r{flow.id}"]
    assert len(tasks) == 2 and all(within(i) for i in tasks + [f"r{flow.id}", f"a{mid.id}"])
    assert all(top(f"r{flow.id}") < top(i) for i in tasks)  # y grows downwards in SVG
    assert not within(f"a{figure.id}") and not within(f"a{raw.id}")
    # the raw file's arrow into the flow ends at the flow's node
    edges = [e.findtext(f"{SVG}title") for e in root_el.iter(f"{SVG}g") if e.get("class") == "edge"]
    assert f"a{raw.id}->r{flow.id}" in edges
    # Mermaid: the flow once too, as the node in its (untitled) box
    mm = g.to_mermaid()
    assert mm.count("integrate") == 1 and f'subgraph box_r{flow.id}[" "]' in mm


@needs_dot
def test_the_svg_has_a_legend_of_what_it_shows(instance, fp_env):
    root = fp_env / "mydata"
    raw = fp.Artifact(write(root / "raw.txt", "reads\n")).save()
    _, out = step("count", [raw], root / "c.tsv", "1\n")

    def legend(svg: str) -> list[str]:
        def outside(el):
            if el.get("class") in ("node", "edge", "cluster"):
                return []
            own = [el.text or ""] if el.tag == f"{SVG}text" else []
            return own + [t for child in el for t in outside(child)]

        return outside(ET.fromstring(svg))

    shown = legend(out.lineage().to_svg(title="upstream of c.tsv"))
    assert shown[0] == "upstream of c.tsv"  # the title, then the legend
    assert {"artifact (file)", "run", "start (bold)"} <= set(shown)
    assert "✗ failed run" not in shown and "enclosing run: a box, its run on top" not in shown
    # any title: control characters (not allowed in Graphviz's HTML labels) become spaces
    assert legend(out.lineage().to_svg(title="a\x01<b>&"))[0] == "a <b>&"
    t = fp.Transform(name="qc", type="script").save()
    with pytest.raises(RuntimeError), fp.Run(transform=t):
        out.cache()
        raise RuntimeError("qc exploded")
    assert "✗ failed run" in legend(out.lineage("downstream").to_svg())


@needs_dot
def test_a_keyless_file_is_shown_by_the_name_it_had():
    """Render side of a file copied in without a key: its record's file_name is its label (under
    its description); without one, its description, then its uid."""
    record = {"uid": "u1", "key": None, "description": "hits", "file_name": "hits.parquet"}
    g = Graph(
        nodes={
            "a1": Node("a1", "artifact", "u1", "hits", record),
            "a2": Node("a2", "artifact", "u2", "u2", {"uid": "u2", "key": None}),
            "a3": Node("a3", "artifact", "u3", "x.csv", {"uid": "u3", "file_name": "x.csv"}),
        },
        start=["a1"],
    )
    shown = node_texts(g.to_svg())
    assert shown["a1"] == ["hits", "hits.parquet"]
    assert shown["a2"] == ["u2"] and shown["a3"] == ["x.csv"]


@needs_dot
def test_the_page_keeps_its_flags_out_of_the_records(counted):
    _, plot, figure = counted
    html = figure.lineage(highlight_run=plot).to_html()
    data = json.loads(
        re.search(r'id="flowprov-data">(.*?)</script>', html, re.S)[1].replace("<\\/", "</")
    )
    assert data["start"] == [f"a{figure.id}"]
    assert all("start" not in r and "highlight" not in r for r in data["nodes"].values())
    assert 'id="legend"' in html and "current run and its inputs" in html
