"""Short random identifiers (base62), as in the seed's records.

A Transform uid is a 12-character stem plus a 4-character version suffix; an Artifact uid is a
16-character stem plus a 4-character suffix. All versions of one family share the stem.
"""

import os
import string

_ALPHABET = string.digits + string.ascii_letters  # 62 symbols

TRANSFORM_STEM = 12
ARTIFACT_STEM = 16
SUFFIX = 4
RUN_UID = 20
USER_UID = 8
STORAGE_UID = 12


def random_uid(n: int) -> str:
    """n uniformly random base62 characters from the OS's CSPRNG (bytes ≥ 248 are dropped so
    that `b % 62` is uniform)."""
    out: list[str] = []
    while len(out) < n:
        out += [_ALPHABET[b % 62] for b in os.urandom(n + 8) if b < 248]
    return "".join(out[:n])


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
