"""The one contract between engines and the core: a handful of pydantic event models.

Adapters (Snakemake, Nextflow, Prefect, the Python API itself) translate what they see into these
events and hand a batch to ``Store.apply`` — the only writer. Each event carries its natural key,
so applying the same batch twice changes nothing:

- a Transform is (key or type+name, version, source hash);
- a Run is its client-made ``uid``, or (``engine``, ``reference``) when the engine has its own id;
- an Artifact is a place — (storage root, key) — and its versions are its successive contents,
  told apart by hash; only a file copied in without a key is identified by its hash alone;
- a run input is (run, artifact version);
- an Environment is its content (``EnvironmentSpec.digest()``): every run in the same software
  shares one record.

Events are JSON-serialisable (``model_dump_json``) so they can be spooled to a file and replayed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

import blake3
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .times import utc

TransformType = Literal[
    "upload", "script", "notebook", "pipeline", "flow", "task", "rule", "process", "function"
]
RunStatus = Literal[
    "scheduled",
    "started",
    "completed",
    "failed",
    "aborted",
    "cached",
    "crashed",
    "cancelled",
    # it ended, and how cannot be known (a script stopped by a `raise SystemExit(...)` whose code
    # Python does not show at exit): recorded as such rather than guessed
    "unknown",
]
TRANSFORM_TYPES: tuple[str, ...] = get_args(TransformType)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)


def jsonable(value):
    """A JSON-safe copy of what an engine hands over (Snakemake's Namedlists, Paths, UUIDs and
    friends become plain values or strings) — for params and environment fields."""
    if hasattr(value, "items") and not isinstance(value, dict):
        value = dict(value.items())
    return json.loads(json.dumps(value, default=str))


def now() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunRef(_Model):
    """A run by its uid, or by the engine's own id."""

    uid: str | None = None
    engine: str | None = None
    reference: str | None = None

    @model_validator(mode="after")
    def _one_identity(self):
        if not self.uid and not (self.engine and self.reference):
            raise ValueError("a RunRef needs a uid, or both engine and reference")
        return self


class ArtifactRef(_Model):
    """One artifact version: by its uid; or by its place and content (storage_root, key, hash);
    or, for a file copied in without a key, by its hash alone."""

    uid: str | None = None
    storage_root: str | None = None
    key: str | None = None
    hash: str | None = None

    @model_validator(mode="after")
    def _one_identity(self):
        if self.uid:
            return self
        if not self.hash:
            raise ValueError(
                "an ArtifactRef needs a uid, or a hash (with its storage_root and key)"
            )
        if (self.storage_root is None) != (self.key is None):
            raise ValueError("an ArtifactRef's place needs both storage_root and key")
        return self


class TransformSpec(_Model):
    """Versioned code. Saving the same family with a new version or new source → a new version."""

    name: str
    type: TransformType
    key: str | None = None
    version: str | None = None
    description: str | None = None
    source_code: str | None = None
    hash: str | None = None  # of the source code; computed from source_code when not given
    reference: str | None = None
    reference_type: str | None = None
    uid: str | None = None  # pin the uid (stem + suffix), e.g. a notebook that declares its own
    parent: TransformSpec | str | None = (
        None  # the enclosing transform (spec or uid): a rule's workflow
    )


_HANDLE = re.compile(r"^[\w][\w.@+-]{0,149}$")


def check_handle(handle: str) -> str:
    """A user handle: letters, digits, `_ . @ + -`; up to 150 characters."""
    if not _HANDLE.match(handle):
        raise ValueError(
            f"invalid user handle {handle!r}: use letters, digits and _ . @ + - (at most 150)"
        )
    return handle


Handle = Annotated[str, AfterValidator(check_handle)]


UTCTime = Annotated[datetime, AfterValidator(utc)]


PackageSource = Literal[
    "pip",  # a Python distribution (importlib.metadata), not installed by conda
    "conda",  # a conda package (conda-meta/*.json of the prefix)
    "container",  # the image itself, or software the image reports
    "tool",  # a tool's self-reported version (nf-core versions.yml)
    "module",  # an environment module (Snakemake envmodules:)
    "spack",  # a spack spec
    "wrapper",  # a Snakemake wrapper (name = its path, version = its release)
    "engine",  # the workflow engine running the task (snakemake, nextflow, prefect)
]
PACKAGE_SOURCES: tuple[str, ...] = get_args(PackageSource)


class Package(_Model):
    """One piece of software in an environment, as the source that knows it reports it."""

    name: str
    version: str | None = None
    build: str | None = None  # conda build string, wheel tag, ...
    source: PackageSource
    channel: str | None = None  # conda channel, index or repository it came from

    def sort_key(self) -> tuple:
        return (self.source, self.name.lower(), self.version or "", self.build or "")


