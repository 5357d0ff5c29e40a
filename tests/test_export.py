"""Exports of a lineage (W3C PROV-JSON, PROV-N, RO-Crate), each read back with the library that
wrote it and compared with the lineage graph flowprov records."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import flowprov as fp
import pytest
from flowprov.artifacts import in_place_event
from flowprov.errors import ValidationError
from flowprov.events import RunRef
from flowprov.exports import export
from flowprov.exports.rocrate import PROFILES, write_crate
from prov.model import (
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvStart,
    ProvUsage,
)
from rocrate.rocrate import ROCrate

from tests.conftest import write

FAILED = "http://schema.org/FailedActionStatus"
COMPLETED = "http://schema.org/CompletedActionStatus"


@dataclass
class Story:
    raw: object  # uploaded, in place, with other systems' checksums
    hits: object
    matrix: object  # a folder
    fig: object
    upload: object  # runs
    wf: object  # the enclosing (engine) run of `score`
    score: object
    plot: object  # by another user
    crash: object  # failed


@pytest.fixture
def story(instance, fp_env, monkeypatch) -> Story:
    """upload → raw → score.py (inside a pipeline run) → hits + matrix folder → plot.py (bob) →
    figure; crash.py read hits too and failed."""
    monkeypatch.setenv("FLOWPROV_USER", "alice")
    with fp.Run(transform=fp.Transform(name="Upload screen", type="upload")) as upload:
        src = write(Path(instance.storage.root) / "screens" / "screen.csv", "gene,score\nA,1\n")
        data = src.read_bytes()
        event = in_place_event(
            str(src), roots=instance.storages().values(), run=RunRef(uid=upload.uid)
        )
        checksums = {
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": hashlib.sha256(data).hexdigest(),
            "nextflow": {"mode": "standard", "value": "abc"},
        }
        event = event.model_copy(update={"checksums": checksums, "description": "raw screen"})
        raw = fp.Artifact.get(instance.store.apply([event])[0].uid)
    pipeline = fp.Transform(name="screen pipeline", type="pipeline")
    wf = fp.Run(transform=pipeline, engine="snakemake", reference="wf-1").save()
    score_t = fp.Transform(name="score.py", key="scripts/score.py", type="script", version="1.0")
    with fp.Run(
        transform=score_t, params={"threshold": 0.5}, parent=wf, engine="snakemake", reference="j1"
    ) as score:
        raw.cache()
        work = fp_env / "work"
        hits = fp.Artifact(write(work / "hits.tsv", "gene\tscore\nA\t1\n"), key="results/hits.tsv")
        hits.save()
        write(work / "matrix" / "barcodes.tsv.gz", os.urandom(64))
        write(work / "matrix" / "sub" / "matrix.mtx", os.urandom(80))
        matrix = fp.Artifact(work / "matrix", key="results/matrix", description="counts").save()
    wf.finish()
    monkeypatch.setenv("FLOWPROV_USER", "bob")
    with fp.Run(transform=fp.Transform(name="plot.py", type="script")) as plot:
        hits.cache()
        matrix.cache()
        fig = fp.Artifact(write(work / "fig.png", os.urandom(300)), key="figures/fig.png").save()
    with pytest.raises(RuntimeError):
        with fp.Run(transform=fp.Transform(name="crash.py", type="script")) as crash:
            hits.cache()
            raise RuntimeError("boom")
    return Story(raw, hits, matrix, fig, upload, wf, score, plot, crash)


def lineage_pairs(graph) -> tuple[set, set]:
    """(run uid, artifact uid) of the graph's used edges, (artifact uid, run uid) of generated."""
    uid = {n.id: n.uid for n in graph.nodes.values()}
    used = {(uid[e.target], uid[e.source]) for e in graph.edges if e.kind == "used"}
    made = {(uid[e.target], uid[e.source]) for e in graph.edges if e.kind == "generated"}
    return used, made


def local(qname) -> str:
    return str(qname).split("/", 1)[1]  # fp:run/<uid> → <uid>


