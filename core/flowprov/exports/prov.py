"""A lineage graph as a W3C PROV document (PROV-DM), through the `prov` library.

One namespace, prefix ``fp`` = ``urn:flowprov:``, names both the records and flowprov's own
attributes. Records are named by their flowprov uid, as in every flowprov export (RO-Crate
entities carry the same uid as `identifier`):

    entity(fp:artifact/<uid>)      an artifact: prov:label (key, else description),
                                   prov:location (file:// URI or storage URL), fp:uid, fp:key,
                                   fp:description, fp:suffix, fp:size, fp:hash, fp:hash_type,
                                   fp:n_objects, and fp:<name> for each checksum other systems
                                   keep (fp:md5, fp:sha256, ...; non-text values as JSON text)
    entity(fp:transform/<uid>)     a transform, prov:type prov:Plan: prov:label, fp:uid, fp:name,
                                   fp:version, fp:type, fp:key, fp:reference
    activity(fp:run/<uid>)         a run, with start and end time: prov:label, fp:uid, fp:status,
                                   fp:name, fp:params (JSON text), fp:engine, fp:reference
    agent(fp:user/<uid>)           a user, prov:type prov:Person: prov:label (handle), fp:handle,
                                   fp:name; pseudonymised (portable.py): fp:user/<pseudonym>,
                                   prov:label the pseudonym, fp:pseudonymous true, nothing else
    entity(fp:environment/<uid>)   a software environment, prov:type prov:Collection and
                                   fp:Environment: prov:label, fp:uid, fp:hash, fp:interpreter,
                                   fp:os, fp:container_image, fp:container_digest,
                                   fp:container_engine, fp:deployed, fp:complete, fp:n_packages,
                                   fp:spec_file (its key), fp:details (JSON text)
    entity(fp:package/<id>)        one package of an environment, prov:type fp:Package:
                                   prov:label, fp:name, fp:version, fp:build, fp:source,
                                   fp:channel. <id> is <source>/<name>/<version>[/<build>] when
                                   those are plain names (letters, digits, . _ -) and there is
                                   no channel, else a digest of them all: one entity per package,
                                   shared by the environments that hold it

A run's activity also carries its environment's fields (fp:environment = its uid,
fp:interpreter, fp:os, fp:container_*, fp:deployed, fp:complete), so a reader of one activity
needs no join.

    used(run, artifact)                        the run read the artifact
    wasGeneratedBy(artifact, run)              the run wrote it
    wasAssociatedWith(run, user, transform)    who ran it, following which plan
    wasAttributedTo(artifact, user)            who registered it
    wasStartedBy(run, -, enclosing run, time)  a run inside an enclosing run (a Snakemake job in
                                               its workflow run, a Prefect task in its flow run),
                                               as CWLProv records a workflow's steps; the
                                               enclosing run is an activity too
    used(run, environment)                     the software the run ran with (deployed: this is
                                               what ran)
    wasInfluencedBy(run, environment)          the environment was declared for the run but not
                                               deployed (the host's software ran), or whether it
                                               was is not known: influence, not use
    hadMember(environment, package)            the environment's packages
    wasDerivedFrom(environment, artifact)      the environment file (conda yaml, requirements)
                                               it was made from

Why an environment is an entity (a prov:Collection of package entities) and not a prov:Plan or a
prov:SoftwareAgent: the plan a run followed is its transform (its code), and the agent
responsible is its user; the installed software is a thing the run used — like an input, it can
be shared by many runs and compared between them — and a collection is what PROV-DM offers for
"a set of entities", each package then being an entity other documents can refer to.

Records are added grouped by kind (entities, activities, agents, then each relation), the order
PROV-JSON keeps, so PROV-N of a document and of its PROV-JSON read back are the same text.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import blake3
from prov.constants import PROV, PROV_LABEL, PROV_LOCATION, PROV_TYPE
from prov.identifier import Identifier
from prov.model import ProvDocument

from ..errors import ValidationError
from . import ArtifactInfo, Details, RunInfo, details
from .portable import Portable

PREFIX = "fp"
NAMESPACE = "urn:flowprov:"

_ARTIFACT_FIELDS = ("uid", "key", "description", "suffix", "size", "hash", "hash_type", "n_objects")


def artifact_id(uid: str) -> str:
    return f"{PREFIX}:artifact/{uid}"


def run_id(uid: str) -> str:
    return f"{PREFIX}:run/{uid}"


def transform_id(uid: str) -> str:
    return f"{PREFIX}:transform/{uid}"


def user_id(uid: str) -> str:
    return f"{PREFIX}:user/{uid}"


def environment_id(uid: str) -> str:
    return f"{PREFIX}:environment/{uid}"


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def package_id(package: tuple) -> str:
    """fp:package/<source>/<name>/<version>[/<build>] when every part is a plain name and no
    channel sets the package apart, else fp:package/<digest of all five>: distinct packages never
    share an identifier, and no name can make an invalid one."""
    name, version, build, source, channel = package
    parts = [source, name, version or "-"] + ([build] if build else [])
    readable = channel is None and all(
        _PLAIN.fullmatch(p) for p in (source, name, version, build) if p is not None
    )
    if readable:
        return f"{PREFIX}:package/{'/'.join(parts)}"
    body = json.dumps([name, version, build, source, channel], separators=(",", ":"))
    return f"{PREFIX}:package/{blake3.blake3(body.encode()).hexdigest()[:32]}"


def _attrs(pairs: dict) -> dict:
    """fp:<name> attributes, leaving out empty values."""
    return {
        (k if ":" in str(k) else f"{PREFIX}:{k}"): v
        for k, v in pairs.items()
        if v is not None and v != ""
    }


def _checksum_attrs(checksums: dict) -> dict:
    """fp:<name> for each checksum; names that clash with flowprov's own get a checksum_ prefix."""
    out = {}
    for name, value in sorted(checksums.items()):
        term = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name)) or "checksum"
        if term in _ARTIFACT_FIELDS:
            term = f"checksum_{term}"
        out[term] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def _artifact(doc: ProvDocument, a: ArtifactInfo, portable: Portable) -> None:
    attrs = {PROV_LABEL: a.name, PROV_LOCATION: Identifier(portable.uri(a, a.location))}
    attrs.update({f: getattr(a, f) for f in _ARTIFACT_FIELDS})
    attrs.update(_checksum_attrs(a.checksums))
    doc.entity(artifact_id(a.uid), _attrs(attrs))


