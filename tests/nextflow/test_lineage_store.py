"""Issue 12, point 18: Nextflow's data-lineage store followed to the end.

The records are the official data-lineage tutorial's (`nextflow lineage view` of rnaseq-nf): a
WorkflowRun, the MULTIQC TaskRun, its output FileOutput in the work directory, the published
FileOutput whose `source` is that task output, an AgentRun, and a FileOutput whose text elides
its checksum."""

import json
from datetime import datetime
from pathlib import Path

import flowprov as fp

HERE = Path(__file__).parent

TASK = "862df53160e07cd823c0c3960545e747"
TASK_REF = f"86/{TASK[2:]}"
TASK_OUT = TASK + "/multiqc_report.html"  # the record of the task's output
PUBLISHED = "16b31030474f2e96c55f4940bca3ab64/multiqc_report.html"  # its published copy


def _lineage_store(fp_env: Path) -> Path:
    """The tutorial's records laid out as Nextflow's .lineage store (<key>/.data.json)."""
    data = json.loads((HERE / "lineage_view_examples.json").read_text())
    store = fp_env / ".lineage"
    for item in data["records"]:
        key = item["command"].split("lid://", 1)[1]
        rec = item["record"] if item["parsed"] else json.loads(item["record"].replace("...", ""))
        d = store / key
        d.mkdir(parents=True, exist_ok=True)
        (d / ".data.json").write_text(json.dumps(rec))
    return store


def _set(store: Path, key: str, **spec) -> None:
    """Edit one record's spec (a test stands in for a run whose files are here)."""
    p = store / key / ".data.json"
    rec = json.loads(p.read_text())
    rec["spec"].update(spec)
    p.write_text(json.dumps(rec))


def _ingest(store):
    from flowprov_nextflow import ingest_lineage

    return ingest_lineage(store)


def test_the_published_file_links_to_the_task_output_it_was_copied_from(instance, fp_env):
    r = _ingest(_lineage_store(fp_env))
    multiqc = fp.Run.filter(transform__name="MULTIQC").one()
    # the task is its full hash, as from a trace with its work directory
    assert multiqc.reference == TASK_REF and multiqc.params["lid"] == f"lid://{TASK}"
    task_out = multiqc.outputs.one()
    assert task_out.key == f"work/86/{TASK[2:]}/multiqc_report.html"
    published = fp.Artifact.filter(key="results/multiqc_report.html").one()
    assert published.run is None  # a copy: its bytes come from the task output
    # neither file is reachable here, and Nextflow's "standard" checksum fingerprints path, size
    # and mtime (not content): the copy is given its source's content identity, its own
    # checksum kept beside
    assert published.hash == task_out.hash == "b14f5171a48ce5c22ea27d7b8e57b6c4"
    assert published.checksums["nextflow"]["value"] == "03fd5ed150c7862e1fad5efd4f574a47"
    up = published.lineage("upstream")
    assert multiqc.uid in up.uids("run") and task_out.uid in up.uids("artifact")
    assert r.new_artifacts == 2


def test_unreachable_folders_never_become_storage_roots(instance, fp_env):
    _ingest(_lineage_store(fp_env))
    roots = {s.root for s in fp.Storage.filter()}
    assert roots <= {str(fp_env / "mydata"), "/"}  # declared, and the host root
    for a in fp.Artifact.filter():
        assert a.storage.root == "/" and a.hash_type == "nextflow-standard"


def test_times_come_from_the_records(instance, fp_env):
    _ingest(_lineage_store(fp_env))
    multiqc = fp.Run.filter(transform__name="MULTIQC").one()
    created = datetime.fromisoformat("2025-05-09T13:27:34.236590379-05:00")
    assert multiqc.started_at == created
    task_out = multiqc.outputs.one()
    assert task_out.created_at == created
    published = fp.Artifact.filter(key="results/multiqc_report.html").one()
    assert published.created_at == datetime.fromisoformat("2025-05-09T13:27:34.576590545-05:00")
    wf = fp.Run.filter(transform__type="pipeline").one()
    assert wf.started_at == created  # the earliest time its records give
    assert wf.created_at.year == 2025


