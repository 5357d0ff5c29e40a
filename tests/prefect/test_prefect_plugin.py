"""The Prefect plugin on real flows: exact records for flows, tasks, files and failures."""

import asyncio
import logging
from pathlib import Path

import flowprov as fp
import pytest
from flowprov.prefect import track
from prefect import flow, task

from tests.conftest import write


@task
def normalize(counts: Path) -> Path:
    out = Path("normalized.tsv")
    out.write_text(counts.read_text().upper())
    return out


@task
def score(path: Path, factor: int) -> Path:
    out = Path(f"score_{factor}.txt")
    out.write_text(f"{len(path.read_text()) * factor}\n")
    return out


@task
def combine(parts: list[Path], hits: Path) -> Path:
    out = Path("figures") / "matrixplot.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("".join(p.read_text() for p in parts) + hits.read_text())
    side = Path("side.txt")
    side.write_text("made inside a task")
    fp.Artifact(side, description="saved from inside a task").save()
    return out


@track()
@flow(version="1.2")
def integrated_analysis(counts: Path, hits: Path) -> Path:
    n = normalize(counts)
    scored = score.map(n, [1, 2, 3])
    return combine.submit(scored, hits).result()


def rel(arts, base: Path) -> list:
    """Where each artifact is, relative to base (a copied-in file: its description)."""
    return sorted(
        str(a.path.relative_to(base)) if a.key and a.path.is_relative_to(base) else a.description
        for a in arts
    )


def test_flow_tasks_files_submit_and_map(workdir, caplog):
    Path("counts.tsv").write_text("gene\tn\nifng\t3\n")
    Path("hits.tsv").write_text("IFNG\n")
    with caplog.at_level(logging.INFO, logger="flowprov"):
        result = integrated_analysis(Path("counts.tsv"), Path("hits.tsv"))
    assert result == Path("figures/matrixplot.txt")
    assert not [r for r in caplog.records if r.name == "flowprov"]  # no log lines per task

    flow_t = fp.Transform.filter(type="flow").one()
    assert (flow_t.name, flow_t.version) == (
        "integrated-analysis",
        "1.2",
    ) and "def integrated_analysis" in flow_t.source_code
    flow_run = flow_t.runs.one()
    assert (
        flow_run.status == "completed"
        and flow_run.engine == "prefect"
        and flow_run.params == {"counts": "counts.tsv", "hits": "hits.tsv"}
    )
    # the figure is combine's: the flow only passes it up (issue 12, point 13)
    assert rel(flow_run.inputs, workdir) == ["counts.tsv", "hits.tsv"]
    assert flow_run.outputs.count() == 0

    tasks = {t.name: t for t in fp.Transform.filter(type="task")}
    assert set(tasks) == {"normalize", "score", "combine"} and all(
        t.parent == flow_t for t in tasks.values()
    )
    runs = list(flow_run.children)
    assert sorted(r.transform.name for r in runs) == [
        "combine",
        "normalize",
        "score",
        "score",
        "score",
    ]
    assert {r.status for r in runs} == {"completed"}
    norm = tasks["normalize"].runs.one()
    assert rel(norm.inputs, workdir) == ["counts.tsv"]
    assert rel(norm.outputs, workdir) == ["normalized.tsv"]
    scores = tasks["score"].runs.all()
    assert sorted(r.params["parameters"]["factor"] for r in scores) == [1, 2, 3]
    assert all(list(r.inputs) == list(norm.outputs) for r in scores)
    assert all(
        r.params["upstream"]["path"] == [norm.reference] for r in scores
    )  # task_run.task_inputs
    comb = tasks["combine"].runs.one()
    assert rel(comb.inputs, workdir) == ["hits.tsv", "score_1.txt", "score_2.txt", "score_3.txt"]
    assert rel(comb.outputs, workdir) == ["figures/matrixplot.txt", "saved from inside a task"]
    assert list(fp.Artifact.filter(key__endswith="matrixplot.txt").one().output_of) == [comb]
    assert set(tasks["combine"].parents) == {tasks["score"]}


@task
async def slow_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@flow
def inner(path: Path) -> Path:
    out = Path("inner.txt")
    out.write_text(path.read_text()[::-1])
    return out


