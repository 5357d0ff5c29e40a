"""The Prefect plugin on real flows: exact records for flows, tasks, files and failures."""

import asyncio
import logging
from pathlib import Path

import flowprov as fp
import pytest
from flowprov.prefect import track
from prefect import flow, task


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


def keys(arts) -> list:
    return sorted(a.key or a.description for a in arts)


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
    assert keys(flow_run.inputs) == ["counts.tsv", "hits.tsv"] and keys(flow_run.outputs) == [
        "figures/matrixplot.txt"
    ]

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
    assert keys(norm.inputs) == ["counts.tsv"] and keys(norm.outputs) == ["normalized.tsv"]
    scores = tasks["score"].runs.all()
    assert sorted(r.params["parameters"]["factor"] for r in scores) == [1, 2, 3]
    assert all(list(r.inputs) == list(norm.outputs) for r in scores)
    assert all(
        r.params["upstream"]["path"] == [norm.reference] for r in scores
    )  # task_run.task_inputs
    comb = tasks["combine"].runs.one()
    assert keys(comb.inputs) == ["hits.tsv", "score_1.txt", "score_2.txt", "score_3.txt"]
    assert keys(comb.outputs) == ["figures/matrixplot.txt", "saved from inside a task"]
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
    assert keys(sub.inputs) == ["in.txt"] and keys(sub.outputs) == ["inner.txt"]


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
    assert list(job.inputs) == [raw]  # same content: the upload's artifact, not a new one
    assert list(fp.Transform.filter(name="read_screen").one().parents) == [raw.transform]
    assert list(fp.Run.filter(transform__name="load_by_query").one().inputs) == [raw]


def test_store_unreachable_then_replay(workdir, fp_env, monkeypatch, caplog, run_flowprov):
    from flowprov import config as C
    from flowprov import instance as inst_mod

    C.save_instance_config(
        C.InstanceConfig(
            name="down", uid="x", db="postgresql://nobody@127.0.0.1:9/none", storage=str(fp_env)
        ),
        make_current=False,
    )
    spool = fp_env / "spool.jsonl"

    @track(instance="down", spool=spool)
    @flow
    def offline(path: Path) -> Path:
        return normalize(path)

    Path("c.tsv").write_text("a\n")
    with caplog.at_level(logging.WARNING, logger="flowprov"):
        assert offline(Path("c.tsv")) == Path("normalized.tsv")  # the flow is not affected
    assert caplog.text.count("cannot write to the provenance store") == 1
    monkeypatch.setenv("FLOWPROV_INSTANCE", "mydata")
    inst_mod.reset_cache()
    assert fp.Run.filter().count() == 0
    run_flowprov("replay", str(spool), env={"FLOWPROV_INSTANCE": "mydata"})
    run_flowprov("replay", str(spool), env={"FLOWPROV_INSTANCE": "mydata"})
    inst_mod.reset_cache()
    runs = fp.Run.filter().all()
    assert sorted(r.transform.name for r in runs) == ["normalize", "offline"] and {
        r.status for r in runs
    } == {"completed"}


def test_untested_prefect_version_is_refused(monkeypatch):
    import prefect
    from flowprov.errors import FlowprovError

    monkeypatch.setattr(prefect, "__version__", "4.0.0")
    with pytest.raises(FlowprovError, match="tested with Prefect 3.4"):
        track()
