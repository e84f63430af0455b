"""The weights hash: computed once per process per unchanged file, in the background, and redone when a file changes."""

from __future__ import annotations

import hashlib
import os

from seedprints.loading import hash_files, hash_files_async


def _independent(path) -> str:
    """hash_files' documented recipe, computed by hand: sha256 over (name, NUL, size, NUL, bytes)."""
    data = path.read_bytes()
    return hashlib.sha256(path.name.encode() + b"\0" + str(len(data)).encode() + b"\0" + data).hexdigest()


def test_hash_matches_its_recipe_and_is_memoised_until_the_file_changes(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"a" * 5000)
    first = hash_files_async([f])
    assert first.result(timeout=30) == _independent(f) == hash_files([f])
    assert hash_files_async([f]) is first  # unchanged file: the same computation, not a second read

    f.write_bytes(b"b" * 5000)  # same size: the new mtime (or inode) must still invalidate it
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    second = hash_files_async([f])
    assert second is not first
    assert second.result(timeout=30) == _independent(f) != first.result()


def test_a_failed_hash_is_not_remembered(tmp_path):
    d = tmp_path / "w.safetensors"
    d.mkdir()  # stat works, reading fails (IsADirectoryError): the failure must reach the caller and not stick
    fut = hash_files_async([d])
    assert isinstance(fut.exception(timeout=30), OSError)
    retry = hash_files_async([d])
    assert retry is not fut
    assert isinstance(retry.exception(timeout=30), OSError)
