"""A lineage graph as an RO-Crate, through the `rocrate` library, following the Workflow Run Crate
and Provenance Run Crate profiles 0.5 (on RO-Crate 1.1 and Workflow RO-Crate 1.0).

flowprov records what ran, not a workflow definition, so the crate's workflow is synthesised: it
is the recorded lineage itself. The crate holds (entity ids in brackets):

- the main entity [lineage.prov.json]: a ComputationalWorkflow (and HowTo) named "the recorded
  <direction> lineage of <record>", whose file is the W3C PROV-JSON of the same graph
  (programmingLanguage: PROV-JSON, see prov.py). Its `step`s are one HowToStep
  [#step-<transform uid>] per distinct transform of the graph's runs (`position` follows the data
  flow when the transforms form no cycle), each with workExample → a SoftwareApplication
  [#transform-<uid>], which the workflow lists in `hasPart`;
- per run, a CreateAction [#run-<uid>]: instrument = its transform's SoftwareApplication,
  object = input files, result = output files, agent = a Person [#user-<uid>], startTime,
  endTime, actionStatus (error when it failed), the params and its software environment in
  `description`, containerImage = a ContainerImage [#container-<digest of its fields>] when the
  run ran in that image; and a ControlAction [#control-<uid>]: instrument = the step, object =
  the CreateAction;
- the software a run used, as the Process Run Crate says it: its tool's (the transform's
  SoftwareApplication's) `softwareRequirements` = one SoftwareApplication per package
  [#software/<source>/<name>/<version>/<build>/<channel>, percent-encoded, empty parts dropped
  from the end] with `name`, `softwareVersion`, `url` (the PyPI or anaconda.org project page
  when the package came from there), and the interpreter [#software/interpreter/<name>]. When
  the runs of one transform used different environments, each environment gets its own tool
  [#transform-<uid>/environment-<environment uid>] and step, so no tool claims software one of
  its runs did not have; a step's `buildInstructions` is the environment file when it is a file
  of the crate;
- per enclosing run (a Snakemake workflow run, a Prefect flow run), a CreateAction of its own
  transform; its members' descriptions name it;
- a workflow-level CreateAction [#lineage]: instrument = the main workflow, object = the files no
  run of the graph produced, result = the files no run of the graph read, the time span of the
  runs, FailedActionStatus if any run failed;
- an OrganizeAction [#flowprov-records]: instrument = a SoftwareApplication [#flowprov] and the
  engines runs name [#engine-<name>], object = the ControlActions, result = [#lineage];
- a File per artifact file, a Dataset per folder with `hasPart` Files; each File has `sha256`
  (the artifact's checksums["sha256"], or its hash if flowprov hashed with sha256, else computed
  by streaming the file), `contentSize`, `encodingFormat` when the suffix tells, and the
  artifact's uid as `identifier`.

Files are referred to where they are, by absolute URI (file:// or the storage URL), and nothing
is copied; with_data=True copies them into the crate under their key (``<uid>/<key>`` on a clash,
``<uid><suffix>`` without a key). A file that cannot be read, or whose bytes no longer have the
recorded hash, is exported without sha256 (and not copied) and reported in the warnings.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import secrets
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import blake3
from rocrate.model import ComputerLanguage, ContextEntity, Person, SoftwareApplication
from rocrate.rocrate import ROCrate

from .. import __version__
from ..errors import StorageError, ValidationError
from ..instance import current
from . import ArtifactInfo, Details, RunInfo, TransformInfo
from .code import LANGUAGES, file_name, language
from .portable import Portable
from .prov import portable_details, prov_json

PROFILES = (
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate", "0.5"),
    ("https://w3id.org/ro/wfrun/provenance/0.5", "Provenance Run Crate", "0.5"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate", "1.0"),
)
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"  # defines sha256, md5, ...
WORKFLOW_FILE = "lineage.prov.json"
PROV_JSON = "https://www.w3.org/Submission/prov-json/"
SCHEMA = "http://schema.org/"
STATUS = {
    "completed": "CompletedActionStatus",
    "cached": "CompletedActionStatus",
    "started": "ActiveActionStatus",
    "scheduled": "PotentialActionStatus",
}  # any other status (failed, crashed, aborted, cancelled) → FailedActionStatus
ENGINES = {
    "snakemake": "https://snakemake.github.io",
    "nextflow": "https://www.nextflow.io",
    "prefect": "https://www.prefect.io",
}
FORMATS = {  # suffixes Python's mimetypes does not know
    ".parquet": "application/vnd.apache.parquet",
    ".tsv": "text/tab-separated-values",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".ipynb": "application/x-ipynb+json",
    ".h5ad": "application/x-hdf5",
}
COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}
WFRUN = "https://w3id.org/ro/terms/workflow-run#"  # DockerImage, SIFImage
BUILD_INSTRUCTIONS = "https://codemeta.github.io/terms/buildInstructions"  # not in RO-Crate 1.1
SIF_ENGINES = ("singularity", "apptainer")
DOCKER_ENGINES = ("docker", "podman", "sarus", "shifter", "charliecloud")
REGISTRIES = {"library": "cloud.sylabs.io", "shub": "singularity-hub.org"}
_RESERVED = {"ro-crate-metadata.json", "ro-crate-preview.html", WORKFLOW_FILE}
_BLOCK = 1 << 20


@dataclass
class CrateResult:
    path: Path
    warnings: list[str] = field(default_factory=list)


def write_crate(
    graph,
    path: str | os.PathLike,
    *,
    with_data: bool = False,
    license: str | None = None,
    portable: Portable | None = None,
) -> CrateResult:
    """Write the RO-Crate of a lineage graph to a folder (new or empty), or to a zip file when
    `path` ends in .zip. `license` (a URL or SPDX id) applies to the crate's content; Workflow
    RO-Crate asks for one, flowprov cannot know it. `portable` says how places and people are
    written (portable.py; default: absolute places, named people)."""
    portable = portable or Portable()
    path = Path(path).absolute()
    zipped = path.suffix.lower() == ".zip"
    if zipped and path.is_dir():
        raise ValidationError(f"{path} is a folder: a zipped crate needs a file path")
    if not zipped and path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValidationError(f"{path} exists and is not an empty folder: choose a new crate path")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.part-{secrets.token_hex(4)}")
    with tempfile.TemporaryDirectory(prefix="flowprov-crate-") as scratch:
        builder = _Builder(graph, portable_details(graph, portable), with_data, Path(scratch))
        builder.portable = portable
        crate = builder.build(license)
        packed = staging.with_name(staging.name + ".zip")
        try:
            crate.write(staging)
            if portable.active:
                _portable_metadata(staging / "ro-crate-metadata.json", portable)
            if zipped:
                _zip(staging, packed)
                os.replace(packed, path)
            else:
                if path.exists():
                    path.rmdir()
                os.replace(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            packed.unlink(missing_ok=True)
    return CrateResult(path, builder.warnings)


def _portable_metadata(path: Path, portable: Portable) -> None:
    """The crate's metadata with its texts made portable (every string; ids made portable
    already stay as they are)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(portable.walk(data), indent=4, ensure_ascii=False), "utf-8")