@track()
@flow
async def async_outer(path: Path) -> int:
    a, b = await asyncio.gather(slow_double(1), slow_double(2))
    inner(path)
    return a + b


def test_async_tasks_and_a_subflow(workdir):
    Path("in.txt").write_text("abc")
    assert asyncio.run(async_outer(Path("in.txt"))) == 6
    outer = fp.Run.filter(transform__name="async-outer").one()
    children = {r.transform.name: r for r in outer.children}
    assert sorted(r.transform.name for r in outer.children) == [
        "inner",
        "slow_double",
        "slow_double",
    ]
    sub = children["inner"]
    assert sub.transform.type == "flow" and sub.status == "completed"
    assert rel(sub.inputs, workdir) == ["in.txt"] and rel(sub.outputs, workdir) == ["inner.txt"]
    assert outer.inputs.count() == 1 and outer.outputs.count() == 0


attempts = {"n": 0}


@task(retries=1, retry_delay_seconds=0)
def flaky(path: Path) -> Path:
    attempts["n"] += 1
    raise ValueError(f"bad input file {path.name} (attempt {attempts['n']})")


@track()
@flow
def failing(path: Path):
    return flaky(path)


def test_a_task_that_fails_after_a_retry_and_a_flow_that_fails(workdir):
    attempts["n"] = 0  # the test runs once per database backend
    Path("x.txt").write_text("x")
    with pytest.raises(ValueError, match="attempt 2"):
        failing(Path("x.txt"))
    t = fp.Run.filter(transform__name="flaky").one()  # one run for the task run, retried inside
    assert t.status == "failed" and "attempt 2" in t.error
    f = fp.Run.filter(transform__name="failing").one()
    assert f.status == "failed" and f.error


@task
def read_screen(path: Path) -> Path:
    out = Path("hits.parquet")
    out.write_bytes(path.read_bytes()[:4])
    return out


@task
def load_by_query() -> int:
    # no path argument: the artifact is read through the API, which records the task's run
    raw = fp.Artifact.filter(description="Raw data of schmidt22 crispra GWS").one()
    return len(raw.cache().read_bytes())


@track()
@flow
def hit_calling(path: Path) -> Path:
    load_by_query()
    return read_screen(path)


def test_a_flow_reading_an_artifact_registered_before(workdir, fp_env):
    screen = fp_env / "upload" / "screen.parquet"
    screen.parent.mkdir()
    screen.write_bytes(b"PAR1 screen")
    with fp.Run(transform=fp.Transform(name="Upload GWS CRISPRa result", type="upload")):
        raw = fp.Artifact(screen, description="Raw data of schmidt22 crispra GWS").save()
    hit_calling(screen)
    job = fp.Run.filter(transform__name="read_screen").one()
    # the task read the file where it is: a place of its own, with the bytes of the upload's copy
    (read_here,) = job.inputs
    assert read_here.path == screen and read_here.hash == raw.hash and read_here != raw
    assert raw.uid in job.lineage().uids("artifact")  # joined by content
    assert list(fp.Run.filter(transform__name="load_by_query").one().inputs) == [raw]


@track()
@flow
def from_the_store(description: str) -> Path:
    # the path cache() gives is the stored copy of an artifact: its task read that artifact
    stored = fp.Artifact.filter(description=description).one().cache()
    read_screen(stored)
    return stored  # passed up: not made here


def test_a_task_reading_a_stored_copy_reads_its_artifact(workdir, fp_env, instance):
    screen = write(fp_env / "upload" / "screen.parquet", b"PAR1 screen")
    raw = fp.Artifact(screen, description="screen").save()  # copied in: a stored object
    assert Path(instance.storage.root) in raw.path.parents
    from_the_store("screen")
    job = fp.Run.filter(transform__name="read_screen").one()
    assert list(job.inputs) == [raw]
    assert fp.Artifact.filter(key__contains=".flowprov").count() == 0  # no record of our object
    flow_run = fp.Run.filter(transform__name="from-the-store").one()
    assert list(flow_run.inputs) == [raw] and flow_run.outputs.count() == 0


# -- which arguments are files (issue 12, point 7) ---------------------------------------------
def _storage_roots() -> set:
    return {s.root for s in fp.Storage.filter()}


