import hashlib
import os

import blake3
import pytest
from flowprov import hashing
from flowprov.errors import FileMissingError, ValidationError

from tests.conftest import write


def test_blake3_is_default_and_matches_reference(fp_env):
    p = write(fp_env / "a.txt", b"hello flowprov")
    d = hashing.hash_file(p)
    assert d.hash_type == "blake3"
    assert d.hash == blake3.blake3(b"hello flowprov").hexdigest()
    assert d.size == 14


@pytest.mark.parametrize("algo", ["md5", "sha256"])
def test_md5_and_sha256_available(fp_env, algo):
    data = os.urandom(3 << 20)
    p = write(fp_env / "x.bin", data)
    d = hashing.hash_file(p, algo)
    assert d.hash == hashlib.new(algo, data).hexdigest()
    assert d.hash_type == algo


def test_unknown_algorithm(fp_env):
    p = write(fp_env / "a", b"x")
    with pytest.raises(ValidationError, match="unknown hash algorithm"):
        hashing.hash_file(p, "crc32")


def test_one_byte_in_the_middle_of_200mb_changes_the_hash(fp_env):
    """Whole-content hashing: a partial (first/last chunk) hash would miss this change."""
    p = fp_env / "big.bin"
    size = 200 << 20
    chunk = os.urandom(1 << 20)
    with open(p, "wb") as f:
        for _ in range(size >> 20):
            f.write(chunk)
    before = hashing.hash_file(p)
    with open(p, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    after = hashing.hash_file(p)  # same size; the cache must notice the write (ctime/mtime)
    assert before.size == after.size == size
    assert before.hash != after.hash
    h = blake3.blake3()
    with open(p, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    assert after.hash == h.hexdigest()


def test_folder_hash_from_sorted_relative_paths_and_file_hashes(fp_env):
    a = fp_env / "a"
    write(a / "x.txt", "1")
    write(a / "sub" / "y.txt", "2")
    b = fp_env / "b"
    write(b / "sub" / "y.txt", "2")  # created in a different order
    write(b / "x.txt", "1")
    da, db = hashing.hash_folder(a), hashing.hash_folder(b)
    assert da.hash == db.hash and da.n_objects == 2 and da.hash_type == "blake3-dir"
    expected = hashing.folder_digest(
        [
            ("sub/y.txt", hashing.hash_file(a / "sub/y.txt").hash),
            ("x.txt", hashing.hash_file(a / "x.txt").hash),
        ],
        "blake3",
    )
    assert da.hash == expected
    (b / "x.txt").rename(b / "z.txt")  # same bytes, another name → another folder
    assert hashing.hash_folder(b).hash != da.hash
    write(a / "x.txt", "changed")
    assert hashing.hash_folder(a).hash != da.hash


def test_missing_file(fp_env):
    with pytest.raises(FileMissingError, match="file not found"):
        hashing.hash_file(fp_env / "nope.bin")


def test_unchanged_large_file_is_not_rehashed(fp_env, monkeypatch):
    p = write(fp_env / "large.bin", os.urandom(2 << 20))
    first = hashing.hash_file(p)
    calls = []
    real = hashing._hash_bytes_of_file

    def counting(*a):
        calls.append(a)
        return real(*a)

    monkeypatch.setattr(hashing, "_hash_bytes_of_file", counting)
    assert hashing.hash_file(p).hash == first.hash
    assert calls == []  # served from the (path, size, mtime, ctime, inode) cache
    with open(p, "r+b") as f:  # rewrite, same size
        f.write(b"\0")
    assert hashing.hash_file(p).hash != first.hash
    assert len(calls) == 1


def test_hash_cache_can_be_switched_off(fp_env, monkeypatch):
    p = write(fp_env / "large.bin", os.urandom(2 << 20))
    hashing.hash_file(p)
    monkeypatch.setenv("FLOWPROV_HASH_CACHE", "0")
    calls = []
    real = hashing._hash_bytes_of_file
    monkeypatch.setattr(hashing, "_hash_bytes_of_file", lambda *a: calls.append(a) or real(*a))
    hashing.hash_file(p)
    assert len(calls) == 1
