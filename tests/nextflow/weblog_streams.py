"""Weblog event streams as Nextflow's WebLogObserver POSTs them, built from the real nf-core
trace in ../shared/fixtures/nextflow/ (hlatyping_execution_trace.txt): its processes, names,
exit codes, durations and resources, turned into raw TraceRecord values (epoch ms, ms, bytes),
with full `workdir` paths. `write_trace` writes the equivalent trace file (`trace.raw = true`,
with the workdir column), so a test can ingest what the receiver heard and compare.

Envelope (engines.md C2): {runName, runId, event, utcTime, trace | metadata}.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flowprov_nextflow.trace import parse_date, parse_duration, parse_memory, parse_percent

HERE = Path(__file__).parent
FIXTURE = HERE / "hlatyping_execution_trace.txt"
PIPELINE = "nf-core/hlatyping"
VERSION = "1.2.0"
TRACE_COLUMNS = (
    "task_id hash native_id name process tag status exit submit start complete duration "
    "realtime %cpu peak_rss peak_vmem rchar wchar workdir attempt"
).split()


def fixture_rows() -> list[dict]:
    """The fixture's six tasks, as raw values (dates read as UTC)."""
    lines = FIXTURE.read_text().splitlines()
    head = lines[0].split("\t")
    out = []
    for line in lines[1:]:
        v = dict(zip(head, line.split("\t"), strict=True))
        submit = parse_date(v["submit"]).replace(tzinfo=UTC)
        out.append(
            {
                "process": v["name"].split(" (")[0],
                "exit": int(v["exit"]),
                "submit": int(submit.timestamp() * 1000),
                "duration": parse_duration(v["duration"]),
                "realtime": parse_duration(v["realtime"]),
                "%cpu": parse_percent(v["%cpu"]),
                "peak_rss": parse_memory(v["peak_rss"]),
                "peak_vmem": parse_memory(v["peak_vmem"]),
                "rchar": parse_memory(v["rchar"]),
                "wchar": parse_memory(v["wchar"]),
                "hash": v["hash"],
            }
        )
    return out


def iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass
class Task:
    """One task attempt: the TraceRecord values it ends with."""

    task_id: int
    process: str
    tag: str | None
    hash: str  # short, ab/cdef12
    workdir: str
    submit: int
    start: int
    complete: int
    exit: int = 0
    status: str = "COMPLETED"
    attempt: int = 1
    error_action: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.process} ({self.tag})" if self.tag else self.process

    @property
    def full_hash(self) -> str:
        return "/".join(self.workdir.rstrip("/").split("/")[-2:])

    def record(self, phase: str) -> dict:
        """The raw TraceRecord at process_submitted / process_started / process_completed."""
        r = {
            "task_id": self.task_id,
            "hash": self.hash,
            "native_id": str(10_000 + self.task_id),
            "process": self.process,
            "module": [],
            "tag": self.tag,
            "name": self.name,
            "workdir": self.workdir,
            "attempt": self.attempt,
            "cpus": 1,
            "time": 3_600_000,
            "submit": self.submit,
            "status": {"submitted": "SUBMITTED", "started": "RUNNING"}.get(phase, self.status),
        }
        if phase in ("started", "completed"):
            r["start"] = self.start
        if phase == "completed":
            r.update(
                exit=self.exit,
                complete=self.complete,
                duration=self.complete - self.submit,
                realtime=self.complete - self.start,
                **self.extra,
            )
            if self.error_action:
                r["error_action"] = self.error_action
        return r


def _full_hash(run_id: str, task_id: int, attempt: int, short: str | None) -> tuple[str, str]:
    digest = hashlib.sha256(f"{run_id}:{task_id}:{attempt}".encode()).hexdigest()
    if short:  # the fixture's short hash, completed to 32 hex digits
        prefix, rest = short.split("/")
        return f"{prefix}/{rest}", f"{prefix}/{rest}{digest[: 30 - len(rest)]}"
    full = digest[:32]
    return f"{full[:2]}/{full[2:8]}", f"{full[:2]}/{full[2:]}"


def tasks_from_fixture(
    n: int, run_id: str, work_root: str | Path, *, t0: int | None = None
) -> list[Task]:
    """`n` tasks cycling through the fixture's six: the first six keep its short hashes."""
    rows = fixture_rows()
    t0 = t0 if t0 is not None else rows[0]["submit"]
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        short, full = _full_hash(run_id, i + 1, 1, row["hash"] if i < len(rows) else None)
        submit = t0 + i * 1000
        start = submit + 200
        out.append(
            Task(
                task_id=i + 1,
                process=row["process"],
                tag=None if i < len(rows) else f"sample_{i}",
                hash=short,
                workdir=f"{work_root}/{full}",
                submit=submit,
                start=start,
                complete=start + max(row["realtime"], 1),
                exit=row["exit"],
                extra={k: row[k] for k in ("%cpu", "peak_rss", "peak_vmem", "rchar", "wchar")},
            )
        )
    return out


def retry(task: Task, run_id: str, work_root: str | Path, exit_: int = 137) -> tuple[Task, Task]:
    """A failed first attempt (error strategy RETRY) and its second attempt, in another workdir."""
    failed = Task(**{**task.__dict__, "exit": exit_, "status": "FAILED", "error_action": "RETRY"})
    short, full = _full_hash(run_id, task.task_id + 100_000, 2, None)
    second = Task(
        **{
            **task.__dict__,
            "task_id": task.task_id + 100_000,
            "hash": short,
            "workdir": f"{work_root}/{full}",
            "attempt": 2,
            "submit": task.complete + 10,
            "start": task.complete + 20,
            "complete": task.complete + 20 + (task.complete - task.start),
        }
    )
    return failed, second