def _run(doc: ProvDocument, r: RunInfo, env) -> None:
    t = r.transform
    attrs = {
        PROV_LABEL: f"{t.name} run {r.uid}",
        "uid": r.uid,
        "status": r.status,
        "name": r.name,
        "params": json.dumps(r.params, sort_keys=True, default=str) if r.params else None,
        "engine": r.engine,
        "reference": r.reference,
    }
    if env is not None:
        attrs.update(
            environment=env.uid,
            interpreter=env.interpreter,
            os=env.os,
            container_image=env.container_image,
            container_digest=env.container_digest,
            container_engine=env.container_engine,
            deployed=env.deployed,
            complete=env.complete,
        )
    doc.activity(run_id(r.uid), r.started_at, r.finished_at, _attrs(attrs))


def _environment(doc: ProvDocument, env) -> None:
    attrs = {
        PROV_LABEL: f"software environment {env.uid}",
        "uid": env.uid,
        "hash": env.hash,
        "interpreter": env.interpreter,
        "os": env.os,
        "container_image": env.container_image,
        "container_digest": env.container_digest,
        "container_engine": env.container_engine,
        "deployed": env.deployed,
        "complete": env.complete,
        "n_packages": env.n_packages,
        "spec_file": (env.spec_file or {}).get("name"),
        "details": json.dumps(env.details, sort_keys=True) if env.details else None,
    }
    types = [
        (PROV_TYPE, PROV["Collection"]),
        (PROV_TYPE, doc.valid_qualified_name("fp:Environment")),
    ]
    doc.entity(environment_id(env.uid), types + list(_attrs(attrs).items()))


def _package(doc: ProvDocument, package: tuple) -> None:
    name, version, build, source, channel = package
    attrs = {
        PROV_TYPE: doc.valid_qualified_name("fp:Package"),
        PROV_LABEL: f"{name} {version}" if version else name,
        "name": name,
        "version": version,
        "build": build,
        "source": source,
        "channel": channel,
    }
    doc.entity(package_id(package), _attrs(attrs))


