"""The Prefect benchmarks' arithmetic (benchmarks/_prefect.py): a cost per task and a cost per
flow run, told apart from flows of two sizes."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _prefect as bp  # noqa: E402


def _times(per_task: dict, per_flow: dict, sizes, outliers=(0.0,)):
    """Synthetic (wall, cpu) seconds: base cost 4 ms/task + 300 ms/flow, plus each case's own;
    outliers[i] seconds more for case "x" in trial i, at the smaller size only."""
    out = {}
    for case in per_task:
        for n in sizes:
            trials = []
            for extra in outliers:
                wall = n * (0.004 + per_task[case]) + 0.3 + per_flow[case]
                wall += extra if (case == "x" and n == sizes[0]) else 0.0
                trials.append((wall, 2 * wall))
            out[(case, n)] = trials
    return out


def test_split_recovers_the_cost_per_task_and_per_flow_run():
    sizes = (200, 600)
    t = _times({"plain": 0.0, "x": 0.0012}, {"plain": 0.0, "x": 0.25}, sizes)
    got = bp.split(t, "x", "plain", sizes)
    assert got["per_task"] == pytest.approx(1.2)
    assert got["per_flow"] == pytest.approx(250)
    assert got["at_small"] == pytest.approx(1.2 + 250 / 200)  # what a 200-task flow sees
    cpu = bp.split(t, "x", "plain", sizes, what=1)
    assert cpu["per_task"] == pytest.approx(2.4) and cpu["per_flow"] == pytest.approx(500)


def test_a_per_flow_cost_is_not_counted_per_task():
    sizes = (50, 150)
    t = _times({"plain": 0.0, "x": 0.0}, {"plain": 0.0, "x": 1.0}, sizes)
    got = bp.split(t, "x", "plain", sizes)
    assert got["per_task"] == pytest.approx(0.0, abs=1e-9)
    assert got["per_flow"] == pytest.approx(1000)
    assert got["at_small"] == pytest.approx(20.0)


def test_medians_over_trials():
    sizes = (200, 600)
    t = _times({"plain": 0.0, "x": 0.001}, {"plain": 0.0, "x": 0.0}, sizes, [0, 0, 0, 0, 9])
    # one trial's smaller flow of "x" took 9 s more: its slope is far off, the median is not
    assert bp.split(t, "x", "plain", sizes)["per_task"] == pytest.approx(1.0)
    assert bp.split(t, "x", "plain", sizes)["per_flow"] == pytest.approx(0.0, abs=1e-6)
    assert bp.per_task_ms(t, "plain", 200) == pytest.approx(4 + 300 / 200)