def workflow_metadata(
    run_name: str,
    session: str,
    *,
    work_root: str | Path,
    success: bool | None = None,
    error: str | None = None,
    start: int = 0,
    complete: int | None = None,
    params: dict | None = None,
) -> dict:
    wf = {
        "runName": run_name,
        "sessionId": session,
        "scriptName": "main.nf",
        "repository": "https://github.com/nf-core/hlatyping",
        "revision": "1.2.0",
        "commitId": "7f3b54f",
        "projectName": PIPELINE,
        "projectDir": "/home/jdoe/.nextflow/assets/nf-core/hlatyping",
        "launchDir": str(Path(work_root).parent),
        "workDir": str(work_root),
        "userName": "jdoe",
        "commandLine": f"nextflow run {PIPELINE} -r 1.2.0 -profile docker",
        "profile": "docker",
        "resume": False,
        "containerEngine": "docker",
        "start": iso(start),
        "manifest": {"name": PIPELINE, "version": VERSION, "nextflowVersion": "!>=20.04.0"},
        "nextflow": {"version": "24.10.4", "build": 5934},
    }
    if complete is not None:
        wf.update(
            complete=iso(complete),
            duration=complete - start,
            success=success,
            exitStatus=0 if success else 1,
            errorMessage=error,
            stats={"succeedCount": 0, "failedCount": 0 if success else 1},
        )
    return {
        "parameters": params or {"input": "samplesheet.csv", "outdir": "results"},
        "workflow": wf,
    }


def stream(
    tasks: list[Task],
    run_id: str,
    run_name: str,
    *,
    work_root: str | Path,
    window: int = 4,
    success: bool | None = True,
    error: str | None = None,
    error_task: Task | None = None,
) -> list[dict]:
    """The envelopes of one launch, in the order Nextflow sends them: `started`, then tasks
    submitted `window` at a time (each submitted, started, completed), then `completed` (None:
    the launch has not ended)."""
    start = tasks[0].submit - 500 if tasks else 0

    def env(event, ms, **body):
        return {"runName": run_name, "runId": run_id, "event": event, "utcTime": iso(ms), **body}

    out = [
        env(
            "started",
            start,
            metadata=workflow_metadata(run_name, run_id, work_root=work_root, start=start),
        )
    ]
    pending: list[Task] = []
    for t in tasks:
        out.append(env("process_submitted", t.submit, trace=t.record("submitted")))
        out.append(env("process_started", t.start, trace=t.record("started")))
        pending.append(t)
        if len(pending) >= window:
            done = pending.pop(0)
            out.append(env("process_completed", done.complete, trace=done.record("completed")))
    for done in pending:
        out.append(env("process_completed", done.complete, trace=done.record("completed")))
    end = max((t.complete for t in tasks), default=start) + 500
    if error_task is not None:
        out.append(env("error", end - 100, trace=error_task.record("completed")))
    if success is not None:
        meta = workflow_metadata(
            run_name,
            run_id,
            work_root=work_root,
            start=start,
            complete=end,
            success=success,
            error=error,
        )
        out.append(env("completed", end, metadata=meta))
    return out


def fake_run(
    n_tasks: int, run_id: str, run_name: str, work_root: str = "/nonexistent/work"
) -> list[dict]:
    """A large synthetic launch: 3 events per task (submitted, started, completed — all Nextflow
    sends for a task) plus started/completed, so 33,333 tasks = 100,001 events (the issue's
    "100,000 events, 25,000 tasks" counts 4 per task). Work folders do not exist: no files read."""
    return stream(
        tasks_from_fixture(n_tasks, run_id, work_root), run_id, run_name, work_root=work_root
    )


def write_trace(tasks: list[Task], path: Path, cached: list[Task] = ()) -> Path:
    """The trace file Nextflow would write for these task attempts (`trace.raw = true`,
    completion order), with `cached` tasks as CACHED rows (their original workdir and hash)."""

    def cell(v):
        return "-" if v is None else str(v)

    rows = []
    for t in sorted(cached, key=lambda t: t.task_id):
        r = t.record("completed")
        r.update(status="CACHED")
        rows.append(r)
    for t in sorted(tasks, key=lambda t: t.complete):
        rows.append(t.record("completed"))
    lines = ["\t".join(TRACE_COLUMNS)]
    lines += ["\t".join(cell(r.get(c)) for c in TRACE_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_workdirs(tasks: list[Task], inputs_root: Path) -> None:
    """Each task's folder in Nextflow's layout: `.command.sh`, an input staged as a symlink to a
    file under `inputs_root`, and one output file whose bytes name the task."""
    inputs_root.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        d = Path(t.workdir)
        d.mkdir(parents=True, exist_ok=True)
        (d / ".command.sh").write_text(f"#!/bin/bash\n{t.process} --in input.txt\n")
        (d / ".exitcode").write_text(str(t.exit))
        src = inputs_root / f"{t.process}.input.txt"
        if not src.exists():
            src.write_text(f"input of {t.process}\n")
        link = d / "input.txt"
        if not link.exists():
            link.symlink_to(src)
        (d / f"{t.process}.out").write_text(f"output of task {t.task_id} attempt {t.attempt}\n")
