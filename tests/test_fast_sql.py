"""The store's statements through the DB-API cursor (fast_sql.py) store exactly what SQLAlchemy
stores, raise SQLAlchemy's errors, and are what the event hot path really runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from flowprov import fast_sql
from flowprov import schema as S
from flowprov import store as st
from flowprov.db import write_transaction
from flowprov.events import RunFinished, RunRef, RunStarted, TransformSpec
from flowprov.uids import RUN_UID, random_uid
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

T = TransformSpec(name="align", type="task")


def a_run(instance) -> dict:
    """The values of a runs row, of a transform the store knows."""
    uid = random_uid(RUN_UID)
    instance.store.apply([RunStarted(uid=uid, transform=T, engine="test", created_by="svc")])
    with write_transaction(instance.engine) as conn:
        tid, uid_id = conn.execute(
            select(S.runs.c.transform_id, S.runs.c.created_by_id).where(S.runs.c.uid == uid)
        ).one()
    at = datetime(2026, 12, 2, 7, 30, 1, 123456, tzinfo=timezone(timedelta(hours=2)))
    return dict(
        transform_id=tid,
        name="same",
        started_at=at,
        finished_at=None,
        status="started",
        params=None,  # SQLAlchemy's JSON stores None as JSON null, not SQL NULL
        runtime={"argv": ["x", "ü"], "n": 1.5, "ok": True},
        environment_id=None,
        error=None,
        parent_id=None,
        engine=None,
        reference=None,
        reference_type=None,
        created_by_id=uid_id,
        created_at=at,
        updated_at=at.astimezone(UTC),
    )


RAW = "SELECT name, started_at, finished_at, params, runtime, created_at, updated_at FROM runs"


def test_a_row_is_stored_as_sqlalchemy_stores_it(instance):
    values = a_run(instance)
    fast, slow = random_uid(RUN_UID), random_uid(RUN_UID)
    with write_transaction(instance.engine) as conn:
        new_id = fast_sql.execute(conn, st._INSERT_RUN, {**values, "uid": fast})
        new_id = new_id.inserted_primary_key[0]
        old_id = conn.execute(st._INSERT_RUN, {**values, "uid": slow}).inserted_primary_key[0]
        # the stored representation itself (SQLite keeps datetimes and JSON as text)
        rows = {
            u: tuple(conn.execute(text(RAW + " WHERE uid = :u"), {"u": u}).one())
            for u in (fast, slow)
        }
        ids = dict(
            conn.execute(select(S.runs.c.uid, S.runs.c.id).where(S.runs.c.uid.in_(rows))).all()
        )
    assert rows[fast] == rows[slow]
    assert (new_id, old_id) == (ids[fast], ids[slow])


def test_an_update_with_a_constant_and_a_lookup_by_key(instance):
    values = a_run(instance)
    uid = random_uid(RUN_UID)
    end = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    with write_transaction(instance.engine) as conn:
        rid = conn.execute(st._INSERT_RUN, {**values, "uid": uid}).inserted_primary_key[0]
        assert fast_sql.execute(conn, st._RUN_ID_BY_UID, {"uid": uid}).scalar() == rid
        assert fast_sql.execute(conn, st._RUN_ID_BY_UID, {"uid": "nosuchrun"}).scalar() is None
        row = fast_sql.execute(conn, st._RUN_UID_BY_ID, {"id": rid}).first()
        assert row.uid == uid and row[0] == uid
        done = dict(rid=rid, status="completed", finished_at=end, error=None, updated_at=end)
        fast_sql.execute(conn, st._FINISH_RUN, done)
        got = conn.execute(select(S.runs).where(S.runs.c.id == rid)).mappings().one()
    assert got["status"] == "completed" and got["finished_at"].replace(tzinfo=UTC) == end


def test_a_duplicate_is_sqlalchemys_integrity_error(instance):
    values = a_run(instance)
    uid = random_uid(RUN_UID)
    with pytest.raises(IntegrityError):
        with write_transaction(instance.engine) as conn:
            fast_sql.execute(conn, st._INSERT_RUN, {**values, "uid": uid})
            fast_sql.execute(conn, st._INSERT_RUN, {**values, "uid": uid})
    # all or nothing: the first insert went with the transaction
    with write_transaction(instance.engine) as conn:
        assert conn.execute(st._RUN_ID_BY_UID, {"uid": uid}).scalar() is None


def test_the_event_path_takes_the_shortcut(instance):
    """A task's events (start, input, output, end) run their statements through the cursor: none
    of them falls back to SQLAlchemy's execute without the test saying so."""
    from flowprov.artifacts import in_place_event, input_events

    fast_sql._plans.clear()
    from pathlib import Path

    root = instance.storage
    seed = Path(root.root) / "seed.txt"
    seed.write_text("seed\n")
    out = Path(root.root) / "out.txt"
    for i in range(2):  # the second time, the places and transforms are known
        uid = random_uid(RUN_UID)
        run = RunRef(uid=uid)
        out.write_text(f"out {i}\n")
        instance.store.apply(
            [
                RunStarted(uid=uid, transform=T, engine="test", reference=uid, created_by="svc"),
                *input_events(str(seed), run=run, roots=[root], created_by="svc"),
                in_place_event(str(out), roots=[root], run=run, created_by="svc"),
                RunFinished(run=run, status="completed", created_by="svc"),
            ]
        )
    taken = {id(plan.stmt) for plan in fast_sql._plans.values() if plan is not None}
    fell_back = {key[0] for key, plan in fast_sql._plans.items() if plan is None}
    if instance.engine.dialect.name != "sqlite":  # an IN list is written out for SQLite only
        fell_back -= {id(st._VERSIONS_OF_KEYS), id(st._KEYLESS_OF_HASHES)}
    assert not fell_back
    for stmt in (st._RUN_ID_BY_UID, st._INSERT_RUN, st._FINISH_RUN, st._INSERT_ARTIFACT):
        assert id(stmt) in taken


