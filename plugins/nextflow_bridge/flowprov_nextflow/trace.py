"""A streaming parser of Nextflow trace files (`-with-trace`, `trace.*` config).

Formats, from Nextflow's TraceRecord/TraceConfig sources: any subset of the 42 fields below in
any order, any separator (`trace.sep`, tab by default), `-` for a missing value. Human formats:
dates `yyyy-MM-dd HH:mm:ss.SSS` in the machine's local time; durations `352ms`, `5.8s`,
`1d 2h 3m 4s`; memory 1024-based `206.9 MB`; percentages `24.1%`. With `trace.raw=true`: dates as
epoch milliseconds, durations as milliseconds, memory as bytes, percentages as plain numbers.

Dates in human format are the wall time of the machine that ran Nextflow, with no zone: the
parser returns them as naive datetimes, exactly as written, and the ingest reads them in one
chosen zone (`zone()`). Raw dates (epoch ms) are absolute: UTC datetimes. Durations are
milliseconds, memory and I/O bytes, percentages numbers (100 = one core fully used; can exceed
100).

The file may be gzipped (`trace.txt.gz`, detected by its magic bytes) and may start with a
byte-order mark. Each line is decoded on its own, so bytes that are not UTF-8 are an error naming
their line.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    """Raw epoch milliseconds → UTC; a human date → the naive wall time as written."""
    if s.isdigit():
        return datetime.fromtimestamp(int(s) / 1000, UTC)
    return datetime.fromisoformat(s)


_OFFSET = re.compile(r"^UTC([+-])(\d\d):(\d\d)$")


def zone(name: str | None = None) -> tzinfo:
    """The zone trace dates are read in: `name` (an IANA name such as Europe/Berlin, or a fixed
    offset written UTC+02:00), else this machine's zone."""
    if name:
        m = _OFFSET.match(name)
        if m:
            delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
            return timezone(-delta if m.group(1) == "-" else delta)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(
                f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin"
            ) from None
    env = os.environ.get("TZ", "").lstrip(":")
    for candidate in (env, _etc_localtime()):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                pass
    return datetime.now().astimezone().tzinfo or UTC  # a fixed offset: the best left


def _etc_localtime() -> str | None:
    real = os.path.realpath("/etc/localtime")
    return real.split("zoneinfo/", 1)[1] if "zoneinfo/" in real else None


def zone_name(tz: tzinfo) -> str:
    """The name `zone()` reads back: the IANA key, else the fixed offset as UTC±HH:MM."""
    if isinstance(tz, ZoneInfo):
        return tz.key
    off = tz.utcoffset(None) or timedelta(0)
    sign, off = ("-", -off) if off < timedelta(0) else ("+", off)
    minutes = int(off.total_seconds()) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def to_utc(d: datetime | None, tz: tzinfo) -> datetime | None:
    """A trace date as UTC: a naive wall time is read in `tz`."""
    if d is None or d.tzinfo is not None:
        return d
    return d.replace(tzinfo=tz).astimezone(UTC)


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
        return self.process_and_tag()[0]

    @property
    def tag(self) -> str | None:
        return self.process_and_tag()[1]

    def process_and_tag(self) -> tuple[str, str | None]:
        """(process, tag): their own columns, else read from the name (split once)."""
        v = self.values
        process, tag = v.get("process"), v.get("tag")
        if process and tag:
            return process, tag
        p, t = split_name(v.get("name") or "")
        return process or p, tag or t


def _converter(field: str):
    """The parser of one column (chosen once per file, not per cell)."""
    if field in STR_FIELDS:
        return None  # kept as written
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


_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


def _decode(path: Path, n: int, raw: bytes) -> str:
    if b"\x00" in raw:
        raise TraceError(f"{path}:{n}: not a text file (NUL bytes): is this a trace file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        what = "not a text file" if n == 1 else "not UTF-8 text"
        raise TraceError(
            f"{path}:{n}: {what} (byte 0x{raw[e.start]:02x} at column {e.start + 1} is not "
            "UTF-8): is this a Nextflow trace file?"
        ) from None


def trace_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending) of a trace file, plain or gzipped; a
    byte-order mark is dropped. Unreadable bytes raise a TraceError naming file and line."""
    path = Path(path)
    try:
        with open(path, "rb") as probe:
            gz = probe.read(2) == _GZIP_MAGIC
        f = gzip.open(path, "rb") if gz else open(path, "rb")
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror}") from None
    n = 0
    with f:
        try:
            for n, raw in enumerate(f, start=1):
                if n == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                yield n, _decode(path, n, raw).rstrip("\r\n")
        except (OSError, EOFError, zlib.error) as e:  # a broken or truncated gzip file
            raise TraceError(f"{path}:{n + 1}: cannot read on ({e})") from None


def first_row_text(path: str | Path) -> str | None:
    """The first data line as written — the same for every later, longer copy of the trace."""
    for n, line in trace_lines(path):
        if n > 1 and line.strip():
            return line
    return None


def read_trace(
    path: str | Path,
    sep: str | None = None,
    skip_bad_rows: bool = False,
    skipped: list | None = None,
) -> Iterator[TraceRow]:
    """Rows one at a time (memory does not grow with the trace). `sep` defaults to what the header
    uses (tab, comma or ';'). A bad row raises TraceError naming file and line, or is skipped and
    described in `skipped` when skip_bad_rows. Bytes that are not text are always an error."""
    path = Path(path)
    lines = trace_lines(path)
    header = next(lines, (1, ""))[1]
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
    for n, line in lines:
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
                if conv is None:
                    values[field] = cell
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