class EnvironmentSpec(_Model):
    """The software a run used, identified by its content (``digest()``): the same software gives
    the same record, however many runs used it.

    ``deployed`` says how far it can be trusted: True — this is what ran (the running
    interpreter, a conda prefix the engine created, an image it ran); False — declared in the
    workflow but the engine did not deploy it (Snakemake without --software-deployment-method:
    the host's software ran instead); None — not known. ``complete`` says whether ``packages`` is
    the whole resolved set (an interpreter's installed distributions, a prefix's conda-meta)
    rather than the few names a source reported (a versions.yml, a container reference)."""

    interpreter: str | None = None  # "CPython 3.11.2"
    os: str | None = None  # platform.platform(), or the architecture an engine reports
    packages: tuple[Package, ...] = ()
    container_image: str | None = None  # the reference as given: "quay.io/biocontainers/x:1.0"
    container_digest: str | None = None  # "sha256:..." (registry/OCI) or "blake3:..." (image file)
    container_engine: str | None = None  # docker, singularity, apptainer, podman, ...
    # the environment file (conda yaml, requirements.txt) as registered: by place and content
    spec_file: ArtifactRef | None = None
    deployed: bool | None = None
    complete: bool = False
    # what the source says besides (JSON): conda prefix, envmodules, wrapper, spack, engine...
    details: dict[str, Any] | None = None

    @cached_property
    def _digest(self) -> str:
        body = self.model_dump(mode="json", exclude={"packages", "spec_file"})
        # the spec file counts by its content, not by where it lies
        body["spec_file"] = self.spec_file.hash if self.spec_file else None
        body["packages"] = [
            p.model_dump(mode="json") for p in sorted(set(self.packages), key=Package.sort_key)
        ]
        canon = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return blake3.blake3(canon.encode()).hexdigest()

    def digest(self) -> str:
        """blake3 of the canonical JSON (packages sorted and deduplicated): equal content, equal
        digest, in every process and on every machine."""
        return self._digest

    def model_copy(self, *, update=None, deep: bool = False):
        # the cached digest describes the original: a copy with other fields has its own
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("_digest", None)
        return copy


EnvironmentRef = EnvironmentSpec | str  # a spec, or the digest of one sent before


def legacy_environment(value: dict) -> tuple[EnvironmentSpec | None, dict | None]:
    """A run's `environment` as flowprov < 0.3 sent it ({"python", "platform", "packages":
    {dist: version} of the *imported* distributions only, "exit", "cmd"}) → (the environment,
    marked incomplete; what is left, the run's runtime facts)."""
    rest = {k: v for k, v in value.items() if k not in ("python", "platform", "packages")}
    if not any(k in value for k in ("python", "platform", "packages")):
        return None, rest or None
    pkgs = value.get("packages") or {}
    spec = EnvironmentSpec(
        interpreter=f"Python {value['python']}" if value.get("python") else None,
        os=value.get("platform"),
        packages=tuple(
            Package(name=str(n), version=None if v is None else str(v), source="pip")
            for n, v in (pkgs.items() if isinstance(pkgs, dict) else ())
        ),
        deployed=True,
        complete=False,
        details={"recorded_as": "imported distributions only (flowprov < 0.3)"},
    )
    return spec, rest or None


def _is_legacy_environment(value) -> bool:
    return isinstance(value, dict) and (
        any(k in value for k in ("python", "platform", "exit", "cmd"))
        or isinstance(value.get("packages"), dict)
    )


class _Event(_Model):
    at: UTCTime = Field(default_factory=now)
    created_by: Handle | None = None  # user handle; the store's current user when None


class UserSeen(_Event):
    kind: Literal["user_seen"] = "user_seen"
    handle: Handle
    name: str | None = None
    uid: str | None = None


class StorageDeclared(_Event):
    kind: Literal["storage_declared"] = "storage_declared"
    root: str
    type: str = "local"
    region: str | None = None
    description: str | None = None
    is_default: bool = False
    # non-secret fsspec options (endpoint_url, region_name, ...); given: they replace the stored
    options: dict[str, Any] | None = None


class TransformSaved(_Event):
    kind: Literal["transform_saved"] = "transform_saved"
    transform: TransformSpec


