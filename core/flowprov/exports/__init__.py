"""Exports of a record's lineage to open formats: W3C PROV and RO-Crate.

    from flowprov.exports import export
    export(figure, "figure.prov.json", "prov-json")            # W3C PROV-JSON
    export(figure, "figure.provn", "prov-n")                   # W3C PROV-N
    export(figure, "figure.crate.zip", "ro-crate", with_data=True)
    export(figure, "public.crate.zip", "ro-crate", places="relative", people="pseudonymised")

Both are built from the lineage Graph (flowprov.lineage) plus what its pictures do not need —
each run's transform and exact times, each artifact's checksums and location — read in bulk by
`details` (two statements, chunked, whatever the size of the graph). The layouts are described in
prov.py and rocrate.py; how places and people are written for publishing (`places`, `people`) in
portable.py.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select

from .. import schema as S
from ..errors import ValidationError

__all__ = ["FORMATS", "PEOPLE", "PLACES", "details", "export"]

logger = logging.getLogger("flowprov")

FORMATS = ("prov-json", "prov-n", "ro-crate")
PLACES = ("absolute", "relative", "storage")  # see portable.py
PEOPLE = ("named", "pseudonymised")


def export(
    record,
    path: str | os.PathLike,
    format: str,
    direction: str = "upstream",
    depth: int | None = None,
    with_data: bool = False,
    license: str | None = None,
    places: str = "absolute",
    people: str = "named",
) -> Path:
    """Write the lineage of an Artifact, Run or Transform to `path` as "prov-json", "prov-n" or
    "ro-crate" (a folder, or a zip when the path ends in .zip); returns the path written.

    with_data (RO-Crate only) copies the files into the crate; by default the crate refers to them
    where they are. Files that cannot be read are exported without checksum and logged as
    warnings (see flowprov.exports.rocrate.write_crate for the list itself). license (RO-Crate
    only; Workflow RO-Crate asks for one): a URL or SPDX id such as "CC-BY-4.0"; without it, the
    instance setting "export.license" (see flowprov.instance_settings) is used.

    places: how file locations are written — "absolute" (file:// paths of this machine, storage
    URLs), "relative" (urn:flowprov:storage:<storage uid>/<path under its root>, every storage),
    "storage" (the storage URL of cloud files, the relative form for local ones). With any but
    "absolute", absolute paths of this machine in other texts (keys, params, errors) are cut
    to their last part. people: "named" (handles and full names) or "pseudonymised" (a stable
    pseudonym per person; no handle, name or user uid). See portable.py."""
    if format not in FORMATS:
        raise ValidationError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    if places not in PLACES:
        raise ValidationError(f"unknown places {places!r}; use one of {', '.join(PLACES)}")
    if people not in PEOPLE:
        raise ValidationError(f"unknown people {people!r}; use one of {', '.join(PEOPLE)}")
    if with_data and format != "ro-crate":
        raise ValidationError(
            f"with_data copies files into an RO-Crate; a {format} export describes files only"
        )
    from ..lineage import lineage
    from .portable import Portable

    graph = lineage(record, direction, depth)
    path = Path(path).expanduser().absolute()
    portable = Portable.of(places, people)
    if format == "ro-crate":
        from .rocrate import write_crate

        if license is None:
            license = default_license()
        result = write_crate(graph, path, with_data=with_data, license=license, portable=portable)
        for warning in result.warnings:
            logger.warning("%s", warning)
        return result.path
    from .prov import write_prov

    return write_prov(graph, path, "json" if format == "prov-json" else "provn", portable=portable)


def default_license() -> str | None:
    """The instance's default license of exported crates (setting "export.license"), if set."""
    from .. import instance_settings
    from ..instance import current

    return instance_settings.get(current(), "export.license")


# -- what the exports need beyond the graph ---------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    uid: str
    handle: str
    name: str | None
    pseudonymous: bool = False  # uid and handle are a pseudonym; no name


@dataclass(frozen=True)
class TransformInfo:
    uid: str
    name: str
    type: str
    version: str | None
    key: str | None
    reference: str | None
    description: str | None
    source_code: str | None = None
    parent: str | None = None  # uid of the enclosing transform (a rule's pipeline)


@dataclass(frozen=True)
class RunInfo:
    uid: str
    name: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    params: Any
    engine: str | None
    reference: str | None
    error: str | None
    parent: str | None  # node id ("r<id>") of the enclosing run
    transform: TransformInfo
    user: UserInfo | None


@dataclass(frozen=True)
class ArtifactInfo:
    uid: str
    key: str | None
    description: str | None
    suffix: str
    size: int | None
    hash: str
    hash_type: str
    n_objects: int
    checksums: dict[str, Any]
    root: str  # storage root: a local folder or a URL
    location: str  # where the bytes are: a local path or a URL
    user: UserInfo | None
    storage_uid: str = ""
    storage_description: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.hash_type.endswith("-dir")

    @property
    def is_local(self) -> bool:
        from ..storage import is_url

        return not is_url(self.root)

    @property
    def uri(self) -> str:
        """An absolute URI of the bytes: file:// for local paths, else the storage URL."""
        return Path(self.location).as_uri() if self.is_local else self.location

    @property
    def name(self) -> str:
        return self.key or self.description or self.uid


@dataclass
class Details:
    """Graph nodes by node id: artifacts ("a<id>") and runs ("r<id>", enclosing runs included)."""

    artifacts: dict[str, ArtifactInfo] = field(default_factory=dict)
    runs: dict[str, RunInfo] = field(default_factory=dict)
    title: str = ""


