"""Short random identifiers (base62), as in the seed's records.

A Transform uid is a 12-character stem plus a 4-character version suffix; an Artifact uid is a
16-character stem plus a 4-character suffix. All versions of one family share the stem.
"""

import os
import string
import threading

_ALPHABET = string.digits + string.ascii_letters  # 62 symbols

TRANSFORM_STEM = 12
ARTIFACT_STEM = 16
SUFFIX = 4
RUN_UID = 20
USER_UID = 8
STORAGE_UID = 12


# The OS's random bytes, drawn 4 KiB at a time, as base62 characters: one system call per ~200
# uids rather than per uid (an engine hook's every system call lets the engine's other threads
# take the interpreter lock). A forked child drops its parent's: never the same uids in both.
_pool: list[str] = []
_pool_lock = threading.Lock()


def _drop_pool() -> None:
    global _pool_lock
    _pool.clear()
    _pool_lock = threading.Lock()  # another thread may have held it when the process forked


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_pool)


def random_uid(n: int) -> str:
    """n uniformly random base62 characters from the OS's CSPRNG (bytes ≥ 248 are dropped so
    that `b % 62` is uniform); each byte is used once."""
    with _pool_lock:
        while len(_pool) < n:
            _pool.extend(_ALPHABET[b % 62] for b in os.urandom(4096) if b < 248)
        out = _pool[-n:]
        del _pool[-n:]
    return "".join(out)


def version_suffix(i: int) -> str:
    """0 -> '0000', 1 -> '0001', 62 -> '0010' (base62, zero-padded)."""
    if i < 0 or i >= 62**SUFFIX:
        raise ValueError(f"version index out of range: {i}")
    out = []
    for _ in range(SUFFIX):
        i, r = divmod(i, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def suffix_index(suffix: str) -> int:
    n = 0
    for ch in suffix:
        n = n * 62 + _ALPHABET.index(ch)
    return n
