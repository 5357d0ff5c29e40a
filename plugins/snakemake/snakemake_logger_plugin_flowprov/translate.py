"""Snakemake log records → flowprov events.

Facts of Snakemake 9 this relies on (checked on 9.27): `workflow_started` opens the workflow;
`job_started` (a batch of job ids) comes before each job's `job_info`; `job_finished` carries
`job_id` and is not emitted at all under `-q`; `job_error` has no exit code, the message comes in
a separate `error` record; there is no workflow-finished record, `close()` is called at shutdown;
file names may carry annotations such as " (pipe)"; `resources` is a Namedlist.

The rule's code (shell template, run block, script, wrapper) and the workflow's config and
included files come from the Workflow object Snakemake keeps as `snakemake.workflow.workflow`.
Everything here is defensive: an exception is logged once and the workflow carries on.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flowprov.hashing import ENGINE_MARKERS

log = logging.getLogger("flowprov")
ENGINE = "snakemake"
_MARKERS = ENGINE_MARKERS  # Snakemake's marker inside directory() outputs; not part of the data
_ANNOTATION = re.compile(r"\s+\([^()]*\)$")  # "x.txt (pipe)", "y (retrieve from storage)"


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
        self.jobs: dict[int, Job] = {}
        self.job_started_at: dict[int, datetime] = {}
        self.rule_specs: dict = {}
        self.failed_jobs: list[Job] = []
        self.errors: list[str] = []  # workflow-level error messages
        self.pending_errors: list[str] = []  # `error` records not yet matched to a failed job
        self._warned = False
        self.sink = None
        # path → Digest taken in Snakemake's main thread when the job finished (see OutputHasher)
        self.prehashed: dict = {}

    # -- plumbing ----------------------------------------------------------------------------
    def handle(self, record) -> None:
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

    def _file_events(self, names, run_ref, at) -> tuple[list, list[str]]:
        """ArtifactRegistered events for the files that exist; hashes in the same order."""
        from flowprov.artifacts import in_place_event
        from flowprov.storage import is_url

        events, hashes = [], []
        for name in names:
            path = clean_path(name)
            digest = None
            if not is_url(path):
                path = os.path.join(self.workdir, path)
                digest = self.prehashed.get(
                    path
                )  # also serves consumers of since-deleted temp files
                if digest is None and not _is_file_or_dir(path):
                    continue  # a pipe, a deleted temp file, an output that was not made
            try:
                ev = in_place_event(
                    path,
                    roots=self.roots,
                    run=run_ref,
                    created_by=self.user,
                    at=at,
                    ignore=_MARKERS,
                    digest=digest,
                )
            except Exception as e:  # noqa: BLE001 - unreadable file: record the rest
                self._warn(f"could not hash {path}: {e}")
                continue
            events.append(ev)
            hashes.append(ev.hash)
        return events, hashes

    # -- the workflow ------------------------------------------------------------------------
    def on_workflow_started(self, r, at) -> None:
        from flowprov.config import current_user_config
        from flowprov.events import RunStarted, StorageDeclared, jsonable
        from flowprov.spool import Sink
        from flowprov.storage import StorageRoot
        from flowprov.uids import RUN_UID, random_uid

        self.workdir = os.getcwd()
        self.roots = [StorageRoot(self.workdir)]
        self.user = current_user_config().handle
        self.wf_id = str(getattr(r, "workflow_id", "")) or random_uid(RUN_UID)
        self.wf_ref = None
        self.wf_run_uid = random_uid(RUN_UID)
        spool = self.settings.spool or os.path.join(
            self.workdir, ".snakemake", "flowprov-spool.jsonl"
        )
        self.sink = Sink(spool, source="snakemake", instance=self.settings.instance or None)
        self.wf_spec = self._workflow_spec(r)
        wf = _workflow()
        config = jsonable(getattr(wf, "config", {}) or {}) if wf is not None else {}
        environment = {
            "snakemake": getattr(r, "snakemake_version", None),
            "python": (getattr(r, "python_version", "") or "").split()[0] or None,
            "platform": getattr(r, "platform", None),
            "host": getattr(r, "host", None),
            "cmd": getattr(r, "cmd", None),
            "configfiles": jsonable(getattr(r, "configfiles", []) or []),
            "workdir": self.workdir,
        }
        self.started = True
        self._send(
            [
                StorageDeclared(
                    root=self.workdir,
                    description="Snakemake working directory",
                    created_by=self.user,
                    at=at,
                ),
                RunStarted(
                    uid=self.wf_run_uid,
                    transform=self.wf_spec,
                    engine=ENGINE,
                    reference=self.wf_id,
                    reference_type="snakemake workflow_id",
                    params=config,
                    environment=environment,
                    name=getattr(r, "cmd", None) and str(r.cmd)[:255],
                    created_by=self.user,
                    at=at,
                ),
            ],
            now=True,  # the workflow run is visible in the store as soon as it starts
        )

    def _workflow_spec(self, r):
        from flowprov.context import project_key
        from flowprov.events import TransformSpec
        from flowprov.store import source_hash

        cwd = getattr(r, "cwd", None) or self.workdir
        main = Path(
            cwd, str(getattr(r, "snakefile_main", None) or getattr(r, "snakefile", "Snakefile"))
        ).resolve()
        files = {main}
        wf = _workflow()
        for sf in getattr(wf, "included", ()) if wf is not None else ():
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
        parts = []
        for p in sorted(files):
            parts.append(f"# {os.path.relpath(p, main.parent)}\n{p.read_text(errors='replace')}")
        code = main.read_text(errors="replace") if main.is_file() else None
        key = project_key(main, within=Path(self.workdir))
        name = self.settings.name or _workflow_name(main, Path(self.workdir))
        return TransformSpec(
            name=name,
            type="pipeline",
            key=key,
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
        from flowprov.events import ArtifactRef, ArtifactUsed, RunRef, RunStarted, jsonable
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
        run_ref = RunRef(uid=job.run_uid)
        events = [
            RunStarted(
                uid=job.run_uid,
                transform=self._rule_spec(job.rule),
                parent=RunRef(uid=self.wf_run_uid),
                engine=ENGINE,
                reference=f"{self.wf_id}/{jid}",
                reference_type="snakemake jobid",
                params=params,
                name=f"{job.rule} {jid}",
                created_by=self.user,
                at=self.job_started_at.pop(jid, at),
            )
        ]
        if self.register_inputs:
            regs, hashes = self._file_events(getattr(r, "input", []) or [], None, at)
            events += regs
            events += [
                ArtifactUsed(run=run_ref, artifact=ArtifactRef(hash=h), created_by=self.user, at=at)
                for h in hashes
            ]
        self._send(events)

    def _finish(self, job: Job, at, status: str = "completed", error: str | None = None) -> None:
        from flowprov.events import RunFinished, RunRef

        run_ref = RunRef(uid=job.run_uid)
        events = []
        if status == "completed" and self.register_outputs:
            events, _ = self._file_events(job.outputs + job.logs, run_ref, at)
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
        self._finish(job, at, "failed", text)

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
        unexplained = [j for j in self.failed_jobs if not j.error_known]
        if unexplained and "did not complete successfully" not in text:
            job = unexplained[-1]  # the message came after the job_error it explains
            job.error_known = True
            self._send(
                [
                    RunFinished(
                        run=RunRef(uid=job.run_uid),
                        status="failed",
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
        if not self.enabled or not self.started:
            return
        try:
            from flowprov.events import RunFinished, RunRef, now

            at = now()
            self.errors += self.pending_errors  # messages no job claimed are the workflow's
            workflow_failed = bool(self.failed_jobs or self.errors)
            for job in self.jobs.values():
                if job.done:
                    continue
                # no job_finished (e.g. under -q): a job whose outputs exist finished; else it was cut off
                outputs_there = all(
                    os.path.exists(os.path.join(self.workdir, clean_path(o))) for o in job.outputs
                )
                if outputs_there and not workflow_failed:
                    self._finish(job, at)
                else:
                    self._finish(job, at, "aborted", "Snakemake ended before this job finished")
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
                        created_by=self.user,
                        at=at,
                    )
                ],
                now=True,
            )
        except Exception as e:  # noqa: BLE001
            self._warn(f"could not close the workflow run: {e!r}")


class OutputHasher(logging.Handler):
    """Hashes each finished job's outputs in Snakemake's main thread, before Snakemake moves on.

    Plugin handlers run behind a queue, in a thread that may lag behind the scheduler; by the time
    it sees a job finish, Snakemake may already have deleted that job's temp() outputs. This
    handler sits directly on Snakemake's logger (synchronous), so it hashes them while they exist.
    It only hashes; all recording stays in the Translator.
    """

    def __init__(self, translator: Translator):
        super().__init__()
        self.translator = translator
        self.outputs: dict[int, list[str]] = {}

    def emit(self, record) -> None:
        event = getattr(getattr(record, "event", None), "value", None)
        if event not in ("job_info", "job_finished") or not self.translator.enabled:
            return
        try:
            if event == "job_info":
                self.outputs[int(record.jobid)] = list(getattr(record, "output", []) or [])
                return
            from flowprov.hashing import hash_path

            for name in self.outputs.pop(int(getattr(record, "job_id", -1)), []):
                path = os.path.join(os.getcwd(), clean_path(name))
                if _is_file_or_dir(path):
                    self.translator.prehashed[path] = hash_path(path, ignore=_MARKERS)
        except Exception:  # noqa: BLE001 - the Translator hashes (or warns) later instead
            pass


def _workflow():
    try:
        import snakemake.workflow as smw
    except ImportError:
        return None
    return getattr(smw, "workflow", None)


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
        parts.append(f"run:\n{r.run_func_src}")
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
