"""Full-content hashing of one large file: flowprov's hash_file next to the raw speeds.

    python benchmarks/bench_hash.py                 # 1 GiB file, md5/sha256 on 256 MiB, 5 trials
    python benchmarks/bench_hash.py --quick         # 256 MiB file, md5/sha256 on 64 MiB
    python benchmarks/bench_hash.py --size-mib 4096 --dir /scratch

A file of random bytes is written once into a temp folder (``--dir`` to choose the file system)
and deleted at the end. After one warm-up read it is in the page cache, so these are CPU and
memory-bandwidth figures, not disk figures. Measured in every trial (interleaved):

- raw read: readinto a reused 1 MiB buffer, the whole file
- raw BLAKE3 on the bytes already in memory: ``blake3.blake3()`` (1 thread) and
  ``blake3.blake3(max_threads=AUTO)`` (all cores)
- ``blake3(max_threads=AUTO).update_mmap(path)`` directly: the library call flowprov makes
- flowprov ``hash_file(path)`` with the hash cache off (it reads every byte)

Then md5 and sha256: flowprov ``hash_file(path, algo)`` on a smaller file vs hashlib on the same
bytes in memory. Finally a one-byte change in the middle of the file must change the hash (with
the cache off, and with the cache on after the file was hashed once).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import sys
import time

from _common import check, header, median, temp_base, verdict

MiB = 1 << 20
TARGET = 0.80  # flowprov hash_file ≥ 80 % of the raw speed of its algorithm on one file


def write_random(path: str, size: int) -> float:
    t0 = time.perf_counter()
    chunk = 16 * MiB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
    return time.perf_counter() - t0


def raw_read(path: str, size: int) -> float:
    buf = bytearray(MiB)
    mv = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(mv):
            total += n
    dt = time.perf_counter() - t0
    check(total == size, f"read {total} bytes, expected {size}")
    return dt


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def gbps(size: int, seconds: float) -> float:
    return size / seconds / 1e9


def row(label: str, size: int, times: list[float], note: str = "") -> None:
    speeds = [gbps(size, t) for t in times]
    print(
        f"  {label:<48} {median(speeds):6.2f} GB/s  ({min(speeds):.2f}–{max(speeds):.2f})"
        f"  {median(times) * 1e3:8.1f} ms{note}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="big file size (default 1024)")
    ap.add_argument("--small-mib", type=int, default=256, help="md5/sha256 file size (default 256)")
    ap.add_argument("--trials", type=int, default=5, help="trials (default 5)")
    ap.add_argument("--dir", default=None, help="parent folder of the temp files (default: TMPDIR)")
    ap.add_argument("--quick", action="store_true", help="256 MiB file, md5/sha256 on 64 MiB")
    a = ap.parse_args()
    if a.quick:
        a.size_mib = min(a.size_mib, 256)
        a.small_mib = min(a.small_mib, 64)
    check(a.size_mib > 0 and a.small_mib > 0 and a.trials > 0, "sizes and trials must be > 0")
    with temp_base("hash", a.dir) as base:
        import blake3
        from _common import import_flowprov

        import_flowprov()
        import flowprov as fp
        from flowprov.hashing import hash_file

        fp.settings.hash_cache = False
        size, small = a.size_mib * MiB, a.small_mib * MiB
        header(
            "bench_hash: full-content hashing of one file",
            f"{a.size_mib} MiB file (md5/sha256: {a.small_mib} MiB), {a.trials} trials, "
            f"GB = 10^9 B, page cache warm; temp folder {base}",
        )
        big = os.path.join(base, "big.bin")
        t = write_random(big, size)
        print(f"wrote {a.size_mib} MiB of random bytes in {t:.1f} s")
        raw_read(big, size)  # warm-up: the file is now in the page cache
        with open(big, "rb") as f:
            data = f.read()
        check(len(data) == size, "short read of the big file")
        want = blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()

        def b3_one():
            return blake3.blake3(data).hexdigest()

        def b3_auto():
            return blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()

        def b3_mmap():
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)
            h.update_mmap(big)
            return h.hexdigest()

        def flow():
            return hash_file(big)

        res = {k: [] for k in ("read", "one", "auto", "mmap", "flow")}
        fns = {"one": b3_one, "auto": b3_auto, "mmap": b3_mmap, "flow": flow}
        for trial in range(a.trials):
            order = ["read", "one", "auto", "mmap", "flow"]
            order = order[trial % 5 :] + order[: trial % 5]
            for k in order:
                if k == "read":
                    res[k].append(raw_read(big, size))
                    continue
                dt, out = timed(fns[k])
                if k == "flow":
                    check(out.hash_type == "blake3" and out.size == size, f"bad digest {out}")
                    out = out.hash
                check(out == want, f"{k}: hash {out} differs from {want}")
                res[k].append(dt)
            print(
                f"  trial {trial + 1}/{a.trials}: "
                + ", ".join(f"{k} {gbps(size, res[k][-1]):.2f}" for k in res)
                + " GB/s"
            )
            sys.stdout.flush()

        print(f"\nBLAKE3 on {a.size_mib} MiB — median GB/s (min–max), median time:")
        row("raw read (readinto 1 MiB buffer)", size, res["read"])
        row("raw blake3, in memory, 1 thread", size, res["one"])
        row("raw blake3, in memory, all threads (AUTO)", size, res["auto"])
        row("blake3 AUTO update_mmap(path) (flowprov's call)", size, res["mmap"])
        row("flowprov hash_file(path), cache off", size, res["flow"])
        m = {k: gbps(size, median(v)) for k, v in res.items()}
        best_raw = max(m["one"], m["auto"])
        ratio = m["flow"] / best_raw
        print("\nratios (of median speeds):")
        print(f"  flowprov / raw blake3 1 thread         {m['flow'] / m['one']:6.2f}")
        print(f"  flowprov / raw blake3 all threads      {m['flow'] / m['auto']:6.2f}")
        print(f"  flowprov / update_mmap directly        {m['flow'] / m['mmap']:6.2f}")
        print(f"  flowprov / raw read                    {m['flow'] / m['read']:6.2f}")
        print(
            f"target: flowprov ≥ {TARGET:.0%} of the best raw in-memory BLAKE3 speed on one file"
            f" ({best_raw:.2f} GB/s): {ratio:.0%}  [{verdict(ratio >= TARGET)}]"
        )
        data = None  # free the in-memory copy
        gc.collect()

        # -- md5 and sha256 on a smaller file --
        sm = os.path.join(base, "small.bin")
        write_random(sm, small)
        raw_read(sm, small)
        with open(sm, "rb") as f:
            sdata = f.read()
        print(f"\nmd5 / sha256 on {a.small_mib} MiB — median GB/s (min–max), median time:")
        ratios = {}
        for algo in ("md5", "sha256"):
            want = hashlib.new(algo, sdata).hexdigest()
            raw_t, flow_t = [], []
            for trial in range(a.trials):
                pair = [("raw", raw_t), ("flow", flow_t)]
                for kind, out_t in pair if trial % 2 == 0 else reversed(pair):
                    if kind == "raw":
                        dt, out = timed(lambda algo=algo: hashlib.new(algo, sdata).hexdigest())
                    else:
                        dt, d = timed(lambda algo=algo: hash_file(sm, algo))
                        check(d.hash_type == algo and d.size == small, f"bad digest {d}")
                        out = d.hash
                    check(out == want, f"{algo} {kind}: hash {out} differs from hashlib {want}")
                    out_t.append(dt)
            row(f"raw hashlib.{algo}, in memory", small, raw_t)
            row(f"flowprov hash_file(path, {algo!r}), cache off", small, flow_t)
            ratios[algo] = median(raw_t) / median(flow_t)
        for algo, r in ratios.items():
            print(f"  flowprov / raw hashlib {algo:<7} {r:6.2f}  [{verdict(r >= TARGET)}]")
        sdata = None
        os.remove(sm)

        # -- a one-byte change in the middle changes the hash --
        print("\none-byte change in the middle of the file:")
        mid = size // 2
        before = hash_file(big).hash

        def flip():
            with open(big, "r+b") as f:
                f.seek(mid)
                b = f.read(1)
                f.seek(mid)
                f.write(bytes([b[0] ^ 0xFF]))

        flip()
        after = hash_file(big).hash
        print(f"  {'before':<32} {before}")
        print(f"  {f'byte {mid} flipped':<32} {after}")
        check(after != before, "a one-byte change did not change the hash")
        # with the cache on: hash (cached), flip the byte back, hash again → the original hash
        fp.settings.hash_cache = True
        cached = hash_file(big).hash
        check(cached == after, "hash with the cache on differs")
        flip()
        restored = hash_file(big).hash
        print(f"  {'flipped back (hash cache on)':<32} {restored}")
        check(restored == before, "the hash cache returned a stale hash after a change")
        fp.settings.hash_cache = False
        print("  the hash changes with one byte: ok")
        os.remove(big)
        print(f"deleted {big}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
