"""The live Nextflow receiver (`flowprov nextflow listen`) under load, on SQLite.

4 concurrent aiohttp clients — four launches, each posting its own stream in order, as Nextflow
posts from one thread per run — send ~100,000 weblog events in total (4 × 8,333 tasks of
`fake_run`: submitted, started, completed per task, plus started/completed per launch) to a real
receiver subprocess. Printed:

- acknowledgement latency (client side, POST to 200) median and p99 — target p99 ≤ 20 ms;
- events applied per second while posting (bounded by how fast the clients post: they share the
  machine's cores with the receiver and its applier), and sustained: a backlog posted while the
  applier is paused (SIGSTOP), then applied flat out — target ≥ 2,000/s;
- after a warm-up event (the applier child importing flowprov and opening the instance, printed),
  the delay from each event's acknowledgement to its being queryable (the applier's committed
  position, polled every 10 ms from its applied.json, which it writes after each commit; the
  ack carries the event's journal number) — max target ≤ 2 s;
- this machine's floor: stdlib sqlite3 inserting the same number of rows in one transaction, and
  the applied rate as a fraction of it.

The clients post at --rate events/s in total (default 2,000, the target; 0 = as fast as they
can, which measures the acknowledgement path flat out while the applier falls behind). At the end
the store is checked: every task run and launch present once.

    python benchmarks/bench_weblog.py                 # ~100,000 events at 2,000/s
    python benchmarks/bench_weblog.py --quick         # ~20,000 events
    python benchmarks/bench_weblog.py --rate 0        # flat out
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, REPO)
from _common import check, header, import_flowprov, temp_base, verdict  # noqa: E402

CLIENTS = 4


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def client(port: int, bodies: list[bytes], rate: float, t0: float, acks: list) -> None:
    """Post `bodies` in order on one connection, paced at `rate`/s (0: no pacing); records
    (journal number, ack wall time, latency)."""
    import aiohttp

    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn) as s:
        url = f"http://127.0.0.1:{port}/"
        for i, body in enumerate(bodies):
            if rate:
                wait = t0 + i / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            a = time.perf_counter()
            async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                text = await r.text()
            lat = time.perf_counter() - a
            if r.status != 200:
                raise SystemExit(f"POST answered {r.status}: {text}")
            acks.append((int(text.split()[1]), time.time(), lat))


async def post_all(port: int, streams: list[list[bytes]], rate: float) -> list:
    acks: list = []
    t0 = time.monotonic()
    await asyncio.gather(
        *(client(port, b, rate / len(streams) if rate else 0, t0, acks) for b in streams)
    )
    return acks


def watch_applied(journal: Path, stop: threading.Event, seen: list) -> None:
    """(wall time, applied position) every 10 ms, from the applier's applied.json."""
    last = -1
    while not stop.is_set():
        try:
            seq = json.loads((journal / "applied.json").read_text())["seq"]
        except (OSError, ValueError, KeyError):
            seq = -1
        if seq != last:
            seen.append((time.time(), seq))
            last = seq
        time.sleep(0.01)


def warm_up(port: int, journal: Path) -> float:
    """One launch's `started`, posted as soon as the port opens; the seconds until it is applied
    (the applier child importing flowprov and opening the instance). The timed phases follow."""
    import urllib.request

    from tests.nextflow.weblog_streams import fake_run

    t = time.perf_counter()
    body = json.dumps(fake_run(1, "sess-warm", "warm_up")[0]).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/", data=body, headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req).read()
    while True:
        try:
            if json.loads((journal / "applied.json").read_text())["seq"] >= 1:
                return time.perf_counter() - t
        except (OSError, ValueError, KeyError):
            pass
        check(time.perf_counter() - t < 120, "the first event was not applied in 2 min")
        time.sleep(0.01)


def backlog(port: int, journal: Path, tasks: int, done: int) -> tuple[int, float]:
    """Phase 2: the applier paused (SIGSTOP) while 4 more launches are posted, then resumed: the
    time it takes to apply the whole backlog is its sustained rate, with no client competing for
    the cores. Returns (events, seconds)."""
    import urllib.request

    from tests.nextflow.weblog_streams import fake_run

    status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/status").read())
    pid = status["applier_pid"]
    streams = [
        [json.dumps(e).encode() for e in fake_run(tasks, f"sess-b{c}", f"backlog_{c}")]
        for c in range(CLIENTS)
    ]
    n = sum(len(s) for s in streams)
    os.kill(pid, signal.SIGSTOP)
    try:
        asyncio.run(post_all(port, streams, 0))
    finally:
        os.kill(pid, signal.SIGCONT)
    t = time.perf_counter()
    while True:
        try:
            seq = json.loads((journal / "applied.json").read_text())["seq"]
        except (OSError, ValueError, KeyError):
            seq = -1
        if seq >= done + n:
            return n, time.perf_counter() - t
        check(time.perf_counter() - t < 600, "the backlog was not applied in 10 min")
        time.sleep(0.01)


