"""Random uids come from a pool of the OS's random bytes: uniform, never repeated, and never the
same in a forked child as in its parent."""

from __future__ import annotations

import os
from collections import Counter

from flowprov.uids import _ALPHABET, RUN_UID, random_uid


def test_uids_are_unique_and_use_every_symbol_evenly():
    uids = [random_uid(RUN_UID) for _ in range(10_000)]
    assert len(set(uids)) == len(uids)
    counts = Counter("".join(uids))
    assert set(counts) == set(_ALPHABET)
    expected = len(uids) * RUN_UID / 62
    assert all(abs(n - expected) < 0.1 * expected for n in counts.values()), counts


def test_a_forked_child_draws_other_uids_than_its_parent():
    random_uid(RUN_UID)  # the pool is full now
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next uids, to the parent
        os.close(r)
        os.write(w, " ".join(random_uid(RUN_UID) for _ in range(50)).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        theirs = set(f.read().split())
    os.waitpid(pid, 0)
    ours = {random_uid(RUN_UID) for _ in range(50)}
    assert len(theirs) == 50 and not ours & theirs