_CHUNK = 500  # ids per statement (SQLite's variable limit is far above)


def _utc(v):
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


def _user(row) -> UserInfo | None:
    if row["user_uid"] is None:
        return None
    return UserInfo(row["user_uid"], row["handle"], row["user_name"])


def _artifact_query():
    a, s, u = S.artifacts, S.storages, S.users
    return (
        select(
            a.c.id,
            a.c.uid,
            a.c.key,
            a.c.description,
            a.c.suffix,
            a.c.size,
            a.c.hash,
            a.c.hash_type,
            a.c.n_objects,
            a.c.checksums,
            a.c.managed,
            s.c.root,
            s.c.uid.label("storage_uid"),
            s.c.description.label("storage_description"),
            u.c.uid.label("user_uid"),
            u.c.handle,
            u.c.name.label("user_name"),
        )
        .select_from(a.join(s, s.c.id == a.c.storage_id).outerjoin(u, u.c.id == a.c.created_by_id))
        .where(a.c.id.in_(bindparam("ids", expanding=True)))
    )


def _run_query():
    r, t, u = S.runs, S.transforms, S.users
    tp = S.transforms.alias("tp")
    return (
        select(
            r.c.id,
            r.c.uid,
            r.c.name,
            r.c.status,
            r.c.started_at,
            r.c.finished_at,
            r.c.params,
            r.c.engine,
            r.c.reference,
            r.c.error,
            r.c.parent_id,
            t.c.uid.label("t_uid"),
            t.c.name.label("t_name"),
            t.c.type.label("t_type"),
            t.c.version.label("t_version"),
            t.c.key.label("t_key"),
            t.c.reference.label("t_reference"),
            t.c.description.label("t_description"),
            t.c.source_code.label("t_source_code"),
            tp.c.uid.label("t_parent"),
            u.c.uid.label("user_uid"),
            u.c.handle,
            u.c.name.label("user_name"),
        )
        .select_from(
            r.join(t, t.c.id == r.c.transform_id)
            .outerjoin(tp, tp.c.id == t.c.parent_id)
            .outerjoin(u, u.c.id == r.c.created_by_id)
        )
        .where(r.c.id.in_(bindparam("ids", expanding=True)))
    )


def _rows(conn, statement, ids: set[int]) -> list:
    ids = sorted(ids)
    out = []
    for i in range(0, len(ids), _CHUNK):
        out += conn.execute(statement, {"ids": ids[i : i + _CHUNK]}).mappings().all()
    return sorted(out, key=lambda row: row["id"])


def _location(row) -> str:
    from ..storage import StorageRoot, object_key

    key = object_key(row["hash"], row["suffix"]) if row["managed"] else row["key"]
    return StorageRoot(row["root"]).path(key)


def details(graph) -> Details:
    """Transforms, users, times, checksums and locations of a graph's runs and artifacts."""
    from ..db import read_connection
    from ..instance import current

    a_ids = {int(n.id[1:]) for n in graph.artifacts}
    r_ids = {int(n.id[1:]) for n in graph.runs} | {int(i[1:]) for i in graph.groups}
    out = Details()
    with read_connection(current().engine) as conn:
        for row in _rows(conn, _artifact_query(), a_ids):
            out.artifacts[f"a{row['id']}"] = ArtifactInfo(
                uid=row["uid"],
                key=row["key"],
                description=row["description"],
                suffix=row["suffix"] or "",
                size=row["size"],
                hash=row["hash"],
                hash_type=row["hash_type"],
                n_objects=row["n_objects"],
                checksums=row["checksums"] if isinstance(row["checksums"], dict) else {},
                root=row["root"],
                location=_location(row),
                user=_user(row),
                storage_uid=row["storage_uid"],
                storage_description=row["storage_description"],
            )
        for row in _rows(conn, _run_query(), r_ids):
            t = TransformInfo(
                uid=row["t_uid"],
                name=row["t_name"],
                type=row["t_type"],
                version=row["t_version"],
                key=row["t_key"],
                reference=row["t_reference"],
                description=row["t_description"],
                source_code=row["t_source_code"],
                parent=row["t_parent"],
            )
            out.runs[f"r{row['id']}"] = RunInfo(
                uid=row["uid"],
                name=row["name"],
                status=row["status"],
                started_at=_utc(row["started_at"]),
                finished_at=_utc(row["finished_at"]),
                params=row["params"],
                engine=row["engine"],
                reference=row["reference"],
                error=row["error"],
                parent=f"r{row['parent_id']}" if row["parent_id"] is not None else None,
                transform=t,
                user=_user(row),
            )
    out.title = _title(graph, out)
    return out


def _title(graph, d: Details) -> str:
    """ "upstream lineage of artifact figures/fig.png (uid)" and the like."""
    runs = [d.runs[i] for i in graph.start if i in d.runs]
    names = [
        f"artifact {d.artifacts[i].name} ({d.artifacts[i].uid})"
        for i in graph.start
        if i in d.artifacts
    ]
    if len(runs) > 1 and len({r.transform.uid for r in runs}) == 1:
        t = runs[0].transform
        names.append(f"{len(runs)} runs of transform {t.name} ({t.uid})")
    else:
        names += [f"run {r.uid} of {r.transform.name}" for r in runs]
    what = {"both": "lineage (upstream and downstream)"}.get(
        graph.direction, f"{graph.direction} lineage"
    )
    return f"{what} of {', '.join(names) or 'nothing'}"
