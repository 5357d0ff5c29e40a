"""The records of DESIGN's vocabulary: User, Storage, Transform, Run, Artifact.

A record is a thin view of one database row plus its relations; creating and changing records
goes through events (flowprov.events) applied by the Store, so the Python API uses the same door
as the engine plugins.
"""

from __future__ import annotations

import logging
import os
import traceback
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import NoResultFound

from . import schema as S
from .errors import ContentChanged, FileMissingError, NotSaved, ValidationError
from .query import QuerySet, Rel

logger = logging.getLogger("flowprov")

_HIDDEN_COLUMNS = {"family", "version_tag", "stem"}


def _utc(v):
    if isinstance(v, datetime) and v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    return v


_BY_UID: dict[str, object] = {}  # table name → SELECT of one row by uid


def _utc_row(row) -> dict:
    """A row's values with its naive datetimes (SQLite's) marked UTC; the rest as they are."""
    out = dict(row)
    for k, v in out.items():
        if isinstance(v, datetime) and v.tzinfo is None:
            out[k] = v.replace(tzinfo=UTC)
    return out


@cache
def _column_keys(table: Table) -> frozenset[str]:
    return frozenset(table.c.keys())


class Record:
    _table: ClassVar[Table]
    _relations: ClassVar[dict[str, Rel]] = {}
    _aliases: ClassVar[dict[str, list[str]]] = {}
    _search_fields: ClassVar[tuple[str, ...]] = ()
    _repr_fields: ClassVar[tuple[str, ...]] = ("uid",)

    def __init__(self, **fields: Any):
        unknown = fields.keys() - _column_keys(self._table)
        if unknown:
            raise ValidationError(
                f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}"
            )
        object.__setattr__(self, "_row", dict(fields))

    # -- row access --------------------------------------------------------------------------
    @classmethod
    def _from_row(cls, row) -> Record:
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_row", _utc_row(dict(row)))
        return obj

    def __getattr__(self, name: str):
        row = self.__dict__.get("_row")
        if row is not None and name in self._table.c:
            return row.get(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value):
        if name in self._table.c:
            self._row[name] = value
        else:
            object.__setattr__(self, name, value)

    def _require_id(self) -> int:
        rid = self._row.get("id")
        if rid is None:
            raise NotSaved(f"{type(self).__name__} is not saved yet: call .save() first")
        return rid

    def _set_row(self, row: dict) -> None:
        self._row.clear()
        self._row.update(_utc_row(row))

    def _refresh_by_uid(self, uid: str, inst=None) -> None:
        from . import fast_sql
        from .db import read_connection
        from .instance import current

        stmt = _BY_UID.get(self._table.name)
        if stmt is None:  # built once: a run's finish() reads its row back every time
            stmt = _BY_UID[self._table.name] = select(self._table).where(
                self._table.c.uid == bindparam("uid")
            )
        with read_connection((inst or current()).engine) as conn:
            rows = fast_sql.execute(conn, stmt, {"uid": uid}).mappings().all()
        if len(rows) != 1:
            raise NoResultFound(f"{len(rows)} {self._table.name} rows have uid {uid!r}")
        row = rows[0]
        self._row.clear()
        self._row.update(_utc_row(row))

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.uid is not None and self.uid == other.uid

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.uid))

    def __repr__(self) -> str:
        parts = []
        for f in self._repr_fields:
            v = self._row.get(f)
            if isinstance(v, datetime):
                v = v.strftime("%Y-%m-%d %H:%M:%S UTC")
            parts.append(f"{f}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- queries -----------------------------------------------------------------------------
    @classmethod
    def filter(cls, *clauses, **lookups) -> QuerySet:
        return QuerySet(cls).filter(*clauses, **lookups)

    @classmethod
    def all(cls) -> QuerySet:
        return QuerySet(cls)

    @classmethod
    def get(cls, uid: str | None = None, **lookups) -> Record:
        """One record by uid (a unique prefix works too) or by lookups."""
        if uid is not None and not lookups:
            qs = QuerySet(cls).filter(uid__startswith=uid)
            return qs.one()
        return QuerySet(cls).get(uid, **lookups)

    @classmethod
    def df(cls, limit: int | None = None):
        qs = QuerySet(cls).order_by("-id")
        if limit:
            qs = QuerySet(cls, qs._where, qs._order, limit)
        return qs.df()

    @classmethod
    def search(cls, query: str, limit: int = 20, min_score: float = 50.0):
        from .search import search_records

        return search_records(cls, query, limit=limit, min_score=min_score)

    @classmethod
    def _frame(cls, rows):
        import pandas as pd

        cols = [c for c in cls._table.c.keys() if c not in _HIDDEN_COLUMNS]
        data = [{c: _utc(r[c]) for c in cols} for r in rows]
        df = pd.DataFrame(data, columns=cols)
        return df.set_index("id") if "id" in df.columns else df

    def _related(self, model: type[Record], fk_value) -> Record | None:
        if fk_value is None:
            return None
        return QuerySet(model).filter(id=fk_value).one_or_none()

    @property
    def created_by(self) -> User | None:
        return self._related(User, self._row.get("created_by_id"))


class _UserLookup:
    """Attribute access by handle: ``User.lookup().testuser1``."""

    def __init__(self, users: list[User]):
        self._by_handle = {u.handle: u for u in users}

    def __getattr__(self, handle: str) -> User:
        try:
            return self._by_handle[handle]
        except KeyError:
            raise AttributeError(
                f"no user {handle!r}; known: {', '.join(sorted(self._by_handle)) or 'none'}"
            ) from None

    def __getitem__(self, handle: str) -> User:
        return self._by_handle[handle]

    def __dir__(self):
        return list(self._by_handle)

    def __repr__(self) -> str:
        return f"<UserLookup {sorted(self._by_handle)}>"


class _HasLineage:
    """Lineage methods shared by Artifact, Run and Transform (see flowprov.lineage)."""

    def lineage(self, direction: str = "upstream", depth: int | None = None, highlight_run=None):
        """The lineage graph as data: nodes (artifacts, runs, transforms) and edges."""
        from .lineage import lineage

        return lineage(self, direction, depth, highlight_run)

    def view_lineage(
        self,
        direction: str = "upstream",
        depth: int | None = None,
        path=None,
        format: str | None = None,
        collapse_over: int | None = 12,
    ):
        """Draw the lineage: inline in Jupyter, else written to `path` (default
        ./lineage_<uid>.html), whose location is returned. The current run, if it read any of the
        graph's artifacts, is drawn below them and its inputs highlighted."""
        from .context import current_run
        from .lineage import title_of, view

        run = current_run()
        if run is not None and run._row.get("id") is None:
            run = None
        g = self.lineage(direction, depth, highlight_run=run)
        return view(g, path, format, title_of(self, direction), collapse_over)


class User(Record):
    _table = S.users
    _search_fields = ("handle", "name")
    _repr_fields = ("uid", "handle", "name", "updated_at")

    def __init__(self, *a, **k):
        raise ValidationError("users are created by `flowprov login HANDLE --name NAME`")

    @classmethod
    def lookup(cls) -> _UserLookup:
        return _UserLookup(QuerySet(cls).all())

    @classmethod
    def current(cls) -> User:
        """The user flowprov acts as (FLOWPROV_USER, then `flowprov login`, then the OS user)."""
        from .config import current_user_config
        from .events import UserSeen
        from .instance import current

        u = current_user_config()
        current().store.apply([UserSeen(handle=u.handle, name=u.name, uid=u.uid)])
        return QuerySet(cls).filter(handle=u.handle).one()


class Storage(Record):
    """A root where artifacts live. Register extra roots to record files there in place."""

    _table = S.storages
    _relations = {"created_by": Rel("fk", "User", "created_by_id")}
    _search_fields = ("root", "description")
    _repr_fields = ("uid", "root", "type", "region", "is_default")

    def __init__(
        self, root: str | os.PathLike, description: str | None = None, region: str | None = None
    ):
        from .storage import normalize_root, storage_type

        r = normalize_root(root)
        super().__init__(root=r, type=storage_type(r), description=description, region=region)

    def save(self) -> Storage:
        from .events import StorageDeclared
        from .instance import current

        res = current().store.apply(
            [
                StorageDeclared(
                    root=self.root, type=self.type, region=self.region, description=self.description
                )
            ]
        )
        self._refresh_by_uid(res[0].uid)
        return self


class Transform(_HasLineage, Record):
    """Versioned code: an upload, script, notebook, pipeline, or an engine's flow/task/rule/process."""

    _table = S.transforms
    _relations = {
        "created_by": Rel("fk", "User", "created_by_id"),
        "runs": Rel("rev", "Run", "transform_id"),
        "parent": Rel("fk", "Transform", "parent_id"),
        "children": Rel("rev", "Transform", "parent_id"),
    }
    _search_fields = ("name", "key", "description")
    _repr_fields = (
        "uid",
        "name",
        "key",
        "type",
        "version",
        "is_latest",
        "created_by_id",
        "updated_at",
    )

    def __init__(
        self,
        name: str,
        type: str = "pipeline",
        key: str | None = None,
        version: str | None = None,
        description: str | None = None,
        reference: str | None = None,
        reference_type: str | None = None,
        source_code: str | None = None,
        uid: str | None = None,
    ):
        from .events import TRANSFORM_TYPES

        if type not in TRANSFORM_TYPES:
            raise ValidationError(
                f"unknown transform type {type!r}; use one of {', '.join(TRANSFORM_TYPES)}"
            )
        super().__init__(
            name=name,
            type=type,
            key=key,
            version=version,
            description=description,
            reference=reference,
            reference_type=reference_type,
            source_code=source_code,
            uid=uid,
        )

    def _spec(self):
        from .events import TransformSpec

        r = self._row
        return TransformSpec(
            name=r["name"],
            type=r["type"],
            key=r.get("key"),
            version=r.get("version"),
            description=r.get("description"),
            source_code=r.get("source_code"),
            reference=r.get("reference"),
            reference_type=r.get("reference_type"),
            uid=r.get("uid"),
        )

    def save(self) -> Transform:
        if self._row.get("id") is not None:
            return self
        from .events import TransformSaved
        from .instance import current

        res = current().store.apply([TransformSaved(transform=self._spec())])
        self._refresh_by_uid(res[0].uid)
        logger.info("%s Transform('%s')", "loaded" if res[0].existed else "created", self.uid)
        return self

    @property
    def runs(self) -> QuerySet:
        return Run.filter(transform=self)

    @property
    def parent(self) -> Transform | None:
        """The enclosing transform (a rule's workflow, a task's flow) — not its data lineage;
        for that see `parents`."""
        return self._related(Transform, self._row.get("parent_id"))

    @property
    def children(self) -> QuerySet:
        return Transform.filter(parent=self)

    @property
    def versions(self) -> QuerySet:
        return Transform.filter(stem=self.stem).order_by("uid")

    @property
    def latest_version(self) -> Transform:
        return Transform.filter(stem=self.stem, is_latest=True).one()

    @property
    def parents(self) -> QuerySet:
        """Transforms whose runs produced the artifacts this transform's runs read."""
        read = select(S.run_inputs.c.artifact_id).where(
            S.run_inputs.c.run_id.in_(
                select(S.runs.c.id).where(S.runs.c.transform_id == self._require_id())
            )
        )
        producers = select(S.run_outputs.c.run_id).where(S.run_outputs.c.artifact_id.in_(read))
        creators = select(S.runs.c.transform_id).where(S.runs.c.id.in_(producers))
        return Transform.filter(S.transforms.c.id.in_(creators), S.transforms.c.id != self.id)

    def ancestors(self, depth: int | None = None) -> QuerySet:
        """Every transform upstream of this one, to any depth (one recursive query): the
        transforms that feed it, and the ones that feed those."""
        from .lineage.walk import check_depth, walk_transforms

        check_depth(depth)
        ids = walk_transforms("upstream", self._require_id(), depth).subquery()
        return Transform.filter(
            S.transforms.c.id.in_(select(ids.c[0])), S.transforms.c.id != self.id
        )

    def descendants(self, depth: int | None = None) -> QuerySet:
        """Every transform downstream of this one: the ones that read what it made, and so on."""
        from .lineage.walk import check_depth, walk_transforms

        check_depth(depth)
        ids = walk_transforms("downstream", self._require_id(), depth).subquery()
        return Transform.filter(
            S.transforms.c.id.in_(select(ids.c[0])), S.transforms.c.id != self.id
        )

    def parents_graph(self, direction: str = "upstream", depth: int | None = None):
        """The graph of transforms feeding this one (or fed by it: direction="downstream")."""
        from .lineage import transform_graph

        return transform_graph(self, direction, depth)

    def view_parents(self, depth: int | None = None, path=None, format: str | None = None):
        """Draw the transforms feeding this one: inline in Jupyter, else written to a file."""
        from .lineage import view

        g = self.parents_graph("upstream", depth)
        return view(g, path, format, f"transforms feeding {self.name} ({self.uid})")


class Run(_HasLineage, Record):
    """One execution of a Transform. ``with Run(transform=t):`` makes it the current run."""

    _table = S.runs
    _relations = {
        "transform": Rel("fk", "Transform", "transform_id"),
        "created_by": Rel("fk", "User", "created_by_id"),
        "parent": Rel("fk", "Run", "parent_id"),
        "children": Rel("rev", "Run", "parent_id"),
        "outputs": Rel("m2m", "Artifact", None, S.run_outputs, "run_id", "artifact_id"),
        "inputs": Rel("m2m", "Artifact", None, S.run_inputs, "run_id", "artifact_id"),
        "environment": Rel("fk", "Environment", "environment_id"),
    }
    _search_fields = ("name", "reference")
    _repr_fields = ("uid", "transform_id", "status", "started_at", "finished_at", "created_by_id")

    def __init__(
        self,
        transform: Transform,
        params: dict | None = None,
        name: str | None = None,
        parent: Run | None = None,
        reference: str | None = None,
        reference_type: str | None = None,
        engine: str | None = None,
        uid: str | None = None,
    ):
        from .uids import RUN_UID, random_uid

        if not isinstance(transform, Transform):
            raise ValidationError(
                f"Run(transform=...) needs a Transform, got {type(transform).__name__}"
            )
        super().__init__(
            uid=uid or random_uid(RUN_UID),
            params=params,
            name=name,
            reference=reference,
            reference_type=reference_type,
            engine=engine,
        )
        object.__setattr__(self, "_transform", transform)
        object.__setattr__(self, "_parent", parent)
        object.__setattr__(self, "_token", None)

    def save(self) -> Run:
        if self._row.get("id") is not None:
            return self
        if "_transform" not in self.__dict__:
            # known only by uid (an engine plugin's run, recorded through events): load it,
            # after writing any events still buffered
            from .spool import flush_all

            flush_all()
            self._refresh_by_uid(self._row["uid"], self.__dict__.get("_instance"))
            return self
        from .context import environment
        from .events import RunRef, RunStarted
        from .instance import current

        t = self._transform
        parent = self.__dict__.get("_parent")
        event = RunStarted(
            uid=self.uid,
            transform=t.uid if t._row.get("id") is not None else t._spec(),
            name=self.name,
            params=self.params,
            environment=environment(),
            parent=RunRef(uid=parent.save().uid) if parent is not None else None,
            engine=self.engine,
            reference=self.reference,
            reference_type=self.reference_type,
        )
        # a child run lives with its parent (a parent link cannot cross databases)
        inst = (parent.__dict__.get("_instance") if parent is not None else None) or current()
        res = inst.store.apply([event])
        # the run lives here: its end and outputs come here too (see flowprov.context)
        object.__setattr__(self, "_instance", inst)
        self._refresh_by_uid(res[0].uid, inst)
        if t._row.get("id") is None:
            from .db import read_connection

            with read_connection(inst.engine) as conn:
                tid = S.transforms.c.id == self.transform_id
                t_uid = conn.execute(select(S.transforms.c.uid).where(tid)).scalar_one()
            t._refresh_by_uid(t_uid, inst)
        logger.info("created Run('%s') of Transform('%s')", self.uid, t.uid)
        return self

    def finish(self, status: str = "completed", error: str | None = None) -> Run:
        """Record the end of the run: status 'completed' (or 'failed' with the error), finished_at."""
        from .events import RUN_STATUSES, RunFinished, RunRef
        from .instance import current

        if status not in RUN_STATUSES:
            raise ValidationError(
                f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}"
            )
        self.save()
        inst = self.__dict__.get("_instance") or current()  # where it started
        inst.store.apply(
            [
                RunFinished(
                    run=RunRef(uid=self.uid),
                    status=status,
                    error=error,
                )
            ]
        )
        self._refresh_by_uid(self.uid, inst)
        return self

    def __enter__(self) -> Run:
        from .context import _current_run

        self.save()
        object.__setattr__(self, "_token", _current_run.set(self))
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from .context import _current_run

        if self.__dict__.get("_token") is not None:
            _current_run.reset(self._token)
            object.__setattr__(self, "_token", None)
        if exc is None:
            self.finish("completed")
        else:
            self.finish("failed", error="".join(traceback.format_exception(exc_type, exc, tb)))

    @property
    def transform(self) -> Transform:
        if self._row.get("transform_id") is None:
            return self.__dict__["_transform"]
        return self._related(Transform, self.transform_id)

    @property
    def parent(self) -> Run | None:
        return self._related(Run, self._row.get("parent_id"))

    @property
    def children(self) -> QuerySet:
        return Run.filter(parent=self)

    @property
    def inputs(self) -> QuerySet:
        return Artifact.filter(input_of=self)

    @property
    def environment(self) -> Environment | None:
        """The software this run used (None when it is not known)."""
        return self._related(Environment, self._row.get("environment_id"))

    def diff(self, other: Run | str, depth: int | None = None):
        """Where this run's history and `other`'s part (see flowprov.diff)."""
        from .diff import diff

        return diff(self, other, depth)

    @property
    def outputs(self) -> QuerySet:
        """Every artifact this run produced (also those whose bytes another run produced first)."""
        return Artifact.filter(output_of=self)


