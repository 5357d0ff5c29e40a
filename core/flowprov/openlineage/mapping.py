"""A recorded run as OpenLineage RunEvents, built with openlineage-python's own models.

- job: namespace = the instance's (see emitter.namespace), name = the transform — per rule,
  process, task or script, not per run — prefixed with its enclosing transform's name ("<workflow>.
  <rule>", as Airflow names "<dag>.<task>"), so a rule run twice is one job with two runs;
- run id: a UUID derived from the run's uid alone (uuid5), so the live event, a replayed one and a
  backfill export of the same run agree;
- datasets: a local file is `file://<host>` + its absolute path, an object `s3://bucket` or
  `gs://bucket` + its key (the naming of the OpenLineage spec); its version is the content hash.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from datetime import UTC, datetime
from functools import cache, lru_cache
from urllib.parse import urlsplit

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
    source_code_job,
    source_code_location_job,
    tags_job,
    tags_run,
)

from .. import __version__
from ..exports.code import language  # the same language ids as the RO-Crate's code files
from .facts import DatasetFacts, RunFacts, TransformFacts

PRODUCER = f"https://example.invalid/flowprov/{__version__}"  # pyproject's project URL
_RUN_NS = uuid.UUID("6f1e8a0c-5b7d-5d3e-9c1a-f10e9a0b1a7e")  # flowprov's uuid5 namespace

# a run's status → the eventType of its last event
FINAL_STATE = {
    "completed": RunState.COMPLETE,
    "cached": RunState.COMPLETE,  # the engine reused an earlier result: the task is done
    "failed": RunState.FAIL,
    "crashed": RunState.FAIL,
    "aborted": RunState.ABORT,
    "cancelled": RunState.ABORT,
    "unknown": RunState.OTHER,  # it ended, and how is not known: not called a success
}


def run_id(run_uid: str) -> str:
    """The OpenLineage runId of a flowprov run: stable, from its uid alone."""
    return str(uuid.uuid5(_RUN_NS, run_uid))


def job_name(t: TransformFacts) -> str:
    return f"{t.parent_name}.{t.name}" if t.parent_name else t.name


@cache
def _host() -> str:
    return socket.gethostname()


def dataset_name(d: DatasetFacts) -> tuple[str, str]:
    """(namespace, name) of a file or object, as the OpenLineage naming spec writes them."""
    if "://" not in d.root:
        return f"file://{_host()}", os.path.abspath(d.location)
    parts = urlsplit(d.location)
    scheme = {"gcs": "gs", "s3a": "s3"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/")


def _datasets(cls, items: list[DatasetFacts]) -> list:
    out, seen = [], set()
    for d in items:
        ns, name = dataset_name(d)
        if (ns, name, d.hash) in seen:
            continue
        seen.add((ns, name, d.hash))
        facet = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=d.hash, producer=PRODUCER
        )
        out.append(cls(namespace=ns, name=name, facets={"version": facet}))
    return out


_COMMIT = re.compile(r"^[0-9a-f]{40}$")  # a pipeline's version that is its git commit
_GIT_HOST = re.compile(r"^https?://(github\.com|gitlab\.[^/]+|bitbucket\.org|codeberg\.org)/")


def _source_location(t: TransformFacts):
    ref = t.reference or ""
    if not (_GIT_HOST.match(ref) or (ref.startswith(("https://", "http://")) and ".git" in ref)):
        return None  # where the code lives is not known as a repository: said nothing
    commit = t.version if t.version and _COMMIT.match(t.version) else None
    return source_code_location_job.SourceCodeLocationJobFacet(
        type="git", url=ref, repoUrl=ref, version=commit, producer=PRODUCER
    )


def _job(f: RunFacts, namespace: str) -> Job:
    # a fresh dict each time: the client adds facets to the event's (its own tags, a
    # sourceCodeLocation from its config)
    return Job(
        namespace=namespace,
        name=job_name(f.transform),
        facets=dict(_job_facets(f.transform, f.engine)),
    )


@lru_cache(maxsize=4096)  # a rule's 500 jobs are one job: its facets are made once
def _job_facets(t: TransformFacts, engine: str | None) -> dict:
    facets: dict = {
        "jobType": job_type_job.JobTypeJobFacet(
            producer=PRODUCER,
            processingType="BATCH",
            integration=(engine or "flowprov").upper(),
            jobType=t.type.upper(),
        ),
        "tags": tags_job.TagsJobFacet(
            producer=PRODUCER,
            tags=[
                tags_job.TagsJobFacetFields(
                    key="flowprov.transform", value=t.uid, source="FLOWPROV"
                )
            ],
        ),
    }
    lang = language(t, engine)
    if t.source_code and lang:
        facets["sourceCode"] = source_code_job.SourceCodeJobFacet(
            producer=PRODUCER, language=lang, sourceCode=t.source_code
        )
    loc = _source_location(t)
    if loc is not None:
        facets["sourceCodeLocation"] = loc
    return facets


def _engine_facet(f: RunFacts):
    if f.engine and f.engine_version:
        name, version = f.engine, f.engine_version
    elif f.engine is None and f.interpreter:  # a script or notebook: its interpreter ran it
        m = re.match(r"^(\S+)\s+(\S+)", f.interpreter)
        if not m:
            return None
        name, version = m.group(1).lower(), m.group(2)
    else:
        return None  # the engine's version is not recorded: no facet rather than a guess
    return processing_engine_run.ProcessingEngineRunFacet(
        producer=PRODUCER, version=version, name=name, openlineageAdapterVersion=__version__
    )


def _run(f: RunFacts, namespace: str, state: RunState, status: str) -> Run:
    facets: dict = {
        "tags": tags_run.TagsRunFacet(
            producer=PRODUCER,
            tags=[
                tags_run.TagsRunFacetFields(key="flowprov.run", value=f.uid, source="FLOWPROV"),
                tags_run.TagsRunFacetFields(key="flowprov.status", value=status, source="FLOWPROV"),
            ],
        )
    }
    if f.parent_uid and f.parent_transform:
        root = None
        if f.root_uid and f.root_transform:
            root = parent_run.Root(
                run=parent_run.RootRun(runId=run_id(f.root_uid)),
                job=parent_run.RootJob(namespace=namespace, name=job_name(f.root_transform)),
            )
        facets["parent"] = parent_run.ParentRunFacet(
            producer=PRODUCER,
            run=parent_run.Run(runId=run_id(f.parent_uid)),
            job=parent_run.Job(namespace=namespace, name=job_name(f.parent_transform)),
            root=root,
        )
    engine = _engine_facet(f)
    if engine is not None:
        facets["processing_engine"] = engine
    if state == RunState.FAIL and f.error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            producer=PRODUCER,
            message=f.error,
            programmingLanguage=language(f.transform, f.engine) or "unknown",
        )
    return Run(runId=run_id(f.uid), facets=facets)


def _time(t: datetime | None) -> str:
    t = t or datetime.now(UTC)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def start_event(f: RunFacts, namespace: str) -> RunEvent:
    return RunEvent(
        eventType=RunState.START,
        eventTime=_time(f.started_at),
        producer=PRODUCER,
        run=_run(f, namespace, RunState.START, "started"),
        job=_job(f, namespace),
        inputs=_datasets(InputDataset, f.inputs),
        outputs=[],
    )


def final_event(f: RunFacts, namespace: str, status: str | None = None, at=None) -> RunEvent:
    """The event of the run's end; `status` (of the flowprov event that ended it) wins over the
    run's present status, which a later event may have changed."""
    status = status or f.status
    state = FINAL_STATE.get(status, RunState.OTHER)
    return RunEvent(
        eventType=state,
        eventTime=_time(f.finished_at or at),
        producer=PRODUCER,
        run=_run(f, namespace, state, status),
        job=_job(f, namespace),
        inputs=_datasets(InputDataset, f.inputs),
        outputs=_datasets(OutputDataset, f.outputs),
    )