def prov_document(
    graph, info: Details | None = None, portable: Portable | None = None
) -> ProvDocument:
    """The PROV document of a lineage graph (see the module docstring for its layout); with a
    `portable` that is active, its texts are not yet made portable (see `prov_json`)."""
    portable = portable or Portable()
    info = info or portable_details(graph, portable)
    doc = ProvDocument()
    doc.add_namespace(PREFIX, NAMESPACE)
    arts = {nid: info.artifacts[nid] for nid in sorted(info.artifacts, key=_db_id)}
    runs = {nid: info.runs[nid] for nid in sorted(info.runs, key=_db_id)}  # enclosing runs too

    # entities: artifacts, then the transforms (plans) of the runs
    for a in arts.values():
        _artifact(doc, a, portable)
    plans = {r.transform.uid: r.transform for r in runs.values()}
    for t in plans.values():
        attrs = {
            PROV_TYPE: PROV["Plan"],
            PROV_LABEL: f"{t.name} {t.version}" if t.version else t.name,
            "uid": t.uid,
            "name": t.name,
            "version": t.version,
            "type": t.type,
            "key": t.key,
            "reference": t.reference,
        }
        doc.entity(transform_id(t.uid), _attrs(attrs))
    # the runs' software environments and their packages (each once)
    env_of = {nid: graph.environment_of(nid) for nid in runs}
    envs = {e.uid: e for e in env_of.values() if e is not None}
    packages: dict[str, tuple] = {}
    for env in envs.values():
        _environment(doc, env)
        for p in env.packages:
            packages.setdefault(package_id(p), p)
    for p in packages.values():
        _package(doc, p)
    # activities, then agents
    for nid, r in runs.items():
        _run(doc, r, env_of[nid])
    people = [*(r.user for r in runs.values()), *(a.user for a in arts.values())]
    for u in {u.uid: u for u in people if u is not None}.values():
        attrs = {
            PROV_TYPE: PROV["Person"],
            PROV_LABEL: u.handle,
            "handle": None if u.pseudonymous else u.handle,
            "name": u.name,
            "pseudonymous": True if u.pseudonymous else None,
        }
        doc.agent(user_id(u.uid), _attrs(attrs))

    # relations, one kind after the other
    used = [(e.source, e.target) for e in graph.edges if e.kind == "used"]
    for a, r in sorted(used, key=lambda pair: (_db_id(pair[0]), _db_id(pair[1]))):
        doc.used(run_id(runs[r].uid), artifact_id(arts[a].uid))
    for nid, r in runs.items():  # the software that ran
        if env_of[nid] is not None and env_of[nid].deployed is True:
            doc.used(run_id(r.uid), environment_id(env_of[nid].uid))
    made = [(e.source, e.target) for e in graph.edges if e.kind == "generated"]
    for r, a in sorted(made, key=lambda pair: (_db_id(pair[1]), _db_id(pair[0]))):
        doc.wasGeneratedBy(artifact_id(arts[a].uid), run_id(runs[r].uid))
    for r in runs.values():
        agent = user_id(r.user.uid) if r.user else None
        doc.wasAssociatedWith(run_id(r.uid), agent, transform_id(r.transform.uid))
    for a in arts.values():
        if a.user is not None:
            doc.wasAttributedTo(artifact_id(a.uid), user_id(a.user.uid))
    for r in runs.values():
        if r.parent in runs:
            doc.wasStartedBy(run_id(r.uid), None, run_id(runs[r.parent].uid), r.started_at)
    for nid, r in runs.items():  # declared, or not known to have been deployed
        if env_of[nid] is not None and env_of[nid].deployed is not True:
            doc.wasInfluencedBy(run_id(r.uid), environment_id(env_of[nid].uid))
    for env in envs.values():
        for p in env.packages:
            doc.hadMember(environment_id(env.uid), package_id(p))
    for env in envs.values():
        if env.spec_file and env.spec_file.get("uid"):
            doc.wasDerivedFrom(environment_id(env.uid), artifact_id(env.spec_file["uid"]))
    return doc


def _db_id(node_id: str) -> int:
    return int(node_id[1:])


def portable_details(graph, portable: Portable) -> Details:
    from ..instance import current

    info = details(graph)
    return portable.apply(info, current().uid) if portable.active else info


def prov_json(doc: ProvDocument, portable: Portable | None = None) -> str:
    """PROV-JSON text of a document, its texts made portable when asked (portable.py)."""
    text = doc.serialize(format="json", indent=2)
    if portable is None or not portable.active:
        return text
    return json.dumps(portable.walk(json.loads(text)), indent=2, ensure_ascii=False)


def write_prov(
    graph, path: str | os.PathLike, format: str = "json", portable: Portable | None = None
) -> Path:
    """Write the PROV document of a graph as PROV-JSON (format "json") or PROV-N ("provn")."""
    if format not in ("json", "provn"):
        raise ValidationError(f"unknown PROV format {format!r}: use 'json' or 'provn'")
    portable = portable or Portable()
    doc = prov_document(graph, portable=portable)
    if portable.active:  # texts made portable in the JSON, PROV-N written from it read back
        text = prov_json(doc, portable)
        if format == "provn":
            text = ProvDocument.deserialize(content=text, format="json").get_provn()
    else:
        text = doc.serialize(format="json", indent=2) if format == "json" else doc.get_provn()
    return write_text(Path(path), text + "\n")


def write_text(path: Path, text: str) -> Path:
    """Write a file whole or not at all (a temporary file renamed into place)."""
    if path.is_dir():
        raise ValidationError(f"{path} is a folder: a PROV export is one file, give its path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