class Artifact(_HasLineage, Record):
    """A file or a folder at a place (storage + key); each version is known by the hash of its
    whole content. A file copied in without a key is identified by its content alone."""

    _table = S.artifacts
    _relations = {
        "run": Rel("fk", "Run", "run_id"),
        "created_by": Rel("fk", "User", "created_by_id"),
        "storage": Rel("fk", "Storage", "storage_id"),
        "input_of": Rel("m2m", "Run", None, S.run_inputs, "artifact_id", "run_id"),
        "output_of": Rel("m2m", "Run", None, S.run_outputs, "artifact_id", "run_id"),
    }
    _aliases = {"transform": ["run", "transform"]}
    _search_fields = ("key", "file_name", "description")
    _repr_fields = (
        "uid",
        "key",
        "description",
        "suffix",
        "size",
        "hash",
        "n_objects",
        "run_id",
        "created_by_id",
    )

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        key: str | None = None,
        description: str | None = None,
        run: Run | None = None,
        algorithm: str | None = None,
    ):
        super().__init__(key=key, description=description)
        object.__setattr__(self, "_source", os.fspath(path))
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_algorithm", algorithm)
        object.__setattr__(self, "existed", False)

    def save(self) -> Artifact:
        """Register the file (hash, copy into storage if outside it, record); returns this artifact.

        If its place already holds these bytes (or, for a file copied in without a key, the same
        bytes were copied in before), this becomes that version (``existed`` is True and the
        logger says so) — and the place's latest version again, if newer bytes had replaced it.
        """
        if self._row.get("id") is not None:
            return self
        from .artifacts import register

        register([self])
        return self

    # -- where the bytes are ------------------------------------------------------------------
    def _root(self):
        from .instance import current

        roots = current().storages()
        if self.storage_id not in roots:
            roots = current().storages(refresh=True)
        return roots[self.storage_id]

    @property
    def _object_key(self) -> str:
        from .storage import object_key

        if self.managed:
            return object_key(self.hash, self.suffix)
        return self.key

    @property
    def path(self) -> Path | str:
        """Where the file is: a local Path, or a URL for remote storage."""
        self._require_id()
        root = self._root()
        p = root.path(self._object_key)
        return Path(p) if root.is_local else p

    def _track_input(self, is_run_input: bool | None) -> None:
        from .context import record_input

        record_input(self, is_run_input)

    def cache(self, is_run_input: bool | None = None) -> Path:
        """A local path to the content (downloaded once for remote storage); records a run input.
        Refuses (ContentChanged) if the file no longer holds this version's bytes."""
        self._require_id()
        root = self._root()
        if root.is_local:
            p = Path(root.path(self._object_key))
            if not p.exists():
                raise FileMissingError(
                    f"the file of Artifact('{self.uid}') is missing: {p} (run `flowprov verify`)"
                )
            self._check_local(str(p))
        else:
            p = self._cached_copy()
            if not p.exists():  # a cached copy was checked against the hash when it came
                p.parent.mkdir(parents=True, exist_ok=True)
                tmp = p.with_name(p.name + ".part")
                self._check_remote_checksums(root)
                try:
                    root.get(self._object_key, str(tmp), recursive=self.n_objects > 1)
                except FileNotFoundError:
                    raise FileMissingError(
                        f"the object of Artifact('{self.uid}') is missing: {self.path} "
                        "(run `flowprov verify`)"
                    ) from None
                try:
                    self._check_local(str(tmp), use_cache=False, where=str(self.path))
                except BaseException:
                    _remove_quietly(tmp)
                    raise
                os.replace(tmp, p)
        self._track_input(is_run_input)
        return p

    def open(self, mode: str = "rb", is_run_input: bool | None = None):
        """A file object on the content (files only); records a run input. Refuses
        (ContentChanged) if the file no longer holds this version's bytes."""
        if self.n_objects != 1 or self.hash_type.endswith("-dir"):
            raise ValidationError(
                f"Artifact('{self.uid}') is a folder: use .cache() to get its path"
            )
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValidationError("artifacts are immutable: open them for reading only")
        root = self._root()
        path = root.path(self._object_key)
        if not root.is_local:  # read from a local copy checked against the hash as it came
            return open(self.cache(is_run_input), mode)  # noqa: SIM115 - the caller closes it
        if os.path.exists(path):
            self._check_local(path)
        try:
            f = root.open(self._object_key, mode)
        except FileNotFoundError:
            raise FileMissingError(
                f"the file of Artifact('{self.uid}') is missing at {path}"
            ) from None
        self._track_input(is_run_input)
        return f

    # -- is the content still this version? ----------------------------------------------------
    def _cached_copy(self) -> Path:
        from ._settings import settings

        return settings.cache_dir / "objects" / f"{self.hash}{self.suffix}"

    def _changed(self, where: str, found: str) -> ContentChanged:
        return ContentChanged(
            f"{where} no longer holds Artifact('{self.uid}') ({self.hash_type} {self.hash}): it "
            f"now holds other bytes ({found}). Record what is there with "
            f"fp.Artifact({where!r}).save() and read that version, or restore the file."
        )

    def _check_local(self, path: str, use_cache: bool = True, where: str | None = None) -> None:
        """Size first, then the hash (through the hash cache: an unchanged file is not re-read)."""
        from .hashing import ENGINE_MARKERS, hash_path

        is_dir = self.hash_type.endswith("-dir")
        if not is_dir and self.size is not None:
            size = os.stat(path).st_size
            if size != self.size:
                raise self._changed(where or path, f"{size:,} bytes, recorded {self.size:,}")
        algo = self.hash_type.removesuffix("-dir")
        ignore = ENGINE_MARKERS if is_dir else frozenset()
        digest = hash_path(path, algo, ignore, use_cache=use_cache)
        if digest.hash != self.hash:
            raise self._changed(where or path, f"{self.hash_type} {digest.hash}")

    def _check_remote_checksums(self, root) -> None:
        """The object store's own checksums (ETag, GCS md5/crc32c) against the recorded ones: a
        changed object is refused before a byte is read."""
        from .storage import object_checksums

        recorded = self.checksums or {}
        if not recorded or self.n_objects != 1:
            return
        now = object_checksums(root.fs, root.path(self._object_key))
        for name, value in recorded.items():
            if name in now and now[name] != value:
                raise self._changed(str(self.path), f"{name} {now[name]}, recorded {value}")

    def load(self, is_run_input: bool | None = None, **kwargs):
        """The content as a Python object, by suffix (parquet/csv/tsv → DataFrame, json, yaml, ...)."""
        from .loaders import load_path

        path = self.cache(is_run_input=is_run_input)
        return load_path(path, self.suffix, **kwargs)

    # -- relations ---------------------------------------------------------------------------
    @property
    def run(self) -> Run | None:
        return self._related(Run, self._row.get("run_id"))

    @property
    def transform(self) -> Transform | None:
        run = self.run
        return run.transform if run is not None else None

    @property
    def storage(self) -> Storage:
        return self._related(Storage, self.storage_id)

    @property
    def input_of(self) -> QuerySet:
        return Run.filter(inputs=self)

    @property
    def output_of(self) -> QuerySet:
        """Every run that produced these bytes; `run` is the first of them."""
        return Run.filter(outputs=self)

    def diff(self, other: Artifact | str, depth: int | None = None):
        """Where the histories of this artifact version and `other` part (see flowprov.diff)."""
        from .diff import diff

        return diff(self, other, depth)

    @property
    def versions(self) -> QuerySet:
        return Artifact.filter(stem=self.stem).order_by("uid")


