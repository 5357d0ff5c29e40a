"""Lineage: graph walks in the database, pictures, impact, staleness, verify — on real records."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import flowprov as fp
import pytest
from flowprov import schema as S
from flowprov.errors import FlowprovError, ValidationError

from tests.conftest import IN_CI, write

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAS_DOT and not IN_CI, reason="Graphviz's `dot` is not installed (apt-get install graphviz)"
)


def step(name: str, inputs, out_path, text: str, type="script", status=None):
    """One run of a transform that reads `inputs` (through cache(), as user code does) and
    writes one file."""
    t = fp.Transform(name=name, type=type).save()
    with fp.Run(transform=t) as run:
        for a in inputs:
            a.cache()
        out = fp.Artifact(write(out_path, text), run=run).save()
    if status:
        run.finish(status, error="boom")
    return run, out


@pytest.fixture
def chain(instance, fp_env):
    """raw → step0 → out0 → step1 → … → out9 (a 10-step chain), all inside the storage root."""
    root = fp_env / "mydata"
    with fp.Run(
        transform=fp.Transform(name="Upload GWS CRISPRa result", type="upload").save()
    ) as up:
        raw = fp.Artifact(
            write(root / "raw.parquet", b"\x00screen"), run=up, description="raw"
        ).save()
    arts, runs = [raw], [up]
    for i in range(10):
        r, a = step(f"step{i}", [arts[-1]], root / f"out{i}.tsv", f"out {i}\n")
        arts.append(a)
        runs.append(r)
    return arts, runs


def test_upstream_of_the_end_of_a_chain_reaches_the_raw_file(chain):
    arts, runs = chain
    g = arts[-1].lineage()
    assert g.uids("artifact") == {a.uid for a in arts}
    assert g.uids("run") == {r.uid for r in runs}
    assert g.uids("transform") == {r.transform.uid for r in runs}
    assert len([e for e in g.edges if e.kind == "used"]) == 10  # step i used out(i-1)
    assert len([e for e in g.edges if e.kind == "generated"]) == 11
    # steps counted from the start: the producing run is 1, the upload 11
    assert g.node(runs[-1].uid).depth == 1 and g.node(runs[0].uid).depth == 11
    assert g.start == [f"a{arts[-1].id}"]


def test_depth_limits_the_walk(chain):
    arts, runs = chain
    g = arts[-1].lineage(depth=3)
    assert g.uids("run") == {r.uid for r in runs[-3:]}
    assert g.uids("artifact") == {a.uid for a in arts[-4:]}
    assert arts[-1].lineage(depth=0).uids("run") == set()
    with pytest.raises(ValidationError, match="depth"):
        arts[-1].lineage(depth=-1)
    with pytest.raises(ValidationError, match="direction"):
        arts[-1].lineage(direction="sideways")


def test_downstream_and_both(chain):
    arts, runs = chain
    down = arts[0].lineage("downstream")
    assert down.uids("artifact") == {a.uid for a in arts}
    assert down.uids("run") == {r.uid for r in runs[1:]}  # the upload made it: not downstream
    mid = arts[5].lineage("both", depth=2)
    assert mid.uids("artifact") == {a.uid for a in arts[3:8]}


def test_run_and_transform_as_the_start(chain):
    arts, runs = chain
    g = runs[5].lineage()  # its inputs and their history, and its own output
    assert runs[5].uid in g.uids("run") and arts[5].uid in g.uids("artifact")
    assert arts[6].uid not in g.uids("artifact")
    t = runs[8].transform
    assert t.lineage("downstream").uids("artifact") >= {arts[8].uid, arts[10].uid}


def test_a_cycle_in_bad_data_does_not_hang(chain, instance):
    arts, runs = chain
    # corrupt: the first step also "read" the last output
    with instance.engine.begin() as c:
        c.execute(
            S.run_inputs.insert().values(
                run_id=runs[1].id, artifact_id=arts[-1].id, created_at=datetime.now(UTC)
            )
        )
    for direction, expected in (("upstream", arts), ("downstream", arts[1:]), ("both", arts)):
        g = arts[-1].lineage(direction)
        assert g.uids("artifact") == {a.uid for a in expected}
        assert arts[-1].lineage(direction, depth=25).uids("run")  # limited walks end too
    # through the loop, step9 now feeds step4; the walk ends all the same
    assert runs[10].transform in set(runs[5].transform.ancestors())
    from flowprov.lineage.stale import stale

    assert stale() == []  # nothing changed: the loop alone is not staleness
    # a new version inside the loop: the walk from it goes round the loop and still ends
    step("step4", [], Path(instance.storage.root) / "out4.tsv", "out 4, corrected\n")
    found = {s.key for s in stale()}
    assert {"out5.tsv", "out9.tsv", "out0.tsv"} <= found


def test_queries_per_lineage_do_not_grow_with_the_graph(chain, instance):
    from sqlalchemy import event

    statements = []

    def count(*a, **k):
        statements.append(1)

    event.listen(instance.engine, "before_cursor_execute", count)
    try:
        arts, _ = chain
        arts[-1].lineage()
        short = len(statements)
        statements.clear()
        arts[2].lineage()
        assert len(statements) == short <= 8  # the same handful of statements, whatever the size
    finally:
        event.remove(instance.engine, "before_cursor_execute", count)


def test_many_outputs_collapse_into_one_node(instance, fp_env):
    root = fp_env / "mydata"
    _, src = step("make input", [], root / "in.txt", "x")
    t = fp.Transform(name="scatter", type="rule").save()
    with fp.Run(transform=t) as run:
        src.cache()
        fp.save(
            [fp.Artifact(write(root / "parts" / f"p{i}.tsv", str(i)), run=run) for i in range(40)]
        )
    g = src.lineage("downstream")
    assert len(g.artifacts) == 41
    mm = g.to_mermaid()
    assert "40 outputs" in mm and "p17.tsv" not in mm
    full = g.to_mermaid(collapse_over=None)
    assert "p17.tsv" in full and "40 outputs" not in full
    # the start and highlighted artifacts are never folded away
    one = fp.Artifact.filter(key="parts/p3.tsv").one()
    g2 = one.lineage("both")
    assert "p3.tsv" in g2.to_dot()


@needs_dot
def test_pictures(chain, fp_env, instance):
    arts, runs = chain
    # one failed run reading the last output, and a current run that read two artifacts
    failed, _ = step("qc", [arts[-1]], fp_env / "mydata" / "qc.txt", "bad", status="failed")
    review = fp.Transform(name="Project flow", type="notebook").save()
    with fp.Run(transform=review) as current:
        arts[-1].cache()
        arts[-2].cache()
        g = arts[-1].lineage("both", highlight_run=current)
    ids = {n.id for n in g.nodes.values() if n.highlight}
    assert ids == {f"a{arts[-1].id}", f"a{arts[-2].id}", f"r{current.id}"}
    svg = g.to_svg()
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    node_ids = {e.get("id") for e in root.iterfind(".//s:g[@class='node']", ns)}
    assert {f"a{a.id}" for a in arts} <= node_ids and f"r{failed.id}" in node_ids
    assert "✗ FAILED" in svg and "#fecaca" in svg  # failed runs stand out
    assert "#ffedd5" in svg  # the current run's inputs are highlighted
    png = g.save(fp_env / "lineage.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dot = g.save(fp_env / "lineage.dot").read_text()
    assert dot.startswith("digraph") and f"a{arts[0].id} ->" in dot
    html = g.save(fp_env / "lineage.html").read_text()
    assert "<svg" in html and "http://" not in html.split("<svg", 1)[0]  # no network to open it
    assert "<script src" not in html and "<link" not in html
    data = json.loads(html.split('id="flowprov-data">', 1)[1].split("</script>", 1)[0])
    rec = data["nodes"][f"a{arts[0].id}"]
    assert rec["uid"] == arts[0].uid and rec["hash"] == arts[0].hash and rec["created_by"]
    assert data["nodes"][f"r{failed.id}"]["status"] == "failed"
    js = g.save(fp_env / "lineage.json").read_text()
    assert json.loads(js)["direction"] == "both"
    with pytest.raises(ValidationError, match="format"):
        g.save(fp_env / "lineage.bmp")


def test_missing_graphviz_is_a_clear_error(chain, monkeypatch):
    arts, _ = chain
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FlowprovError, match="apt-get install graphviz"):
        arts[-1].lineage().to_svg()
    assert "flowchart TD" in arts[-1].lineage().to_mermaid()  # text formats need no program


@needs_dot
def test_view_lineage_outside_jupyter_writes_a_file(chain, fp_env, monkeypatch, caplog):
    arts, _ = chain
    monkeypatch.chdir(fp_env)
    path = arts[-1].view_lineage()
    assert path == fp_env / f"lineage_{arts[-1].uid}.html" and path.exists()
    assert str(path) in caplog.text
    t = fp.Transform.filter(name="step9").one()
    p2 = t.view_parents(path=fp_env / "parents.svg")
    assert "step0" in p2.read_text()


def test_the_provenance_questions_each_in_one_call(chain, instance, fp_env, monkeypatch):
    arts, runs = chain
    me = fp.User.current()
    # which transform and which user created an artifact; which runs read it
    assert arts[3].transform == runs[3].transform and arts[3].created_by == me
    assert list(arts[3].input_of) == [runs[4]]
    # which transforms a user created, by type
    assert {t.name for t in fp.Transform.filter(created_by=me, type="upload")} == {
        "Upload GWS CRISPRa result"
    }
    # all artifacts a transform created
    assert list(fp.Artifact.filter(transform=runs[4].transform)) == [arts[4]]
    # the transforms that feed a notebook, to any depth
    nb = fp.Transform(name="Review", type="notebook").save()
    with fp.Run(transform=nb):
        arts[-1].cache()
    assert {t.name for t in nb.parents} == {"step9"}
    assert {t.name for t in nb.ancestors()} == {f"step{i}" for i in range(10)} | {
        "Upload GWS CRISPRa result"
    }
    assert {t.name for t in nb.ancestors(depth=2)} == {"step9", "step8"}
    assert {t.name for t in runs[0].transform.descendants()} >= {"Review", "step0"}
    g = nb.parents_graph()
    assert len(g.transforms) == 12 and len(g.edges) == 11


def _make_stale_world(fp_env):
    root = fp_env / "mydata"
    _, counts = step("count", [], root / "counts.tsv", "v1")
    _, hits = step("hits", [], root / "hits.tsv", "h1")
    _, fig = step("plot", [counts, hits], root / "fig.png", "figure")
    _, review = step("review", [fig], root / "review.txt", "ok")
    return counts, hits, fig, review


def test_stale_newer_input_version(instance, fp_env):
    from flowprov.lineage.stale import stale

    counts, hits, fig, review = _make_stale_world(fp_env)
    assert stale() == []
    step("count", [], fp_env / "mydata" / "counts.tsv", "v2")  # counts.tsv has a new version
    found = {s.uid: s for s in stale()}
    assert set(found) == {fig.uid, review.uid}
    r = found[review.uid].reasons[0]
    assert r.kind == "newer input version" and r.cause == counts.uid
    assert r.path[0] == counts.uid and r.path[-1] == review.uid and fig.uid in r.path
    assert r.labels[0] == "counts.tsv" and r.labels[1] == "run of plot"


def test_stale_file_changed_and_newer_code(instance, fp_env, run_flowprov):
    from flowprov.lineage.stale import stale

    counts, hits, fig, review = _make_stale_world(fp_env)
    (fp_env / "mydata" / "hits.tsv").write_text("edited by hand")
    found = {s.uid: s for s in stale()}
    assert set(found) == {hits.uid, fig.uid, review.uid}
    assert found[hits.uid].reasons[0].kind == "file changed"
    assert stale(check_files=False) == []
    # a new version of the plotting code makes its output (and what follows) stale
    (fp_env / "mydata" / "hits.tsv").write_text("h1")
    fp.Transform(name="plot", type="script", source_code="new code").save()
    found = {s.uid: s for s in stale()}
    assert set(found) == {fig.uid, review.uid}
    assert found[fig.uid].reasons[0].kind == "newer code version"
    proc = run_flowprov("stale", check=False)
    assert (
        proc.returncode == 1 and "newer code version" in proc.stdout and "review.txt" in proc.stdout
    )


def test_verify(instance, fp_env, run_flowprov):
    from flowprov.verify import verify

    root = fp_env / "mydata"
    big = write(root / "big.bin", os.urandom(3 << 20))  # above the hash cache's threshold
    with fp.Run(transform=fp.Transform(name="w", type="script").save()) as run:
        a_big = fp.Artifact(big, run=run).save()
        a_small = fp.Artifact(write(root / "small.txt", "abc"), run=run).save()
        a_gone = fp.Artifact(write(root / "gone.txt", "bye"), run=run).save()
        copied = fp.Artifact(write(fp_env / "outside.csv", "a,b\n"), run=run).save()  # managed copy
        folder = write(root / "matrix" / "a.tsv", "1").parent
        write(folder / "b.tsv", "2")
        a_dir = fp.Artifact(folder, run=run).save()
    assert {c.status for c in verify()} == {"ok"}
    # same size, one byte changed: the cache must not hide it
    data = bytearray(big.read_bytes())
    data[len(data) // 2] ^= 1
    st = os.stat(big)
    big.write_bytes(bytes(data))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime
    (root / "gone.txt").unlink()
    write(folder / "b.tsv", "3")
    checks = {c.uid: c for c in verify()}
    assert checks[a_big.uid].status == "modified" and checks[a_gone.uid].status == "missing"
    assert checks[a_dir.uid].status == "modified"
    assert checks[a_small.uid].ok and checks[copied.uid].ok
    assert [c.uid for c in verify([a_small.uid])] == [a_small.uid]
    assert len(verify(sample=2, seed=1)) == 2 and len(verify(sample="40%")) == 2
    with pytest.raises(ValidationError, match="--sample"):
        verify(sample="lots")
    proc = run_flowprov("verify", check=False)
    assert proc.returncode == 1
    assert "modified" in proc.stdout and "missing" in proc.stdout and "gone.txt" in proc.stdout
    assert "5 checked: 2 fine, 2 modified, 1 missing" in proc.stdout.replace("\n", " ")
    ok = run_flowprov("verify", a_small.uid, copied.uid, check=False)
    assert ok.returncode == 0 and "2 checked: 2 fine" in ok.stdout
    assert run_flowprov("verify", "--sample", "0", check=False).returncode != 0


@needs_dot
def test_cli_lineage_impact_parents(chain, fp_env, run_flowprov):
    arts, runs = chain
    out = run_flowprov("lineage", arts[-1].uid, "-o", str(fp_env / "l.svg"))
    assert "11 artifacts, 11 runs" in out.stdout and (fp_env / "l.svg").read_text().startswith(
        "<?xml"
    )
    mm = run_flowprov("lineage", arts[5].uid, "--downstream", "--depth", "1", "--format", "mermaid")
    assert mm.stdout.startswith("---") and "flowchart TD" in mm.stdout and "out5.tsv" in mm.stdout
    assert "out6.tsv" not in mm.stdout
    run_flowprov("lineage", runs[3].transform.uid, "--both", "-o", str(fp_env / "t.html"))
    assert "flowprov-data" in (fp_env / "t.html").read_text()
    imp = run_flowprov("impact", arts[0].uid)
    assert "10 runs, 10 artifacts, 10 transforms" in imp.stdout and "out9.tsv" in imp.stdout
    par = run_flowprov("parents", runs[-1].transform.uid)
    assert par.stdout.count("└─") == 10 and "Upload GWS CRISPRa result" in par.stdout
    bad = run_flowprov("lineage", "nosuchuid", check=False)
    assert bad.returncode == 1 and "no record has uid" in bad.stderr
    user = run_flowprov("lineage", fp.User.current().uid, check=False)
    assert user.returncode == 1 and "lineage is of artifacts, runs and transforms" in user.stderr


def test_cli_export(chain, fp_env, run_flowprov):
    from prov.model import ProvDocument
    from rocrate.rocrate import ROCrate

    arts, runs = chain
    run_flowprov("export", arts[-1].uid, "--format", "prov-json", "-o", str(fp_env / "l.json"))
    doc = ProvDocument.deserialize(str(fp_env / "l.json"), format="json")
    assert len(list(doc.get_records())) > 30
    out = run_flowprov(
        "export",
        arts[3].uid,
        "--format",
        "ro-crate",
        "--downstream",
        "--license",
        "CC-BY-4.0",
        "-o",
        str(fp_env / "crate.zip"),
    )
    assert "crate.zip" in out.stdout
    crate = ROCrate(str(fp_env / "crate.zip"))
    assert crate.root_dataset["license"] in ("CC-BY-4.0", crate.get("CC-BY-4.0"))
    actions = [
        e for e in crate.get_entities() if e.type == "CreateAction" and e.id.startswith("#run-")
    ]
    assert len(actions) == 7  # step3 … step9
    bad = run_flowprov(
        "export", arts[3].uid, "--format", "prov-n", "--with-data", "-o", "x", check=False
    )
    assert bad.returncode == 1 and "with_data" in bad.stderr


@needs_dot
def test_view_lineage_in_jupyter_is_inline_with_the_current_runs_input_highlighted(chain, fp_env):
    from tests.test_context import _execute, _notebook

    arts, _ = chain
    nb_path = _notebook(
        fp_env / "project-flow.ipynb",
        "Project flow",
        [
            "import flowprov as fp\nfp.track()",
            f"a = fp.Artifact.get('{arts[-1].uid}')\na.cache()\na.view_lineage()",
            "fp.Transform.get(a.transform.uid).view_parents()",
            "fp.finish()",
        ],
    )
    nb = _execute(nb_path)
    outs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outs if o.get("output_type") == "error"]
    svgs = [o["data"]["image/svg+xml"] for o in outs if "image/svg+xml" in o.get("data", {})]
    assert len(svgs) == 2
    lineage_svg, parents_svg = svgs
    assert "Project flow" in lineage_svg and "#ffedd5" in lineage_svg  # the notebook's run, below
    assert "out9.tsv" in lineage_svg and "step0" in parents_svg
    assert not list(fp_env.glob("lineage_*.html"))  # inline, no file


def test_cli_answers_the_provenance_questions(chain, run_flowprov):
    arts, runs = chain
    me = fp.User.current().handle
    show = run_flowprov("show", arts[3].uid).stdout  # creator transform, user, and readers
    assert "step2" in show and me in show and runs[4].uid in show
    readers = run_flowprov("ls", "runs", "--filter", f"inputs={arts[3].uid}").stdout
    assert runs[4].uid in readers and runs[5].uid not in readers
    by_user = run_flowprov(
        "ls", "transforms", "--filter", f"created_by={me}", "--filter", "type=upload"
    ).stdout
    assert "Upload GWS CRISPRa result" in by_user and "step1" not in by_user
    made = run_flowprov("ls", "artifacts", "--filter", f"transform={runs[4].transform.uid}").stdout
    assert arts[4].uid in made and arts[5].uid not in made
    feeds = run_flowprov("parents", runs[3].transform.uid).stdout
    assert "step1" in feeds and "Upload GWS CRISPRa result" in feeds and "step4" not in feeds