# -- W3C PROV ----------------------------------------------------------------------------------
def test_prov_json_and_prov_n_read_back_as_the_lineage(story, tmp_path):
    s = story
    graph = s.raw.lineage("both")
    runs = [s.upload, s.score, s.plot, s.crash]
    assert graph.uids("artifact") == {a.uid for a in (s.raw, s.hits, s.matrix, s.fig)}
    assert graph.uids("run") == {r.uid for r in runs}

    path = export(s.raw, tmp_path / "out" / "lineage.json", "prov-json", direction="both")
    doc = ProvDocument.deserialize(path, format="json")
    assert {ns.prefix: ns.uri for ns in doc.namespaces} == {"fp": "urn:flowprov:"}

    entities = {str(e.identifier): e for e in doc.get_records(ProvEntity)}
    artifacts = {local(k) for k in entities if k.startswith("fp:artifact/")}
    plans = {local(k) for k in entities if k.startswith("fp:transform/")}
    activities = {local(a.identifier): a for a in doc.get_records(ProvActivity)}
    agents = {a.get_attribute("prov:label").pop() for a in doc.get_records(ProvAgent)}
    software = ("fp:environment/", "fp:package/")  # the runs' software: test_environment_exports
    assert artifacts == graph.uids("artifact")
    assert len([k for k in entities if not k.startswith(software)]) == 4 + 5
    assert plans == {r.transform.uid for r in [*runs, s.wf]}
    assert set(activities) == {r.uid for r in [*runs, s.wf]}  # the enclosing run too
    assert agents == {"alice", "bob"}

    used = {
        (local(u.args[0]), local(u.args[1]))
        for u in doc.get_records(ProvUsage)
        if str(u.args[1]).startswith("fp:artifact/")
    }
    made = {(local(g.args[0]), local(g.args[1])) for g in doc.get_records(ProvGeneration)}
    assert (used, made) == lineage_pairs(graph)

    raw = entities[f"fp:artifact/{s.raw.uid}"]
    one = {k: next(iter(raw.get_attribute(k))) for k in ("fp:md5", "fp:sha256", "fp:nextflow")}
    assert one["fp:md5"] == s.raw.checksums["md5"] and one["fp:sha256"] == s.raw.checksums["sha256"]
    assert json.loads(one["fp:nextflow"]) == {"mode": "standard", "value": "abc"}
    assert raw.get_attribute("fp:size") == {s.raw.size}
    assert raw.get_attribute("fp:hash") == {s.raw.hash}
    location = next(iter(raw.get_attribute("prov:location")))
    assert location.uri == Path(s.raw.path).as_uri()
    assert entities[f"fp:artifact/{s.matrix.uid}"].get_attribute("fp:n_objects") == {2}

    score = activities[s.score.uid]
    assert score.get_startTime() == s.score.started_at
    assert score.get_endTime() == s.score.finished_at
    assert json.loads(next(iter(score.get_attribute("fp:params")))) == {"threshold": 0.5}
    assert score.get_attribute("fp:engine") == {"snakemake"}
    assert activities[s.crash.uid].get_attribute("fp:status") == {"failed"}

    users = {
        str(a.identifier): a.get_attribute("prov:label").pop() for a in doc.get_records(ProvAgent)
    }
    assoc = {
        local(a.args[0]): (users[str(a.args[1])], local(a.args[2]))
        for a in doc.get_records(ProvAssociation)
    }
    assert assoc[s.plot.uid] == ("bob", s.plot.transform.uid)
    assert assoc[s.score.uid] == ("alice", s.score.transform.uid)
    starts = [(local(x.args[0]), x.args[1], local(x.args[2])) for x in doc.get_records(ProvStart)]
    assert starts == [(s.score.uid, None, s.wf.uid)]

    # PROV-N (which prov cannot read): the text of the PROV-JSON document, upstream of the figure
    as_json = export(s.fig, tmp_path / "fig.json", "prov-json")
    as_provn = export(s.fig, tmp_path / "fig.provn", "prov-n")
    text = as_provn.read_text()
    again = ProvDocument.deserialize(as_json, format="json")
    assert text == again.get_provn() + "\n"  # prov reads no PROV-N: compare with the JSON's
    assert text.startswith("document\n  prefix fp <urn:flowprov:>")
    for line in (
        f"used(fp:run/{s.plot.uid}, fp:artifact/{s.hits.uid}, -)",
        f"wasGeneratedBy(fp:artifact/{s.fig.uid}, fp:run/{s.plot.uid}, -)",
        f"wasAssociatedWith(fp:run/{s.plot.uid}, fp:user/",
        f"entity(fp:transform/{s.plot.transform.uid}, [prov:type='prov:Plan'",
        f'fp:sha256="{s.raw.checksums["sha256"]}"',
    ):
        assert line in text
    assert s.crash.uid not in text  # upstream of the figure only


def test_bad_format_and_options(instance, tmp_path):
    t = fp.Transform(name="never run", type="script").save()
    with pytest.raises(ValidationError, match="unknown export format 'rdf'"):
        export(t, tmp_path / "x", "rdf")
    with pytest.raises(ValidationError, match="with_data"):
        export(t, tmp_path / "x.json", "prov-json", with_data=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValidationError, match="not an empty folder"):
        export(t, tmp_path / "full", "ro-crate")
    with pytest.raises(ValidationError, match="is a folder"):
        export(t, tmp_path / "full", "prov-n")
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.json").exists()
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


