"""The trace parser on its own: formats from Nextflow's TraceRecord sources."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from flowprov_nextflow.trace import (
    ALL_FIELDS,
    TraceError,
    parse_duration,
    parse_memory,
    read_trace,
    split_name,
    to_utc,
    zone,
    zone_name,
)

FIXTURE = Path(__file__).with_name("hlatyping_execution_trace.txt")


@pytest.mark.parametrize(
    "text,ms",
    [
        ("352ms", 352),
        ("5.8s", 5800),
        ("19s", 19000),
        ("4m 19s", 259000),
        ("1m 47s", 107000),
        ("1d 2h 3m 4s", 93784000),
        ("2h", 7200000),
        ("0ms", 0),
        ("123456", 123456),
    ],
)
def test_durations(text, ms):
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text,n",
    [
        ("3.1 MB", round(3.1 * 2**20)),
        ("1016 B", 1016),
        ("206.9 MB", round(206.9 * 2**20)),
        ("0", 0),
        ("1.5 GB", round(1.5 * 2**30)),
        ("637.9 KB", round(637.9 * 1024)),
        ("5368709120", 5368709120),
    ],
)
def test_memory(text, n):
    assert parse_memory(text) == n


def test_names_keep_the_workflow_path_and_drop_the_tag():
    assert split_name("NFCORE_SCRNASEQ:SCRNASEQ:FASTQC (sample1)") == (
        "NFCORE_SCRNASEQ:SCRNASEQ:FASTQC",
        "sample1",
    )
    assert split_name("multiqc") == ("multiqc", None)
    assert split_name("remap_to_hla (1)") == ("remap_to_hla", "1")


def test_the_real_fixture():
    rows = list(read_trace(FIXTURE))
    assert [r.values["task_id"] for r in rows] == ["1", "3", "2", "4", "5", "6"]  # completion order
    opti = rows[-1]
    assert opti.process == "run_optitype" and opti.tag == "1"
    v = opti.values
    assert v["status"] == "COMPLETED" and v["exit"] == "0" and v["hash"] == "9a/7f4d5e"
    # a human date is the wall time as written (no zone): the ingest chooses the zone
    assert v["submit"] == datetime(2021, 3, 29, 19, 56, 16, 522000)
    berlin = to_utc(v["submit"], zone("Europe/Berlin"))
    assert berlin == datetime(2021, 3, 29, 17, 56, 16, 522000, tzinfo=UTC)  # CEST, UTC+2
    assert (
        zone_name(zone("UTC-05:00")) == "UTC-05:00"
        and zone_name(zone("Asia/Tokyo")) == "Asia/Tokyo"
    )
    assert v["duration"] == 107_000 and v["realtime"] == 105_000
    assert (
        v["%cpu"] == 106.3
        and v["peak_rss"] == round(1.5 * 2**30)
        and v["wchar"] == round(964.5 * 1024)
    )


def test_every_field_in_raw_mode_with_another_separator(tmp_path):
    fields = sorted(ALL_FIELDS)
    values = {f: "x" for f in fields}
    values.update(
        {
            "submit": "1617047421822",
            "start": "1617047422000",
            "complete": "1617047431000",
            "duration": "9178",
            "realtime": "9000",
            "time": "-",
            "%cpu": "98.5",
            "%mem": "0.3",
            "status": "CACHED",
            "task_id": "7",
            "attempt": "2",
            "cpus": "4",
            "syscr": "10",
            "syscw": "3",
            "vol_ctxt": "5",
            "inv_ctxt": "6",
        }
    )
    for f in (
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
    ):
        values[f] = "1048576"
    p = tmp_path / "trace.csv"
    p.write_text(",".join(fields) + "\n" + ",".join(values[f] for f in fields) + "\n")
    (row,) = read_trace(p)
    v = row.values
    assert v["submit"] == datetime.fromtimestamp(1617047421.822, UTC) and v["time"] is None
    assert (
        v["duration"] == 9178
        and v["peak_rss"] == 1048576
        and v["%cpu"] == 98.5
        and v["attempt"] == 2
    )
    assert v["status"] == "CACHED"


def test_bad_rows_name_file_and_line(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(
        "task_id\thash\tname\tstatus\tduration\n1\taa/bbbbbb\tA (1)\tCOMPLETED\t5s\n2\tcc/dddddd\tB\n"
    )
    with pytest.raises(TraceError, match=r"t.txt:3: 3 values for 5 columns"):
        list(read_trace(p))
    p.write_text("task_id\thash\tname\tstatus\tduration\n1\taa/bbbbbb\tA (1)\tDONE\t5s\n")
    with pytest.raises(TraceError, match=r"t.txt:2: unknown status 'DONE'"):
        list(read_trace(p))
    p.write_text(
        "task_id\thash\tname\tstatus\tduration\n1\taa/bbbbbb\tA (1)\tCOMPLETED\tfive seconds\n"
    )
    with pytest.raises(TraceError, match=r"t.txt:2: bad duration value 'five seconds'"):
        list(read_trace(p))
    p.write_text("task_id\thash\tcolour\n")
    with pytest.raises(TraceError, match=r"t.txt:1: unknown trace column\(s\) 'colour'"):
        list(read_trace(p))
    skipped = []
    p.write_text(
        "task_id\thash\tname\tstatus\n1\taa/bbbbbb\tA\tCOMPLETED\n2\tbroken\n3\tcc/dddddd\tC\tFAILED\n"
    )
    rows = list(read_trace(p, skip_bad_rows=True, skipped=skipped))
    assert [r.values["task_id"] for r in rows] == ["1", "3"] and skipped == [
        f"{p}:3: 2 values for 4 columns"
    ]
