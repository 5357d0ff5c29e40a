"""A streaming parser of Nextflow trace files (`-with-trace`, `trace.*` config).

Formats, from Nextflow's TraceRecord/TraceConfig sources: any subset of the 42 fields below in
any order, any separator (`trace.sep`, tab by default), `-` for a missing value. Human formats:
dates `yyyy-MM-dd HH:mm:ss.SSS` in the machine's local time; durations `352ms`, `5.8s`,
`1d 2h 3m 4s`; memory 1024-based `206.9 MB`; percentages `24.1%`. With `trace.raw=true`: dates as
epoch milliseconds, durations as milliseconds, memory as bytes, percentages as plain numbers.

Units flowprov stores, whatever the input: times as UTC datetimes (submit, start, complete),
durations in milliseconds (`*_ms`), memory and I/O in bytes, percentages as numbers (100 = one
core fully used; can exceed 100).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flowprov.errors import ValidationError

STR_FIELDS = {
    "task_id",
    "hash",
    "native_id",
    "process",
    "module",
    "container",
    "tag",
    "name",
    "status",
    "exit",
    "script",
    "workdir",
    "scratch",
    "queue",
    "env",
    "error_action",
    "hostname",
    "cpu_model",
}
DATE_FIELDS = {"submit", "start", "complete"}
TIME_FIELDS = {"duration", "realtime", "time"}
PERC_FIELDS = {"%cpu", "%mem"}
MEM_FIELDS = {
    "rss",
    "vmem",
    "peak_rss",
    "peak_vmem",
    "rchar",
    "wchar",
    "read_bytes",
    "write_bytes",
    "memory",
    "disk",
}
NUM_FIELDS = {"syscr", "syscw", "attempt", "cpus", "vol_ctxt", "inv_ctxt"}
ALL_FIELDS = STR_FIELDS | DATE_FIELDS | TIME_FIELDS | PERC_FIELDS | MEM_FIELDS | NUM_FIELDS
STATUSES = {"NEW", "SUBMITTED", "RUNNING", "COMPLETED", "FAILED", "ABORTED", "CACHED"}

_UNITS = {
    "B": 1,
    "KB": 1 << 10,
    "MB": 1 << 20,
    "GB": 1 << 30,
    "TB": 1 << 40,
    "PB": 1 << 50,
    "EB": 1 << 60,
    "ZB": 1 << 70,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGTPEZ]?B)$")
_TAG = re.compile(r"^(.*?)\s+\((.*)\)$")
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(s: str) -> int:
    """'352ms' → 352, '5.8s' → 5800, '1d 2h 3m 4s' → ms; a bare number is already ms (raw)."""
    if s.replace(".", "", 1).isdigit():
        return int(float(s))
    if " " not in s:  # the common one-part forms, without the regex: '352ms', '5.8s', '4m'
        for unit in ("ms", "s", "m", "h", "d"):
            if s.endswith(unit):
                num = s[: -len(unit)]
                if num.replace(".", "", 1).isdigit():
                    return int(round(float(num) * _MS[unit]))
                break
    total, pos = 0.0, 0
    for m in _DURATION_PART.finditer(s):
        if s[pos : m.start()].strip():
            raise ValueError(s)
        total += float(m.group(1)) * _MS[m.group(2)]
        pos = m.end()
    if pos == 0 or s[pos:].strip():
        raise ValueError(s)
    return int(round(total))


def parse_memory(s: str) -> int:
    if s.isdigit():
        return int(s)
    num, _, unit = s.partition(" ")
    if unit in _UNITS and num.replace(".", "", 1).isdigit():
        return int(round(float(num) * _UNITS[unit]))
    m = _MEM.match(s)
    if not m:
        raise ValueError(s)
    return int(round(float(m.group(1)) * _UNITS[m.group(2)]))


def parse_date(s: str) -> datetime:
    if s.isdigit():  # raw: epoch milliseconds
        return datetime.fromtimestamp(int(s) / 1000, UTC)
    # local time of the machine that ran Nextflow; we read it in this machine's zone
    return datetime.fromisoformat(s).astimezone(UTC)


def parse_percent(s: str) -> float:
    return float(s[:-1] if s.endswith("%") else s)


def split_name(name: str) -> tuple[str, str | None]:
    """'NFCORE:RNASEQ:FASTQC (sample1)' → ('NFCORE:RNASEQ:FASTQC', 'sample1')."""
    m = _TAG.match(name)
    return (m.group(1), m.group(2)) if m else (name, None)


@dataclass
class TraceRow:
    line: int
    values: dict

    @property
    def process(self) -> str:
        return self.values.get("process") or split_name(self.values.get("name") or "")[0]

    @property
    def tag(self) -> str | None:
        return self.values.get("tag") or split_name(self.values.get("name") or "")[1]


def _converter(field: str):
    """The parser of one column (chosen once per file, not per cell)."""
    if field in STR_FIELDS:
        return str
    if field in DATE_FIELDS:
        return parse_date
    if field in TIME_FIELDS:
        return parse_duration
    if field in MEM_FIELDS:
        return parse_memory
    if field in PERC_FIELDS:
        return parse_percent
    return lambda raw: int(raw) if raw.isdigit() else float(raw)


class TraceError(ValidationError):
    """A trace that cannot be read, with the file and line."""


def read_trace(
    path: str | Path,
    sep: str | None = None,
    skip_bad_rows: bool = False,
    skipped: list | None = None,
) -> Iterator[TraceRow]:
    """Rows one at a time (memory does not grow with the trace). `sep` defaults to what the header
    uses (tab, comma or ';'). A bad row raises TraceError naming file and line, or is skipped and
    described in `skipped` when skip_bad_rows."""
    path = Path(path)
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror}") from None
    with f:
        header = f.readline().rstrip("\r\n")
        if not header:
            raise TraceError(f"{path}:1: empty trace file (no header line)")
        if sep is None:
            sep = next((c for c in ("\t", ",", ";", "|") if c in header), "\t")
        fields = header.split(sep)
        unknown = [c for c in fields if c not in ALL_FIELDS]
        if unknown:
            raise TraceError(
                f"{path}:1: unknown trace column(s) {', '.join(map(repr, unknown))} "
                f"(separator {sep!r}; known fields are Nextflow's {len(ALL_FIELDS)} trace fields)"
            )
        if len(set(fields)) != len(fields):
            raise TraceError(f"{path}:1: a column appears twice in the header")
        converters = [_converter(f) for f in fields]
        if "hash" not in fields and "workdir" not in fields and "task_id" not in fields:
            raise TraceError(
                f"{path}:1: a trace needs at least one of task_id, hash or workdir to identify tasks"
            )
        for n, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cells = line.split(sep)
            try:
                if len(cells) != len(fields):
                    raise ValueError(f"{len(cells)} values for {len(fields)} columns")
                values = {}
                for field, conv, cell in zip(fields, converters, cells, strict=True):
                    cell = cell.strip()
                    if cell == "-" or not cell:
                        values[field] = None
                        continue
                    try:
                        values[field] = conv(cell)
                    except (ValueError, KeyError):
                        raise ValueError(f"bad {field} value {cell!r}") from None
                status = values.get("status")
                if status is not None and status not in STATUSES:
                    raise ValueError(f"unknown status {status!r}")
            except ValueError as e:
                if skip_bad_rows:
                    if skipped is not None:
                        skipped.append(f"{path}:{n}: {e}")
                    continue
                raise TraceError(f"{path}:{n}: {e}") from None
            yield TraceRow(n, values)
