"""Shared helpers for the benchmark scripts (stdlib only).

Every script calls ``isolate()`` before importing flowprov: it points FLOWPROV_CONFIG_DIR and
FLOWPROV_CACHE_DIR at a fresh temporary folder and turns the hash cache off, so a benchmark never
reads or writes the user's ~/.config/flowprov or ~/.cache/flowprov.

The machine these run on is shared and noisy: every figure is a median over repeated trials, and
comparisons are printed as ratios of medians. Missing a target is reported ("MISSED"), not an error;
a benchmark exits non-zero only when something does not work.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
from contextlib import contextmanager


def isolate(prefix: str, parent: str | None = None) -> str:
    """A fresh temp folder (in parent, default TMPDIR) holding config/ and cache/ for flowprov;
    the env vars point there."""
    base = tempfile.mkdtemp(prefix=f"flowprov-{prefix}-", dir=parent)
    for sub in ("config", "cache"):
        os.makedirs(os.path.join(base, sub))
    os.environ["FLOWPROV_CONFIG_DIR"] = os.path.join(base, "config")
    os.environ["FLOWPROV_CACHE_DIR"] = os.path.join(base, "cache")
    os.environ["FLOWPROV_HASH_CACHE"] = "0"
    os.environ.pop("FLOWPROV_INSTANCE", None)  # use the instance this benchmark creates
    bytecode_cache()
    return base


def bytecode_cache() -> None:
    """Python's bytecode cache on, for this process and the ones it starts, as on a user's
    machine: a machine that sets PYTHONDONTWRITEBYTECODE (these do) would otherwise compile every
    module of an editable install again in every process a benchmark times (~0.1 s of a
    Snakemake run). The .pyc files go where Python puts them (__pycache__, ignored by git)."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print("(bytecode cache on: PYTHONDONTWRITEBYTECODE unset for the timed processes)")
    sys.dont_write_bytecode = False


@contextmanager
def temp_base(prefix: str, parent: str | None = None):
    """isolate() and remove the whole folder afterwards, whatever happens."""
    base = isolate(prefix, parent)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def import_flowprov():
    try:
        import flowprov  # noqa: F401
        from flowprov import instance  # noqa: F401
    except ImportError as e:
        sys.exit(f"cannot import flowprov ({e}): run `pip install -e /work/main` first")
    import flowprov

    return flowprov


def median(xs) -> float:
    return statistics.median(xs)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


FIGURE = "FIGURE"  # run_all.py collects the lines that start with it


def figure(
    path: str,
    value: float,
    unit: str,
    *,
    floor: float | None = None,
    target: float | None = None,
    at_least: bool = False,
) -> None:
    """One machine-readable line for run_all.py's table: a path's median, the machine's own floor
    for the same work (same unit) and the target (≤, or ≥ when at_least)."""
    fields = [FIGURE, path, f"{value:.6g}", unit, "" if floor is None else f"{floor:.6g}", "", ""]
    if target is not None:
        fields[5] = f"{'≥' if at_least else '≤'} {target:g}"
        fields[6] = verdict(value >= target if at_least else value <= target)
    print(" | ".join(fields), flush=True)


def header(title: str, extra: str = "") -> None:
    import blake3

    try:
        load = " load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        load = ""
    print(f"== {title} ==")
    print(
        f"python {platform.python_version()} | {platform.platform(terse=True)} | "
        f"{os.cpu_count()} CPUs |{load} | sqlite {sqlite3.sqlite_version} | "
        f"blake3 {getattr(blake3, '__version__', '?')}"
    )
    if extra:
        print(extra)
    sys.stdout.flush()


def fail(msg: str) -> None:
    print(f"FAILED: {msg}", file=sys.stderr)
    sys.stdout.flush()
    raise SystemExit(1)


def check(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)
