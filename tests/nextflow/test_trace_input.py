"""Issue 12, point 9: traces as they are kept — gzipped, with a byte-order mark — are read; a binary
or undecodable file is one clear error naming the file and line, and the store is unchanged."""

import gzip

import flowprov as fp
import pytest
from flowprov_nextflow import ingest_trace
from flowprov_nextflow.trace import TraceError, read_trace

from tests.nextflow.test_ingest import FIXTURE


def test_a_gzipped_trace_is_read_transparently(instance, fp_env, run_flowprov):
    gz = fp_env / "execution_trace.txt.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    out = run_flowprov("nextflow", "ingest", str(gz), "--pipeline", "nf-core/hlatyping").stdout
    assert "6 tasks; 7 runs recorded, 0 already known" in out
    # the same run as the plain file: identity comes from the content, not the file
    r = ingest_trace(FIXTURE, pipeline="nf-core/hlatyping")
    assert (r.new_runs, r.known_runs) == (0, 7)


def test_a_byte_order_mark_is_ignored(instance, fp_env):
    bom = fp_env / "trace.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + FIXTURE.read_bytes().replace(b"\n", b"\r\n"))
    assert [r.values["task_id"] for r in read_trace(bom)] == ["1", "3", "2", "4", "5", "6"]
    r = ingest_trace(bom, pipeline="nf-core/hlatyping")
    assert r.tasks == 6 and fp.Run.filter(transform__type="process").count() == 6


def test_a_binary_file_is_one_clear_error_and_writes_nothing(instance, fp_env, run_flowprov):
    png = fp_env / "trace.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
    with pytest.raises(TraceError, match=r"trace.png:1: .*not a text file"):
        ingest_trace(png, pipeline="p")
    p = run_flowprov("nextflow", "ingest", str(png), check=False)
    assert p.returncode == 1 and "trace.png:1" in p.stderr and "Traceback" not in p.stderr
    assert fp.Run.filter().count() == 0 and fp.Transform.filter().count() == 0


def test_an_undecodable_row_names_its_line_and_writes_nothing(instance, fp_env, run_flowprov):
    lines = FIXTURE.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b"remap_to_hla", b"remap_to_hla_\xe9")  # Latin-1, not UTF-8
    bad = fp_env / "trace.txt"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(TraceError, match=r"trace.txt:5: .*UTF-8"):
        ingest_trace(bad, pipeline="p")
    p = run_flowprov("nextflow", "ingest", str(bad), "--pipeline", "p", check=False)
    assert p.returncode == 1 and "trace.txt:5" in p.stderr and "Traceback" not in p.stderr
    assert fp.Run.filter().count() == 0 and fp.Transform.filter().count() == 0


def test_a_broken_gzip_file_is_one_clear_error(instance, fp_env):
    gz = fp_env / "trace.txt.gz"
    gz.write_bytes(gzip.compress(FIXTURE.read_bytes())[:60])
    with pytest.raises(TraceError, match=r"trace.txt.gz"):
        ingest_trace(gz, pipeline="p")
    assert fp.Run.filter().count() == 0
