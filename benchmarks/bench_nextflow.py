"""Ingest a 100,000-task Nextflow trace (trace only): wall time and peak memory.

The trace is generated from the shape of the real nf-core rows in tests/nextflow (Nextflow's 14
default fields, human formats, a few processes, tags, unique task hashes). Ingestion runs in a
child process so its peak RSS (ru_maxrss) is its own. Targets: ≤ 10 s, < 300 MB.

    python benchmarks/bench_nextflow.py [--tasks 100000] [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import header, median, temp_base  # noqa: E402

HEADER = "task_id\thash\tnative_id\tname\tstatus\texit\tsubmit\tduration\trealtime\t%cpu\tpeak_rss\tpeak_vmem\trchar\twchar"
PROCESSES = [
    "NFCORE_RNASEQ:RNASEQ:FASTQC",
    "NFCORE_RNASEQ:RNASEQ:TRIMGALORE",
    "NFCORE_RNASEQ:RNASEQ:STAR_ALIGN",
    "NFCORE_RNASEQ:RNASEQ:SALMON_QUANT",
    "NFCORE_RNASEQ:RNASEQ:MULTIQC",
]

CHILD = """
import resource, sys, time
from flowprov import instance
from flowprov_nextflow import ingest_trace
instance.init(sys.argv[2])
t0 = time.perf_counter()
r = ingest_trace(sys.argv[1], pipeline="nf-core/rnaseq", version="3.14.0")
dt = time.perf_counter() - t0
print(dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, r.new_runs)
"""


def make_trace(path: Path, n: int) -> None:
    rng = random.Random(7)
    with open(path, "w") as f:
        f.write(HEADER + "\n")
        for i in range(1, n + 1):
            h = f"{rng.getrandbits(8):02x}/{rng.getrandbits(24):06x}{i:x}"
            proc = PROCESSES[i % len(PROCESSES)]
            status = "FAILED" if i % 997 == 0 else "COMPLETED"
            f.write(
                f"{i}\t{h}\t{12000 + i}\t{proc} (sample_{i // 5})\t{status}\t{1 if status == 'FAILED' else 0}\t"
                f"2021-03-29 19:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}\t{i % 50}.{i % 10}s\t"
                f"{i % 40}.2s\t{(i % 300) / 3:.1f}%\t{i % 900}.1 MB\t{i % 4}.9 GB\t{i % 700}.9 KB\t{i % 90} MB\n"
            )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 tasks, 2 trials")
    args = ap.parse_args()
    if args.quick:
        args.tasks, args.trials = 20_000, 2
    with temp_base("nextflow") as base:
        header(f"bench_nextflow: ingest a {args.tasks:,}-task trace, trace only")
        trace = Path(base) / "execution_trace.txt"
        t0 = time.perf_counter()
        make_trace(trace, args.tasks)
        print(
            f"generated {trace.stat().st_size / 2**20:.1f} MiB trace in {time.perf_counter() - t0:.1f} s"
        )
        times, mems = [], []
        for trial in range(args.trials):
            store = Path(base) / f"store{trial}"
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(trace), str(store)],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                sys.exit(f"ingest failed:\n{out.stderr[-3000:]}")
            dt, mem, runs = out.stdout.split()
            if int(runs) != args.tasks + 1:
                sys.exit(f"expected {args.tasks + 1} runs, recorded {runs}")
            times.append(float(dt))
            mems.append(float(mem))
            print(
                f"  trial {trial + 1}/{args.trials}: {float(dt):.2f} s, peak RSS {float(mem):.0f} MB, {runs} runs"
            )
        rate = args.tasks / median(times)
        print(
            f"\nmedian {median(times):.2f} s ({rate:,.0f} tasks/s), peak RSS median {median(mems):.0f} MB"
        )
        scale = 100_000 / args.tasks
        print(
            f"target ≤ 10 s for 100,000 tasks: {median(times) * scale:.2f} s"
            f"{' (scaled)' if scale != 1 else ''}  [{'ok' if median(times) * scale <= 10 else 'MISSED'}]"
        )
        print(
            f"target peak memory < 300 MB: {max(mems):.0f} MB  [{'ok' if max(mems) < 300 else 'MISSED'}]"
        )


if __name__ == "__main__":
    main()
