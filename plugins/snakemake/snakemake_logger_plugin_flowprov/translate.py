"""Snakemake log records → flowprov events.

Facts of Snakemake 9 this relies on (checked on 9.27): `workflow_started` opens the workflow;
`job_started` (a batch of job ids) comes before each job's `job_info`; `job_finished` carries
`job_id` and is not emitted at all under `-q`; `job_error` has no exit code, the message comes in
a separate `error` record; there is no workflow-finished record, `close()` is called at shutdown
(sometimes twice); file names may carry annotations such as " (pipe)"; `resources` is a
Namedlist. Some facts come only as messages: "Removing temporary output X." (a temp() file
deleted on purpose), "Terminating processes on user request" (SIGINT: KeyboardInterrupt) and
"Will exit after finishing currently running jobs" (SIGTERM, Snakemake's own handler).

The rule's code (shell template, run block, script, wrapper) and the workflow's config and
included files come from the Workflow object Snakemake keeps as `snakemake.workflow.workflow`;
if it lacks what is read here (see REQUIRED), the workflow runs unrecorded, with one warning.
Files are recorded where they are: inside a storage root someone declared, by their path in it;
anywhere else by absolute location (the host root) — the plugin declares no root of its own.
Everything here is defensive: an exception is logged once and the workflow carries on.
"""

from __future__ import annotations

import dis
import logging
import os
import re
import shlex
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flowprov.hashing import ENGINE_MARKERS
from flowprov.liveness import keep_alive, let_go, process_facts

log = logging.getLogger("flowprov")
ENGINE = "snakemake"
_MARKERS = ENGINE_MARKERS  # Snakemake's marker inside directory() outputs; not part of the data
_ANNOTATION = re.compile(r"\s+\([^()]*\)$")  # "x.txt (pipe)", "y (retrieve from storage)"

TESTED = ((9, 0), (10, 0))  # the Snakemake versions the tests run on: [9.0, 10.0)
# what the plugin reads from Snakemake's Workflow object; without it nothing is recorded
REQUIRED = ("get_rule", "linemaps", "config", "included")
# facts Snakemake states only in messages
_REMOVING = re.compile(r"^Removing temporary output (.+)\.$", re.S)
# message start → (signal, what happened)
_INTERRUPTS = {
    # KeyboardInterrupt caught by the scheduler
    "Terminating processes on user request": (
        "SIGINT",
        "interrupted by SIGINT (Ctrl-C): Snakemake stopped its running jobs and started no new "
        "ones",
    ),
    # the scheduler's own SIGTERM handler
    "Will exit after finishing currently running jobs": (
        "SIGTERM",
        "terminated by SIGTERM: Snakemake let its running jobs finish and started no new ones",
    ),
}
# signals that kill Snakemake outright where it has no handler of its own (SIGTERM before its
# scheduler starts: while it parses the workflow and builds the DAG)
_FATAL = ("SIGTERM", "SIGHUP")
_DIED = re.compile(r"died with <Signals\.(SIG[A-Z0-9]+)")  # a job's command killed by a signal