def test_many_rows_are_stored_as_sqlalchemy_stores_them(instance, monkeypatch):
    """insert_many (a trace's tasks, a batch of files): the same stored text as SQLAlchemy's
    executemany, in chunks of rows (made small here), and the RETURNING values of every row."""
    values = a_run(instance)
    monkeypatch.setattr(fast_sql, "_max_params", lambda: 3 * len(values) + 5)  # 3 rows a chunk
    fast = [{**values, "uid": random_uid(RUN_UID), "name": f"n{i}"} for i in range(7)]
    slow = [{**values, "uid": random_uid(RUN_UID), "name": f"n{i}"} for i in range(7)]
    with write_transaction(instance.engine) as conn:
        got = fast_sql.insert_many(conn, S.runs, fast, ("uid", "id"))
        conn.execute(S.runs.insert(), slow)
        rows = {
            r["uid"]: (r["id"], tuple(conn.execute(text(RAW + " WHERE id = :i"), {"i": r["id"]})))
            for r in conn.execute(select(S.runs.c.uid, S.runs.c.id)).mappings()
        }
    assert sorted(got) == sorted((r["uid"], rows[r["uid"]][0]) for r in fast)
    for a, b in zip(fast, slow, strict=True):
        assert rows[a["uid"]][1] == rows[b["uid"]][1]
    # nothing returned when nothing is asked for; rows whose keys differ: SQLAlchemy's own error
    with write_transaction(instance.engine) as conn:
        assert fast_sql.insert_many(conn, S.runs, [{**values, "uid": random_uid(RUN_UID)}]) == []
    mixed = [{**values, "uid": random_uid(RUN_UID)}, {**values, "uid": random_uid(RUN_UID)}]
    del mixed[1]["error"]
    with pytest.raises(StatementError, match="error"):
        with write_transaction(instance.engine) as conn:
            fast_sql.insert_many(conn, S.runs, mixed, ("id",))


def test_many_rows_with_a_duplicate_are_sqlalchemys_integrity_error(instance):
    values = a_run(instance)
    rows = [{**values, "uid": random_uid(RUN_UID)} for _ in range(3)]
    rows.append(dict(rows[0]))
    with pytest.raises(IntegrityError):
        with write_transaction(instance.engine) as conn:
            fast_sql.insert_many(conn, S.runs, rows)
    with write_transaction(instance.engine) as conn:  # all or nothing
        assert conn.execute(st._RUN_ID_BY_UID, {"uid": rows[1]["uid"]}).scalar() is None