def raw_sqlite_rate(base: str, n: int) -> float:
    """Rows/s: stdlib sqlite3 (WAL, synchronous=NORMAL) inserting n run-like rows in one
    transaction, with a unique index — the machine's floor for writing these events."""
    con = sqlite3.connect(os.path.join(base, "raw.db"))
    con.execute("pragma journal_mode=wal")
    con.execute("pragma synchronous=normal")
    con.execute(
        "create table runs (id integer primary key, engine text, reference text, status text, "
        "params text, unique (engine, reference))"
    )
    rows = [("nextflow", f"{i:032x}", "completed", '{"exit": 0, "attempt": 1}') for i in range(n)]
    t = time.perf_counter()
    with con:
        con.executemany(
            "insert into runs (engine, reference, status, params) values (?, ?, ?, ?)", rows
        )
    dt = time.perf_counter() - t
    con.close()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=100_000, help="about this many in total")
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s in total; 0 = flat out")
    ap.add_argument("--quick", action="store_true", help="~20,000 events")
    a = ap.parse_args()
    if a.quick:
        a.events = 20_000
    tasks = max(1, (a.events // CLIENTS - 2) // 3)
    with temp_base("weblog") as base:
        header(
            f"bench_weblog: {CLIENTS} launches × {tasks:,} tasks posted by {CLIENTS} concurrent "
            f"aiohttp clients, {'flat out' if not a.rate else f'{a.rate:,.0f} events/s'}, SQLite"
        )
        import_flowprov()
        from flowprov import instance

        from tests.nextflow.weblog_streams import fake_run

        inst, _ = instance.init(os.path.join(base, "data"))
        streams = [
            [json.dumps(e).encode() for e in fake_run(tasks, f"sess-{c}", f"launch_{c}")]
            for c in range(CLIENTS)
        ]
        total = sum(len(s) for s in streams)
        print(f"{total:,} events, {CLIENTS * (tasks + 1):,} runs to record")

        from tests.services import free_port, wait_for_port

        port = free_port()
        journal = Path(base) / "journal"
        log = open(os.path.join(base, "listen.log"), "wb")
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "flowprov.cli", "nextflow", "listen"),
                *("--port", str(port), "--journal", str(journal)),
            ],
            stdout=log,
            stderr=log,
        )
        try:
            wait_for_port(port, proc, "the receiver")
            warm = warm_up(port, journal)
            print(f"warm-up: the first event applied {warm:.2f} s after the port opened")
            stop, seen = threading.Event(), []
            watcher = threading.Thread(target=watch_applied, args=(journal, stop, seen))
            watcher.start()
            acks = asyncio.run(post_all(port, streams, a.rate))
            posted = time.time()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and (not seen or seen[-1][1] < total + 1):
                time.sleep(0.05)
            stop.set()
            watcher.join()
            check(seen and seen[-1][1] >= total + 1, f"not all applied in 10 min (log: {log.name})")
            catchup = backlog(port, journal, tasks, total + 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
            log.close()
        state = json.loads((journal / "applied.json").read_text())
        check(state["rejected"] == 0, f"{state['rejected']} events rejected")
        instance.reset_cache()
        from flowprov import schema as S
        from flowprov.db import read_connection
        from sqlalchemy import func, select

        with read_connection(instance.current().engine) as conn:
            runs = conn.execute(
                select(func.count()).select_from(S.runs).where(S.runs.c.engine == "nextflow")
            ).scalar()
        check(
            runs == 2 * CLIENTS * (tasks + 1) + 1,
            f"{runs} runs recorded, {2 * CLIENTS * (tasks + 1) + 1} expected",
        )

        lat = [x[2] * 1000 for x in acks]
        first_ack = min(x[1] - x[2] for x in acks)
        last_applied = seen[-1][0]
        rate = total / (last_applied - first_ack)
        # the delay of event s: first time the applied position passed it, minus its ack time
        times = [t for t, _ in seen]
        positions = [p for _, p in seen]
        import bisect

        delays = []
        for seq, at, _ in acks:
            i = bisect.bisect_right(positions, seq)  # positions only grow
            delays.append(max(0.0, times[i] - at) if i < len(times) else float("inf"))
        print(
            f"\nposting took {posted - first_ack:.1f} s ({total / (posted - first_ack):,.0f} events/s "
            f"acknowledged); the last event applied {last_applied - posted:.2f} s after the last ack"
        )
        p99 = pct(lat, 99)
        print(
            f"ack latency: median {pct(lat, 50):.2f} ms, p99 {p99:.2f} ms, max {max(lat):.1f} ms"
            f"  target p99 ≤ 20 ms [{verdict(p99 <= 20)}]"
        )
        print(
            f"applied while posting: {rate:,.0f} events/s (bounded by how fast the clients, "
            "sharing the machine's cores with the receiver and its applier, post)"
        )
        n2, dt2 = catchup
        sustained = n2 / dt2
        print(
            f"applied sustained (a backlog of {n2:,} journaled events, applier paused while they "
            f"were posted, then resumed): {dt2:.1f} s = {sustained:,.0f} events/s  "
            f"target ≥ 2,000/s [{verdict(sustained >= 2000)}]"
        )
        print(
            f"ack → queryable: median {pct(delays, 50):.2f} s, p99 {pct(delays, 99):.2f} s, "
            f"max {max(delays):.2f} s  target max ≤ 2 s [{verdict(max(delays) <= 2)}]"
        )
        raw = raw_sqlite_rate(base, total)
        print(
            f"raw floor: stdlib sqlite3 inserts {raw:,.0f} rows/s (one transaction, unique index); "
            f"the receiver's sustained apply is {sustained / raw:.3f}× it ({raw / sustained:,.0f}× "
            "slower: each event is parsed, translated, validated and written to five tables' worth "
            "of rows and indexes)"
        )


if __name__ == "__main__":
    main()
