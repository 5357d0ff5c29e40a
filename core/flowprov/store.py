"""The core's only writer: applies a batch of events in one transaction, idempotently.

Every lookup goes through the natural key of the event (see events.py) and the database's unique
constraints back it up: if a concurrent writer inserts the same record first, the whole batch is
retried and then finds that record instead of duplicating it.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC

import blake3
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from . import fast_sql
from . import schema as S
from .db import db_error, write_transaction
from .environments import known_spec
from .errors import DatabaseUnavailable, ValidationError
from .events import (
    Applied,
    ArtifactRef,
    ArtifactRegistered,
    ArtifactRemoved,
    ArtifactUsed,
    EnvironmentSpec,
    RunAlive,
    RunFinished,
    RunMerged,
    RunRef,
    RunStarted,
    StorageDeclared,
    TransformSaved,
    TransformSpec,
    UserSeen,
)
from .storage import HOST_ROOT, SYSTEM_DIR, StorageRoot, storage_type
from .uids import (
    ARTIFACT_STEM,
    STORAGE_UID,
    TRANSFORM_STEM,
    USER_UID,
    random_uid,
    suffix_index,
    version_suffix,
)

_log = logging.getLogger("flowprov.store")
_RETRIES = 8
# SQLite's busy lock, PostgreSQL's deadlock and serialization failures: retry the whole batch
_TRANSIENT = re.compile(r"locked|deadlock detected|could not serialize", re.IGNORECASE)

# Statements on the hot path are built once: constructing SQLAlchemy expressions per call costs
# more than the SQLite work itself when registering many small files.
_A, _R = S.artifacts, S.runs
_RUN_ID_BY_UID = select(_R.c.id).where(_R.c.uid == bindparam("uid"))
_RUN_ID_BY_ENGINE_REF = select(_R.c.id).where(
    and_(_R.c.engine == bindparam("engine"), _R.c.reference == bindparam("reference"))
)
# every version of one place (few rows: a file's successive contents). Not ORDER BY id: with it
# SQLite's planner walks the storage_id index (every artifact of the root) instead of the unique
# (storage_id, key, hash) one; the few rows are sorted in Python.
_PLACE_VERSIONS = select(_A).where(
    and_(_A.c.storage_id == bindparam("sid"), _A.c.key == bindparam("key"))
)
# a file copied in without a key is its content
_KEYLESS_BY_HASH = select(_A).where(and_(_A.c.key.is_(None), _A.c.hash == bindparam("hash")))
# a batch's places and keyless contents, read at once (prefetch)
_VERSIONS_OF_KEYS = (
    select(_A).where(_A.c.key.in_(bindparam("keys", expanding=True))).order_by(_A.c.id)
)
_KEYLESS_OF_HASHES = select(_A).where(
    and_(_A.c.key.is_(None), _A.c.hash.in_(bindparam("hashes", expanding=True)))
)
_SEEN_AGAIN = (
    update(_A)
    .where(_A.c.id == bindparam("aid"))
    .values(updated_at=bindparam("at"), removed=None, removed_at=None)
)
_INSERT_ARTIFACT = _A.insert()
_BULK_ARTIFACTS = 20  # from this many consecutive ArtifactRegistered, the bulk path pays off
_INSERT_RUN = _R.insert()
_INSERT_RUN_OUTPUT = S.run_outputs.insert()
_RUN_OUTPUT_EXISTS = select(S.run_outputs.c.run_id).where(
    and_(
        S.run_outputs.c.run_id == bindparam("run_id"),
        S.run_outputs.c.artifact_id == bindparam("artifact_id"),
    )
)
_RUN_UID_BY_ENGINE_REF = select(_R.c.uid).where(
    and_(_R.c.engine == bindparam("engine"), _R.c.reference == bindparam("reference"))
)
_RUN_UID_BY_ID = select(_R.c.uid).where(_R.c.id == bindparam("id"))
# which of a bulk's runs are recorded already: by uid, and by engine and reference
_RUN_UIDS_IN = select(_R.c.uid).where(_R.c.uid.in_(bindparam("uids", expanding=True)))
_RUN_REFS_IN = select(_R.c.reference, _R.c.uid).where(
    and_(_R.c.engine == bindparam("engine"), _R.c.reference.in_(bindparam("refs", expanding=True)))
)
_TRANSFORM_ID_BY_UID = select(S.transforms.c.id).where(S.transforms.c.uid == bindparam("uid"))
_FINISH_VALUES = dict(
    status=bindparam("status"),
    finished_at=bindparam("finished_at"),
    error=bindparam("error"),
    updated_at=bindparam("updated_at"),
)
_FINISH_RUN = update(_R).where(_R.c.id == bindparam("rid")).values(**_FINISH_VALUES)
_SET_RUN_RUNTIME = update(_R).where(_R.c.id == bindparam("rid")).values(runtime=bindparam("value"))
_SET_RUN_ENVIRONMENT = (
    update(_R).where(_R.c.id == bindparam("rid")).values(environment_id=bindparam("eid"))
)
_SET_UNKNOWN_ENVIRONMENT = (
    update(_R)
    .where(and_(_R.c.uid == bindparam("run_uid"), _R.c.environment_id.is_(None)))
    .values(environment_id=bindparam("eid"))
)
_RID = _R.c.id == bindparam("rid")
_RUN_PARAMS = select(_R.c.params).where(_RID)
_RUN_RUNTIME = select(_R.c.runtime).where(_RID)
_SET_RUN_PARAMS = update(_R).where(_RID).values(params=bindparam("value"))
# a sign of life: a scheduled run began; a going run's updated_at moves forward, never back
_BEGIN_RUN = (
    update(_R)
    .where(and_(_RID, _R.c.status == "scheduled"))
    .values(status="started", started_at=bindparam("at"))
)
_RUN_SEEN = (
    update(_R)
    .where(and_(_RID, _R.c.status == "started", _R.c.updated_at < bindparam("at")))
    .values(updated_at=bindparam("at"))
)
_GOING = ("scheduled", "started")
_END_IF_GOING = (
    update(_R)
    # not IN (...): an expanding parameter cannot go through executemany
    .where(and_(_R.c.uid == bindparam("run_uid"), or_(*(_R.c.status == s for s in _GOING))))
    .values(
        status=bindparam("status"),
        finished_at=bindparam("finished_at"),
        error=bindparam("error"),
        updated_at=bindparam("finished_at"),
    )
)
# an artifact version by what names it (artifact_row), and a run's inputs (_artifact_used)
_ARTIFACT_BY_UID = select(_A.c.id, _A.c.uid).where(_A.c.uid == bindparam("uid"))
_ARTIFACT_AT_PLACE = select(_A.c.id, _A.c.uid).where(
    and_(
        _A.c.storage_id == bindparam("sid"),
        _A.c.key == bindparam("key"),
        _A.c.hash == bindparam("hash"),
    )
)
_KEYLESS_ARTIFACT = select(_A.c.id, _A.c.uid).where(
    and_(_A.c.key.is_(None), _A.c.hash == bindparam("hash"))
)
_STORAGE_ID_BY_ROOT = select(S.storages.c.id).where(S.storages.c.root == bindparam("root"))
_RUN_INPUT_EXISTS = select(S.run_inputs.c.run_id).where(
    and_(
        S.run_inputs.c.run_id == bindparam("run_id"),
        S.run_inputs.c.artifact_id == bindparam("artifact_id"),
    )
)
_INSERT_RUN_INPUT = S.run_inputs.insert()
# a place seen again holding a version it held (its usual change), and a stem's versions no
# longer the latest (a new one is)
_TOUCH_ARTIFACT = (
    update(_A).where(_A.c.id == bindparam("aid")).values(updated_at=bindparam("updated_at"))
)
_NOT_LATEST = update(_A).where(_A.c.stem == bindparam("stem")).values(is_latest=False)
# one version of a place becomes its latest again (earlier bytes written back)
_LATEST_AGAIN = (
    update(_A)
    .where(_A.c.stem == bindparam("stem"))
    .values(is_latest=_A.c.id == bindparam("aid", type_=_A.c.id.type))
)
_E = S.environments
_ENV_ID_BY_HASH = select(_E.c.id).where(_E.c.hash == bindparam("hash"))
_INSERT_PACKAGES = S.packages.insert()


def source_hash(source_code: str) -> str:
    return blake3.blake3(source_code.encode()).hexdigest()


def count_by_kind(results, counts: dict) -> dict:
    """Tally Applied results: {kind: {"new": n, "existing": m}}."""
    for r in results:
        c = counts.setdefault(r.kind, {"new": 0, "existing": 0})
        c["existing" if r.existed else "new"] += 1
    return counts


class Store:
    """Applies events to one database. ``default_user`` is the handle used when an event has none."""

    def __init__(self, engine: Engine, default_user: str, where: str):
        self.engine = engine
        self.default_user = default_user
        self.where = where
        self._user_ids: dict[str, int] = {}
        self._storage_ids: dict[str, int] = {}
        self._run_ids: dict[str, int] = {}  # run uid → id (ids never change once committed)
        self._ref_ids: dict[tuple[str, str], int] = {}  # (engine, reference) → run id
        self._transform_uids: dict[TransformSpec, str] = {}  # (frozen, hashable) spec → uid
        self._env_ids: dict[str, int] = {}  # environment digest → id
        self._declared: list[StorageRoot] = []  # local declared roots, first declared first
        self._declared_at = -1e9

    def apply(self, events: Sequence) -> list[Applied]:
        """Apply all events in one transaction; all or nothing."""
        return self._transaction(lambda batch: batch.apply_all(events))

    def apply_stream(self, make_events, chunk: int = 2000) -> dict[str, int]:
        """Apply a long stream of events in one transaction, a chunk at a time, so memory does not
        grow with it (a 100,000-task trace). `make_events()` returns a fresh iterable: a retry
        after a concurrent duplicate starts over. Returns, per event kind, how many events made a
        new record and how many found an existing one: {"run_started": {"new": 5, "existing": 1}}."""

        def run(batch):
            counts: dict[str, dict[str, int]] = {}
            buf = []
            for e in make_events():
                buf.append(e)
                if len(buf) >= chunk:
                    count_by_kind(batch.apply_all(buf), counts)
                    buf = []
            count_by_kind(batch.apply_all(buf), counts)
            return counts

        return self._transaction(run)

    def _transaction(self, work):
        for attempt in range(_RETRIES):
            batch = _Batch(self)
            try:
                with write_transaction(self.engine) as conn:
                    batch.conn = conn
                    results = work(batch)
            except IntegrityError:
                # a concurrent writer inserted the same natural key first: retry and find it
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
                continue
            except OperationalError as e:
                if _TRANSIENT.search(str(e.orig)) and attempt < _RETRIES - 1:
                    time.sleep(0.05 * (attempt + 1) * (0.5 + random.random()))
                    continue
                err = db_error(e, self.where)
                if isinstance(err, DatabaseUnavailable):
                    raise DatabaseUnavailable(f"cannot write to {self.where}: {e.orig}") from e
                raise err from e
            except DBAPIError as e:  # refused: permissions, a value the database cannot hold
                raise db_error(e, self.where) from e
            self._user_ids.update(batch.new_user_ids)
            self._storage_ids.update(batch.new_storage_ids)
            if len(self._run_ids) > 100_000:
                self._run_ids.clear()
            self._run_ids.update(batch.new_run_ids)
            if len(self._ref_ids) > 100_000:
                self._ref_ids.clear()
            self._ref_ids.update(batch.new_ref_ids)
            for uid, ref in batch.merged_away:  # deleted runs: their ids are no one's now
                self._run_ids.pop(uid, None)
                self._ref_ids.pop(ref, None)
            if len(self._transform_uids) > 10_000:
                self._transform_uids.clear()
            self._transform_uids.update(batch.new_transform_uids)
            self._env_ids.update(batch.new_env_ids)
            return results
        raise AssertionError("unreachable")


class _Batch:
    def __init__(self, store: Store):
        self.store = store
        self.conn: Connection
        self.new_user_ids: dict[str, int] = {}
        self.new_storage_ids: dict[str, int] = {}
        self.new_run_ids: dict[str, int] = {}
        self.new_ref_ids: dict[tuple[str, str], int] = {}
        self.new_transform_uids: dict[TransformSpec, str] = {}
        self.new_env_ids: dict[str, int] = {}
        self.merged_away: list[tuple[str, tuple[str, str]]] = []  # runs RunMerged deleted
        self.transform_ids: dict[str, int] = {}  # uid → id, within this transaction
        self.spec_by_id: dict[int, tuple[TransformSpec, str]] = {}  # id(spec) → (spec, its uid)
        # artifact versions known in this transaction: every version of a place by (storage id,
        # key), oldest first; keyless artifacts (files copied in without a key) by hash
        self.places: dict[tuple[int, str], list[dict]] = {}
        self.keyless: dict[str, dict] = {}
        self.prefetched = False

    def apply_all(self, events) -> list[Applied]:
        """Apply events in order; long runs of RunStarted or ArtifactRegistered go through bulk
        statements (one round trip for many rows: what a PostgreSQL server over a network needs)."""
        events = [self.placed(e) for e in events]
        self.prefetch(events)
        out: list[Applied] = []
        i = 0
        while i < len(events):
            kind = events[i].kind
            j = i
            while j < len(events) and events[j].kind == kind:
                j += 1
            if kind == "run_started" and j - i >= 50:
                out += self._runs_started_bulk(events[i:j])
                i = j
            elif kind == "artifact_registered" and j - i >= _BULK_ARTIFACTS and self.prefetched:
                out += self._artifacts_registered_bulk(events[i:j])
                i = j
            else:
                out.append(self.apply(events[i]))
                i += 1
        return out

    def _artifacts_registered_bulk(self, events: list[ArtifactRegistered]) -> list[Applied]:
        """Many ArtifactRegistered at once (after prefetch). New places go in with one
        executemany; the place's current content seen again (a rerun, a re-ingest) is linked to
        its run with another. Anything else — two events of one place, a new version, an update —
        is applied one by one, after them (it cannot depend on them). Same results as applying
        them one by one."""
        ident = Counter((e.storage_root, e.key) if e.key is not None else e.hash for e in events)
        out: list[Applied | None] = [None] * len(events)
        new: dict[int, dict] = {}
        links: dict[int, tuple[int, int, object]] = {}  # event index → (run id, artifact id, at)
        fresh: list[tuple[int, int, object]] = []  # the same, of the artifacts inserted here
        seen: dict[int, dict] = {}  # event index → the existing row it found
        for i, e in enumerate(events):
            place = (e.storage_root, e.key) if e.key is not None else e.hash
            if ident[place] > 1 or len(e.stem) != ARTIFACT_STEM:
                continue
            by = self.user_id(e.created_by, e.at)
            sid = self.storage_id(e.storage_root, e.at, by)
            versions = self.versions(sid, e)
            if not versions:  # a new place (or new keyless content)
                new[i] = self._new_artifact_row(e, e.stem, 0, sid, by)
                continue
            row = next((v for v in versions if v["hash"] == e.hash), None)
            if row is None:
                continue
            if (
                row["is_latest"]
                and not row.get("removed")
                and (e.run is None or row.get("run_id") is not None)
                and not (e.checksums and not row.get("checksums"))
            ):
                seen[i] = row
                if e.run is not None:
                    links[i] = (self.run_id(e.run), row["id"], e.at)
        if new:
            ids = dict(fast_sql.insert_many(self.conn, _A, list(new.values()), ("uid", "id")))
            for i, v in new.items():
                aid = v["id"] = ids[v["uid"]]
                self._remember(v)
                if v["run_id"] is not None:
                    fresh.append((v["run_id"], aid, v["created_at"]))
                out[i] = Applied(kind=events[i].kind, uid=v["uid"], existed=False, row=v)
        if links or fresh:
            self._link_outputs(links.values(), fresh)
        again = []
        for i, row in seen.items():
            if _later(events[i].at, row["updated_at"]):
                row["updated_at"] = events[i].at
                again.append({"aid": row["id"], "at": events[i].at})
            out[i] = Applied(kind=events[i].kind, uid=row["uid"], existed=True, row=row)
        if again:
            self.conn.execute(_SEEN_AGAIN, again)
        for i, e in enumerate(events):
            if out[i] is None:
                out[i] = self._artifact_registered(e)
        return out

    def _link_outputs(self, links, fresh=()) -> None:
        """link_output for many (run, artifact, at) at once: one read, one executemany. `fresh`:
        links of artifacts inserted in this transaction, which no link can name yet (not read)."""
        links = list(links)
        ro = S.run_outputs.c
        runs = list({r for r, _, _ in links})
        arts = list({a for _, a, _ in links})
        have = set()
        for i in range(0, len(arts), 500):
            have |= set(
                self.conn.execute(
                    select(ro.run_id, ro.artifact_id).where(
                        ro.run_id.in_(runs), ro.artifact_id.in_(arts[i : i + 500])
                    )
                ).tuples()
            )
        rows, seen = [], set()
        for r, a, at in itertools.chain(links, fresh):
            if (r, a) not in have and (r, a) not in seen:
                seen.add((r, a))
                rows.append({"run_id": r, "artifact_id": a, "created_at": at})
        fast_sql.insert_many(self.conn, S.run_outputs, rows)

    def prefetch(self, events) -> None:
        """Read, in a few statements, every version of the places the batch's artifact events
        name (and the keyless artifacts of their hashes)."""
        regs = [e for e in events if e.kind == "artifact_registered"]
        self.prefetched = False
        if len(regs) < 2:
            return
        keys = list({e.key for e in regs if e.key is not None})
        hashes = list({e.hash for e in regs if e.key is None})
        found: dict[tuple[int, str], list[dict]] = {}
        for i in range(0, len(keys), 500):
            rows = self.run(_VERSIONS_OF_KEYS, {"keys": keys[i : i + 500]}).mappings()
            for row in rows:
                found.setdefault((row["storage_id"], row["key"]), []).append(dict(row))
        self.places.update(found)
        for i in range(0, len(hashes), 500):
            rows = self.run(_KEYLESS_OF_HASHES, {"hashes": hashes[i : i + 500]}).mappings()
            for row in rows:
                self.keyless[row["hash"]] = dict(row)
        self.prefetched_keys = set(keys)
        self.prefetched_hashes = set(hashes)
        self.prefetched = True

    def versions(self, sid: int, e) -> list[dict]:
        """Every version of the event's place, oldest first (for a keyless artifact: the one row
        of its content, if any). Read once per transaction, then kept up to date here."""
        if e.key is None:
            row = self.keyless.get(e.hash)
            if row is None and not (self.prefetched and e.hash in self.prefetched_hashes):
                found = self.run(_KEYLESS_BY_HASH, {"hash": e.hash}).mappings().first()
                if found is not None:
                    row = self.keyless[e.hash] = dict(found)
            return [row] if row is not None else []
        place = (sid, e.key)
        rows = self.places.get(place)
        if rows is None:
            if self.prefetched and e.key in self.prefetched_keys:
                rows = []
            else:
                q = self.run(_PLACE_VERSIONS, {"sid": sid, "key": e.key}).mappings()
                rows = sorted((dict(r) for r in q), key=lambda r: r["id"])
            self.places[place] = rows
        return rows

    def _remember(self, row: dict) -> None:
        """Keep the transaction's view of places current after inserting a version."""
        if row["key"] is None:
            self.keyless[row["hash"]] = row
        else:
            self.places.setdefault((row["storage_id"], row["key"]), []).append(row)

    # -- lookups -----------------------------------------------------------------------------
    def user_id(
        self, handle: str | None, at, name: str | None = None, uid: str | None = None
    ) -> int:
        handle = handle or self.store.default_user
        uid_ = self.store._user_ids.get(handle) or self.new_user_ids.get(handle)
        if uid_ is not None and name is None:
            return uid_
        row = self.conn.execute(
            select(S.users.c.id, S.users.c.name).where(S.users.c.handle == handle)
        ).first()
        if row is not None:
            if name is not None and row.name != name:
                self.conn.execute(
                    update(S.users).where(S.users.c.id == row.id).values(name=name, updated_at=at)
                )
            self.new_user_ids[handle] = row.id
            return row.id
        new_id = self.conn.execute(
            S.users.insert().values(
                uid=uid or random_uid(USER_UID),
                handle=handle,
                name=name,
                created_at=at,
                updated_at=at,
            )
        ).inserted_primary_key[0]
        self.new_user_ids[handle] = new_id
        return new_id

    def storage_id(self, root: str, at, created_by_id: int | None, **fields) -> int:
        sid = self.store._storage_ids.get(root) or self.new_storage_ids.get(root)
        if sid is not None:
            return sid
        sid = self.conn.execute(select(S.storages.c.id).where(S.storages.c.root == root)).scalar()
        if sid is None:
            sid = self.conn.execute(
                S.storages.insert().values(
                    uid=random_uid(STORAGE_UID),
                    root=root,
                    type=fields.get("type") or storage_type(root),
                    region=fields.get("region"),
                    description=fields.get("description"),
                    is_default=fields.get("is_default", False),
                    options=fields.get("options") or None,
                    created_by_id=created_by_id,
                    created_at=at,
                    updated_at=at,
                )
            ).inserted_primary_key[0]
            self.store._declared_at = -1e9  # a new root: re-read before placing files
        self.new_storage_ids[root] = sid
        return sid

    def run_id(self, ref: RunRef) -> int:
        rid = None
        if ref.uid:
            rid = self.store._run_ids.get(ref.uid) or self.new_run_ids.get(ref.uid)
            if rid is not None:
                return rid
            rid = self.run(_RUN_ID_BY_UID, {"uid": ref.uid}).scalar()
        if rid is None and ref.engine and ref.reference:
            key = (ref.engine, ref.reference)
            rid = self.store._ref_ids.get(key) or self.new_ref_ids.get(key)
            if rid is None:
                rid = self.run(
                    _RUN_ID_BY_ENGINE_REF, {"engine": ref.engine, "reference": ref.reference}
                ).scalar()
                if rid is not None:
                    self.new_ref_ids[key] = rid
        if rid is not None and ref.uid:
            self.new_run_ids[ref.uid] = rid
        if rid is None:
            raise ValidationError(
                f"unknown run {ref.model_dump(exclude_none=True)} in {self.store.where}"
            )
        return rid

    # -- events ------------------------------------------------------------------------------
    def apply(self, e) -> Applied:
        handler = getattr(self, "_" + e.kind)
        return handler(e)

    def run(self, stmt, params=None):
        """A prebuilt statement, through the DB-API cursor where it can (fast_sql.py)."""
        return fast_sql.execute(self.conn, stmt, params)

    def _user_seen(self, e: UserSeen) -> Applied:
        existed = (
            self.conn.execute(select(S.users.c.id).where(S.users.c.handle == e.handle)).scalar()
            is not None
        )
        self.user_id(e.handle, e.at, name=e.name, uid=e.uid)
        uid = self.conn.execute(select(S.users.c.uid).where(S.users.c.handle == e.handle)).scalar()
        return Applied(kind=e.kind, uid=uid, existed=existed)

    def _storage_declared(self, e: StorageDeclared) -> Applied:
        existed = self.conn.execute(
            select(S.storages.c.uid).where(S.storages.c.root == e.root)
        ).scalar()
        by = self.user_id(e.created_by, e.at)
        self.storage_id(
            e.root,
            e.at,
            by,
            type=e.type,
            region=e.region,
            description=e.description,
            is_default=e.is_default,
            options=e.options,
        )
        if existed is not None and e.options is not None:  # a member set the root's options anew
            self.conn.execute(
                S.storages.update()
                .where(S.storages.c.root == e.root)
                .values(options=e.options or None, updated_at=e.at)
            )
        uid = self.conn.execute(
            select(S.storages.c.uid).where(S.storages.c.root == e.root)
        ).scalar()
        return Applied(kind=e.kind, uid=uid, existed=existed is not None)

    def _transform_saved(self, e: TransformSaved) -> Applied:
        uid, existed = self.transform(e.transform, e.created_by, e.at)
        return Applied(kind=e.kind, uid=uid, existed=existed)

    def transform(self, spec: TransformSpec, created_by: str | None, at) -> tuple[str, bool]:
        """(uid, existed) of the Transform a spec describes; engines send the same spec with every
        task, so specs already resolved (and committed) are answered from a cache."""
        seen = self.spec_by_id.get(id(spec))  # the same object again (a trace's every task):
        if seen is not None and seen[0] is spec:  # no hash of the whole spec, source and all
            return seen[1], True
        cached = self.store._transform_uids.get(spec) or self.new_transform_uids.get(spec)
        if cached is not None:
            self.spec_by_id[id(spec)] = (spec, cached)
            return cached, True
        uid, existed = self._transform(spec, created_by, at)
        self.new_transform_uids[spec] = uid
        return uid, existed

    def _transform(self, spec: TransformSpec, created_by: str | None, at) -> tuple[str, bool]:
        t = S.transforms.c
        if spec.uid is not None and len(spec.uid) not in (TRANSFORM_STEM, TRANSFORM_STEM + 4):
            raise ValidationError(
                f"a Transform uid has {TRANSFORM_STEM + 4} characters ({TRANSFORM_STEM} stem + 4 "
                f"version), got {spec.uid!r}"
            )
        family = f"key:{spec.key}" if spec.key else f"{spec.type}:{spec.name}"
        if spec.uid is not None:  # a pinned uid keeps its family even if the key changes
            pinned_family = self.conn.execute(
                select(t.family).where(t.stem == spec.uid[:TRANSFORM_STEM]).limit(1)
            ).scalar()
            family = pinned_family or family
        code_hash = spec.hash or (source_hash(spec.source_code) if spec.source_code else None)
        version_tag = f"{spec.version or ''}|{code_hash or ''}"
        row = self.conn.execute(
            select(t.uid).where(and_(t.family == family, t.version_tag == version_tag))
        ).first()
        if row is not None:
            return row.uid, True
        siblings = self.conn.execute(select(t.uid, t.stem).where(t.family == family)).all()
        if siblings:
            stem = siblings[0].stem
            n = max(suffix_index(s.uid[TRANSFORM_STEM:]) for s in siblings) + 1
            uid = stem + version_suffix(n)
            self.conn.execute(
                update(S.transforms).where(t.family == family).values(is_latest=False)
            )
        elif spec.uid is not None:
            uid = spec.uid if len(spec.uid) > TRANSFORM_STEM else spec.uid + version_suffix(0)
        else:
            uid = random_uid(TRANSFORM_STEM) + version_suffix(0)
        parent_id = None
        if spec.parent is not None:
            parent_uid = (
                spec.parent
                if isinstance(spec.parent, str)
                else self.transform(spec.parent, created_by, at)[0]
            )
            parent_id = self.conn.execute(select(t.id).where(t.uid == parent_uid)).scalar()
            if parent_id is None:
                raise ValidationError(
                    f"unknown parent transform {parent_uid!r} in {self.store.where}"
                )
        self.conn.execute(
            S.transforms.insert().values(
                uid=uid,
                parent_id=parent_id,
                stem=uid[:TRANSFORM_STEM],
                family=family,
                version_tag=version_tag,
                name=spec.name,
                key=spec.key,
                description=spec.description,
                type=spec.type,
                version=spec.version,
                is_latest=True,
                reference=spec.reference,
                reference_type=spec.reference_type,
                source_code=spec.source_code,
                hash=code_hash,
                created_by_id=self.user_id(created_by, at),
                created_at=at,
                updated_at=at,
            )
        )
        return uid, False

    def _run_started(self, e: RunStarted) -> Applied:
        if self.run(_RUN_ID_BY_UID, {"uid": e.uid}).scalar() is not None:
            self._environment_if_unknown(e, e.uid)
            self._ended_elsewhere([(e.uid, e)])
            return Applied(kind=e.kind, uid=e.uid, existed=True)
        if e.engine and e.reference:
            uid = self.run(
                _RUN_UID_BY_ENGINE_REF, {"engine": e.engine, "reference": e.reference}
            ).scalar()
            if uid is not None:
                self._environment_if_unknown(e, uid)
                self._ended_elsewhere([(uid, e)])
                return Applied(kind=e.kind, uid=uid, existed=True)
        parent_id = self.run_id(e.parent) if e.parent else None
        rid = self.run(_INSERT_RUN, self._run_row(e, parent_id)).inserted_primary_key[0]
        self.new_run_ids[e.uid] = rid
        return Applied(kind=e.kind, uid=e.uid, existed=False)

    def _run_row(self, e: RunStarted, parent_id: int | None) -> dict:
        """The runs row of a new run (its transform resolved, saved if new)."""
        tuid = (
            e.transform
            if isinstance(e.transform, str)
            else self.transform(e.transform, e.created_by, e.at)[0]
        )
        return dict(
            uid=e.uid,
            transform_id=self.transform_id(tuid),
            name=e.name,
            started_at=e.at,
            finished_at=e.finished_at,
            status=e.status,
            params=e.params,
            runtime=e.runtime,
            environment_id=self.environment_id(e.environment, e.created_by, e.at),
            error=e.error,
            parent_id=parent_id,
            engine=e.engine,
            reference=e.reference,
            reference_type=e.reference_type,
            created_by_id=self.user_id(e.created_by, e.at),
            created_at=e.at,
            updated_at=e.at,
        )

    def _runs_started_bulk(self, events: list[RunStarted]) -> list[Applied]:
        """Many RunStarted at once: existing runs found in two statements, new ones inserted in
        one executemany. Same results as applying them one by one."""
        known: dict[str, str] = {}  # event uid or engine/reference → existing run uid
        uids = [e.uid for e in events]
        for i in range(0, len(uids), 500):
            for (u,) in fast_sql.execute(self.conn, _RUN_UIDS_IN, {"uids": uids[i : i + 500]}):
                known[u] = u
        by_engine: dict[str, list[str]] = {}
        for e in events:
            if e.engine and e.reference:
                by_engine.setdefault(e.engine, []).append(e.reference)
        for engine, refs in by_engine.items():
            for i in range(0, len(refs), 500):
                part = {"engine": engine, "refs": refs[i : i + 500]}
                for ref, u in fast_sql.execute(self.conn, _RUN_REFS_IN, part):
                    known[f"{engine}\0{ref}"] = u
        out, rows, env_links, ended = [], [], [], []

        def parent_id(ref: RunRef) -> int:
            try:
                return self.run_id(ref)
            except ValidationError:
                if not rows:  # not waiting in this bulk either: truly unknown
                    raise
                fast_sql.insert_many(self.conn, _R, rows)  # the parent is among the pending rows
                rows.clear()
                return self.run_id(ref)

        for e in events:
            key = f"{e.engine}\0{e.reference}" if e.engine and e.reference else None
            existing = known.get(e.uid) or (known.get(key) if key else None)
            if existing is not None:
                if e.environment is not None:
                    eid = self.environment_id(e.environment, e.created_by, e.at)
                    if eid is not None:
                        env_links.append({"run_uid": existing, "eid": eid})
                if e.finished_at is not None and e.status not in _GOING:
                    ended.append((existing, e))
                out.append(Applied(kind=e.kind, uid=existing, existed=True))
                continue
            rows.append(self._run_row(e, parent_id(e.parent) if e.parent else None))
            known[e.uid] = e.uid
            if key:
                known[key] = e.uid
            out.append(Applied(kind=e.kind, uid=e.uid, existed=False))
        if rows:
            fast_sql.insert_many(self.conn, _R, rows)
        if env_links:  # runs seen again that now say their software: one executemany
            self.run(_SET_UNKNOWN_ENVIRONMENT, env_links)
        self._ended_elsewhere(ended)
        return out

    def _ended_elsewhere(self, pairs: list[tuple[str, RunStarted]]) -> None:
        """Runs recorded as still going (scheduled or started: heard live, their end missed) that
        another source reports ended (a trace row) take that end; an ended run is never changed."""
        rows = [
            {"run_uid": uid, "status": e.status, "finished_at": e.finished_at, "error": e.error}
            for uid, e in pairs
            if e.finished_at is not None and e.status not in _GOING
        ]
        if rows:
            self.conn.execute(_END_IF_GOING, rows)

    def _environment_if_unknown(self, e: RunStarted, uid: str) -> None:
        """A run seen again (a re-ingest with work folders, a lineage store after a trace) that
        now says what software it used: recorded if the run had none; never replaced."""
        if e.environment is None:
            return
        eid = self.environment_id(e.environment, e.created_by, e.at)
        if eid is not None:
            self.run(_SET_UNKNOWN_ENVIRONMENT, {"run_uid": uid, "eid": eid})

    def link_output(self, run_id: int, artifact_id: int, at) -> None:
        """Record that a run produced an artifact's bytes (idempotent)."""
        params = {"run_id": run_id, "artifact_id": artifact_id}
        if self.run(_RUN_OUTPUT_EXISTS, params).first() is None:
            self.run(_INSERT_RUN_OUTPUT, {**params, "created_at": at})

    def transform_id(self, uid: str) -> int:
        tid = self.transform_ids.get(uid)
        if tid is None:
            tid = self.run(_TRANSFORM_ID_BY_UID, {"uid": uid}).scalar()
            if tid is None:
                raise ValidationError(f"unknown transform {uid!r} in {self.store.where}")
            self.transform_ids[uid] = tid
        return tid

    def _run_finished(self, e: RunFinished) -> Applied:
        rid = self.run_id(e.run)
        values = dict(rid=rid, status=e.status, finished_at=e.at, error=e.error, updated_at=e.at)
        self.run(_FINISH_RUN, values)
        if e.runtime is not None:
            self.run(_SET_RUN_RUNTIME, {"rid": rid, "value": e.runtime})
        if e.params:
            self._merge_params(rid, e.params)
        if e.environment is not None:
            eid = self.environment_id(e.environment, e.created_by, e.at)
            if eid is not None:
                self.run(_SET_RUN_ENVIRONMENT, {"rid": rid, "eid": eid})
        uid = e.run.uid or self.run(_RUN_UID_BY_ID, {"id": rid}).scalar()
        return Applied(kind=e.kind, uid=uid, existed=True)

    def _merge_json(self, rid: int, read, write, values: dict, *, theirs_win: bool = True) -> None:
        """Merge `values` into a run's JSON column (params, runtime) key by key: `values` win,
        or with theirs_win=False the stored ones do."""
        old = self.conn.execute(read, {"rid": rid}).scalar()
        old = old if isinstance(old, dict) else {}
        merged = {**old, **values} if theirs_win else {**values, **old}
        if merged != old:
            self.conn.execute(write, {"rid": rid, "value": merged})

    def _merge_params(self, rid: int, params: dict) -> None:
        self._merge_json(rid, _RUN_PARAMS, _SET_RUN_PARAMS, params)

    def _run_alive(self, e: RunAlive) -> Applied:
        rid = self.run_id(e.run)
        if e.began:
            self.run(_BEGIN_RUN, {"rid": rid, "at": e.at})
        self.run(_RUN_SEEN, {"rid": rid, "at": e.at})
        if e.runtime:
            self._merge_json(rid, _RUN_RUNTIME, _SET_RUN_RUNTIME, e.runtime)
        return Applied(kind=e.kind, uid=e.run.uid, existed=True)

    def _run_merged(self, e: RunMerged) -> Applied:
        """`duplicate`'s children, files and params move to `run`; `duplicate` is deleted."""
        keep = self.run_id(e.run)
        try:
            dup = self.run_id(e.duplicate)
        except ValidationError:  # merged before: nothing left to move
            return Applied(kind=e.kind, uid=e.run.uid, existed=True)
        if dup == keep:
            return Applied(kind=e.kind, uid=e.run.uid, existed=True)
        row = self.conn.execute(select(_R).where(_R.c.id == dup)).mappings().one()
        c = self.conn
        c.execute(update(_R).where(_R.c.parent_id == dup).values(parent_id=keep))
        c.execute(update(_A).where(_A.c.run_id == dup).values(run_id=keep))
        for link in (S.run_inputs, S.run_outputs):
            mine = {
                r[0] for r in c.execute(select(link.c.artifact_id).where(link.c.run_id == keep))
            }
            for (aid,) in c.execute(select(link.c.artifact_id).where(link.c.run_id == dup)).all():
                if aid not in mine:
                    c.execute(
                        update(link)
                        .where(and_(link.c.run_id == dup, link.c.artifact_id == aid))
                        .values(run_id=keep)
                    )
            c.execute(link.delete().where(link.c.run_id == dup))
        # what only the duplicate knew (a trace's path and time zone) is kept; the run's own wins
        if isinstance(row["params"], dict):
            self._merge_json(keep, _RUN_PARAMS, _SET_RUN_PARAMS, row["params"], theirs_win=False)
        c.execute(_R.delete().where(_R.c.id == dup))
        self.merged_away.append((row["uid"], (row["engine"], row["reference"])))
        self.new_run_ids.pop(row["uid"], None)
        self.new_ref_ids.pop((row["engine"], row["reference"]), None)
        return Applied(kind=e.kind, uid=e.run.uid, existed=True)

    def environment_id(self, env, created_by: str | None, at) -> int | None:
        """The id of an environment (a spec, or the digest of one sent before), inserted with its
        packages if new. A digest this database and this process do not know (its spec was lost
        with a batch applied elsewhere) links nothing, with a warning: never a guess."""
        if env is None:
            return None
        digest = env if isinstance(env, str) else env.digest()
        eid = self.store._env_ids.get(digest) or self.new_env_ids.get(digest)
        if eid is None:
            eid = self.run(_ENV_ID_BY_HASH, {"hash": digest}).scalar()
        if eid is None:
            spec = env if isinstance(env, EnvironmentSpec) else known_spec(digest)
            if spec is None:
                _log.warning(
                    "environment %s is not known in %s: the run is recorded without it",
                    digest[:16],
                    self.store.where,
                )
                return None
            eid = self._insert_environment(spec, digest, created_by, at)
        self.new_env_ids[digest] = eid
        return eid

    def _insert_environment(self, spec: EnvironmentSpec, digest: str, created_by, at) -> int:
        packages = sorted(set(spec.packages), key=lambda p: p.sort_key())
        row = dict(
            uid=digest[:16],
            hash=digest,
            interpreter=spec.interpreter,
            os=spec.os,
            container_image=spec.container_image,
            container_digest=spec.container_digest,
            container_engine=spec.container_engine,
            spec_file_id=(
                self.artifact_row(self.placed_ref(spec.spec_file)).id if spec.spec_file else None
            ),
            deployed=spec.deployed,
            complete=spec.complete,
            n_packages=len(packages),
            details=spec.details,
            created_by_id=self.user_id(created_by, at),
            created_at=at,
        )
        eid = self.conn.execute(_E.insert(), row).inserted_primary_key[0]
        if packages:
            self.conn.execute(
                _INSERT_PACKAGES,
                [
                    dict(
                        environment_id=eid,
                        name=p.name,
                        version=p.version,
                        build=p.build,
                        source=p.source,
                        channel=p.channel,
                    )
                    for p in packages
                ],
            )
        return eid

    def _new_artifact_row(
        self, e: ArtifactRegistered, stem: str, n: int, sid: int, by: int
    ) -> dict:
        """The artifacts row of new bytes: version n of the artifact `stem`."""
        return dict(
            uid=stem + version_suffix(n),
            stem=stem,
            key=e.key,
            file_name=e.file_name,
            removed=None,
            removed_at=None,
            key_is_virtual=e.key_is_virtual,
            description=e.description,
            suffix=e.suffix,
            size=e.size,
            hash=e.hash,
            hash_type=e.hash_type,
            checksums=e.checksums,
            n_objects=e.n_objects,
            is_latest=True,
            managed=e.managed,
            storage_id=sid,
            run_id=self.run_id(e.run) if e.run else None,
            created_by_id=by,
            created_at=e.at,
            updated_at=e.at,
        )

    def _artifact_registered(self, e: ArtifactRegistered) -> Applied:
        a = _A.c
        by = self.user_id(e.created_by, e.at)
        sid = self.storage_id(e.storage_root, e.at, by)
        versions = self.versions(sid, e)
        row = next((v for v in versions if v["hash"] == e.hash), None)
        latest = next((v for v in versions if v["is_latest"]), None)
        if row is not None:  # this place has held these bytes before
            changes: dict = {}
            if e.checksums and not row.get("checksums"):
                changes["checksums"] = e.checksums
            if row.get("removed"):  # deleted on purpose, now there again
                changes.update(removed=None, removed_at=None)
            rid = self.run_id(e.run) if e.run is not None else None
            if rid is not None and row["run_id"] is None:
                # first seen as someone's input, now known to be this run's output: its creator
                changes["run_id"] = rid
            if _later(e.at, row["updated_at"]):
                changes["updated_at"] = e.at  # when the place was last seen holding them
            if e.key is not None and not row["is_latest"] and _later(e.at, latest["updated_at"]):
                # earlier bytes written back: the place holds this version again
                self.run(_LATEST_AGAIN, {"stem": row["stem"], "aid": row["id"]})
                for v in versions:
                    v["is_latest"] = v is row
            if changes.keys() == {"updated_at"}:
                self.run(_TOUCH_ARTIFACT, {"aid": row["id"], "updated_at": e.at})
                row.update(changes)
            elif changes:
                self.conn.execute(update(_A).where(a.id == row["id"]).values(**changes))
                row.update(changes)
            if rid is not None:
                self.link_output(rid, row["id"], e.at)
            return Applied(kind=e.kind, uid=row["uid"], existed=True, row=row)
        stem = versions[0]["stem"] if versions else e.stem
        if len(stem) != ARTIFACT_STEM:
            raise ValidationError(f"artifact stem must have {ARTIFACT_STEM} characters: {stem!r}")
        values = self._new_artifact_row(e, stem, len(versions), sid, by)
        # a new version is the place's content now — unless a later sighting of another version
        # is already recorded (an old event replayed late)
        if latest is not None:
            if _later(latest["updated_at"], e.at):
                values["is_latest"] = False
            else:
                self.run(_NOT_LATEST, {"stem": stem})
                for v in versions:
                    v["is_latest"] = False
        values["id"] = self.run(_INSERT_ARTIFACT, values).inserted_primary_key[0]
        if values["run_id"] is not None:
            self.run(
                _INSERT_RUN_OUTPUT,
                {"run_id": values["run_id"], "artifact_id": values["id"], "created_at": e.at},
            )
        self._remember(values)
        return Applied(kind=e.kind, uid=values["uid"], existed=False, row=values)

    def placed(self, e):
        """An event naming a place under the host root whose path lies inside a declared root
        names it by that root instead (a writer that could not read the roots — the database
        was down — recorded it by absolute location): one file, one place, however it came."""
        if e.kind == "artifact_registered" and e.storage_root == HOST_ROOT and e.key:
            found = self._declared_place(e.key)
            if found is not None:
                return e.model_copy(update={"storage_root": found[0], "key": found[1]})
        elif e.kind in ("artifact_used", "artifact_removed"):
            ref = self.placed_ref(e.artifact)
            if ref is not e.artifact:
                return e.model_copy(update={"artifact": ref})
        return e

    def placed_ref(self, ref: ArtifactRef) -> ArtifactRef:
        """The same for a reference to an artifact."""
        if ref.storage_root == HOST_ROOT and ref.key:
            found = self._declared_place(ref.key)
            if found is not None:
                return ref.model_copy(update={"storage_root": found[0], "key": found[1]})
        return ref

    def _declared_place(self, host_key: str) -> tuple[str, str] | None:
        store = self.store
        if time.monotonic() - store._declared_at > 10:  # roots other writers added since
            rows = self.conn.execute(
                select(S.storages.c.root)
                .where(S.storages.c.type == "local")
                .order_by(S.storages.c.id)
            ).scalars()
            store._declared = [StorageRoot(r) for r in rows if r != HOST_ROOT]
            store._declared_at = time.monotonic()
        path = HOST_ROOT + host_key
        for root in store._declared:
            key = root.key_of(path)
            if key is not None and key.split("/", 1)[0] != SYSTEM_DIR:
                return root.root, key
        return None

    def artifact_row(self, ref: ArtifactRef):
        """(id, uid) of the artifact version a reference names; a ValidationError if none, or if
        a bare hash names several places (never guess which)."""
        a = _A.c
        # prebuilt statements: building a select per event was a third of this method's time
        if ref.uid:
            row = self.run(_ARTIFACT_BY_UID, {"uid": ref.uid}).first()
        elif ref.storage_root is not None:
            sid = self.store._storage_ids.get(ref.storage_root) or self.new_storage_ids.get(
                ref.storage_root
            )
            if sid is None:
                sid = self.run(_STORAGE_ID_BY_ROOT, {"root": ref.storage_root}).scalar()
            if ref.key is None:  # `key = NULL` matches nothing: as before, the expression
                cond = and_(a.storage_id == sid, a.key == ref.key, a.hash == ref.hash)
                row = self.conn.execute(select(a.id, a.uid).where(cond)).first()
            else:
                at = {"sid": sid, "key": ref.key, "hash": ref.hash}
                row = self.run(_ARTIFACT_AT_PLACE, at).first()
        else:
            row = self.run(_KEYLESS_ARTIFACT, {"hash": ref.hash}).first()
        if row is None and ref.uid is None and ref.storage_root is None:
            # an older event naming content only: accept it if exactly one place holds it
            rows = self.conn.execute(select(a.id, a.uid).where(a.hash == ref.hash).limit(2)).all()
            if len(rows) > 1:
                raise ValidationError(
                    f"artifact hash {ref.hash} is held by several places in {self.store.where}: "
                    "name the place (storage_root and key) or the uid"
                )
            row = rows[0] if rows else None
        if row is None:
            raise ValidationError(
                f"unknown artifact {ref.model_dump(exclude_none=True)} in {self.store.where}"
            )
        return row

    def _artifact_removed(self, e: ArtifactRemoved) -> Applied:
        row = self.artifact_row(e.artifact)
        self.conn.execute(
            update(_A)
            .where(_A.c.id == row.id, _A.c.removed.is_(None))
            .values(removed=e.reason, removed_at=e.at)
        )
        for rows in self.places.values():  # keep the transaction's view current
            for v in rows:
                if v["id"] == row.id and not v.get("removed"):
                    v.update(removed=e.reason, removed_at=e.at)
        return Applied(kind=e.kind, uid=row.uid, existed=True)

    def _artifact_used(self, e: ArtifactUsed) -> Applied:
        row = self.artifact_row(e.artifact)
        rid = self.run_id(e.run)
        link = {"run_id": rid, "artifact_id": row.id}
        exists = self.run(_RUN_INPUT_EXISTS, link).first()
        if exists is None:
            self.run(_INSERT_RUN_INPUT, {**link, "created_at": e.at})
        return Applied(kind=e.kind, uid=row.uid, existed=exists is not None)


def _aware(t):
    """SQLite hands back naive datetimes (stored as UTC)."""
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _later(a, b) -> bool:
    """a is strictly later than b (either may come naive from SQLite)."""
    return b is None or _aware(a) > _aware(b)