def _remove_quietly(path: Path) -> None:
    import shutil

    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        pass


class Environment(Record):
    """The software runs used — interpreter, OS, packages, container — shared by every run that
    used the same (identified by content). Recorded by flowprov and the engine plugins, never
    made by hand."""

    _table = S.environments
    _relations = {
        "packages": Rel("rev", "Package", "environment_id"),
        "runs": Rel("rev", "Run", "environment_id"),
        "created_by": Rel("fk", "User", "created_by_id"),
        "spec_file": Rel("fk", "Artifact", "spec_file_id"),
    }
    _search_fields = ("interpreter", "container_image")
    _repr_fields = ("uid", "interpreter", "container_image", "n_packages", "deployed", "complete")

    def __init__(self, *a, **k):
        raise ValidationError("environments are recorded with the runs that use them")

    @property
    def packages(self) -> QuerySet:
        return Package.filter(environment=self).order_by("source", "name")

    @property
    def runs(self) -> QuerySet:
        return Run.filter(environment=self)

    @property
    def spec_file(self) -> Artifact | None:
        """The environment file (conda yaml, requirements) the software was made from."""
        return self._related(Artifact, self._row.get("spec_file_id"))


class Package(Record):
    """One piece of software of an environment: name, version, build, and the source that
    reported it (pip, conda, container, tool, module, spack, wrapper, engine)."""

    _table = S.packages
    _relations = {"environment": Rel("fk", "Environment", "environment_id")}
    # not in the search across records: one row per package per environment (found through
    # `flowprov envs` and queries instead)
    _search_fields = ()
    _repr_fields = ("name", "version", "build", "source")

    def __init__(self, *a, **k):
        raise ValidationError("packages are recorded with their environment")

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.id is not None and self.id == other.id

    def __hash__(self) -> int:
        return hash(("Package", self.id))

    @property
    def environment(self) -> Environment:
        return self._related(Environment, self.environment_id)


MODELS: dict[str, type[Record]] = {
    "User": User,
    "Storage": Storage,
    "Transform": Transform,
    "Run": Run,
    "Artifact": Artifact,
    "Environment": Environment,
    "Package": Package,
}