@task
def count_bams(workdir: str) -> int:
    return len(list(Path(workdir).glob("*.bam")))


@track()
@flow
def bam_stats(workdir: str = ".") -> int:
    return count_bams(workdir)


def test_a_folder_named_by_a_string_is_not_an_input(workdir, instance):
    for s in "ABC":
        Path(f"{s}.bam").write_bytes(b"BAM\1" + s.encode() * 1000)
    assert bam_stats(".") == 3
    runs = fp.Run.filter().all()
    assert {r.transform.name for r in runs} == {"bam-stats", "count_bams"}
    assert all(r.inputs.count() == 0 for r in runs)  # "." is a string, not a file
    assert fp.Artifact.filter().count() == 0  # nothing hashed
    assert _storage_roots() <= {instance.storage.root, "/"}
    # the working folder did not become a storage root: a key can be given to a file in it
    Path("sub").mkdir()
    Path("sub/table.tsv").write_text("a\t1\n")
    art = fp.Artifact(Path("sub/table.tsv"), key="proj/table.tsv").save()
    assert art.key == "proj/table.tsv" and fp.Artifact.filter(key="proj/table.tsv").count() == 1


@task
def write_into(folder: Path, name: str) -> Path:
    out = folder / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"{name}\n")
    return out


@track()
@flow
def scatter(base: Path) -> list[Path]:
    return [write_into(base, "a/x.txt"), write_into(base / "deep" / "er", "y.txt")]


def test_no_storage_root_per_folder(workdir, fp_env, instance, monkeypatch):
    elsewhere = fp_env / "elsewhere"
    scatter(elsewhere)
    (workdir / "nested").mkdir()
    monkeypatch.chdir(workdir / "nested")
    scatter(workdir / "nested" / "out")
    # files outside the declared root are recorded where they are, under the one host root
    assert _storage_roots() <= {instance.storage.root, "/"}
    for p in [
        elsewhere / "a/x.txt",
        elsewhere / "deep/er/y.txt",
        workdir / "nested/out/a/x.txt",
        workdir / "nested/out/deep/er/y.txt",
    ]:
        art = fp.Artifact.filter(key=str(p).lstrip("/")).one()
        assert art.path == p and art.storage.root == "/" and art.run.transform.name == "write_into"
    # inside the declared root, a file's key is its path relative to the root
    scatter(Path(instance.storage.root) / "results")
    assert fp.Artifact.filter(key="results/a/x.txt").one().storage.root == instance.storage.root
    assert _storage_roots() <= {instance.storage.root, "/"}


@task
def make_folder(name: str) -> Path:
    d = Path(name)
    (d / "sub").mkdir(parents=True, exist_ok=True)
    (d / "sub" / "m.txt").write_text("matrix\n")
    return d  # a returned Path to a folder: the task made it


@task
def inspect_args(
    as_path: Path, as_str: str, folder_str: str, folder_path: Path, known: Path, word: str
) -> str:
    return f"{as_path.name} {as_str} {folder_str} {folder_path} {known} {word}"


@track()
@flow
def argument_kinds() -> str:
    matrix = make_folder("matrix")
    return inspect_args(
        Path("a.tsv"), "b.tsv", "unrelated", Path("unrelated"), matrix, "a.tsv is a file"
    )


def test_which_arguments_are_inputs(workdir):
    Path("a.tsv").write_text("a\n")
    Path("b.tsv").write_text("b\n")
    Path("unrelated").mkdir()
    (workdir / "unrelated" / "big.bam").write_bytes(b"BAM" * 1000)
    argument_kinds()
    made = fp.Run.filter(transform__name="make_folder").one()
    (matrix,) = made.outputs
    assert matrix.hash_type.endswith("-dir") and matrix.path == workdir / "matrix"
    run = fp.Run.filter(transform__name="inspect_args").one()
    # files named by a Path or a str are inputs; a folder only when flowprov knows it as an
    # artifact (here: returned by an earlier task); a string that names no file is a string
    assert rel(run.inputs, workdir) == ["a.tsv", "b.tsv", "matrix"]
    assert fp.Artifact.filter(key__contains="unrelated").count() == 0


@task
def fill(out: Path, text: str) -> Path:
    out.write_text(text)
    return out