# -- RO-Crate ----------------------------------------------------------------------------------
def ids(value) -> list[str]:
    """@ids of an entity property (one entity or a list) as the rocrate library returns it."""
    values = value if isinstance(value, list) else [value]
    return [v if isinstance(v, str) else v.id for v in values]


def file_path(crate_dir: Path, entity) -> Path:
    """The bytes of a File: in the crate (relative id) or where its absolute file:// id points."""
    if entity.id.startswith("file://"):
        return Path(unquote(urlparse(entity.id).path))
    return crate_dir / unquote(entity.id)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_crate(crate: ROCrate, crate_dir: Path, graph) -> dict:
    """What every crate of a lineage holds; returns its File/Dataset entities by artifact uid."""
    assert {p.id for p in crate.root_dataset["conformsTo"]} == {uri for uri, _, _ in PROFILES}
    assert set(ids(crate.metadata["conformsTo"])) == {
        "https://w3id.org/ro/crate/1.1",
        "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
    }
    workflow = crate.mainEntity
    assert set(workflow.type) == {"File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"}
    assert workflow["programmingLanguage"]["name"] == "PROV-JSON"
    prov = ProvDocument.deserialize(crate_dir / workflow.id, format="json")  # the same lineage
    assert {local(a.identifier) for a in prov.get_records(ProvActivity)} >= graph.uids("run")

    # every file: sha256 and contentSize of its bytes
    by_uid = {e["identifier"]: e for e in crate.data_entities if "identifier" in e}
    assert set(by_uid) == graph.uids("artifact")
    for f in crate.get_by_type("File"):
        if f is not workflow:
            p = file_path(crate_dir, f)
            assert f["sha256"] == sha256(p), f.id
            assert int(f["contentSize"]) == p.stat().st_size, f.id

    # a CreateAction per run: object = its inputs, result = its outputs, as in the lineage
    uid_of = {e.id: uid for uid, e in by_uid.items()}
    actions = {a["identifier"]: a for a in crate.get_by_type("CreateAction") if "identifier" in a}
    used, made = lineage_pairs(graph)
    for run in graph.uids("run"):
        inputs = {uid_of[i] for i in ids(actions[run].get("object", []))}
        outputs = {uid_of[i] for i in ids(actions[run].get("result", []))}
        assert inputs == {a for r, a in used if r == run}
        assert outputs == {a for a, r in made if r == run}

    # a ControlAction per run: instrument = the step, whose workExample is the run's instrument
    steps = {s.id: s for s in workflow["step"]}
    assert {s["workExample"].id for s in steps.values()} == set(ids(workflow["hasPart"]))
    controls = crate.get_by_type("ControlAction")
    assert {c["object"]["identifier"] for c in controls} == graph.uids("run")
    for c in controls:
        assert steps[c["instrument"].id]["workExample"] is c["object"]["instrument"]
    (organize,) = crate.get_by_type("OrganizeAction")
    assert organize["result"].id == "#lineage" and "#flowprov" in ids(organize["instrument"])
    assert set(ids(organize["object"])) == {c.id for c in controls}
    assert "#lineage" in ids(crate.root_dataset["mentions"])
    return by_uid