def test_records_not_ingested_are_listed_with_their_reason(instance, fp_env, run_flowprov):
    store = _lineage_store(fp_env)
    r = _ingest(store)
    text = "\n".join(r.not_ingested)
    assert "lid://c47bf9183c56715c9bca1a67a4acdc68" in text and "AgentRun" in text
    assert "lid://9410d13abeec617640b5fe9735ba12fc/multiqc_report.html" in text
    assert "no checksum" in text
    out = run_flowprov("nextflow", "ingest", "--lineage", str(store)).stdout
    assert "not ingested" in out and "AgentRun" in out and "no checksum" in out


def test_reachable_files_are_hashed_and_joined_by_content(instance, fp_env):
    store = _lineage_store(fp_env)
    work = fp_env / "work" / "86" / TASK[2:] / "multiqc_report.html"
    results = fp_env / "results" / "multiqc_report.html"
    for p in (work, results):
        p.parent.mkdir(parents=True)
        p.write_text("<html>MultiQC</html>")
    _set(store, TASK_OUT, path=f"file://{work}", size=20)
    _set(store, PUBLISHED, path=str(results), size=20)
    _ingest(store)
    task_out = fp.Run.filter(transform__name="MULTIQC").one().outputs.one()
    published = fp.Artifact.filter(key__endswith="results/multiqc_report.html").one()
    assert task_out.hash_type == published.hash_type == "blake3"
    assert task_out.hash == published.hash and published.run is None
    assert task_out.key == str(work).lstrip("/")  # outside the declared root: where it is
    assert published.checksums["nextflow"]["mode"] == "standard"
    assert task_out.uid in published.lineage("upstream").uids("artifact")


def test_a_gone_task_output_is_registered_with_its_published_copys_content(instance, fp_env):
    store = _lineage_store(fp_env)
    results = fp_env / "results" / "multiqc_report.html"
    results.parent.mkdir()
    results.write_text("<html>MultiQC</html>")
    _set(store, TASK_OUT, size=20)  # the work directory was cleaned up
    _set(store, PUBLISHED, path=str(results), size=20)
    _ingest(store)
    task_out = fp.Run.filter(transform__name="MULTIQC").one().outputs.one()
    published = fp.Artifact.filter(key__endswith="results/multiqc_report.html").one()
    assert published.hash_type == "blake3" and task_out.hash == published.hash
    assert task_out.checksums["nextflow"]["value"] == "b14f5171a48ce5c22ea27d7b8e57b6c4"
    assert task_out.uid in published.lineage("upstream").uids("artifact")


def test_a_copy_whose_size_disagrees_is_not_given_its_sources_content(instance, fp_env):
    store = _lineage_store(fp_env)
    results = fp_env / "results" / "multiqc_report.html"
    results.parent.mkdir()
    results.write_text("<html>changed since it was published</html>")
    _set(store, PUBLISHED, path=str(results))  # the record says 5079806 bytes
    r = _ingest(store)
    task_out = fp.Run.filter(transform__name="MULTIQC").one().outputs.one()
    published = fp.Artifact.filter(key__endswith="results/multiqc_report.html").one()
    assert task_out.hash == "b14f5171a48ce5c22ea27d7b8e57b6c4" != published.hash
    assert any("multiqc_report.html" in n and "size" in n for n in r.notes)


def test_reingesting_changes_nothing(instance, fp_env):
    store = _lineage_store(fp_env)
    _ingest(store)
    before = fp.Run.filter().count(), fp.Artifact.filter().count()
    r = _ingest(store)
    assert (r.new_runs, r.new_artifacts) == (0, 0)
    assert (fp.Run.filter().count(), fp.Artifact.filter().count()) == before


def test_a_task_from_the_trace_and_from_the_lineage_store_is_one_run(instance, fp_env):
    from flowprov_nextflow import ingest_trace

    from tests.nextflow.test_ingest import HEADER, _row

    trace = fp_env / "trace.txt"
    row = _row(7, TASK_REF[:9], "MULTIQC", submit="2025-05-09 13:27:20.000")
    trace.write_text(f"{HEADER}\tworkdir\n{row}\t/work/{TASK_REF}\n")
    ingest_trace(trace, pipeline="nextflow-io/rnaseq-nf", timezone="America/Chicago")
    r = _ingest(_lineage_store(fp_env))
    multiqc = fp.Run.filter(transform__type="process").one()  # one run, whichever came first
    assert multiqc.reference == TASK_REF and r.known_runs == 1
    assert multiqc.outputs.one().key == f"work/86/{TASK[2:]}/multiqc_report.html"
