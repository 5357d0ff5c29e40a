"""What bench_prefect.py and bench_openlineage.py share: Prefect's settings, the flow they time,
and how a per-task cost is told apart from a per-flow-run one.

Two things make a 200-task flow's wall time a poor measure of a per-task cost, and both are
handled here:

- Prefect's flow-run heartbeat. Prefect 3 sends it from a thread that sleeps in 1-second steps,
  and the flow engine joins that thread when the flow run ends (`flow_engine._send_heartbeats`:
  `thread.join(timeout=2)`, seen in a stack dump of the waiting flow). Once a flow run has lasted
  past its first second, its end waits for the current second to run out. A 200-task flow of
  ~1.1 s therefore takes either ~1.1 s or ~2.1 s, whichever side of the second it ends on:
  ±5 ms per task, on plain and tracked flows alike, and it decided the medians of earlier runs.
  The timed flows run with the heartbeat off (`flows.heartbeat_frequency` = None), all cases.
- Per-flow-run costs. Recording a flow run, starting a process that sends OpenLineage events, and
  finishing the run cost the same whatever the number of tasks. Divided by 200 tasks they look
  like a per-task cost; divided by 2,000 they nearly vanish. Each case is timed at two flow
  sizes, and the added cost is split into a part per task (the slope between the sizes) and a
  part per flow run (what is left at the smaller size). Both are printed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path


def configure(base: str | Path) -> None:
    """Prefect's settings for the benchmarks: a temporary server with an in-memory database
    (its file-backed SQLite makes per-task times swing 1–17 s per flow here, see
    ../shared/reference/engines.md), no analytics, no logs sent to the API."""
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(dir=base)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
    os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = "sqlite+aiosqlite:///:memory:"


def flows():
    """(plain, tracked): the same flow of small chained tasks — each writes a small file and
    returns its path, the next reads it — without and with `@track()`."""
    from flowprov.prefect import track
    from prefect import flow, task

    @task
    def step(prev: Path, i: int) -> Path:
        out = Path(f"step_{i % 10}.txt")
        out.write_text(prev.read_text()[:50] + f"{i}\n")
        return out

    def body(n: int) -> Path:
        p = Path("seed.txt")
        p.write_text("seed\n")
        for i in range(n):
            p = step(p, i)
        return p

    return flow(name="plain")(body), track()(flow(name="tracked")(body))


def without_heartbeat():
    """Prefect's flow-run heartbeat off while timing (see the module's docstring)."""
    import prefect.settings as ps

    setting = getattr(ps, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    if setting is None:  # a Prefect without it: no heartbeat thread to wait for
        return nullcontext()
    return ps.temporary_settings(updates={setting: None})


def machine_cpu() -> float:
    """Seconds of CPU the whole machine has been busy (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    busy = sum(ticks[:3]) + sum(ticks[5:7])  # user, nice, system, irq, softirq (not steal)
    return busy / os.sysconf("SC_CLK_TCK")


@contextmanager
def timer(out: dict):
    """Wall and machine-CPU seconds of the block, into out["wall"], out["cpu"]."""
    cpu0, t0 = machine_cpu(), time.perf_counter()
    with without_heartbeat():
        yield
    out["wall"], out["cpu"] = time.perf_counter() - t0, machine_cpu() - cpu0


def interleaved(run, cases: list[str], sizes: tuple[int, int], trials: int, show=print) -> dict:
    """Time run(case, n) for every case at both sizes, `trials` times, each case first in turn;
    {(case, n): [(wall s, cpu s), ...]}."""
    times: dict = {(c, n): [] for c in cases for n in sizes}
    for trial in range(trials):
        order = cases[trial % len(cases) :] + cases[: trial % len(cases)]
        for n in sizes:
            for case in order:
                m: dict = {}
                with timer(m):
                    run(case, n)
                times[(case, n)].append((m["wall"], m["cpu"]))
        show(
            f"  trial {trial + 1}/{trials}: "
            + "; ".join(
                f"{n} tasks: "
                + ", ".join(f"{c} {times[(c, n)][-1][0] / n * 1000:.2f}" for c in cases)
                for n in sizes
            )
            + " ms/task"
        )
    return times


def split(times: dict, case: str, base: str, sizes: tuple[int, int], what: int = 0) -> dict:
    """What `case` adds over `base`, median over trials of per-trial figures (what: 0 wall,
    1 machine CPU): per task at the smaller size (all costs, as a flow of that size sees them),
    per task from the slope between the sizes, and per flow run (the rest)."""
    small, big = sizes
    per_task_small, slope, fixed = [], [], []
    for i in range(len(times[(case, small)])):
        d_small = times[(case, small)][i][what] - times[(base, small)][i][what]
        d_big = times[(case, big)][i][what] - times[(base, big)][i][what]
        s = (d_big - d_small) / (big - small)
        per_task_small.append(d_small / small * 1000)
        slope.append(s * 1000)
        fixed.append((d_small - s * small) * 1000)
    return {
        "at_small": statistics.median(per_task_small),
        "per_task": statistics.median(slope),
        "per_flow": statistics.median(fixed),
    }


def per_task_ms(times: dict, case: str, n: int, what: int = 0) -> float:
    return statistics.median(t[what] for t in times[(case, n)]) / n * 1000
