"""`flowprov nextflow listen`, the real receiver in a subprocess on a free port, with the test's
instance (SQLite and PostgreSQL): what it acknowledges reaches the store exactly once — across a
SIGKILL and a PostgreSQL stopped mid-stream — and what it refuses leaves nothing behind.

The comparison of what the receiver records with `ingest` of the equivalent trace is in
test_weblog_translate.py; here the receiver's own guarantees are checked.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import wait_until
from tests.nextflow.weblog_streams import fake_run, stream, tasks_from_fixture
from tests.services import PG_BIN, free_port


class Receiver:
    """One `flowprov nextflow listen` process (its log in a file) and a keep-alive connection."""

    def __init__(self, tmp: Path, *args: str, journal: Path | None = None, port: int | None = None):
        self.port = port or free_port()
        self.journal = journal
        self.args = args
        self.log_path = tmp / f"listen-{self.port}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None
        self.conn: http.client.HTTPConnection | None = None

    def start(self) -> Receiver:
        cmd = [sys.executable, "-m", "flowprov.cli", "nextflow", "listen", "--port", str(self.port)]
        if self.journal is not None:
            cmd += ["--journal", str(self.journal)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*cmd, *self.args], stdout=log, stderr=log)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the receiver exited ({self.proc.returncode}):\n{self.log()}")
            try:
                return self.request("GET", "/status")  # any answer (401 with a token)
            except OSError:
                return None

        wait_until(up, 60, "the receiver to answer")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.conn.request(method, path, body, headers or {})
                r = self.conn.getresponse()
                return r.status, r.read().decode()
            except (ConnectionError, http.client.RemoteDisconnected):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def post(self, envelope, headers=None) -> tuple[int, str]:
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        return self.request(
            "POST", "/", body, {"Content-Type": "application/json", **(headers or {})}
        )

    def get_status(self, headers=None) -> dict:
        code, text = self.request("GET", "/status", headers=headers)
        assert code == 200, (code, text)
        return json.loads(text)

    def drained(self, timeout: float = 120) -> dict:
        """Wait until every journaled event is applied (or rejected); the counters then."""
        wait_until(lambda: self.get_status()["pending"] == 0, timeout, "the journal to be applied")
        return self.get_status()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.conn = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture
def receivers(tmp_path):
    started: list[Receiver] = []

    def start(*args, **kw) -> Receiver:
        r = Receiver(tmp_path, *args, **kw)
        started.append(r)
        return r.start()

    yield start
    for r in started:
        r.stop()


def nextflow_runs(inst) -> tuple[int, dict[str, int]]:
    """(number of nextflow runs, {status: n}) in the store, read afresh."""
    from flowprov import schema as S
    from flowprov.db import read_connection

    with read_connection(inst.engine) as conn:
        rows = conn.execute(
            select(S.runs.c.status, func.count())
            .where(S.runs.c.engine == "nextflow")
            .group_by(S.runs.c.status)
        ).all()
    by_status = {s: n for s, n in rows}
    return sum(by_status.values()), by_status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


# -- a stream, in order -------------------------------------------------------------------------
def test_stream_is_journaled_then_applied(instance, receivers, fp_env):
    r = receivers()
    events = stream(
        tasks_from_fixture(20, "sess-1", "/nonexistent/work"),
        "sess-1",
        "happy_turing",
        work_root="/nonexistent/work",
    )
    for e in events:
        assert r.post(e)[0] == 200
    c = r.drained()
    assert (c["accepted"], c["journaled"], c["applied"], c["rejected"]) == (
        len(events),
        len(events),
        len(events),
        0,
    )
    assert c["store"] == "ok"
    # the default journal is per instance under flowprov's cache folder
    assert Path(c["journal"]).parent == fp_env / "cache" / "weblog"
    assert instance.name in Path(c["journal"]).name
    n, by_status = nextflow_runs(instance)
    assert n == 21  # the launch and its 20 tasks
    assert by_status.get("completed", 0) >= 19, by_status


# -- killed and restarted -------------------------------------------------------------------------
def test_sigkill_mid_stream_then_restart_loses_nothing(instance, receivers, tmp_path):
    journal = tmp_path / "journal"
    events = fake_run(1666, "sess-kill", "brave_curie")  # 5,000 events
    assert len(events) == 5000
    r = receivers(journal=journal)
    half = 2600
    for e in events[:half]:
        assert r.post(e)[0] == 200
    before = r.get_status()
    assert before["pending"] > 0, "the kill should land while events wait in the journal"
    applier = before["applier_pid"]
    r.kill()
    wait_until(lambda: not _alive(applier), 10, "the applier to die with its receiver")

    r2 = receivers(journal=journal)
    # Nextflow never re-sends; a test client re-sending a few acknowledged ones changes nothing
    for e in events[half - 50 :]:
        assert r2.post(e)[0] == 200
    c = r2.drained(240)
    assert c["rejected"] == 0, r2.log()
    assert c["journaled"] == len(events) + 50
    n, by_status = nextflow_runs(instance)
    assert n == 1667, by_status  # every task and the launch, exactly once (engine+reference unique)
    assert set(by_status) <= {"completed", "failed"}, by_status


# -- the store away -------------------------------------------------------------------------------
def _pg_ctl(pg, *args) -> None:
    r = subprocess.run(
        [*pg.as_user, str(PG_BIN / "pg_ctl"), "-D", str(pg.base / "data"), "-w", "-t", "60", *args],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _restart_pg(pg) -> None:
    # the options tests/services.py started it with (pg_ctl start does not keep them)
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {pg.base} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _pg_ctl(pg, "-l", str(pg.base / "log"), "-o", opts, "start")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgres_stopped_mid_stream_nothing_lost(instance, receivers, postgres):
    events = stream(
        tasks_from_fixture(300, "sess-pg", "/nonexistent/work"),
        "sess-pg",
        "lonely_pike",
        work_root="/nonexistent/work",
    )
    r = receivers()
    for e in events[:300]:
        assert r.post(e)[0] == 200
    r.drained()
    _pg_ctl(postgres, "-m", "fast", "stop")
    try:
        slowest = 0.0
        for e in events[300:]:
            t0 = time.perf_counter()
            assert r.post(e)[0] == 200
            slowest = max(slowest, time.perf_counter() - t0)
        assert slowest < 1.0, f"an acknowledgement took {slowest:.2f} s with the store away"
        wait_until(lambda: r.get_status()["store"] == "unreachable", 60, "the applier to notice")
        assert r.get_status()["pending"] > 0
    finally:
        _restart_pg(postgres)
    c = r.drained(120)
    assert c["store"] == "ok" and c["rejected"] == 0, r.log()
    assert c["applied"] == len(events)
    from flowprov import instance as inst_mod

    inst_mod.reset_cache()  # this process's pooled connections died with the server
    n, by_status = nextflow_runs(instance)
    assert n == 301 and set(by_status) <= {"completed", "failed"}, by_status
    log = r.log()
    assert "store is unreachable" in log and "reachable again" in log and "caught up" in log


# -- refused: nothing written ---------------------------------------------------------------------
def _journal_bytes(journal: Path) -> int:
    return sum(p.stat().st_size for p in journal.glob("*.jsonl"))


def test_token_checked(instance, receivers, tmp_path):
    journal = tmp_path / "journal"
    r = receivers("--token", "alice:s3cret", journal=journal)
    ev = stream(tasks_from_fixture(1, "sess-t", "/w"), "sess-t", "tok", work_root="/w")[0]

    def basic(cred: str) -> dict:
        return {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}

    for headers in (
        {},
        basic("alice:wrong"),
        basic("alice:s3cret2"),
        {"Authorization": "Bearer s3cret"},
    ):
        code, text = r.post(ev, headers)
        assert code == 401, (headers, code, text)
    assert r.request("GET", "/status")[0] == 401
    assert _journal_bytes(journal) == 0
    assert r.post(ev, basic("alice:s3cret"))[0] == 200
    c = r.get_status(basic("alice:s3cret"))
    # 4 POSTs, 1 GET, and the fixture's probe that the receiver is up
    assert c["refused"] == {"unauthorized": 6} and c["journaled"] == 1
    assert "refused a POST" in r.log()


def test_open_bind_without_token_refused(instance, run_flowprov, fp_env):
    port = free_port()
    p = run_flowprov("nextflow", "listen", "--host", "0.0.0.0", "--port", str(port), check=False)
    assert p.returncode == 1
    assert "flowprov error" in p.stderr and "--token" in p.stderr and "loopback" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (fp_env / "cache" / "weblog").exists()  # nothing created
    p = run_flowprov("nextflow", "listen", "--token", "nocolon", "--port", str(port), check=False)
    assert p.returncode == 1 and "USER:PASSWORD" in p.stderr


def test_bad_bodies_refused_unknown_kinds_ignored(instance, receivers, tmp_path):
    journal = tmp_path / "journal"
    r = receivers(journal=journal)
    ok = {"runName": "a", "runId": "b", "utcTime": "2024-01-01T00:00:00Z"}
    bad = [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({**ok, "event": "process_started"}).encode(), "trace"),
        (json.dumps({**ok, "event": "started"}).encode(), "metadata"),
        (json.dumps({"runId": "b", "event": "started", "metadata": {}}).encode(), "runName"),
    ]
    for body, reason in bad:
        code, text = r.post(body)
        assert code == 400 and reason in text, (body, code, text)
    # 10 MB: refused from its Content-Length, the rest of the body never read
    big = json.dumps({**ok, "event": "process_started", "trace": {"x": "y" * 10_000_000}}).encode()
    try:
        code, text = r.post(big)
    except (BrokenPipeError, ConnectionResetError):
        code, text = 400, "over the"  # the server answered and closed before the body was sent
    assert code == 400 and "over the" in text, (code, text)
    # an event kind this receiver does not know: acknowledged, counted, not journaled
    assert r.post({**ok, "event": "process_exploded", "trace": {}})[0] == 200
    c = r.get_status()
    assert c["refused"] == {"malformed": 5, "too_large": 1}
    assert c["ignored"] == {"process_exploded": 1}
    assert c["journaled"] == 0 and _journal_bytes(journal) == 0
    assert nextflow_runs(instance)[0] == 0
    assert r.log().count("refused a POST") == 6


def test_one_receiver_per_journal(instance, receivers, run_flowprov, tmp_path):
    journal = tmp_path / "journal"
    first = receivers(journal=journal)
    p = run_flowprov(
        "nextflow", "listen", "--port", str(free_port()), "--journal", str(journal), check=False
    )
    assert p.returncode == 1
    assert f"another receiver (pid {first.proc.pid})" in p.stderr


# -- the journal itself (no receiver) -------------------------------------------------------------
def test_journal_numbers_lines_across_segments_and_restarts(tmp_path):
    from flowprov_nextflow.weblog.journal import Journal, Reader, Writer

    j = Journal(tmp_path / "j").create()
    w = Writer(j, segment_bytes=200)
    for i in range(30):
        assert w.append(b'{"i": %d,\n "pad": "%s"}' % (i, b"x" * i)) == i
    assert len(j.segments()) > 3
    w.close()
    # a receiver killed mid-write left half a line: the next one cuts it off and goes on
    with open(j.segment_path(j.segments()[-1]), "ab") as f:
        f.write(b'{"i": 30, "pa')
    w = Writer(j)
    assert w.dropped_tail == len(b'{"i": 30, "pa') and w.next_seq == 30
    assert w.append(b'{"i": 30}') == 30
    r = Reader(j, j.applied_position())
    got = []
    while batch := r.read(7):
        got += batch
    assert [line.seq for line in got] == list(range(31))
    assert all(json.loads(line.body)["i"] == line.seq for line in got)
    # a line being written (no newline yet) in the live segment is left for later
    os.write(w.fd, b'{"i": 31')
    assert r.read(10) == []
    os.write(w.fd, b"}\n")
    assert [line.body for line in r.read(10)] == [b'{"i": 31}']


# -- a damaged journal line ----------------------------------------------------------------------
def test_damaged_journal_line_is_set_aside(instance, receivers, tmp_path):
    """A line of the journal that is not a weblog event (damaged on disk) goes to rejected.jsonl
    with the reason; the lines around it are applied."""
    journal = tmp_path / "journal"
    events = stream(tasks_from_fixture(4, "sess-d", "/w"), "sess-d", "damaged", work_root="/w")
    r = receivers(journal=journal)
    for e in events[:5]:
        assert r.post(e)[0] == 200
    r.drained()
    r.stop()
    segment = sorted(journal.glob("*.jsonl"))[-1]
    with open(segment, "ab") as f:
        f.write(b'{"runName": "damaged", "runId": "sess-d", "ev\n')
    r = receivers(journal=journal)
    for e in events[5:]:
        assert r.post(e)[0] == 200
    c = r.drained()
    assert c["rejected"] == 1 and c["applied"] == len(events), r.log()
    rec = json.loads((journal / "rejected.jsonl").read_text())
    assert rec["seq"] == 5 and rec["reason"].startswith("not a weblog event")
    assert "weblog event #5 rejected" in r.log()
    n, by_status = nextflow_runs(instance)
    assert n == 5 and set(by_status) == {"completed"}, by_status


# -- seen live in `flowprov status` ----------------------------------------------------------------
def test_a_launch_heard_by_the_receiver_shows_in_status(instance, receivers, run_flowprov):
    """Through the real receiver: the launch is running with its tasks counted while the stream
    goes on, and completed once Nextflow says so."""
    now = int(time.time() * 1000) - 60_000
    tasks = tasks_from_fixture(5, "sess-live", "/nonexistent/work", t0=now)
    events = stream(tasks, "sess-live", "live_lovelace", work_root="/nonexistent/work", window=3)
    r = receivers()
    cut = [i for i, e in enumerate(events) if e["event"] == "process_completed"][1] + 1
    for e in events[:cut]:  # started; 4 submitted and started, 2 of them completed
        assert r.post(e)[0] == 200
    r.drained()

    def launch() -> dict:
        out = run_flowprov("status", "--format", "json", "--engine", "nextflow")
        rows = [x for x in json.loads(out.stdout) if x["run_name"] == "live_lovelace"]
        assert len(rows) == 1, out.stdout
        return rows[0]

    a = launch()
    assert (a["state"], a["user"]) == ("running", "jdoe")
    assert a["tasks"] | {"total": None} == {
        "done": 2,
        "running": 2,
        "queued": 0,
        "failed": 0,
        "unknown": 0,
        "total": None,
    }
    for e in events[cut:]:
        assert r.post(e)[0] == 200
    r.drained()
    a = launch()
    assert a["state"] == "completed" and a["tasks"]["done"] == 5 and a["tasks"]["running"] == 0