@task
def check(table: Path) -> Path:
    assert table.read_text()
    return table  # passed on untouched: read, not made


@track()
@flow
def rewrite(out: Path) -> Path:
    return check(fill(out, "same bytes\n"))


def test_an_argument_a_task_writes_and_returns_is_its_output_only(workdir):
    out = workdir / "result.txt"
    rewrite(out)
    rewrite(out)  # a rerun: the file exists, with the same bytes, before `fill` writes it
    art = fp.Artifact.filter(key=str(out).lstrip("/")).one()
    fills = fp.Run.filter(transform__name="fill").all()
    checks = fp.Run.filter(transform__name="check").all()
    assert len(fills) == 2 and all(r.inputs.count() == 0 for r in fills)  # where to write
    assert set(art.output_of) == set(fills)  # made by each `fill` run, by nothing else
    assert all(list(r.inputs) == [art] and r.outputs.count() == 0 for r in checks)
    # the flow neither read `out` (its task rewrote it) nor made it (it passed its task's file up)
    flows = fp.Run.filter(transform__name="rewrite").all()
    assert len(flows) == 2 and all(r.inputs.count() + r.outputs.count() == 0 for r in flows)


@task
def use_reference(ref: str, index: Path) -> str:
    return ref  # a folder returned as a plain string: not an output


@track()
@flow
def align(ref: str, index: Path) -> str:
    return use_reference(ref, index)


def test_a_folder_the_store_knows_is_an_input(workdir, instance):
    root = Path(instance.storage.root)
    (root / "genome" / "chr1").mkdir(parents=True)
    (root / "genome" / "chr1" / "seq.fa").write_text(">chr1\nACGT\n")
    (root / "index").mkdir()
    (root / "index" / "idx.bin").write_bytes(b"IDX")
    genome = fp.Artifact(root / "genome", description="reference").save()  # in place: known
    align(str(root / "genome"), root / "index")  # a known folder, and one nobody registered
    run = fp.Run.filter(transform__name="use_reference").one()
    assert list(run.inputs) == [genome] and run.outputs.count() == 0
    assert fp.Artifact.filter(key="index").count() == 0  # never hashed


@track()
@flow
def report(counts: Path) -> Path:
    return normalize(counts)


def test_a_file_a_task_returns_and_its_flow_passes_up_is_the_tasks(workdir):
    Path("counts.tsv").write_text("gene\tn\n")
    report(Path("counts.tsv"))
    (flow_run,) = fp.Run.filter(transform__name="report")
    (task_run,) = flow_run.children
    figure = fp.Artifact.filter(key__endswith="normalized.tsv").one()
    assert list(figure.output_of) == [task_run] and figure.run == task_run
    assert flow_run.outputs.count() == 0 and rel(flow_run.inputs, workdir) == ["counts.tsv"]


def test_flow_and_task_runs_share_the_interpreters_environment(workdir, fp_env):
    """Every flow and task run of one interpreter links the same environment record: its whole
    installed software (prefect among it), not only what the flow imported; the journal carries
    its packages once, not once per task."""
    from importlib.metadata import version

    from flowprov.environments import python_environment
    from flowprov.events import EnvironmentSpec
    from flowprov.spool import Sink

    Path("counts.tsv").write_text("gene\tn\nifng\t3\n")
    Path("hits.tsv").write_text("IFNG\n")
    sent = []
    original = Sink._journal_append
    Sink._journal_append = lambda self, events: (sent.extend(events), original(self, events))[1]
    try:
        integrated_analysis(Path("counts.tsv"), Path("hits.tsv"))
    finally:
        Sink._journal_append = original
    runs = list(fp.Run.filter(engine="prefect"))
    assert len(runs) == 6  # the flow, normalize, 3 × score, combine
    envs = {r.environment for r in runs}
    assert len(envs) == 1
    env = envs.pop()
    assert env.hash == python_environment().digest() and env.complete and env.deployed
    assert ("prefect", version("prefect")) in {(p.name, p.version) for p in env.packages}
    assert fp.Environment.filter().count() == 1
    full = [e for e in sent if isinstance(getattr(e, "environment", None), EnvironmentSpec)]
    assert len(full) == 1