def _is_file_or_dir(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISDIR(mode)


def clean_path(name) -> str:
    s = str(name)
    while _ANNOTATION.search(s):
        s = _ANNOTATION.sub("", s)
    return s


def version_warning(version: str) -> str | None:
    """The warning for a Snakemake outside the tested range (None inside it)."""
    try:
        parts = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    except ValueError:
        parts = ()
    if len(parts) == 2 and TESTED[0] <= parts < TESTED[1]:
        return None
    low, high = (".".join(map(str, v)) for v in TESTED)
    return (
        f"flowprov: Snakemake {version} is outside the versions flowprov's logger is tested with "
        f"(>={low}, <{high}); recording anyway — check the records, and report what is wrong"
    )


def missing_internals(wf) -> list[str]:
    """What the plugin reads from Snakemake's Workflow object and this Snakemake lacks."""
    if wf is None:
        return ["snakemake.workflow.workflow"]
    return [f"Workflow.{name}" for name in REQUIRED if not hasattr(wf, name)]


@dataclass
class Job:
    jobid: int
    run_uid: str
    rule: str
    outputs: list[str] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    done: bool = False
    error_known: bool = False  # the job's own error message has been recorded


class Translator:
    def __init__(self, settings, dryrun: bool):
        self.settings = settings
        self.enabled = not dryrun
        self.register_inputs = getattr(settings, "register", "both") in ("both", "inputs")
        self.register_outputs = getattr(settings, "register", "both") in ("both", "outputs")
        self.started = False
        self.closed = False
        self.jobs: dict[int, Job] = {}
        self.job_started_at: dict[int, datetime] = {}
        self.rule_specs: dict = {}
        self.failed_jobs: list[Job] = []
        self.errors: list[str] = []  # workflow-level error messages
        self.pending_errors: list[str] = []  # `error` records not yet matched to a failed job
        self._warned = False
        self.sink = None
        self.roots: list = []
        # the resolved config path of the instance the workflow run is recorded in, pinned as the
        # workflow starts (see pin_instance)
        self.instance: str | None = None
        # set from Snakemake's main thread (see MainThreadWatcher):
        # path → Digest of a temp file, taken just before Snakemake removed it
        self.prehashed: dict = {}
        self.removed: list[str] = []  # temp() files Snakemake said it removes, in order
        # (signal name, what happened) when the workflow was interrupted
        self.interrupted: tuple[str, str] | None = None
        # path → ArtifactRef of the version recorded for it in this run
        self.recorded: dict = {}
        # records Snakemake made (seen in its thread) and records handled here (behind its queue)
        self.seen = 0
        self.handled = 0
        self.jobs_total: int | None = None  # Snakemake's count of the jobs this run needs

    # -- plumbing ----------------------------------------------------------------------------
    def handle(self, record) -> None:
        try:
            self._handle(record)
        finally:
            self.handled += 1

    def _handle(self, record) -> None:
        if not self.enabled:
            return
        event = getattr(record, "event", None)
        if event is None:
            return
        name = getattr(event, "value", str(event))
        method = getattr(self, f"on_{name}", None)
        if method is None:
            return
        try:
            method(record, datetime.fromtimestamp(record.created, UTC))
        except Exception as e:  # noqa: BLE001 - the workflow must never notice us
            self._warn(f"could not record Snakemake's {name} event: {e!r}")

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "flowprov: %s (the workflow is not affected; further problems are not reported)",
                message,
            )

    def _send(self, events, now: bool = False) -> None:
        """Events go to the Sink, which writes them in one transaction about every 0.5 s (a job
        would otherwise cost two small transactions: most of the logger's overhead)."""
        if self.sink is not None:
            self.sink.send(events, buffered=not now)

    def _declared_roots(self) -> list:
        """The storage roots people declared in the instance; files elsewhere are recorded by
        absolute location. (Database unreachable: the instance's default root is still known.)"""
        from flowprov.instance import current

        try:
            inst = current(self.instance)
        except Exception:  # noqa: BLE001 - no instance: the Sink says so and keeps the events
            return []
        try:
            return list(inst.storages().values())
        except Exception:  # noqa: BLE001
            return [inst.storage]

    def pin_instance(self) -> None:
        """Fix the instance the run is recorded in: the one named (--logger-flowprov-instance,
        else FLOWPROV_INSTANCE, then the current one) when the workflow starts. Called from
        Snakemake's own thread as it announces the start (see MainThreadWatcher): this thread,
        behind the queue, may see the start only after a job (a `run:` block under
        --force-use-threads, an `onstart:` handler) has pointed FLOWPROV_INSTANCE elsewhere."""
        if self.instance is not None:
            return
        from flowprov.config import locate_instance_config

        name = self.settings.instance or None
        try:
            self.instance = str(locate_instance_config(name).resolve())
        except Exception:  # noqa: BLE001 - no instance: the Sink says so and keeps the events
            self.instance = name

    def _place(self, name) -> tuple[str, object] | None:
        """(path or URL, Digest already taken or None) of a file Snakemake names; None for what
        is not there to hash (a pipe, a deleted temp file never hashed, an output not made)."""
        from flowprov.storage import is_url

        path = clean_path(name)
        if is_url(path):
            return path, None
        path = os.path.join(self.workdir, path)
        if _is_file_or_dir(path):
            return path, None
        digest = self.prehashed.get(path)  # a temp file Snakemake has deleted since
        return (path, digest) if digest is not None else None

    def _file_events(self, names, at, *, made_by=None, read_by=None) -> list:
        """Events of the files that exist: registered as `made_by`'s outputs, or as `read_by`'s
        inputs (each naming exactly the place and version read)."""
        from flowprov.artifacts import in_place_event, input_events, ref_of
        from flowprov.errors import FileMissingError

        def make(path, digest):
            kw = dict(roots=self.roots, created_by=self.user, at=at, ignore=_MARKERS, digest=digest)
            if read_by is not None:
                return input_events(path, run=read_by, **kw)
            return [in_place_event(path, run=made_by, **kw)]

        events = []
        for name in names:
            found = self._place(name)
            if found is None:
                continue
            path, digest = found
            try:
                try:
                    evs = make(path, digest)
                except FileMissingError:
                    # removed as a temp file while we looked: hashed just before (see the watcher)
                    if path not in self.prehashed:
                        raise
                    evs = make(path, self.prehashed[path])
            except Exception as e:  # noqa: BLE001 - unreadable file: record the rest
                self._warn(f"could not hash {path}: {e}")
                continue
            self.recorded[path] = ref_of(evs[0])
            events += evs
        return events

    # -- the workflow ------------------------------------------------------------------------
    def on_workflow_started(self, r, at) -> None:
        from flowprov.config import current_user_config
        from flowprov.events import RunStarted, jsonable
        from flowprov.spool import Sink
        from flowprov.uids import RUN_UID, random_uid

        wf = _workflow()
        missing = missing_internals(wf)
        if missing:
            self.enabled = False
            log.warning(
                "flowprov: this Snakemake (%s) lacks what flowprov's logger reads (%s): the "
                "workflow runs, but is not recorded",
                getattr(r, "snakemake_version", None) or snakemake_version(),
                ", ".join(missing),
            )
            return
        self.workdir = os.getcwd()
        self.pin_instance()  # if Snakemake's thread has not already
        self.roots = self._declared_roots()
        self.user = current_user_config().handle
        self.wf_id = str(getattr(r, "workflow_id", "")) or random_uid(RUN_UID)
        self.wf_run_uid = random_uid(RUN_UID)
        spool = self.settings.spool or os.path.join(
            self.workdir, ".snakemake", "flowprov-spool.jsonl"
        )
        self.sink = Sink(spool, source="snakemake", instance=self.instance)
        self.wf_spec = self._workflow_spec(r, wf)
        from .software import Software

        # (the Sink sends each environment in full once, then by its digest)
        self.software = Software(
            wf,
            roots=self.roots,
            user=self.user,
            snakemake_version=snakemake_version(),
            warn=self._warn,
        )
        env, env_events = self.software.workflow_environment(self.snakefiles, at)
        config = jsonable(wf.config or {})
        self.runtime = {
            "snakemake": getattr(r, "snakemake_version", None) or snakemake_version(),
            "host": getattr(r, "host", None),
            # older Snakemake 9 releases do not report the command line: this process's is it
            "cmd": getattr(r, "cmd", None) or shlex.join(sys.argv),
            "configfiles": jsonable(getattr(r, "configfiles", []) or []),
            "workdir": self.workdir,
            # who runs it, for `flowprov status` to tell a killed Snakemake from a running one
            "liveness": process_facts(),
        }
        self.started = True
        from flowprov.openlineage.emitter import expect_many

        expect_many()  # a workflow tells many runs: OpenLineage's sender starts now, if any
        self._send(
            [
                *env_events,
                RunStarted(
                    uid=self.wf_run_uid,
                    transform=self.wf_spec,
                    engine=ENGINE,
                    reference=self.wf_id,
                    reference_type="snakemake workflow_id",
                    params=config,
                    runtime=self.runtime,
                    environment=env,
                    name=self.runtime["cmd"][:255],
                    created_by=self.user,
                    at=at,
                ),
            ],
            now=True,  # the workflow run is visible in the store as soon as it starts
        )
        keep_alive(self.sink, self.wf_run_uid)

    # -- how many jobs: Snakemake's job stats, then its progress (a checkpoint may add jobs) --
    def on_run_info(self, r, at) -> None:
        stats = getattr(r, "stats", None)
        if isinstance(stats, dict):
            self._jobs_total(stats.get("total"), at)

    def on_progress(self, r, at) -> None:
        self._jobs_total(getattr(r, "total", None), at)

    def _jobs_total(self, total, at) -> None:
        """Sent only when it changes (once, for most workflows): no work per job."""
        from flowprov.events import RunAlive, RunRef

        if not self.started or not isinstance(total, int) or total == self.jobs_total:
            return
        self.jobs_total = total
        run = RunRef(uid=self.wf_run_uid)
        self._send([RunAlive(run=run, runtime={"jobs_total": total}, at=at)])

    def _workflow_spec(self, r, wf):
        from flowprov.context import project_key
        from flowprov.events import TransformSpec
        from flowprov.store import source_hash

        cwd = getattr(r, "cwd", None) or self.workdir
        main = Path(
            cwd, str(getattr(r, "snakefile_main", None) or getattr(r, "snakefile", "Snakefile"))
        ).resolve()
        files = {main}
        self.snakefiles = [main]
        for sf in wf.included:
            try:
                p = (
                    Path(sf.get_path_or_uri(secret_free=True))
                    if hasattr(sf, "get_path_or_uri")
                    else Path(str(sf))
                )
            except Exception:  # noqa: BLE001 - remote includes: skipped from the hash
                continue
            if p.is_file():
                files.add(p.resolve())
                self.snakefiles.append(p.resolve())
        parts = []
        for p in sorted(files):
            parts.append(f"# {os.path.relpath(p, main.parent)}\n{p.read_text(errors='replace')}")
        code = main.read_text(errors="replace") if main.is_file() else None
        name = self.settings.name or _workflow_name(main, Path(self.workdir))
        return TransformSpec(
            name=name,
            type="pipeline",
            # as for scripts: the repository's remote + the path in it, else the absolute
            # location — never the file name alone (every workflow has a "Snakefile")
            key=project_key(main),
            version=self.settings.version,
            source_code=code,
            hash=source_hash("\n".join(parts)),
            reference=self.settings.reference,
            reference_type="url" if self.settings.reference else None,
        )

    def _rule_spec(self, rule: str):
        spec = self.rule_specs.get(rule)
        if spec is None:
            from flowprov.events import TransformSpec

            code = _rule_code(rule)
            spec = TransformSpec(
                name=rule,
                type="rule",
                key=f"{self.wf_spec.key}:{rule}",
                source_code=code,
                parent=self.wf_spec,
            )
            self.rule_specs[rule] = spec
        return spec

    # -- jobs --------------------------------------------------------------------------------
    def on_job_started(self, r, at) -> None:
        for jid in getattr(r, "jobs", None) or []:
            self.job_started_at[int(jid)] = at

    def on_job_info(self, r, at) -> None:
        from flowprov.events import RunRef, RunStarted, jsonable
        from flowprov.uids import RUN_UID, random_uid

        if not self.started:
            return
        jid = int(r.jobid)
        if jid in self.jobs:
            return
        job = Job(
            jid,
            random_uid(RUN_UID),
            r.rule_name,
            list(getattr(r, "output", []) or []),
            list(getattr(r, "log", []) or []),
        )
        self.jobs[jid] = job
        resources = getattr(r, "resources", None)
        params = {
            "wildcards": jsonable(getattr(r, "wildcards", {}) or {}),
            "threads": getattr(r, "threads", None),
            "resources": {
                k: v
                for k, v in (jsonable(resources) if resources is not None else {}).items()
                if not k.startswith("_")
            },
            "shellcmd": getattr(r, "shellcmd", None),
            "reason": str(getattr(r, "reason", "") or "") or None,
            "local": getattr(r, "local", None),
            "is_checkpoint": getattr(r, "is_checkpoint", None),
        }
        env, events, runtime = self.software.job_environment(
            jid, job.rule, getattr(r, "wildcards", None), at
        )
        events = [
            *events,
            RunStarted(
                uid=job.run_uid,
                transform=self._rule_spec(job.rule),
                parent=RunRef(uid=self.wf_run_uid),
                engine=ENGINE,
                reference=f"{self.wf_id}/{jid}",
                reference_type="snakemake jobid",
                params=params,
                environment=env,
                runtime=runtime,
                name=f"{job.rule} {jid}",
                created_by=self.user,
                at=self.job_started_at.pop(jid, at),
            ),
        ]
        if self.register_inputs:
            inputs = getattr(r, "input", []) or []
            events += self._file_events(inputs, at, read_by=RunRef(uid=job.run_uid))
        self._send(events)

    def _finish(self, job: Job, at, status: str = "completed", error: str | None = None) -> None:
        """A job's end: its outputs if it completed; its logs however it ended (the first thing
        anyone opens when a job failed)."""
        from flowprov.events import RunFinished, RunRef

        run_ref = RunRef(uid=job.run_uid)
        events = []
        if self.register_outputs:
            files = job.outputs + job.logs if status == "completed" else job.logs
            events = self._file_events(files, at, made_by=run_ref)
        events.append(
            RunFinished(run=run_ref, status=status, error=error, created_by=self.user, at=at)
        )
        job.done = True
        self._send(events)

    def on_job_finished(self, r, at) -> None:
        job = self.jobs.get(int(getattr(r, "job_id", -1)))
        if job is not None and not job.done:
            self._finish(job, at)

    def on_job_error(self, r, at) -> None:
        job = self.jobs.get(int(getattr(r, "jobid", -1)))
        if job is None or job.done:
            return
        # Snakemake logs the reason (e.g. "... returned non-zero exit status 3") as an `error`
        # record, usually just before the job_error it explains; sometimes just after.
        if self.pending_errors:
            text, job.error_known = self.pending_errors.pop(), True
        else:
            text = f"{r.getMessage()}\nshell: {getattr(r, 'shellcmd', None) or ''}".strip()
        self.failed_jobs.append(job)
        self._finish(job, at, _job_status(text), text)

    def on_group_error(self, r, at) -> None:
        for info in getattr(r, "job_error_info", None) or []:
            jid = info.get("jobid") if isinstance(info, dict) else None
            job = self.jobs.get(int(jid)) if jid is not None else None
            if job is not None and not job.done:
                self.failed_jobs.append(job)
                self._finish(job, at, "failed", r.getMessage())

    def on_error(self, r, at) -> None:
        from flowprov.events import RunFinished, RunRef

        text = r.getMessage()
        if getattr(r, "exception", None) == "KeyboardInterrupt":  # outside the scheduler's loop
            if self.interrupted is None:
                self.interrupted = ("SIGINT", "interrupted by SIGINT (Ctrl-C)")
            return
        unexplained = [j for j in self.failed_jobs if not j.error_known]
        if unexplained and "did not complete successfully" not in text:
            job = unexplained[-1]  # the message came after the job_error it explains
            job.error_known = True
            self._send(
                [
                    RunFinished(
                        run=RunRef(uid=job.run_uid),
                        status=_job_status(text),
                        error=text,
                        created_by=self.user,
                        at=at,
                    )
                ]
            )
        else:
            self.pending_errors.append(text)  # for the next job_error, else for the workflow

    # -- the end -----------------------------------------------------------------------------
    def close(self) -> None:
        """The workflow's end (Snakemake may call this twice: the second time does nothing)."""
        if not self.enabled or not self.started or self.closed:
            return
        self.closed = True
        let_go(self.wf_run_uid)
        try:
            from flowprov.events import RunFinished, RunRef, now

            at = now()
            self.errors += self.pending_errors  # messages no job claimed are the workflow's
            self.pending_errors = []
            signal, ending = self.interrupted or (None, None)
            workflow_failed = bool(self.failed_jobs or self.errors)
            for job in self.jobs.values():
                if job.done:
                    continue
                # no job_finished (e.g. under -q): a job whose outputs exist (or existed until
                # Snakemake removed them as temp files) finished; else it was cut off
                outputs_there = all(self._place(o) is not None for o in job.outputs)
                if signal is not None:
                    self._finish(job, at, "aborted", f"{ending} (this job unfinished)")
                elif outputs_there and not workflow_failed:
                    self._finish(job, at)
                else:
                    self._finish(job, at, "aborted", "Snakemake ended before this job finished")
            self._send(self._removed_events(at))
            runtime = None
            if signal is not None:
                status = "aborted"
                error = "\n".join([ending, *self.errors])
                runtime = {**self.runtime, "exit": {"signal": signal}}
                if self.jobs_total is not None:
                    runtime["jobs_total"] = self.jobs_total
            else:
                status = "failed" if workflow_failed else "completed"
                error = "\n".join(self.errors) or (
                    f"{len(self.failed_jobs)} job(s) failed" if self.failed_jobs else None
                )
            self._send(
                [
                    RunFinished(
                        run=RunRef(uid=self.wf_run_uid),
                        status=status,
                        error=error,
                        runtime=runtime,
                        created_by=self.user,
                        at=at,
                    )
                ],
                now=True,
            )
            self.sink.close()  # its journal goes once everything is in the store
        except Exception as e:  # noqa: BLE001
            self._warn(f"could not close the workflow run: {e!r}")

    def _removed_events(self, at) -> list:
        """ArtifactRemoved for each temp() file Snakemake said it removed and that is gone now:
        deleted on purpose, not missing. The version named is the one recorded in this run (or,
        for a temp file an earlier run made, the one hashed just before Snakemake removed it)."""
        from flowprov.artifacts import in_place_event, ref_of
        from flowprov.events import ArtifactRemoved, RunRef

        if not (self.register_inputs or self.register_outputs):
            return []
        events = []
        for path in dict.fromkeys(self.removed):
            if os.path.lexists(path):
                continue  # made again since, or not removed after all
            ref = self.recorded.get(path)
            if ref is None and path in self.prehashed:
                reg = in_place_event(
                    path,
                    roots=self.roots,
                    created_by=self.user,
                    at=at,
                    digest=self.prehashed[path],
                )
                events.append(reg)
                ref = ref_of(reg)
            if ref is not None:
                events.append(
                    ArtifactRemoved(
                        artifact=ref,
                        reason="temp",
                        run=RunRef(uid=self.wf_run_uid),
                        created_by=self.user,
                        at=at,
                    )
                )
        return events


