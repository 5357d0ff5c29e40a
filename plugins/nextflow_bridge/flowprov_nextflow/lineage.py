"""Nextflow's data-lineage store (`nextflow lineage`, records `lineage/v1beta1`) → events.

Read: WorkflowRun (the pipeline run, by its `lid://`), TaskRun (a task, by its full hash — the
key a trace with its work directory gives it, so both sources make one run), FileOutput (a file),
TaskOutput and WorkflowOutput (only their times). Every other record — an AgentRun, an unknown
kind, a FileOutput neither reachable nor checksummed — is listed in `IngestReport.not_ingested`
with the reason.

Places: a reachable file is hashed in full and recorded where it is (inside a declared root by
its relative path, else by its absolute location under the host root); an unreachable one is
recorded at its absolute location with Nextflow's checksum standing in (`hash_type`
`nextflow-<mode>`). No folder becomes a storage root.

Copies: a published FileOutput's `source` names the task output it was copied from. The copy is
recorded with no producer of its own, so the store joins it to the task output by equal content.
Nextflow's default ("standard") checksum fingerprints a file's path, size and modification time,
not its bytes, so it never matches across places: when flowprov cannot hash both files, the one
it cannot hash is given the other's content hash — Nextflow's record says one is a copy of the
other — provided the sizes Nextflow recorded agree, and agree with the file that is there now.
Each file keeps its own Nextflow checksum beside (`artifact.checksums["nextflow"]`).

Software: a task's environment is its TaskRun's container, conda and spack environments and
architecture, with the container engine and Nextflow version its WorkflowRun's metadata names;
a conda prefix that exists here adds its resolved packages, and a work folder that is here (found
from its outputs' paths) its .command.run and versions.yml (software.py). A pipeline run's
environment is Nextflow itself, when the metadata gives its version.

Times come from the records: a file's `createdAt`; a task runs from its first output's
`createdAt` (Nextflow records no start time) to its TaskOutput's `createdAt`, else its last
output's `modifiedAt`; a pipeline run spans its records. A run with no evidence of its end (a
TaskRun without outputs, a WorkflowRun without status or WorkflowOutput) stays `started`, and the
report says so.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flowprov.errors import ValidationError

from .ingest import ENGINE, IngestReport
from .mapping import Mapping
from .software import Environments, Wrapper
from .trace import split_name

_TASK_KEY = re.compile(r"^[0-9a-f]{32}$")
_WF_STATUS = {"SUCCEEDED": "completed", "FAILED": "failed", "CANCELLED": "cancelled"}
_KNOWN = {"WorkflowRun", "TaskRun", "FileOutput", "TaskOutput", "WorkflowOutput"}
_WHY_NOT = {
    "AgentRun": "an AgentRun record (an AI agent's run inside the pipeline): flowprov does not "
    "record agent runs",
}


def read_lineage(store: Path) -> dict[str, dict]:
    """{lid key: record} of a lineage store: `<store>/<key>/.data.json`, or under `.meta/` as
    later Nextflow versions keep them (a key may contain '/')."""
    if not store.is_dir():
        raise ValidationError(f"--lineage {store}: no such folder")
    base = store / ".meta" if (store / ".meta").is_dir() else store
    records = {}
    for data in sorted(base.rglob(".data.json")):
        key = data.parent.relative_to(base).as_posix()
        try:
            rec = json.loads(data.read_text())
        except (OSError, ValueError) as e:
            raise ValidationError(f"{data}: not a lineage record ({e})") from None
        if not isinstance(rec, dict) or "kind" not in rec or not isinstance(rec.get("spec"), dict):
            raise ValidationError(f"{data}: not a lineage record (no kind/spec)")
        records[key] = rec
    if not records:
        raise ValidationError(f"--lineage {store}: no lineage records (.data.json) found")
    return records


def _lid(key: str) -> str:
    return f"lid://{key}"


def _key(lid) -> str | None:
    return (
        lid[len("lid://") :].strip("/")
        if isinstance(lid, str) and lid.startswith("lid://")
        else None
    )


def _when(value) -> datetime | None:
    """A record's time (ISO-8601 with its offset) in UTC, the way the store keeps times."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when.astimezone(UTC) if when is not None and when.tzinfo is not None else None


def _local(path) -> str | None:
    """A local path from a record's path (`file:///x` or `/x`); None for other URLs."""
    if not isinstance(path, str) or not path:
        return None
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def _checksum(spec: dict) -> dict | None:
    c = spec.get("checksum")
    return c if isinstance(c, dict) and c.get("value") else None