def _zip(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for p in sorted(folder.rglob("*")):  # folders too: a Dataset's @id names its entry
            if p.is_file() or p.is_dir():
                zf.write(p, p.relative_to(folder).as_posix())


def encoding_format(suffix: str) -> str | None:
    """The media type a suffix tells ('.tsv.gz' → application/gzip), if any."""
    if not suffix:
        return None
    kind, compression = mimetypes.guess_type(f"x{suffix}", strict=False)
    if compression:
        return COMPRESSED.get(compression)
    return FORMATS.get(suffix.lower()) or kind


def _status(status: str) -> dict:
    return {"@id": SCHEMA + STATUS.get(status, "FailedActionStatus")}


def _time(v) -> str | None:
    return v.isoformat() if v is not None else None


def _clean(props: dict) -> dict:
    return {k: v for k, v in props.items() if v is not None and v != "" and v != []}


# -- reading files -----------------------------------------------------------------------------


def _open(location: str, local: bool):
    if local:
        return open(location, "rb")
    from ..storage import url_fs

    fs, p = url_fs(location)
    return fs.open(p, "rb")


def _list(location: str, local: bool) -> list[tuple[str, str]]:
    """(relative path, location) of every file of a folder."""
    if local:
        from ..hashing import list_folder

        if not os.path.isdir(location):
            raise FileNotFoundError(f"no such folder: {location}")
        return [(rel, os.path.join(location, rel)) for rel in list_folder(location)]
    from ..storage import url_fs

    fs, base = url_fs(location)
    rels = sorted(f[len(base) :].lstrip("/") for f in fs.find(base))
    if not rels:
        raise FileNotFoundError(f"no such folder: {location}")
    return [(rel, f"{location}/{rel}") for rel in rels]


def _read(location: str, local: bool, algorithm: str | None, copy_to: Path | None):
    """sha256, the `algorithm` hash (to compare with the recorded one) and size of a file, read
    once; the bytes are also written to `copy_to` if given (remote files copied into a crate)."""
    sha = hashlib.sha256()
    own = None
    if algorithm == "blake3":
        own = blake3.blake3()
    elif algorithm in ("sha256", "md5"):
        own = hashlib.new(algorithm)
    size = 0
    out = None
    if copy_to is not None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        out = open(copy_to, "wb")
    try:
        with _open(location, local) as f:
            while chunk := f.read(_BLOCK):
                sha.update(chunk)
                if own is not None:
                    own.update(chunk)
                if out is not None:
                    out.write(chunk)
                size += len(chunk)
    finally:
        if out is not None:
            out.close()
    return sha.hexdigest(), own.hexdigest() if own is not None else None, size


# -- building ----------------------------------------------------------------------------------


class _Builder:
    def __init__(self, graph, info: Details, with_data: bool, scratch: Path):
        self.g, self.info, self.with_data, self.scratch = graph, info, with_data, scratch
        self.crate = ROCrate(version="1.1")
        self.warnings: list[str] = []
        self.data: dict[str, object] = {}  # artifact node id → File / Dataset entity
        self.taken: set[str] = set(_RESERVED)  # paths of files inside the crate (with_data)
        self.dirs: set[str] = set()  # and their folders
        self.ids: set[str] = set()  # absolute URIs already used as ids
        self.inputs: dict[str, list[str]] = {}  # run node id → artifact node ids, and back
        self.outputs: dict[str, list[str]] = {}
        self.software: dict[str, object] = {}  # package and interpreter entities, by @id
        self.containers: dict[str, object] = {}  # ContainerImage entities, by @id
        self.portable = Portable()
        self.languages: dict[str, object] = {}  # ComputerLanguage entities, by language id
        self.code: dict[str, object] = {}  # transform uid → the File of its code
        for e in graph.edges:
            if e.kind == "used":
                self.inputs.setdefault(e.target, []).append(e.source)
            elif e.kind == "generated":
                self.outputs.setdefault(e.source, []).append(e.target)

    def build(self, license: str | None) -> ROCrate:
        crate, info = self.crate, self.info
        crate.metadata.extra_contexts.append(WFRUN_CONTEXT)
        crate.name = info.title[:1].upper() + info.title[1:]
        crate.description = (
            f"The runs and files flowprov recorded: the {info.title}, exported from instance "
            f"{current().name!r} by flowprov {__version__}."
        )
        if license:
            crate.license = license
        for uri, name, version in PROFILES:
            profile = crate.add(
                ContextEntity(
                    crate, uri, {"@type": "CreativeWork", "name": name, "version": version}
                )
            )
            crate.root_dataset.append_to("conformsTo", profile)

        for nid in sorted(info.artifacts, key=_db_id):
            self.data[nid] = self._data_entity(info.artifacts[nid])
        note = self.portable.storages_note()
        if note:
            crate.description = f"{crate.description} {note}"
        runs = {n.id: info.runs[n.id] for n in sorted(self.g.runs, key=lambda n: _db_id(n.id))}
        enclosing = {i: info.runs[i] for i in sorted(self.g.groups, key=_db_id) if i not in runs}
        people = self._people([*runs.values(), *enclosing.values()])
        tools = self._tool_keys({**runs, **enclosing})
        apps = {}
        for nid, r in [*runs.items(), *enclosing.items()]:
            if tools[nid] not in apps:
                env = self.g.environment_of(nid)
                apps[tools[nid]] = self._transform_app(r.transform, env, tools[nid])
        flowprov_app = crate.add(
            SoftwareApplication(crate, "#flowprov", {"name": "flowprov", "version": __version__})
        )
        named = {r.engine for r in [*runs.values(), *enclosing.values()]} - {None}
        engines = [self._engine(e) for e in sorted(named)]
        for nid, r in [*runs.items(), *enclosing.items()]:
            self._code(r, apps[tools[nid]])

        workflow, steps = self._workflow(runs, apps, tools, [*runs.values(), *enclosing.values()])
        actions, controls = [], []
        for nid, r in [*runs.items(), *enclosing.items()]:
            action = self._run_action(nid, r, apps[tools[nid]], people)
            actions.append(action)
            if nid in runs:
                controls.append(
                    crate.add_action(
                        steps[tools[nid]],
                        f"#control-{r.uid}",
                        object=action,
                        properties={
                            "@type": "ControlAction",
                            "name": f"orchestrate {r.transform.name}",
                            "actionStatus": _status(r.status),
                        },
                    )
                )
        lineage = self._lineage_action(workflow, runs, people)
        span = self._span(runs.values())
        crate.add_action(
            [flowprov_app, *engines],
            "#flowprov-records",
            object=controls,
            result=lineage,
            properties=_clean(
                {
                    "@type": "OrganizeAction",
                    "name": f"flowprov records of the {info.title}",
                    **span,
                }
            ),
        )
        for action in [lineage, *actions]:
            crate.root_dataset.append_to("mentions", action)
        return crate

    # -- contextual entities -------------------------------------------------------------------
    def _people(self, runs: list[RunInfo]) -> dict[str, Person]:
        out = {}
        for r in runs:
            u = r.user
            if u is not None and u.uid not in out and u.pseudonymous:
                props = {"name": u.handle, "description": "a pseudonym (see portable.py)"}
                out[u.uid] = self.crate.add(Person(self.crate, f"#{u.uid}", props))
            elif u is not None and u.uid not in out:
                props = {"name": u.name or u.handle, "alternateName": u.handle, "identifier": u.uid}
                out[u.uid] = self.crate.add(Person(self.crate, f"#user-{u.uid}", _clean(props)))
        return out

    def _tool_keys(self, runs: dict[str, RunInfo]) -> dict[str, str]:
        """Run node id → the key of its tool: the transform's uid, or, when the transform's runs
        in the graph used different environments (or some none), "<uid>/environment-<env uid>"
        for those with one."""
        envs: dict[str, set] = {}
        for nid, r in runs.items():
            env = self.g.environment_of(nid)
            envs.setdefault(r.transform.uid, set()).add(env.uid if env else None)
        out = {}
        for nid, r in runs.items():
            env = self.g.environment_of(nid)
            split = len(envs[r.transform.uid]) > 1 and env is not None
            out[nid] = f"{r.transform.uid}/environment-{env.uid}" if split else r.transform.uid
        return out

    def _transform_app(self, t: TransformInfo, env, key: str) -> SoftwareApplication:
        url = (
            t.reference if t.reference and t.reference.startswith(("http://", "https://")) else None
        )
        props = {
            "name": t.name,
            "version": t.version,
            "description": t.description,
            "identifier": t.uid,
            "applicationCategory": t.type,
            "url": url,
            "softwareRequirements": self._requirements(env) if env is not None else None,
        }
        if key != t.uid:  # one of several environments its runs used
            props["alternateName"] = f"{t.name} in software environment {env.uid}"
        app = SoftwareApplication(self.crate, f"#transform-{key}", _clean(props))
        return self.crate.add(app)

    # -- software --------------------------------------------------------------------------------
    def _requirements(self, env) -> list:
        """The SoftwareApplications of an environment: its interpreter and packages."""
        out = []
        if env.interpreter:
            name, version = _name_version(env.interpreter)
            out.append(
                self._software(
                    f"#software/interpreter/{quote(env.interpreter, safe='')}",
                    {"name": name, "softwareVersion": version, "description": "interpreter"},
                )
            )
        for p in env.packages:
            out.append(self._software(software_id(p), _package_props(p)))
        return out

    def _software(self, sid: str, props: dict):
        if sid not in self.software:
            self.software[sid] = self.crate.add(SoftwareApplication(self.crate, sid, _clean(props)))
        return self.software[sid]

    def _container(self, env):
        """The ContainerImage entity of an environment's image (Process Run Crate 0.5)."""
        key = json.dumps([env.container_image, env.container_digest, env.container_engine])
        cid = f"#container-{blake3.blake3(key.encode()).hexdigest()[:16]}"
        if cid not in self.containers:
            props = {"@type": "ContainerImage", **container_props(env)}
            self.containers[cid] = self.crate.add(ContextEntity(self.crate, cid, _clean(props)))
        return self.containers[cid]

    def _engine(self, name: str) -> SoftwareApplication:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        props = {"name": name, "url": ENGINES.get(name.lower())}
        return self.crate.add(SoftwareApplication(self.crate, f"#engine-{slug}", _clean(props)))

    # -- code -----------------------------------------------------------------------------------
    def _language(self, lang: str):
        if lang not in self.languages:
            lid, name, extra, url = LANGUAGES[lang]
            props = {"name": name, "url": {"@id": url}}
            props.update({k: {"@id": v} for k, v in extra.items()})
            self.languages[lang] = self.crate.add(ComputerLanguage(self.crate, lid, props))
        return self.languages[lang]

    def _code(self, r: RunInfo, app) -> None:
        """The File of the code of a run's transform (once per transform), with its language;
        its targetProduct is the transform's SoftwareApplication(s)."""
        t = r.transform
        if not t.source_code:
            return
        if t.uid in self.code:
            self.code[t.uid].append_to("targetProduct", app)
            return
        lang = language(t, r.engine)
        dest = file_name(t, lang)
        if self._clashes(dest):
            dest = f"flowprov-{dest}"
        self.taken.add(dest)
        parts = dest.split("/")
        self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        props = {
            "@type": ["File", "SoftwareSourceCode"],
            "name": f"code of {t.type} {t.name}",
            "description": (
                f"The code flowprov recorded for transform {t.uid} ({t.type} {t.name}"
                + (f" {t.version}" if t.version else "")
                + ")"
                + (f", key {t.key}" if t.key else "")
                + "."
            ),
            "version": t.version,
            "encodingFormat": "text/plain",
            "programmingLanguage": self._language(lang) if lang else None,
            "targetProduct": app,
        }
        raw = t.source_code.encode("utf-8")
        props.update(sha256=hashlib.sha256(raw).hexdigest(), contentSize=str(len(raw)))
        self.code[t.uid] = self.crate.add_file(
            BytesIO(raw), dest_path=dest, properties=_clean(props)
        )

    def _known_workflow(self, runs: list[RunInfo]):
        """(kind, run) of the one workflow definition the graph's runs name — a Snakemake
        pipeline with its Snakefile, a Nextflow pipeline with its repository and commit — or
        None: none, several, or runs outside it in the graph (an upload, a notebook, a Prefect
        flow: the definition did not make the whole lineage, and saying it did would be false;
        the synthesised workflow stays the main one)."""
        found = {}
        for r in runs:
            t = r.transform
            if t.type != "pipeline":
                continue
            if r.engine == "snakemake" and t.source_code and t.uid in self.code:
                found[t.uid] = ("snakemake", r)
            elif r.engine == "nextflow" and _repository_file(t) is not None:
                found[t.uid] = ("nextflow", r)
        if len(found) != 1:
            return None
        kind, run = next(iter(found.values()))
        by_uid = {r.uid: r for r in self.info.runs.values()}
        node_of = {r.uid: nid for nid, r in self.info.runs.items()}
        pipeline_runs = {node_of[r.uid] for r in runs if r.transform.uid == run.transform.uid}
        for r in runs:  # every run is one of the pipeline's, or inside one
            seen, cur = set(), by_uid.get(r.uid)
            while cur is not None and node_of[cur.uid] not in pipeline_runs:
                if cur.uid in seen or cur.parent is None:
                    return None
                seen.add(cur.uid)
                cur = self.info.runs.get(cur.parent)
            if cur is None:
                return None
        return kind, run

    def _main_workflow(self, kind: str, r: RunInfo, lang):
        """The workflow definition as the crate's main workflow."""
        t, crate = r.transform, self.crate
        props = {
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
            "name": t.name,
            "version": t.version,
            "description": (
                f"The workflow definition of {t.name} ({kind}), as flowprov recorded it "
                f"(transform {t.uid}); its steps are the transforms its runs ran."
            ),
        }
        if kind == "snakemake":  # its code file becomes the main workflow
            code = self.code.pop(t.uid)
            keep = {
                k: code[k] for k in ("sha256", "contentSize", "encodingFormat", "targetProduct")
            }
            crate.delete(code)
            raw = t.source_code.encode("utf-8")
            workflow = crate.add_workflow(
                BytesIO(raw),
                code.id,
                main=True,
                lang=lang,
                properties=_clean({**props, **keep, "programmingLanguage": lang}),
            )
            self.code[t.uid] = workflow
            return workflow
        url = _repository_file(t)
        props.update(url=t.reference, programmingLanguage=lang)
        return crate.add_workflow(url, main=True, lang=lang, properties=_clean(props))

    def _workflow(
        self, runs: dict[str, RunInfo], apps: dict[str, SoftwareApplication], tools, all_runs
    ):
        crate, info = self.crate, self.info
        from .prov import prov_document

        known = self._known_workflow(all_runs)
        if known is not None:
            kind, run = known
            workflow = self._main_workflow(kind, run, self._language(kind))
            text = prov_json(prov_document(self.g, info, self.portable), self.portable)
            prov_file = crate.add_file(
                BytesIO(text.encode()),
                dest_path=WORKFLOW_FILE,
                properties={
                    "name": f"The recorded {info.title}",
                    "description": "The lineage flowprov recorded, as W3C PROV-JSON.",
                    "encodingFormat": "application/json",
                    "conformsTo": {"@id": PROV_JSON},
                },
            )
            crate.root_dataset.append_to("hasPart", prov_file)
            return self._steps(workflow, runs, apps, tools)

        lang = crate.add(
            ComputerLanguage(
                crate,
                PROV_JSON,
                {
                    "name": "PROV-JSON",
                    "alternateName": "W3C PROV-JSON",
                    "identifier": {"@id": PROV_JSON},
                    "url": {"@id": PROV_JSON},
                },
            )
        )
        text = prov_json(prov_document(self.g, info, self.portable), self.portable)
        workflow = crate.add_workflow(
            BytesIO(text.encode()),
            WORKFLOW_FILE,
            main=True,
            lang=lang,
            properties={
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": f"The recorded {info.title}",
                "description": (
                    "Synthesised by flowprov: not a workflow definition but the lineage flowprov "
                    "recorded — the transforms run (steps), and the runs, files and people that "
                    "connect them — written as W3C PROV-JSON."
                ),
                "encodingFormat": "application/json",
            },
        )
        return self._steps(workflow, runs, apps, tools)

    def _steps(self, workflow, runs, apps, tools):
        crate = self.crate
        steps = {}
        order, acyclic = _step_order(self.g, {nid: tools[nid] for nid in runs})
        env_of = {tools[nid]: self.g.environment_of(nid) for nid in runs}
        for i, key in enumerate(order):
            app = apps[key]
            name = app.get("alternateName") or app["name"]
            props = {"@type": "HowToStep", "name": name, "workExample": app}
            if acyclic:
                props["position"] = i
            spec = (env_of[key].spec_file or {}) if env_of[key] is not None else {}
            if spec.get("node") in self.data:  # the environment file is a file of the crate
                props["buildInstructions"] = self.data[spec["node"]]
                self.crate.metadata.extra_terms["buildInstructions"] = BUILD_INSTRUCTIONS
            steps[key] = crate.add(ContextEntity(crate, f"#step-{key}", props))
            workflow.append_to("step", steps[key])
            workflow.append_to("hasPart", app)
        return workflow, steps

    # -- actions -------------------------------------------------------------------------------
    def _run_action(self, nid: str, r: RunInfo, app, people) -> ContextEntity:
        t = r.transform
        notes = []
        if r.params:
            notes.append(f"params: {json.dumps(r.params, sort_keys=True, default=str)}")
        parent = self.info.runs.get(r.parent) if r.parent else None
        if parent is not None:
            notes.append(f"inside run {parent.uid} of {parent.transform.name} (#run-{parent.uid})")
        env = self.g.environment_of(nid)
        if env is not None:
            notes.append(environment_note(env))
        failed = STATUS.get(r.status) is None
        props = {
            "@type": "CreateAction",
            "name": f"Run {r.uid} of {t.name}" + (f" {t.version}" if t.version else ""),
            "identifier": r.uid,
            "description": "; ".join(notes),
            "startTime": _time(r.started_at),
            "endTime": _time(r.finished_at),
            "actionStatus": _status(r.status),
            "error": (r.error or "")[-2000:] if failed else None,
            "agent": people.get(r.user.uid) if r.user else None,
            # only an image the run is known to have run in; a declared one is in the description
            "containerImage": (
                self._container(env)
                if env is not None and env.container_image and container_ran(env)
                else None
            ),
        }
        ins = [self.data[a] for a in self.inputs.get(nid, [])]
        outs = [self.data[a] for a in self.outputs.get(nid, [])]
        return self.crate.add_action(app, f"#run-{r.uid}", ins, outs, _clean(props))

    def _lineage_action(self, workflow, runs: dict[str, RunInfo], people) -> ContextEntity:
        made = {a for arts in self.outputs.values() for a in arts}
        read = {a for arts in self.inputs.values() for a in arts}
        statuses = {STATUS.get(r.status, "FailedActionStatus") for r in runs.values()}
        status = next(
            (s for s in ("FailedActionStatus", "ActiveActionStatus") if s in statuses),
            "CompletedActionStatus",
        )
        agents = [people[u] for u in dict.fromkeys(r.user.uid for r in runs.values() if r.user)]
        props = {
            "@type": "CreateAction",
            "name": f"The runs of the {self.info.title}",
            "actionStatus": {"@id": SCHEMA + status},
            "agent": agents,
            **self._span(runs.values()),
        }
        return self.crate.add_action(
            workflow,
            "#lineage",
            [e for nid, e in self.data.items() if nid not in made],
            [e for nid, e in self.data.items() if nid in made and nid not in read],
            _clean(props),
        )

    @staticmethod
    def _span(runs) -> dict:
        runs = list(runs)
        starts = [r.started_at for r in runs if r.started_at]
        ends = [r.finished_at for r in runs]
        return {
            "startTime": _time(min(starts)) if starts else None,
            "endTime": _time(max(ends)) if ends and None not in ends else None,
        }

    # -- data entities -------------------------------------------------------------------------
    def _data_entity(self, a: ArtifactInfo):
        props = {"name": a.name, "identifier": a.uid, "description": a.description}
        if a.is_folder:
            return self._folder(a, props)
        known = a.checksums.get("sha256")
        if not isinstance(known, str):
            known = a.hash if a.hash_type == "sha256" else None
        props.update(encodingFormat=encoding_format(a.suffix))
        return self._file(a, a.location, None, known, a.size, props)

    def _file(self, a: ArtifactInfo, location, rel, known, size, props, dest=None):
        """A File for one file (of a folder when rel is set); `known` is its sha256 if known."""
        copy = dest or (self._dest(a) if self.with_data else None)
        scratch = None
        if copy and not a.is_local:
            scratch = self.scratch / secrets.token_hex(8)
        sha = known
        what = f"file {rel} of folder artifact {a.uid}" if rel else f"artifact {a.uid}"
        try:
            if known is None or scratch is not None:
                algorithm = None if rel else a.hash_type
                sha, own, read = _read(location, a.is_local, algorithm, scratch)
                size = size if size is not None else read
                if own is not None and own != a.hash:
                    self.warnings.append(
                        f"{what} changed since it was recorded ({location}): "
                        "exported without sha256" + (", not copied" if copy else "")
                    )
                    sha, copy = None, None
            elif not os.path.isfile(location) and a.is_local:
                raise FileNotFoundError(location)
        except (OSError, StorageError) as e:
            self.warnings.append(
                f"{what} could not be read ({location}: {e}): exported "
                + ("with its recorded sha256" if known else "without sha256")
                + (", not copied" if copy else "")
            )
            sha, copy = known, None
        props = _clean(
            {**props, "sha256": sha, "contentSize": str(size) if size is not None else None}
        )
        if copy:
            source = scratch or location
            return self.crate.add_file(source, dest_path=copy, properties=props)
        uri = self._uri(a, location)
        return self.crate.add_file(uri, properties=props)

    def _folder(self, a: ArtifactInfo, props: dict):
        dest = self._dest(a) if self.with_data else None
        try:
            files = _list(a.location, a.is_local)
        except (OSError, StorageError) as e:
            self.warnings.append(
                f"folder artifact {a.uid} could not be listed ({a.location}: {e}): "
                "exported without its files"
            )
            files, dest = [], None
        parts = []
        for rel, location in files:
            part_props = {"name": rel, "encodingFormat": encoding_format(Path(rel).suffix)}
            part_dest = f"{dest}/{rel}" if dest else None
            parts.append(self._file(a, location, rel, None, None, part_props, part_dest))
        props = _clean({**props, "hasPart": parts})
        if dest:
            return self.crate.add_dataset(None, dest_path=dest, properties=props)
        return self.crate.add_dataset(self._uri(a, a.location), properties=props)

    def _uri(self, a: ArtifactInfo, location: str) -> str:
        uri = self.portable.uri(a, location)
        if uri in self.ids:  # two versions of an in-place file: same place, different bytes
            uri = f"{uri}#{a.uid}"
        self.ids.add(uri)
        return uri

    def _dest(self, a: ArtifactInfo) -> str:
        """Where an artifact goes inside the crate: its key, unless that clashes."""
        path = a.key or f"{a.uid}{a.suffix}"
        if self._clashes(path):
            path = f"{a.uid}/{path}"
        self.taken.add(path)
        parts = path.split("/")
        self.dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        return path

    def _clashes(self, path: str) -> bool:
        parts = path.split("/")
        prefixes = ("/".join(parts[:i]) for i in range(1, len(parts)))
        return path in self.taken or path in self.dirs or any(p in self.taken for p in prefixes)


# -- software ----------------------------------------------------------------------------------


def _name_version(text: str) -> tuple[str, str | None]:
    """("CPython", "3.11.2") from "CPython 3.11.2"; (text, None) when it ends in no version."""
    name, _, last = text.rpartition(" ")
    if name and last[:1].isdigit():
        return name, last
    return text, None


def software_id(p: tuple) -> str:
    """#software/<source>/<name>/<version>/<build>/<channel> of a package (name, version, build,
    source, channel): each part percent-encoded, missing ones empty, empty ones at the end left
    off — distinct packages never share an @id."""
    name, version, build, source, channel = p
    parts = [quote(x or "", safe="") for x in (source, name, version, build, channel)]
    while not parts[-1]:
        parts.pop()
    return "#software/" + "/".join(parts)


_CHANNEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _package_props(p: tuple) -> dict:
    name, version, build, source, channel = p
    url = None
    if source == "pip" and channel is None:  # from an index, not a URL or folder (PEP 610)
        url = f"https://pypi.org/project/{quote(name, safe='')}/"
    elif source == "conda" and channel and _CHANNEL.fullmatch(channel):  # an anaconda.org name
        url = f"https://anaconda.org/{channel}/{quote(name, safe='')}"
    how = f"{source} package" + (f", build {build}" if build else "")
    how += f", from {channel}" if channel else ""
    return {"name": name, "softwareVersion": version, "url": url, "description": how}


def container_ran(env) -> bool:
    """Whether the run is known to have run in the environment's container image: the whole
    environment was deployed, or its parts' record says the container part was."""
    if env.deployed is True:
        return True
    parts = (env.details or {}).get("deployed")
    return isinstance(parts, dict) and parts.get("container") is True


def container_props(env) -> dict:
    """additionalType, registry, name, tag and sha256 of an image reference ("docker://quay.io/
    biocontainers/samtools:1.17--h00cdaf9_0", "ubuntu:22.04", "library://u/c/img:1",
    "/images/tool.sif"), as the Process Run Crate's ContainerImage has them."""
    ref, engine = env.container_image, (env.container_engine or "").lower()
    scheme, sep, rest = ref.partition("://")
    if not sep:
        scheme, rest = "", ref
    is_file = ref.startswith(("/", "./", "../")) or ref.endswith((".sif", ".simg"))
    sif = engine in SIF_ENGINES or scheme in REGISTRIES or is_file
    out: dict = {
        "additionalType": {"@id": WFRUN + ("SIFImage" if sif else "DockerImage")},
        "alternateName": ref,
        "description": f"run with {engine}" if engine else None,
    }
    digest = env.container_digest or None
    if is_file or scheme not in ("", "docker", *REGISTRIES):
        out["name"] = ref
    else:
        if "@" in rest:
            rest, digest_in_ref = rest.split("@", 1)
            digest = digest or digest_in_ref
        first, _, path = rest.partition("/")
        if scheme in REGISTRIES:
            registry, path = REGISTRIES[scheme], rest
        elif path and ("." in first or ":" in first or first == "localhost"):
            registry = first
        else:
            registry, path = "docker.io", rest
        head, _, last = path.rpartition("/")
        tag = None
        if ":" in last:
            last, tag = last.split(":", 1)
        path = f"{head}/{last}" if head else last
        if registry == "docker.io" and "/" not in path:
            path = f"library/{path}"  # Docker's own spelling of an official image
        out.update(registry=registry, name=path, tag=tag)
    if digest and digest.startswith("sha256:"):
        out["sha256"] = digest.split(":", 1)[1]
    elif digest:
        out["identifier"] = digest  # another algorithm's digest (an image file's blake3)
    return out


def environment_note(env) -> str:
    """The software environment of a run, in a sentence for an action's description."""
    what = [x for x in (env.interpreter, env.os) if x]
    if env.container_image:
        how = (
            "ran"
            if container_ran(env)
            else ("declared, not deployed" if env.deployed is False else "deployment unknown")
        )
        engine = f"{env.container_engine}, " if env.container_engine else ""
        digest = f" {env.container_digest}" if env.container_digest else ""
        what.append(f"container {env.container_image}{digest} ({engine}{how})")
    count = f"{env.n_packages} packages" + (" (complete)" if env.complete else " (partial)")
    what.append(count)
    if env.spec_file:
        what.append(f"environment file {env.spec_file.get('name')}")
    state = {True: "deployed", False: "declared, not deployed (the host's software ran)"}
    return (
        f"software environment {env.uid}: {', '.join(what)}; "
        f"{state.get(env.deployed, 'deployment unknown')}"
    )


# -- step order --------------------------------------------------------------------------------


def _tool_edges(graph, tools: dict[str, str]) -> dict[str, set[str]]:
    """Tool key → the keys of the tools whose runs made what its runs read."""
    maker = {e.target: e.source for e in graph.edges if e.kind == "generated"}
    deps: dict[str, set[str]] = {key: set() for key in tools.values()}
    for e in graph.edges:
        if e.kind == "used" and e.target in tools and maker.get(e.source) in tools:
            before, after = tools[maker[e.source]], tools[e.target]
            if before != after:
                deps[after].add(before)
    return deps


def _step_order(graph, tools: dict[str, str]) -> tuple[list[str], bool]:
    """The tools (steps) of the runs (run node id → tool key) in data-flow order, and whether
    there is one (transforms can form a cycle: A's run made x, B's run read x and made y, a later
    run of A read y); else first-run order."""
    deps = _tool_edges(graph, tools)
    try:
        return list(TopologicalSorter(deps).static_order()), True
    except CycleError:
        return list(deps), False


def _db_id(node_id: str) -> int:
    return int(node_id[1:])


_COMMIT = re.compile(r"[0-9a-f]{7,40}")


def _repository_file(t: TransformInfo) -> str | None:
    """The URL of a Nextflow pipeline's main.nf at the commit it ran, when its repository (a
    GitHub or GitLab URL) and commit are recorded; else None."""
    ref, version = (t.reference or "").rstrip("/"), t.version or ""
    if not re.match(r"^https://(github\.com|gitlab\.com)/[^/]+/[^/]+$", ref.removesuffix(".git")):
        return None
    if not _COMMIT.fullmatch(version):
        return None
    return f"{ref.removesuffix('.git')}/blob/{version}/main.nf"
