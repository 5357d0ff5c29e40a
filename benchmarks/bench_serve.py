"""`flowprov serve` on a big instance: the server's time per page, medians and tails.

    python benchmarks/bench_serve.py                  # 1,000,000 artifacts, 200,000 runs
    python benchmarks/bench_serve.py --quick          # 100,000 artifacts, 20,000 runs
    python benchmarks/bench_serve.py --requests 200

The instance comes from big_instance.py (built once, then reused from its cache). A real
`flowprov serve` runs in a subprocess, as users start it; one keep-alive HTTP connection asks for
each page `--requests` times after two warm-up requests. Two times per request:

- **server**: the app's own time, from its `Server-Timing: app;dur=…` header (what the issue's
  bars are about: p50 ≤ 50 ms, p99 ≤ 150 ms for lists, record pages and search; the figure's
  lineage page ≤ 300 ms);
- **wall**: the client's, request sent → body read (adds the loopback and HTTP parsing).

Beside them, the machine's floor: the static style sheet (a request that touches no database:
uvicorn + Starlette + the middleware), and the list's SQL alone through the stdlib sqlite3
(`SELECT … ORDER BY id DESC LIMIT 50` of artifacts).
"""

from __future__ import annotations

import argparse
import http.client
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"flowprov serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit("flowprov serve did not listen")


def measure(conn: http.client.HTTPConnection, path: str, n: int) -> tuple[list, list, int]:
    server, wall = [], []
    size = 0
    for i in range(n + 2):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Accept": "text/html"})
        r = conn.getresponse()
        body = r.read()
        dt = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status} {body[:300]!r}")
        if i < 2:
            continue  # warm-up
        timing = r.getheader("server-timing", "")
        server.append(float(timing.split("dur=")[1]) if "dur=" in timing else float("nan"))
        wall.append(dt)
        size = len(body)
    return server, wall, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--artifacts", type=int)
    ap.add_argument("--runs", type=int)
    ap.add_argument("--requests", type=int, default=60)
    a = ap.parse_args()
    n_art = a.artifacts or (100_000 if a.quick else 1_000_000)
    n_runs = a.runs or (20_000 if a.quick else 200_000)
    n = 20 if a.quick and a.requests == 60 else a.requests

    tmp = tempfile.mkdtemp(prefix="flowprov-bench-serve-")
    os.environ["FLOWPROV_CONFIG_DIR"] = os.path.join(tmp, "config")
    os.environ["FLOWPROV_CACHE_DIR"] = os.path.join(tmp, "cache")
    from big_instance import build

    info = build(artifacts=n_art, runs=n_runs)
    nb = info["notable"]
    q = urllib.parse.quote_plus
    pages = [
        ("home", "/", 50),
        ("artifacts, page 1", "/artifacts", 50),
        ("artifacts, page 100", "/artifacts?page=100", 50),
        ("artifacts, key contains 'GWS_00012'", "/artifacts?key=GWS_00012", 50),
        ("artifacts, suffix .bam", "/artifacts?suffix=.bam", 50),
        ("runs, page 1", "/runs", 50),
        ("runs, failed", "/runs?status=failed", 50),
        ("runs, top-level nextflow", "/runs?engine=nextflow&top=1", 50),
        ("transforms", "/transforms", 50),
        ("users", "/users", 50),
        ("storages", "/storages", 50),
        ("artifact page (the figure)", f"/artifact/{nb['figure']}", 50),
        ("run page (the notebook's run)", f"/run/{nb['notebook_run']}", 50),
        ("transform page (the notebook)", f"/transform/{nb['notebook']}", 50),
        ("run page (a failed run)", f"/run/{nb['failed_run']}", 50),
        ("search 'GWS CRIPSRa analysis'", "/search?q=" + q("GWS CRIPSRa analysis"), 50),
        ("search 'CRIPSRa'", "/search?q=CRIPSRa", 50),
        ("lineage of the figure", f"/lineage/{nb['figure']}", 300),
        ("lineage of the 10-step chain's end", f"/lineage/{nb['chain_end']}", 300),
    ]

    port = free_port()
    env = dict(os.environ, FLOWPROV_INSTANCE=info["name"])
    exe = os.path.join(os.path.dirname(sys.executable), "flowprov")
    proc = subprocess.Popen([exe, "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_port(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        floor_server, floor_wall, _ = measure(conn, "/static/style.css", n)
        for label, path, bar in pages:
            server, wall, size = measure(conn, path, n)
            rows.append((label, server, wall, size, bar))
        conn.close()
    finally:
        proc.terminate()
        proc.wait(15)

    # the list's SQL alone, stdlib sqlite3, read-only: the database's floor
    sql_times = []
    con = sqlite3.connect(f"file:{info['db']}?mode=ro", uri=True)
    for _ in range(n):
        t0 = time.perf_counter()
        con.execute(
            "SELECT id, uid, key, suffix, size, created_at FROM artifacts ORDER BY id DESC LIMIT 50"
        ).fetchall()
        sql_times.append((time.perf_counter() - t0) * 1000)
    con.close()

    print(
        f"\nflowprov serve on {info['counts']['artifacts']:,} artifacts, "
        f"{info['counts']['runs']:,} runs; {n} requests per page (after 2 warm-ups), one "
        "keep-alive connection; milliseconds"
    )
    print(
        f"floor: static style sheet server p50 {statistics.median(floor_server):.2f}, wall p50 "
        f"{statistics.median(floor_wall):.2f}; artifacts list SQL alone (stdlib sqlite3) p50 "
        f"{statistics.median(sql_times):.2f}"
    )
    print(f"{'page':42} {'server p50':>10} {'p99':>8} {'wall p50':>9} {'p99':>8} {'KB':>6}  target")
    missed = 0
    for label, server, wall, size, bar in rows:
        p50, p99 = statistics.median(server), pct(server, 99)
        ok = p50 <= bar and (bar != 50 or p99 <= 150)  # lists, records, search: a tail bar too
        missed += not ok
        target = "p50 ≤ 50, p99 ≤ 150" if bar == 50 else f"p50 ≤ {bar}"
        print(
            f"{label:42} {p50:10.1f} {p99:8.1f} {statistics.median(wall):9.1f} "
            f"{pct(wall, 99):8.1f} {size / 1000:6.0f}  {target} {'ok' if ok else 'MISSED'}"
        )
    print(f"\n{len(rows) - missed}/{len(rows)} pages within their targets")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