def _engine(workflow: dict) -> tuple[str | None, str | None]:
    """(Nextflow's version, the container engine) a WorkflowRun's metadata names."""
    meta = workflow.get("metadata") if isinstance(workflow, dict) else None
    if not isinstance(meta, dict):
        return None, None
    nxf = meta.get("nextflow")
    version = nxf.get("version") if isinstance(nxf, dict) else None
    engine = meta.get("containerEngine")
    return (
        str(version) if version else None,
        str(engine) if isinstance(engine, str) and engine else None,
    )


def _task_dir(key: str, files: list) -> Path | None:
    """A task's work folder, when it is here: the `<2 hex>/<30 hex>` folder of its key that its
    outputs' paths lie in (a TaskRun's key is its hash)."""
    if not _TASK_KEY.match(key):
        return None
    part = f"/{key[:2]}/{key[2:]}"
    for f in files:
        path = _local(f.spec.get("path"))
        if path and part in path:
            d = Path(path[: path.index(part) + len(part)])
            return d if d.is_dir() else None
    return None


def task_reference(key: str) -> str:
    """A TaskRun's lid key is the task's full hash: `862df5…` → `86/2df5…` (as in a trace)."""
    return f"{key[:2]}/{key[2:]}" if _TASK_KEY.match(key) else _lid(key)


@dataclass
class _File:
    key: str
    spec: dict
    event: object = None  # its ArtifactRegistered
    reachable: bool = False
    copies: list[str] = field(default_factory=list)  # keys of files copied from this one


