"""One of N concurrent writers (run by test_concurrency.py and benchmarks/bench_concurrency.py).

    python -m tests.concurrency_worker WORKER N_RUNS FILES_PER_RUN START_AT [--batch]

Waits until the wall clock reaches START_AT so that all writers collide, then for each run:
starts it, registers FILES_PER_RUN files written under <storage root>/w<WORKER>/ — every other
one with content shared by all writers (the same bytes at 8 places: 8 Artifacts, one hash) — and finishes it. With
--batch the files of a run are registered in one call (fp.save). Prints one JSON line: what it
did and how long it took. Any exception makes it exit non-zero with the traceback on stderr.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> None:
    worker, n_runs, per_run, start_at = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    batch = "--batch" in sys.argv
    import flowprov as fp
    from flowprov import instance

    inst = instance.current()
    root = Path(inst.storage.root) / f"w{worker}"
    root.mkdir(parents=True, exist_ok=True)
    t = fp.Transform(name="concurrent writer", type="script").save()  # the same for every writer
    files = []
    for r in range(n_runs):
        for i in range(per_run):
            k = r * per_run + i
            p = root / f"r{r}_{i}.txt"
            shared = k % 2 == 0
            p.write_text(f"shared {k // 2}\n" if shared else f"worker {worker} file {k}\n")
            files.append(p)
    while time.time() < start_at:
        time.sleep(0.005)
    t0 = time.perf_counter()
    ops = 0
    for r in range(n_runs):
        run = fp.Run(transform=t, params={"worker": worker, "run": r}).save()
        ops += 1
        mine = files[r * per_run : (r + 1) * per_run]
        if batch:
            fp.save([fp.Artifact(p, run=run) for p in mine])
        else:
            for p in mine:
                fp.Artifact(p, run=run).save()
        ops += len(mine)
        run.finish()
        ops += 1
    elapsed = time.perf_counter() - t0
    print(json.dumps({"worker": worker, "ops": ops, "files": n_runs * per_run, "seconds": elapsed}))


if __name__ == "__main__":
    main()