class MainThreadWatcher(logging.Handler):
    """Sees Snakemake's log records as they are made, in Snakemake's own thread.

    Plugin handlers run behind a queue, in a thread that may lag behind the scheduler: by the
    time it sees a job finish, Snakemake may already have deleted that job's temp() outputs. This
    handler sits directly on Snakemake's logger (synchronous): when Snakemake announces that it
    removes a temp file, the file is hashed before it goes (only those: hashing every output here
    would hold up Snakemake's scheduler). It also notes what Snakemake says only in words (a temp
    file removed, an interrupt), and which instance is named as the workflow starts. All
    recording stays in the Translator.
    """

    def __init__(self, translator: Translator):
        super().__init__()
        self.translator = translator

    def emit(self, record) -> None:
        self.translator.seen += 1
        if not self.translator.enabled:
            return
        event = getattr(record, "event", None)
        try:
            if event is not None:
                if getattr(event, "value", event) == "workflow_started":
                    # the instance named now, before any job can point FLOWPROV_INSTANCE elsewhere
                    self.translator.pin_instance()
            elif isinstance(record.msg, str):
                self._message(record.getMessage())
        except Exception:  # noqa: BLE001 - the file is then recorded as missing, not removed
            pass

    def _message(self, text: str) -> None:
        removing = _REMOVING.match(text)
        if removing:
            from flowprov.storage import is_url

            name = clean_path(removing.group(1))
            if is_url(name):
                return  # a storage plugin's file: Snakemake removes its local copy only
            path = os.path.join(os.getcwd(), name)
            if path not in self.translator.prehashed:
                self._hash(path)
            self.translator.removed.append(path)
            return
        for start, interrupt in _INTERRUPTS.items():
            if text.startswith(start) and self.translator.interrupted is None:
                self.translator.interrupted = interrupt

    def _hash(self, path: str) -> None:
        from flowprov.hashing import hash_path

        if _is_file_or_dir(path):
            self.translator.prehashed[path] = hash_path(path, ignore=_MARKERS)