def test_ro_crate_refers_to_the_files_where_they_are(story, tmp_path):
    s = story
    path = export(s.raw, tmp_path / "crate", "ro-crate", direction="both")
    assert sorted(p.name for p in path.iterdir()) == ["lineage.prov.json", "ro-crate-metadata.json"]
    crate = ROCrate(path)
    by_uid = check_crate(crate, path, s.raw.lineage("both"))
    assert all(e.id.startswith("file:///") for e in by_uid.values())
    assert by_uid[s.fig.uid].id == Path(s.fig.path).as_uri()
    assert by_uid[s.raw.uid]["sha256"] == s.raw.checksums["sha256"]
    assert by_uid[s.raw.uid]["encodingFormat"] == "text/csv"
    assert by_uid[s.fig.uid]["encodingFormat"] == "image/png"

    matrix = by_uid[s.matrix.uid]
    assert "Dataset" in matrix.type and matrix.id.endswith("/")
    parts = {p["name"]: p for p in matrix["hasPart"]}
    assert set(parts) == {"barcodes.tsv.gz", "sub/matrix.mtx"}
    assert parts["barcodes.tsv.gz"]["encodingFormat"] == "application/gzip"
    assert all(p["sha256"] and p.id.startswith(matrix.id) for p in parts.values())

    runs = {a["identifier"]: a for a in crate.get_by_type("CreateAction") if "identifier" in a}
    assert runs[s.plot.uid]["agent"]["name"] == "bob"
    assert runs[s.plot.uid]["actionStatus"] == COMPLETED
    assert runs[s.plot.uid]["startTime"] == s.plot.started_at.isoformat()
    assert runs[s.crash.uid]["actionStatus"] == FAILED and "boom" in runs[s.crash.uid]["error"]
    assert '"threshold": 0.5' in runs[s.score.uid]["description"]
    # the enclosing pipeline run is an action of its own, named by its member
    assert runs[s.wf.uid]["instrument"]["name"] == "screen pipeline"
    assert f"inside run {s.wf.uid}" in runs[s.score.uid]["description"]
    (organize,) = crate.get_by_type("OrganizeAction")
    assert "#engine-snakemake" in ids(organize["instrument"])

    # steps follow the data: upload before score.py before plot.py
    steps = {st["name"]: st["position"] for st in crate.mainEntity["step"]}
    assert set(steps) == {"Upload screen", "score.py", "plot.py", "crash.py"}
    assert steps["Upload screen"] < steps["score.py"] < steps["plot.py"]
    lineage = crate.get("#lineage")
    assert ids(lineage.get("object", [])) == []  # raw came from the upload run
    assert ids(lineage["result"]) == [by_uid[s.fig.uid].id]  # read by no run of the graph
    assert lineage["actionStatus"] == FAILED  # crash.py is part of it


def test_ro_crate_zip_with_data_holds_copies(story, tmp_path):
    s = story
    path = export(s.fig, tmp_path / "fig.crate.zip", "ro-crate", with_data=True)
    names = set(zipfile.ZipFile(path).namelist())
    # folders have entries too: the validator looks a Dataset's @id up among them
    assert {"screens/", "results/", "results/matrix/", "results/matrix/sub/", "figures/"} <= names
    assert {n for n in names if not n.endswith("/")} == {
        "ro-crate-metadata.json",
        "lineage.prov.json",
        "screens/screen.csv",
        "results/hits.tsv",
        "results/matrix/barcodes.tsv.gz",
        "results/matrix/sub/matrix.mtx",
        "figures/fig.png",
    }
    crate = ROCrate(path)  # the library unzips it
    folder = Path(crate.source)
    by_uid = check_crate(crate, folder, s.fig.lineage())
    assert by_uid[s.fig.uid].id == "figures/fig.png"
    assert (folder / "figures" / "fig.png").read_bytes() == Path(s.fig.path).read_bytes()
    assert by_uid[s.matrix.uid].id == "results/matrix/"
    assert [p.id for p in by_uid[s.matrix.uid]["hasPart"]] == [
        "results/matrix/barcodes.tsv.gz",
        "results/matrix/sub/matrix.mtx",
    ]


def test_unreadable_files_are_exported_without_checksum(story, tmp_path, caplog):
    s = story
    graph = s.fig.lineage()
    os.remove(s.fig.path)  # gone: no sha256
    os.remove(s.raw.path)  # gone, but another system's sha256 was recorded
    Path(s.hits.path).write_text("edited behind flowprov's back\n")  # changed: no sha256
    result = write_crate(graph, tmp_path / "crate")
    assert len(result.warnings) == 3
    warning_about = {
        uid: w for w in result.warnings for uid in (s.fig.uid, s.raw.uid, s.hits.uid) if uid in w
    }
    assert "without sha256" in warning_about[s.fig.uid]
    assert "recorded sha256" in warning_about[s.raw.uid]
    assert "changed since it was recorded" in warning_about[s.hits.uid]
    by_uid = {e["identifier"]: e for e in ROCrate(result.path).data_entities if "identifier" in e}
    assert "sha256" not in by_uid[s.fig.uid] and int(by_uid[s.fig.uid]["contentSize"]) == s.fig.size
    assert by_uid[s.raw.uid]["sha256"] == s.raw.checksums["sha256"]
    assert (
        "sha256" not in by_uid[s.hits.uid] and int(by_uid[s.hits.uid]["contentSize"]) == s.hits.size
    )
    # export() logs them, and a copy of a missing file is not attempted
    with caplog.at_level("WARNING", logger="flowprov"):
        export(s.fig, tmp_path / "data.zip", "ro-crate", with_data=True)
    assert caplog.text.count("not copied") == 3
    assert "figures/fig.png" not in zipfile.ZipFile(tmp_path / "data.zip").namelist()
