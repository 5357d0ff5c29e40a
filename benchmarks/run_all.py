"""Run every benchmark, one after the other, and say which failed.

    python benchmarks/run_all.py                  # the defaults (about 2 minutes)
    python benchmarks/run_all.py --quick          # smaller sizes (well under a minute)
    python benchmarks/run_all.py --save benchmarks/results   # also write <name>.txt per script

Exits non-zero if any benchmark failed (a missed target is not a failure).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = [
    "bench_register.py",
    "bench_hash.py",
    "bench_ls.py",
    "bench_snakemake.py",
    "bench_nextflow.py",
    "bench_prefect.py",
    "bench_sink.py",
    "bench_lineage.py",
    "bench_environment.py",
    "bench_concurrency.py",
    "bench_weblog.py",
    "bench_search.py",
    "bench_serve.py",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--save", metavar="DIR", help="also write each output to DIR/<name>.txt")
    ap.add_argument("only", nargs="*", help="run only these (e.g. bench_hash)")
    a = ap.parse_args()
    names = [
        b
        for b in BENCHMARKS
        if not a.only or b.removesuffix(".py") in {o.removesuffix(".py") for o in a.only}
    ]
    if not names:
        sys.exit(f"no benchmark matches {a.only}; choose from {', '.join(BENCHMARKS)}")
    if a.save:
        os.makedirs(a.save, exist_ok=True)
    summary = []
    for name in names:
        argv = [sys.executable, os.path.join(HERE, name)] + (["--quick"] if a.quick else [])
        print(
            f"\n$ {' '.join(os.path.relpath(x) if x.endswith('.py') else x for x in argv)}",
            flush=True,
        )
        t0 = time.perf_counter()
        missed = []
        out = open(os.path.join(a.save, name.removesuffix(".py") + ".txt"), "w") if a.save else None
        try:
            p = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
            for line in p.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if out:
                    out.write(line)
                if "MISSED" in line:
                    missed.append(line.strip())
            rc = p.wait()
        finally:
            if out:
                out.close()
        dt = time.perf_counter() - t0
        summary.append((name, rc, dt, missed))
    print("\nsummary:")
    for name, rc, dt, missed in summary:
        status = "ran ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"  {name:<20} {status:<16} {dt:6.1f} s   targets missed: {len(missed)}")
        for m in missed:
            print(f"      {m}")
    return 0 if all(s[1] == 0 for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