def watch_fatal_signals(translator: Translator) -> None:
    """Record the workflow's end before a signal kills Snakemake outright (SIGTERM before its
    scheduler installs its own handler, SIGHUP), then die of it as before. Only where the
    default action is in place: a handler someone installed is left alone, and Snakemake's own
    SIGTERM handler replaces this one when its scheduler starts. Main thread only."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not translator.enabled:
        return
    for name in _FATAL:
        signum = getattr(signal, name, None)
        if signum is None or signal.getsignal(signum) is not signal.SIG_DFL:
            continue
        try:
            signal.signal(signum, lambda n, _frame: _die_recorded(translator, n))
        except (ValueError, OSError):  # not the main interpreter
            return


def _die_recorded(translator: Translator, signum: int) -> None:
    import signal

    name = signal.Signals(signum).name
    try:
        # what Snakemake logged before the signal is still on its way to the Translator (behind
        # Snakemake's queue, in another thread): let it arrive, briefly
        deadline = time.monotonic() + 5
        while translator.handled < translator.seen and time.monotonic() < deadline:
            time.sleep(0.01)
        if translator.interrupted is None:
            translator.interrupted = (name, f"terminated by {name}")
        translator.close()
    finally:
        signal.signal(signum, signal.SIG_DFL)  # die of the signal, as without flowprov
        os.kill(os.getpid(), signum)


def _job_status(error: str) -> str:
    """A job whose command was killed by a signal was aborted; otherwise it failed."""
    return "aborted" if _DIED.search(error or "") else "failed"


def _workflow():
    try:
        import snakemake.workflow as smw
    except ImportError:
        return None
    return getattr(smw, "workflow", None)


def snakemake_version() -> str:
    try:
        import snakemake

        return str(snakemake.__version__)
    except Exception:  # noqa: BLE001
        return "unknown"


def _workflow_name(snakefile: Path, workdir: Path) -> str:
    """The folder that holds the workflow: its git repository, else the working directory."""
    for parent in snakefile.parents:
        if (parent / ".git").exists():
            return parent.name
    return workdir.name


def _rule_code(rule: str) -> str | None:
    """What defines a rule's behaviour: its shell template, run block, script, notebook or wrapper."""
    wf = _workflow()
    if wf is None:
        return None
    try:
        r = wf.get_rule(rule)
    except Exception:  # noqa: BLE001
        return None
    parts = []
    if getattr(r, "shellcmd", None):  # (shell rules also have a generated run_func_src)
        parts.append(f"shell: {r.shellcmd}")
    elif getattr(r, "run_func_src", None):
        parts.append(_run_block(r, wf) or f"run:\n{r.run_func_src}")
    for kind in ("script", "notebook"):
        ref = getattr(r, kind, None)
        if ref:
            parts.append(f"{kind}: {ref}")
            base = Path(str(getattr(r, "basedir", "") or Path(str(r.snakefile)).parent))
            path = Path(str(ref)) if os.path.isabs(str(ref)) else base / str(ref)
            if path.is_file():
                parts.append(path.read_text(errors="replace"))
    if getattr(r, "wrapper", None):
        parts.append(f"wrapper: {r.wrapper}")
    return "\n".join(parts) or None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _run_block(rule, wf) -> str | None:
    """A rule's `run:` block exactly as written in its Snakefile, comments and blank lines
    included. (Snakemake's own run_func_src repeats lines that compile to several instructions —
    `with ...:`, a call spanning lines — and drops comments and `else:`.) None when it cannot be
    found for sure (a remote or generated Snakefile): the caller falls back to Snakemake's text."""
    try:
        code = rule.run_func.__code__
        linemap = wf.linemaps[code.co_filename]
        lines = Path(code.co_filename).read_text().splitlines()
        start = linemap[rule.lineno] - 1  # the `rule name:` line, 0-based
        # the Snakefile lines the function's instructions come from (not the `rule` line itself)
        used = {linemap[n] - 1 for off, n in dis.findlinestarts(code) if off and n in linemap}
    except Exception:  # noqa: BLE001
        return None
    rule_indent = _indent(lines[start])
    for i in range(start + 1, len(lines)):
        text = lines[i]
        if text.strip() and _indent(text) <= rule_indent:
            return None  # the rule ended without a run: line
        if not text.lstrip().startswith("run:"):
            continue
        rest = text.split("run:", 1)[1].strip()
        if rest and not rest.startswith("#"):  # `run: statement` on one line
            block = [text.lstrip()]
            end = i
        else:
            end = i
            for j in range(i + 1, len(lines)):
                if lines[j].strip() and _indent(lines[j]) <= _indent(text):
                    break
                end = j
            while end > i and not lines[end].strip():
                end -= 1  # blank lines after the block belong to no one
            block = ["run:", *lines[i + 1 : end + 1]]
        if used and not (min(used) >= i and max(used) <= end):
            return None  # the instructions come from elsewhere: not this block
        return "\n".join(block)
    return None
