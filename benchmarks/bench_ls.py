"""Start-up cost of the CLI: the whole process `flowprov ls artifacts` on 1,000 artifacts.

    python benchmarks/bench_ls.py               # 1,000 artifacts, 10 timed runs of each command
    python benchmarks/bench_ls.py --trials 20 --artifacts 10000

An instance holding N artifacts is built once (one ``fp.save`` batch of 1 KB files). Then every
command below is run as a fresh process (stdout to /dev/null, the environment pointing at the
benchmark's own config folder), interleaved, ``--trials`` times after one warm-up run each:

- ``flowprov ls artifacts``: the console script installed next to this Python (not a pyenv shim)
- ``python -m flowprov.cli ls artifacts``
- ``flowprov ls artifacts`` through a PATH shim (e.g. pyenv's), if the shell would find one
- ``python -c pass`` and ``python -c "import sqlite3"``: the machine's floor for any Python CLI
- ``python -c "import flowprov.cli"``: what importing the CLI module alone costs

The output of `flowprov ls artifacts` is checked once: return code 0, a title saying
"newest 50 of N", 50 table rows, and the uids of the 50 newest artifacts all present.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import time

from _common import check, figure, header, median, temp_base, verdict

TARGET_S = 0.15  # issue 18 (the first target was 0.4 s)
DEFAULT_LIMIT = 50


def build_instance(base: str, n: int) -> str:
    """An instance with n artifacts; returns the path of its SQLite database."""
    import flowprov as fp
    from flowprov import instance

    root = os.path.join(base, "store")
    inst, created = instance.init(root, name="bench-ls")
    check(created, "the benchmark instance was not freshly created")
    t = fp.Transform(name="bench-ls", type="script").save()
    run = fp.Run(transform=t).save()
    src = os.path.join(base, "incoming")
    os.makedirs(src)
    paths = []
    for i in range(n):
        p = os.path.join(src, f"f{i:05d}.csv")
        with open(p, "wb") as f:
            f.write(os.urandom(1024))
        paths.append(p)
    t0 = time.perf_counter()
    arts = fp.save(
        [fp.Artifact(p, run=run, description=f"bench file {i}") for i, p in enumerate(paths)]
    )
    dt = time.perf_counter() - t0
    check(all(a.id is not None for a in arts), "some artifacts were not saved")
    print(f"built an instance with {n} artifacts in {dt:.2f} s (one fp.save batch)")
    inst.close()
    instance.reset_cache()
    shutil.rmtree(src)
    return os.path.join(root, ".flowprov", "flowprov.sqlite")


def cli_commands() -> list[tuple[str, list[str]]]:
    """(label, argv) of the flowprov CLI invocations to time."""
    out = []
    here = os.path.join(sysconfig.get_path("scripts"), "flowprov")
    if not os.path.isfile(here):
        here = os.path.join(os.path.dirname(sys.executable), "flowprov")
    on_path = shutil.which("flowprov")
    # pyenv & co. put this Python's bin folder first on PATH for the processes they start, so a
    # shim the user's shell would run is found by looking at PATH without that folder
    scripts = os.path.realpath(os.path.dirname(here))
    rest = [
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and os.path.realpath(p) != scripts
    ]
    shim = shutil.which("flowprov", path=os.pathsep.join(rest))
    if os.path.isfile(here):
        out.append(("flowprov ls artifacts", [here, "ls", "artifacts"]))
        if shim and os.path.realpath(shim) != os.path.realpath(here):
            out.append((f"  same, via PATH: {shim}", [shim, "ls", "artifacts"]))
    elif on_path:
        out.append(("flowprov ls artifacts", [on_path, "ls", "artifacts"]))
    out.append(
        (
            "python -m flowprov.cli ls artifacts",
            [sys.executable, "-m", "flowprov.cli", "ls", "artifacts"],
        )
    )
    return out


def verify_output(argv: list[str], env: dict, db: str, n: int) -> None:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, encoding="utf-8")
    check(r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    out = r.stdout
    limit = min(DEFAULT_LIMIT, n)
    title = f"newest {limit} of {n}" if limit < n else f"({n})"
    check(title in out, f"{' '.join(argv)}: no {title!r} in the output:\n{out[:2000]}")
    rows = [ln for ln in out.splitlines() if ln.startswith(("│", "|"))]
    check(len(rows) == limit, f"{' '.join(argv)}: {len(rows)} table rows, expected {limit}")
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        uids = [
            u
            for (u,) in conn.execute("SELECT uid FROM artifacts ORDER BY id DESC LIMIT ?", (limit,))
        ]
    missing = [u for u in uids if u not in out]
    check(not missing, f"{' '.join(argv)}: newest uids missing from the output: {missing[:5]}")
    print(
        f"verified `{' '.join(os.path.basename(x) for x in argv[:1])} {' '.join(argv[1:])}`:"
        f" exit 0, {title!r} in the title, {len(rows)} rows, the {limit} newest uids listed"
    )


def run_once(argv: list[str], env: dict, cwd: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    check(r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.decode()}")
    return dt


def import_breakdown(env: dict, cwd: str, top: int) -> None:
    """The slowest top-level imports of one `flowprov ls artifacts` process (-X importtime)."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flowprov.cli", "ls", "artifacts"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    check(r.returncode == 0, f"-X importtime run failed: {r.stderr[-2000:]}")
    rows = []
    for ln in r.stderr.splitlines():
        if not ln.startswith("import time:") or "|" not in ln:
            continue
        parts = ln[len("import time:") :].split("|")
        try:
            cum = int(parts[1])
        except ValueError:
            continue
        name = parts[2]
        depth = (len(name) - len(name.lstrip(" "))) // 2
        if depth == 0:
            rows.append((cum, name.strip()))
    rows.sort(reverse=True)
    total = sum(c for c, _ in rows)
    print(
        f"\nslowest top-level imports of one run (-X importtime, one sample; all top-level "
        f"imports: {total / 1e3:.0f} ms):"
    )
    for cum, name in rows[:top]:
        print(f"  {cum / 1e3:7.1f} ms  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=int, default=1000, help="artifacts (default 1000)")
    ap.add_argument("--trials", type=int, default=10, help="timed runs per command (default 10)")
    ap.add_argument("--quick", action="store_true", help="same as the defaults (10 runs)")
    ap.add_argument("--no-importtime", action="store_true", help="skip the import breakdown")
    a = ap.parse_args()
    check(a.artifacts > 0 and a.trials > 0, "--artifacts and --trials must be positive")

    with temp_base("ls") as base:
        from _common import import_flowprov

        import_flowprov()
        header(
            "bench_ls: whole-process time of `flowprov ls artifacts`",
            f"{a.artifacts} artifacts, {a.trials} timed runs per command (interleaved, after one"
            f" warm-up); temp folder {base}",
        )
        db = build_instance(base, a.artifacts)
        env = dict(os.environ)  # FLOWPROV_CONFIG_DIR/CACHE_DIR point into base (see isolate)
        cwd = base
        cmds = cli_commands()
        verify_output(cmds[0][1], env, db, a.artifacts)
        floors = [
            ("python -c pass", [sys.executable, "-c", "pass"]),
            ('python -c "import sqlite3"', [sys.executable, "-c", "import sqlite3"]),
            ('python -c "import flowprov.cli"', [sys.executable, "-c", "import flowprov.cli"]),
        ]
        allc = cmds + floors
        times: dict[str, list[float]] = {label: [] for label, _ in allc}
        for _label, argv in allc:  # warm-up: page cache, .pyc files
            run_once(argv, env, cwd)
        for trial in range(a.trials):
            order = allc[trial % len(allc) :] + allc[: trial % len(allc)]
            for label, argv in order:
                times[label].append(run_once(argv, env, cwd))
        print(f"\nwhole-process wall time, {a.trials} runs each (seconds):")
        print(f"  {'command':<58} {'median':>7} {'min':>7} {'max':>7}")
        for label, _ in allc:
            ts = times[label]
            print(f"  {label:<58} {median(ts):7.3f} {min(ts):7.3f} {max(ts):7.3f}")
        main_label = cmds[0][0]
        m = median(times[main_label])
        floor = median(times["python -c pass"])
        sq = median(times['python -c "import sqlite3"'])
        imp = median(times['python -c "import flowprov.cli"'])
        print("\nratios and differences (medians):")
        print(f"  flowprov ls / python -c pass           {m / floor:5.2f}x  (+{m - floor:.3f} s)")
        print(f"  flowprov ls / python -c import sqlite3 {m / sq:5.2f}x  (+{m - sq:.3f} s)")
        print(f"  import flowprov.cli alone, above the floor        +{imp - floor:.3f} s")
        print(f"  ls work after importing flowprov.cli              +{m - imp:.3f} s")
        print(
            f"target: `flowprov ls artifacts` ≤ {TARGET_S} s: median {m:.3f} s, min "
            f"{min(times[main_label]):.3f} s  [{verdict(m <= TARGET_S)}]"
        )
        figure("`flowprov ls artifacts`, whole process", m, "s", floor=floor, target=TARGET_S)
        if not a.no_importtime:
            import_breakdown(env, cwd, top=8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