class RunStarted(_Event):
    kind: Literal["run_started"] = "run_started"
    uid: str
    transform: TransformSpec | str  # a spec (saved if new) or an existing transform's uid
    name: str | None = None
    params: dict[str, Any] | None = None
    environment: EnvironmentRef | None = None
    # how it ran, beyond the software: exit code or signal, command line, host (JSON)
    runtime: dict[str, Any] | None = None
    parent: RunRef | None = None
    engine: str | None = None
    reference: str | None = None
    reference_type: str | None = None
    status: RunStatus = "started"
    # a run reported after it ended (e.g. a row of a Nextflow trace) carries its end here
    finished_at: UTCTime | None = None
    error: str | None = None

    _legacy = model_validator(mode="before")(lambda data: _upgrade_legacy(data))


def _upgrade_legacy(data):
    """Events spooled by flowprov < 0.3 keep replaying: their `environment` dict is split into
    the environment and the runtime facts."""
    if isinstance(data, dict) and _is_legacy_environment(data.get("environment")):
        spec, rest = legacy_environment(data["environment"])
        data = {**data, "environment": spec}
        if rest and not data.get("runtime"):
            data["runtime"] = rest
    return data


class RunFinished(_Event):
    kind: Literal["run_finished"] = "run_finished"
    run: RunRef
    status: RunStatus = "completed"
    error: str | None = None
    environment: EnvironmentRef | None = None  # given: it replaces the one the run started with
    runtime: dict[str, Any] | None = None  # given: it replaces the stored runtime facts
    # given: merged into the stored params, key by key (figures known only at the end: a
    # Nextflow task's resources, reported with its completion)
    params: dict[str, Any] | None = None

    _legacy = model_validator(mode="before")(lambda data: _upgrade_legacy(data))


class RunAlive(_Event):
    """A sign of life of a run still going (a heartbeat, or an engine's event about one of its
    tasks): its `updated_at` becomes `at` while it is `started`. `flowprov status` judges a run
    whose sign of life is older than its engine's time-out as lost."""

    kind: Literal["run_alive"] = "run_alive"
    run: RunRef
    # the run left the queue: a `scheduled` run becomes `started`, with `at` as its start
    began: bool = False
    # given: merged into the stored runtime, key by key, whatever the status (facts known only
    # after the start: a Snakemake workflow's job total; a tracked script's liveness facts)
    runtime: dict[str, Any] | None = None


class RunMerged(_Event):
    """Two records turned out to be one run (a Nextflow launch recorded from its trace, then
    heard live from its weblog): `duplicate`'s tasks, inputs, outputs and params move to `run`,
    and `duplicate` is deleted. Only when the evidence is certain — never a guess. A duplicate
    that no longer exists (applied twice) changes nothing."""

    kind: Literal["run_merged"] = "run_merged"
    run: RunRef
    duplicate: RunRef


class ArtifactRegistered(_Event):
    """A file or folder at a place (storage_root + key) holding these bytes (hash), produced by
    `run` (or seen, or uploaded, with no run). Without a key (a file copied in), the artifact is
    its content. The version becomes the place's latest unless a later one was already seen."""

    kind: Literal["artifact_registered"] = "artifact_registered"
    stem: str  # used only if the place (or, without a key, the content) is new
    storage_root: str
    key: str | None = None
    file_name: str | None = None  # the original name of a file copied in without a key
    key_is_virtual: bool = False
    managed: bool = False
    description: str | None = None
    suffix: str = ""
    size: int | None = None
    hash: str
    hash_type: str
    n_objects: int = 1
    run: RunRef | None = None
    # checksums another system keeps for the same bytes (an engine's, an object store's ETag)
    checksums: dict[str, Any] | None = None


class ArtifactUsed(_Event):
    kind: Literal["artifact_used"] = "artifact_used"
    run: RunRef
    artifact: ArtifactRef


class ArtifactRemoved(_Event):
    """An engine deleted a file on purpose (Snakemake's temp() outputs once consumed): the record
    stays, marked as removed with the reason, so `verify` and `stale` do not call it missing."""

    kind: Literal["artifact_removed"] = "artifact_removed"
    artifact: ArtifactRef
    reason: str = "temp"
    run: RunRef | None = None  # the run whose end made the engine remove it, when known


Event = Annotated[
    UserSeen
    | StorageDeclared
    | TransformSaved
    | RunStarted
    | RunFinished
    | RunAlive
    | RunMerged
    | ArtifactRegistered
    | ArtifactUsed
    | ArtifactRemoved,
    Field(discriminator="kind"),
]


class EventBatch(BaseModel):
    """A list of events as one JSON document (spool files hold one batch per line)."""

    events: list[Event]


@dataclass(slots=True)
class Applied:
    """What applying one event did: the uid of the record it concerns, whether it existed, and
    (for artifacts) the record's row, so callers need not read it back. (A plain dataclass, not a
    pydantic model: the store makes one per event, 100,000 for a large trace.)"""

    kind: str
    uid: str | None
    existed: bool
    row: dict[str, Any] | None = None
