"""A Prefect flow run is recorded in the instance it started in, tasks and all, even when one of
its tasks points FLOWPROV_INSTANCE at another instance midway (see tests/test_run_instance_pinning
for scripts)."""

import os
from pathlib import Path

import flowprov as fp
from flowprov.prefect import track
from prefect import flow, task

from tests.conftest import write


@task
def point_elsewhere() -> None:
    os.environ["FLOWPROV_INSTANCE"] = "b"


@task
def count(sheet: Path) -> Path:
    out = Path("counts.txt")
    out.write_text(sheet.read_text().upper())
    fp.Artifact(write(Path("qc.txt"), "qc ok"), description="saved inside the task").save()
    return out


@track()
@flow
def analysis(sheet: Path) -> Path:
    point_elsewhere()
    return count(sheet)


def test_a_task_switching_the_instance_leaves_the_flow_run_where_it_started(
    instance, second_instance, workdir, monkeypatch
):
    sheet = write(second_instance / "sheet.txt", "ifng\n")  # inside b's storage folder
    assert analysis(sheet) == Path("counts.txt")
    monkeypatch.setenv("FLOWPROV_INSTANCE", instance.name)

    flow_run = fp.Transform.filter(type="flow").one().runs.one()
    assert flow_run.status == "completed"
    runs = {r.transform.name: r for r in flow_run.children}
    assert set(runs) == {"point_elsewhere", "count"}
    assert {r.status for r in runs.values()} == {"completed"}
    counted = runs["count"]
    # the sheet is read by its absolute location: b's storage folder is no root of this instance
    (read,) = counted.inputs
    assert Path(read.path) == sheet.resolve() and read.storage.root == "/"
    assert sorted(a.description or Path(a.key).name for a in counted.outputs) == [
        "counts.txt",
        "saved inside the task",
    ]
    assert [s.root for s in fp.Storage.filter(root=str(second_instance.resolve()))] == []

    monkeypatch.setenv("FLOWPROV_INSTANCE", "b")
    assert fp.Run.filter().count() == 0 and fp.Artifact.filter().count() == 0