def test_a_read_with_an_in_list_gives_sqlalchemys_rows(instance):
    """The lineage graph's reads: an expanding IN parameter, result columns SQLAlchemy converts
    (dates, JSON): the same values by name and by position as SQLAlchemy's own rows."""
    from flowprov.lineage import graph

    values = a_run(instance)
    rows = [{**values, "uid": random_uid(RUN_UID), "params": {"i": i}} for i in range(5)]
    with write_transaction(instance.engine) as conn:
        fast_sql.insert_many(conn, S.runs, rows)
        ids = [r for (r,) in conn.execute(select(S.runs.c.id).order_by(S.runs.c.id))]
        stmt = graph._run_query()
        for some in (ids, ids[:2], ids[:1], ids + ids):
            fast = fast_sql.execute(conn, stmt, {"ids": some}).mappings().all()
            slow = conn.execute(stmt, {"ids": some}).mappings().all()
            assert sorted(map(dict, slow), key=str) == sorted(fast, key=str)
            assert any(isinstance(r["started_at"], datetime) for r in fast)
            assert {r["id"] for r in fast} == set(some)
        # an empty list: SQLAlchemy's own "empty IN" (no rows), not `IN ()`
        assert fast_sql.execute(conn, stmt, {"ids": []}).mappings().all() == []
        row = fast_sql.execute(conn, stmt, {"ids": ids[:1]}).first()
        assert row.id == ids[0] and row._mapping["id"] == ids[0] and row[0] == row.id
    plans = [p for k, p in fast_sql._plans.items() if k[0] == id(stmt)]
    if instance.engine.dialect.name == "sqlite":  # PostgreSQL's reads with IN stay SQLAlchemy's
        assert plans and plans[0] is not None and plans[0].sized


def test_a_write_that_cannot_begin_is_sqlalchemys_operational_error(instance):
    """SQLite's BEGIN goes straight to the driver (db.py): another writer holding the lock past
    the busy timeout is still SQLAlchemy's OperationalError (which the store retries and names),
    and the connection works again once the lock is free."""
    import sqlite3

    from flowprov.db import make_engine
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    if instance.engine.dialect.name != "sqlite":
        return  # PostgreSQL's BEGIN goes through SQLAlchemy as before
    engine = make_engine(instance.engine.url)

    @event.listens_for(engine, "connect")
    def short_wait(dbapi_conn, _record):  # after flowprov's own 30 s
        dbapi_conn.execute("PRAGMA busy_timeout=50")

    other = sqlite3.connect(instance.engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer
    try:
        with pytest.raises(OperationalError, match="locked"):
            with write_transaction(engine) as conn:
                conn.execute(text("SELECT 1"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with write_transaction(engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar() >= 0
    engine.dispose()


def test_sqlites_dates_are_written_as_sqlalchemy_writes_them():
    """fast_sql's SQLite DATETIME processor (isoformat, not a %-format): the same text as
    SQLAlchemy's for every kind of value, and SQLAlchemy's own for what is not a plain datetime."""
    from datetime import date

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    slow = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    fast = fast_sql._faster(DateTime(timezone=True), dialect, slow)
    assert fast is not slow

    class Sub(datetime):  # pendulum's DateTime and the like
        pass

    values = [
        datetime(2026, 12, 2, 7, 30, 1, 123456),
        datetime(2026, 12, 2, 7, 30, 1),  # no microseconds: isoformat would drop them
        datetime(1, 1, 1),
        datetime(999, 3, 4, 5, 6, 7, 8),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),  # offset left out
        Sub(2026, 1, 2, 3, 4, 5, 6),
        date(2026, 12, 2),
        None,
    ]
    for v in values:
        assert fast(v) == slow(v), v
    with pytest.raises(TypeError):
        fast("2026-12-02")
    from sqlalchemy.dialects import postgresql

    assert fast_sql._faster(DateTime(), postgresql.dialect(), slow) is slow