class _Ingest:
    def __init__(self, base: Path, records: dict, rules: Mapping, pipeline, version, report):
        from flowprov.instance import current

        self.base, self.rules, self.report = base, rules, report
        self.pipeline, self.version = pipeline, version
        self.roots = list(current().storages().values())
        self.by_kind: dict[str, dict[str, dict]] = {}
        for key, rec in records.items():
            kind = rec["kind"]
            if kind in _KNOWN:
                self.by_kind.setdefault(kind, {})[key] = rec["spec"]
            else:
                why = _WHY_NOT.get(kind, f"a {kind} record: flowprov does not read this kind")
                report.not_ingested.append(f"{_lid(key)}: {why}")
        self.workflows = self.by_kind.get("WorkflowRun", {})
        self.wf_refs: dict[str, str] = {}  # WorkflowRun lid → the recorded run's reference
        self.wf_transforms: dict[str, tuple[str, str]] = {}  # launch ref → (transform uid, key)
        self.envs = Environments()
        self.tasks = self.by_kind.get("TaskRun", {})
        self.files = {k: _File(k, s) for k, s in self.by_kind.get("FileOutput", {}).items()}
        self.files_of: dict[str, list[_File]] = {}  # task or workflow lid → its FileOutputs
        for f in self.files.values():
            for lid in {f.spec.get("taskRun"), f.spec.get("workflowRun")} - {None}:
                self.files_of.setdefault(lid, []).append(f)
        self.ended = {  # lid → createdAt of its TaskOutput / WorkflowOutput: it ended then
            s.get("taskRun") or s.get("workflowRun"): _when(s.get("createdAt"))
            for kind in ("TaskOutput", "WorkflowOutput")
            for s in self.by_kind.get(kind, {}).values()
        }

    # -- times -------------------------------------------------------------------------------
    def _span(self, files: list[_File], ended) -> tuple[datetime | None, datetime | None]:
        starts = [t for f in files if (t := _when(f.spec.get("createdAt")))]
        ends = [t for f in files if (t := _when(f.spec.get("modifiedAt")))]
        start = min(starts + ([ended] if ended else []), default=None)
        return start, ended or max(ends, default=None)

    def _mtime(self, key: str) -> datetime:
        """When Nextflow wrote the record (its file's mtime): the time of last resort."""
        return datetime.fromtimestamp(os.stat(self.base / key / ".data.json").st_mtime, UTC)

    # -- events ------------------------------------------------------------------------------
    def events(self) -> list:
        out = []
        out += self._workflow_runs()
        out += self._task_runs()
        out += self._file_events()
        out += self._inputs()
        return out

    def _launch(self, spec: dict) -> str | None:
        """The launch this WorkflowRun is, when the weblog receiver recorded it (by session id
        and run name, launch.py): the lineage store adds to that run rather than making another."""
        from flowprov.instance import current

        from .launch import LAUNCH, find_launch, recorded_pipeline

        session, name = spec.get("sessionId"), spec.get("name")
        if not (isinstance(session, str) and isinstance(name, str) and session and name):
            return None
        with current().engine.connect() as conn:
            ref = find_launch(conn, session, name)
            run = recorded_pipeline(conn, ref) if ref is not None else None
        if run is None or run.reference_type != LAUNCH:
            return None
        # its processes join the launch's pipeline transform, as the receiver's tasks did
        self.wf_transforms[ref] = (run.transform_uid, run.transform_key)
        return ref

    def _workflow_spec(self, spec: dict):
        from flowprov.events import TransformSpec

        wf = spec.get("workflow") or {}
        scripts = [s.get("path") for s in wf.get("scriptFiles") or [] if isinstance(s, dict)]
        main = _local(scripts[0]) if scripts else None
        name = (
            self.pipeline
            or wf.get("repository")
            or (Path(main).parent.name if main else None)
            or "nextflow pipeline"
        )
        return TransformSpec(
            name=name,
            type="pipeline",
            key=f"nextflow:{name}",
            version=self.version or wf.get("commitId") or None,
            reference=wf.get("repository"),
            reference_type="repository" if wf.get("repository") else None,
        )

    def _workflow_runs(self) -> list:
        from flowprov.events import RunStarted
        from flowprov.uids import RUN_UID, random_uid

        out = []
        self.wf_specs = {}
        for key, spec in self.workflows.items():
            lid = _lid(key)
            self.wf_specs[lid] = self._workflow_spec(spec)
            self.wf_refs[lid] = self._launch(spec) or lid
            start, end = self._span(self.files_of.get(lid, []), self.ended.get(lid))
            status = _WF_STATUS.get(str(spec.get("status") or "").upper())
            if status is None and lid in self.ended:
                status = "completed"
            if status is None:
                status, end = "started", None
                self.report.notes.append(
                    f"pipeline run {lid} ({spec.get('name')}): the store does not say how it "
                    "ended (no status, no WorkflowOutput); recorded as started"
                )
            params = spec.get("params")
            if isinstance(params, list):
                params = {p.get("name"): p.get("value") for p in params if isinstance(p, dict)}
            out.append(
                RunStarted(
                    uid=random_uid(RUN_UID),
                    transform=self.wf_specs[lid],
                    engine=ENGINE,
                    reference=self.wf_refs[lid],
                    reference_type="nextflow lid",
                    name=spec.get("name"),
                    params={"sessionId": spec.get("sessionId"), **(params or {})},
                    status=status,
                    at=start or self._mtime(key),
                    finished_at=end,
                    environment=self.envs.spec(
                        Wrapper(), engine_version=_engine(spec)[0], ran=True
                    ),
                )
            )
        return out

    def _task_runs(self) -> list:
        from flowprov.events import RunRef, RunStarted, TransformSpec
        from flowprov.uids import RUN_UID, random_uid

        unknown_wf = self._workflow_spec({})  # never another run's pipeline: that would guess
        out = []
        self.task_refs: dict[str, object] = {}
        self.task_start: dict[str, datetime | None] = {}
        for key, spec in self.tasks.items():
            lid = _lid(key)
            wf_lid = spec.get("workflowRun")
            parent_spec = self.wf_specs.get(wf_lid)
            parent_key = parent_spec.key if parent_spec is not None else None
            launch = self.wf_transforms.get(self.wf_refs.get(wf_lid, ""))
            if launch is not None:
                parent_spec, parent_key = launch
            if parent_spec is None:
                parent_spec, parent_key = unknown_wf, unknown_wf.key
                self.report.notes.append(
                    f"task {lid} ({spec.get('name')}): its pipeline run {wf_lid} is not in this "
                    f"lineage store; recorded under pipeline {unknown_wf.name!r}"
                )
            process, tag = split_name(spec.get("name") or "process")
            rule = self.rules.lookup(process)
            code = spec.get("codeChecksum") or {}
            ref = task_reference(key)
            self.task_refs[lid] = RunRef(engine=ENGINE, reference=ref)
            mine = self.files_of.get(lid, [])
            start, end = self._span(mine, self.ended.get(lid))
            self.task_start[lid] = start
            status = "completed" if mine or lid in self.ended else "started"
            if status == "started":
                end = None
                self.report.notes.append(
                    f"task {lid} ({spec.get('name')}): no outputs or TaskOutput in the store, so "
                    "how it ended is not known; recorded as started"
                )
            out.append(
                RunStarted(
                    uid=random_uid(RUN_UID),
                    transform=TransformSpec(
                        name=rule.name if rule and rule.name else process,
                        type="process",
                        key=f"{parent_key}:{process}",
                        version=rule.version if rule else None,
                        reference=rule.reference if rule else None,
                        source_code=spec.get("script"),
                        hash=code.get("value"),
                        parent=parent_spec,
                    ),
                    engine=ENGINE,
                    reference=ref,
                    reference_type="nextflow task hash" if ref != lid else "nextflow lid",
                    name=spec.get("name"),
                    parent=RunRef(engine=ENGINE, reference=self.wf_refs[wf_lid])
                    if wf_lid in self.wf_specs
                    else None,
                    params={
                        "lid": lid,
                        "tag": tag,
                        "input": spec.get("input"),
                        "container": spec.get("container"),
                        "conda": spec.get("conda"),
                        "codeChecksum": code or None,
                    },
                    status=status,
                    at=start or self._mtime(key),
                    finished_at=end,
                    environment=self.envs.for_lineage_task(
                        spec,
                        *_engine(self.workflows.get(_key(wf_lid) or "", {})),
                        task_dir=_task_dir(key, mine),
                        process=process,
                    ),
                )
            )
        return out

    # -- files -------------------------------------------------------------------------------
    def _producer(self, f: _File):
        """The run that made a file's bytes — None for a copy (the store joins it by content)."""
        from flowprov.events import RunRef

        task_lid, wf_lid, source = (f.spec.get(k) for k in ("taskRun", "workflowRun", "source"))
        if task_lid:
            if task_lid in self.task_refs:
                return self.task_refs[task_lid]
            self.report.notes.append(
                f"{_lid(f.key)}: its task {task_lid} is not in this lineage store; recorded "
                "without a producer"
            )
            return None
        src = _key(source)
        if src is not None and src in self.files and src != f.key:
            self.files[src].copies.append(f.key)
            return None
        if source == wf_lid and wf_lid in self.wf_specs:  # written by the workflow itself
            return RunRef(engine=ENGINE, reference=self.wf_refs[wf_lid])
        if source:
            self.report.notes.append(
                f"{_lid(f.key)}: its source {source} is not in this lineage store; recorded "
                "without a producer, so its lineage stops here"
            )
        return None

    def _file_event(self, f: _File, run):
        from flowprov.artifacts import host_place, in_place_event, remote_place, suffix_of
        from flowprov.events import ArtifactRegistered
        from flowprov.uids import ARTIFACT_STEM, random_uid

        path, c = f.spec.get("path"), _checksum(f.spec)
        local, at = _local(path), _when(f.spec.get("createdAt"))
        extra = {"checksums": {"nextflow": c}} if c else {}
        if local and os.path.exists(local):
            try:
                ev = in_place_event(local, roots=self.roots, run=run, at=at or self._mtime(f.key))
                f.reachable = True
                return ev.model_copy(update=extra)
            except OSError as e:  # there, but not readable: Nextflow's checksum stands in
                self.report.notes.append(f"{_lid(f.key)}: {local} is not readable ({e})")
        if c is None:
            why = "no checksum" + (
                f", and {path} is not reachable from here" if path else ", no path"
            )
            self.report.not_ingested.append(f"{_lid(f.key)}: {why}")
            return None
        if local:
            root, key = host_place(local)
        else:  # a URL (s3://, gs://, ...): not fetched, recorded from Nextflow's checksum
            root, key = remote_place(path, self.roots)
        return ArtifactRegistered(
            stem=random_uid(ARTIFACT_STEM),
            storage_root=root,
            key=key,
            hash=c["value"],
            hash_type=f"nextflow-{c.get('mode') or 'standard'}",
            size=f.spec.get("size"),
            suffix=suffix_of(key),
            run=run,
            at=at or self._mtime(f.key),
            **extra,
        )

    def _file_events(self) -> list:
        for f in self.files.values():
            f.event = self._file_event(f, self._producer(f))
        for f in self.files.values():
            if f.copies and f.event is not None:
                self._share_content(f)
        return [f.event for f in self.files.values() if f.event is not None]

    def _as_recorded(self, f: _File) -> bool:
        """The file holds the bytes Nextflow recorded, as far as its size can tell."""
        size = f.spec.get("size")
        return not f.reachable or size is None or size == f.event.size

    def _share_content(self, source: _File) -> None:
        """Give copies and their source one content hash where flowprov could not hash them all."""
        copies = [self.files[k] for k in source.copies if self.files[k].event is not None]
        group = [source, *copies]
        sizes = {f.spec.get("size") for f in group} - {None}
        unsure = [f for f in group if not self._as_recorded(f)]
        if len(sizes) > 1 or unsure:
            names = ", ".join(_lid(f.key) for f in unsure) or "the copies"
            self.report.notes.append(
                f"{_lid(source.key)} and its copies: sizes differ ({names} changed since "
                "Nextflow recorded it?); not joined by content"
            )
            return
        hashed = {(f.event.hash, f.event.hash_type) for f in group if f.reachable}
        if len(hashed) > 1:
            return  # the files that are here hold different bytes: nothing to share
        content = next(iter(hashed), (source.event.hash, source.event.hash_type))
        for f in group:
            if not f.reachable:
                f.event = f.event.model_copy(update={"hash": content[0], "hash_type": content[1]})

    # -- inputs ------------------------------------------------------------------------------
    def _inputs(self) -> list:
        from flowprov.artifacts import ref_of
        from flowprov.events import ArtifactUsed

        out = []
        for key, spec in self.tasks.items():
            lid, run = _lid(key), self.task_refs[_lid(key)]
            for param in spec.get("input") or []:
                if not isinstance(param, dict) or param.get("type") != "path":
                    continue  # values (val, env, ...) are kept in the task's params
                values = param.get("value")
                for value in values if isinstance(values, list) else [values]:
                    src = _key(value)
                    if src is not None:
                        f = self.files.get(src)
                        if f is None or f.event is None:
                            self._unrecorded(lid, value, "not in this lineage store")
                        else:
                            out.append(ArtifactUsed(run=run, artifact=ref_of(f.event)))
                    else:
                        out += self._path_input(lid, run, value)
        return out

    def _path_input(self, lid: str, run, value) -> list:
        from flowprov.artifacts import host_place, input_events, suffix_of
        from flowprov.events import ArtifactRef, ArtifactRegistered, ArtifactUsed
        from flowprov.uids import ARTIFACT_STEM, random_uid

        path = value.get("path") if isinstance(value, dict) else value
        c = _checksum(value) if isinstance(value, dict) else None
        local, at = _local(path), self.task_start.get(lid)
        if local and os.path.exists(local):
            return input_events(local, run=run, roots=self.roots, at=at)
        if not local:
            self._unrecorded(lid, path, "a URL, not fetched")
            return []
        if c is None:
            self._unrecorded(lid, path, "not reachable from here, and no checksum")
            return []
        root, key = host_place(local)
        reg = ArtifactRegistered(
            stem=random_uid(ARTIFACT_STEM),
            storage_root=root,
            key=key,
            hash=c["value"],
            hash_type=f"nextflow-{c.get('mode') or 'standard'}",
            suffix=suffix_of(key),
            checksums={"nextflow": c},
            at=at or datetime.now(UTC),
        )
        ref = ArtifactRef(storage_root=root, key=key, hash=c["value"])
        return [reg, ArtifactUsed(run=run, artifact=ref, at=reg.at)]

    def _unrecorded(self, lid: str, what, why: str) -> None:
        self.report.notes.append(f"input {what} of task {lid}: not recorded ({why})")


def ingest_lineage(
    store: str | os.PathLike,
    *,
    pipeline: str | None = None,
    version: str | None = None,
    mapping: str | os.PathLike | None = None,
) -> IngestReport:
    """Record the WorkflowRun, TaskRun and FileOutput records of a Nextflow data-lineage store,
    in one transaction. Files are hashed by flowprov wherever they are reachable."""
    from flowprov.instance import current
    from flowprov.store import count_by_kind

    store = Path(store)
    records = read_lineage(store)
    report = IngestReport()
    base = store / ".meta" if (store / ".meta").is_dir() else store
    job = _Ingest(base, records, Mapping.load(mapping), pipeline, version, report)
    events = job.events()
    report.tasks = len(job.tasks)
    report.warnings = job.envs.warnings()
    report.absorb(count_by_kind(current().store.apply(events), {}))
    report.pipeline_run = next(iter(job.wf_specs), None)
    return report
