"""Property-based tests (hypothesis): the statistics and the file readers under hostile or odd input.

Statistics: random feature matrices with ties, constant columns, huge/tiny values, NaN/inf
never crash except with SeedPrintsError subclasses, p-values are consistent, the calibrated
test sees (X, X) as related and its statistic is invariant to a common column permutation,
Holm adjustment is monotone and never lowers a p-value.

Readers: random bytes and mutated valid files given to the fingerprint reader, the library
archive reader and the model-zip extractor raise only their documented error types.

Runs derandomized (a fixed example sequence, no example database) so the suite is stable;
set FUZZ_N=2000 to fuzz harder with fresh random examples.  The reader bugs the fuzzers found
(deeply nested JSON headers, encrypted or exotic zip members, crafted member names) have
regression tests at the end of this file.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from seedprints.errors import FingerprintFileError, LibraryError, SeedPrintsError, UploadError
from seedprints.fingerprint import Fingerprint, fingerprint_from_bytes, load_fingerprint
from seedprints.library import Library, read_library_archive
from seedprints.loading import ModelFacts
from seedprints.stats import calibrated_test, holm_log10, p_from_log10, seedprints_test
from seedprints.uploads import extract_model_zip

from helpers import tiny_spec

#: FUZZ_N=2000 fuzzes harder with fresh random examples; by default a fixed, derandomized sequence runs
_FUZZ_N = os.environ.get("FUZZ_N")
FUZZ = settings(max_examples=int(_FUZZ_N or 80), deadline=None, database=None, derandomize=not _FUZZ_N,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FAST = settings(FUZZ, max_examples=int(_FUZZ_N or 100))

EXTREMES = [1e30, -1e30, 1e-30, -1e-30, 0.0, 1e300, -1e300, 3.4e38, -3.4e38]


# ---------------------------------------------------------------------------- feature matrices
@st.composite
def feature_matrix(draw, n=st.integers(3, 60), d=st.integers(4, 40), allow_nonfinite: bool = False):
    """An [N, D] matrix: Gaussian, small integers (ties), one value, or mixed, then patched with
    constant columns, extreme or tiny values (and, if allowed, NaN/inf)."""
    rows, cols = draw(n), draw(d)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    style = draw(st.sampled_from(["gauss", "ints", "binary", "constant", "scaled"]))
    if style == "gauss":
        x = rng.standard_normal((rows, cols))
    elif style == "ints":
        x = rng.integers(-3, 4, (rows, cols)).astype(np.float64)
    elif style == "binary":
        x = rng.integers(0, 2, (rows, cols)).astype(np.float64)
    elif style == "constant":
        x = np.full((rows, cols), draw(st.sampled_from([0.0, 1.0, -2.5, 1e30])))
    else:
        x = rng.standard_normal((rows, cols)) * draw(st.sampled_from([1e-30, 1e-10, 1e10, 1e30, 1e300]))
    for _ in range(draw(st.integers(0, 4))):
        patch = draw(st.sampled_from(["const-col", "extreme", "tiny", "dup-col"] + (["nan", "inf"] if allow_nonfinite else [])))
        j = draw(st.integers(0, cols - 1))
        if patch == "const-col":
            x[:, j] = draw(st.sampled_from([0.0, 1.0, -1e30, 7.0]))
        elif patch == "extreme":
            x[draw(st.integers(0, rows - 1)), j] = draw(st.sampled_from(EXTREMES))
        elif patch == "tiny":
            x[:, j] = rng.standard_normal(rows) * 1e-30
        elif patch == "dup-col":
            x[:, j] = x[:, draw(st.integers(0, cols - 1))]
        elif patch == "nan":
            x[draw(st.integers(0, rows - 1)), j] = np.nan
        else:
            x[draw(st.integers(0, rows - 1)), j] = draw(st.sampled_from([np.inf, -np.inf]))
    if draw(st.booleans()):
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)  # fingerprints store float32; 1e300 becomes inf
    return x


@st.composite
def matrix_pair(draw, allow_nonfinite: bool = False):
    ref = draw(feature_matrix(allow_nonfinite=allow_nonfinite))
    relation = draw(st.sampled_from(["independent", "same", "noisy", "permuted-rows"]))
    if relation == "independent":
        sus = draw(feature_matrix(n=st.just(ref.shape[0]), d=st.just(ref.shape[1]), allow_nonfinite=allow_nonfinite))
    elif relation == "same":
        sus = ref.copy()
    elif relation == "noisy":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        with np.errstate(all="ignore"):
            sus = ref + rng.standard_normal(ref.shape).astype(ref.dtype)
    else:
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        sus = ref[rng.permutation(ref.shape[0])]
    return ref, sus


def k_for(draw, d: int):
    return draw(st.one_of(st.integers(1, d), st.sampled_from([0.1, 0.25, 0.5, 0.9])))


def check_result(r) -> None:
    """Invariants of every SeedPrintsResult."""
    assert 0.0 <= r.pvalue <= 1.0, r.pvalue
    assert not math.isnan(r.log10_pvalue) and r.log10_pvalue <= 0.0, r.log10_pvalue
    if math.isinf(r.log10_pvalue):
        assert r.pvalue == 0.0
    else:
        assert r.pvalue == pytest.approx(p_from_log10(r.log10_pvalue), rel=1e-12, abs=0.0)
        assert r.pvalue == pytest.approx(10.0 ** r.log10_pvalue, rel=1e-9, abs=1e-300)
    assert not math.isnan(r.statistic) and not math.isnan(r.z)
    if r.inconclusive:
        assert r.pvalue == 1.0 and r.log10_pvalue == 0.0 and r.reason
        assert not r.significant(0.5)
    else:
        assert -1.0 - 1e-9 <= r.statistic <= 1.0 + 1e-9
        assert r.significant(0.01) == (r.log10_pvalue < -2)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@FUZZ
@given(data=st.data(), pair=matrix_pair(allow_nonfinite=True))
def test_calibrated_test_never_crashes(data, pair):
    ref, sus = pair
    k = k_for(data.draw, ref.shape[1])
    perms = data.draw(st.sampled_from([100, 199, 400]))
    try:
        r = calibrated_test(ref, sus, k=k, n_permutations=perms, seed=data.draw(st.integers(0, 5)))
    except SeedPrintsError as exc:
        assert str(exc) and "\n" not in str(exc)
        event(f"refused: {type(exc).__name__}")
        return
    event("inconclusive" if r.inconclusive else "ran")
    check_result(r)
    assert r.method == "calibrated-repairing" and r.n == ref.shape[0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@FUZZ
@given(data=st.data(), pair=matrix_pair(allow_nonfinite=True))
def test_paper_test_never_crashes(data, pair):
    ref, sus = pair
    k = k_for(data.draw, ref.shape[1])
    mode = data.draw(st.sampled_from(["base", "coset"]))
    agg = data.draw(st.booleans())
    try:
        r = seedprints_test(ref, sus, k=k, mode=mode, agg=agg)
    except SeedPrintsError as exc:
        assert str(exc) and "\n" not in str(exc)
        event(f"refused: {type(exc).__name__}")
        return
    event("inconclusive" if r.inconclusive else "ran")
    check_result(r)
    assert r.mode == mode


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(FUZZ, max_examples=25)
@given(data=st.data(), pair=matrix_pair())
def test_paper_test_empirical_nulls_never_crash(data, pair):
    ref, sus = pair
    null = data.draw(st.sampled_from(["simplified", "full_pipeline"]))
    null_test = data.draw(st.sampled_from(["ttest", "mannwhitney"]))
    try:
        r = seedprints_test(ref, sus, k=k_for(data.draw, ref.shape[1]), mode=data.draw(st.sampled_from(["base", "coset"])),
                            null=null, null_test=null_test, n_null=5)
    except SeedPrintsError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    check_result(r)


def gaussian(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, cols))


def distinct_means(x: np.ndarray, k: int) -> bool:
    """Column means pairwise distinct, with a clear gap at the bottom-k boundary."""
    m = np.sort(x.mean(axis=0))
    return bool(np.all(np.diff(m) > 1e-9)) and m[k] - m[k - 1] > 1e-6


@FUZZ
@given(rows=st.integers(20, 60), cols=st.integers(12, 40), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_calibrated_test_on_identical_inputs_is_significant(rows, cols, seed, data):
    x = gaussian(rows, cols, seed)
    k = data.draw(st.integers(3, cols // 2))
    r = calibrated_test(x, x, k=k, n_permutations=200)
    check_result(r)
    assert not r.inconclusive
    assert r.statistic == pytest.approx(1.0, abs=1e-9)
    assert r.log10_pvalue < math.log10(0.05), r


@FUZZ
@given(rows=st.integers(5, 60), cols=st.integers(4, 40), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_statistics_invariant_to_common_column_permutation(rows, cols, seed, data):
    ref = gaussian(rows, cols, seed)
    relation = data.draw(st.sampled_from(["independent", "noisy"]))
    sus = gaussian(rows, cols, seed + 1) + (ref if relation == "noisy" else 0.0)
    k = data.draw(st.integers(2, cols - 1))
    assume(distinct_means(ref, k) and distinct_means(sus, k))
    perm = np.random.default_rng(seed ^ 0x5EED).permutation(cols)

    a = calibrated_test(ref, sus, k=k, n_permutations=100)
    b = calibrated_test(ref[:, perm], sus[:, perm], k=k, n_permutations=100)
    assert a.k == b.k == k
    assert b.statistic == pytest.approx(a.statistic, abs=1e-9)
    # the same identity dimensions, renamed by the permutation
    assert sorted(perm[b.columns].tolist()) == sorted(a.columns.tolist())

    for mode in ("base", "coset"):
        pa = seedprints_test(ref, sus, k=k, mode=mode)
        pb = seedprints_test(ref[:, perm], sus[:, perm], k=k, mode=mode)
        assert pa.inconclusive == pb.inconclusive
        assert pb.statistic == pytest.approx(pa.statistic, abs=1e-9)
        assert pb.log10_pvalue == pytest.approx(pa.log10_pvalue, abs=1e-9)


log10_ps = st.one_of(st.floats(-400.0, 0.0), st.just(0.0), st.just(-math.inf), st.sampled_from([-1.0, -2.0, -320.0]))


@FAST
@given(lp=st.lists(log10_ps, max_size=50))
def test_holm_log10_monotone_and_never_lowers(lp):
    x = np.array(lp, dtype=np.float64)
    adj = holm_log10(x)
    assert adj.shape == x.shape
    assert not np.any(np.isnan(adj))
    assert np.all(adj <= 0.0)
    assert np.all(adj >= x), (x, adj)
    for i in range(len(x)):
        for j in range(len(x)):
            if x[i] <= x[j]:
                assert adj[i] <= adj[j], (i, j, x, adj)
    # agrees with Holm computed on p-values where they do not underflow
    m = len(x)
    order = np.argsort(x, kind="stable")
    running = -math.inf
    for rank, idx in enumerate(order):
        running = max(running, x[idx] + math.log10(m - rank))
        expected = min(0.0, running)
        if math.isfinite(expected):
            assert adj[idx] == pytest.approx(expected, abs=1e-9)
        else:
            assert adj[idx] == expected


# ---------------------------------------------------------------------------- valid files to mutate
def synthetic_fingerprint(seed: int, name: str, n: int = 8, d: int = 16) -> Fingerprint:
    spec = tiny_spec(n=n, seq_len=4)
    facts = ModelFacts(name=name, architecture="LlamaForCausalLM", model_type="llama", hidden_size=d, vocab_size=512,
                       n_params=1000, weights_hash=f"tensors-sha256:{seed:064x}")
    return Fingerprint.from_features(spec, np.random.default_rng(seed).standard_normal((n, d)), facts)


@pytest.fixture(scope="module")
def valid_fp_bytes(tmp_path_factory) -> bytes:
    path = synthetic_fingerprint(0, "fuzzed").compact(0.5).save(tmp_path_factory.mktemp("fp") / "fp.safetensors")
    data = path.read_bytes()
    fingerprint_from_bytes(data, "control")  # control: the unmutated file reads
    return data


@pytest.fixture(scope="module")
def valid_archive(tmp_path_factory) -> bytes:
    base = tmp_path_factory.mktemp("archive")
    lib = Library(base / "lib")
    lib.add(synthetic_fingerprint(1, "one"), name="one", seed=1)
    lib.add(synthetic_fingerprint(2, "two"), name="two", seed=2)
    path = lib.export_zip(base / "export.zip")
    assert [r.name for r, _ in read_library_archive(path)] == ["one", "two"]  # control
    return path.read_bytes()


@pytest.fixture(scope="module")
def valid_model_zip(tmp_path_factory) -> bytes:
    from safetensors.numpy import save

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiny/config.json", json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                                                    "hidden_size": 16, "vocab_size": 64}))
        zf.writestr("tiny/model.safetensors", save({"w": np.arange(64, dtype=np.float32)}))
        zf.writestr("tiny/tokenizer.json", "{}")
        zf.writestr("tiny/stored.txt", "x" * 50, compress_type=zipfile.ZIP_STORED)
    data = buf.getvalue()
    with tempfile.TemporaryDirectory() as tmp:  # control: the unmutated zip extracts
        Path(tmp, "m.zip").write_bytes(data)
        assert extract_model_zip(Path(tmp, "m.zip"), Path(tmp, "out")).name == "tiny"
    return data


def header_positions(data: bytes, header_end: int | None = None) -> list[int]:
    """Byte offsets worth mutating more often: zip record headers, or a safetensors JSON header."""
    if header_end is not None:
        return list(range(min(header_end, len(data))))
    out = []
    for sig, size in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46), (b"PK\x05\x06", 22)):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            out.extend(range(i, min(i + size + 24, len(data))))
            start = i + 4
    return out or list(range(len(data)))


@st.composite
def mutated(draw, data: bytes, hot: list[int]):
    """A valid file with 1-4 random edits: byte set/flip, insert, delete, truncate, append."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        pos = draw(st.sampled_from(hot)) if draw(st.booleans()) and hot else draw(st.integers(0, len(buf) - 1))
        pos = min(pos, len(buf) - 1)
        op = draw(st.sampled_from(["set", "flip", "insert", "delete", "truncate", "append", "zero-run"]))
        if op == "set":
            buf[pos] = draw(st.integers(0, 255))
        elif op == "flip":
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos:pos + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[pos:]
        elif op == "append":
            buf += draw(st.binary(min_size=1, max_size=64))
        else:
            buf[pos:pos + 8] = bytes(len(buf[pos:pos + 8]))
    return bytes(buf)


def safetensors_like():
    """8-byte length + a JSON header (sometimes with SeedPrints-looking metadata) + some bytes."""
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                               lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                               max_leaves=12)
    meta = st.fixed_dictionaries({"format": st.sampled_from(["seedprints-fingerprint", "other"]),
                                  "format_version": st.sampled_from([1, 2, "1", None])},
                                 optional={"probe": json_values, "model": json_values, "probe_id": st.text(max_size=8),
                                           "content_sha256": st.text(max_size=64)})

    @st.composite
    def build(draw):
        kind = draw(st.sampled_from(["any-json", "seedprints-meta", "meta-not-json"]))
        if kind == "any-json":
            header = draw(json_values)
        elif kind == "seedprints-meta":
            header = {"__metadata__": {"seedprints": json.dumps(draw(meta))},
                      **draw(st.dictionaries(st.sampled_from(["features", "columns", "column_means", "x"]),
                                             st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "I64", "F64", "Q9"]),
                                                                    "shape": st.lists(st.integers(-1, 4), max_size=3),
                                                                    "data_offsets": st.lists(st.integers(-1, 64), max_size=3)}),
                                             max_size=3))}
        else:
            header = {"__metadata__": {"seedprints": draw(st.text(max_size=20))}}
        raw = json.dumps(header).encode()
        body = draw(st.binary(max_size=64))
        length = draw(st.one_of(st.just(len(raw)), st.integers(0, len(raw) + len(body) + 4), st.integers(0, 2**64 - 1)))
        return length.to_bytes(8, "little") + raw + body

    return build()


# ---------------------------------------------------------------------------- fingerprint reader
def read_fp_both_ways(data: bytes) -> None:
    """fingerprint_from_bytes and load_fingerprint accept it or raise FingerprintFileError, never anything else."""
    for reader in ("bytes", "file"):
        try:
            if reader == "bytes":
                fp = fingerprint_from_bytes(data, "fuzz")
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "fuzz.safetensors"
                    path.write_bytes(data)
                    fp = load_fingerprint(path)
        except FingerprintFileError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, repr(msg)
            continue
        assert fp.verified_hash is not None  # anything accepted was hash-verified
        event("accepted")


@FAST
@given(data=st.binary(max_size=4096))
def test_fingerprint_reader_random_bytes(data):
    read_fp_both_ways(data)


@FAST
@given(data=safetensors_like())
def test_fingerprint_reader_structured_garbage(data):
    read_fp_both_ways(data)


@FAST
@given(data=st.data())
def test_fingerprint_reader_mutated_valid_file(valid_fp_bytes, data):
    header_end = 8 + int.from_bytes(valid_fp_bytes[:8], "little")
    blob = data.draw(mutated(valid_fp_bytes, header_positions(valid_fp_bytes, header_end)))
    read_fp_both_ways(blob)
    if blob != valid_fp_bytes:
        # a changed file is never accepted as a *different* fingerprint
        try:
            fp = fingerprint_from_bytes(blob, "fuzz")
        except FingerprintFileError:
            return
        ref = fingerprint_from_bytes(valid_fp_bytes, "control")
        assert fp.verified_hash == ref.verified_hash
        np.testing.assert_array_equal(fp.features, ref.features)


# ---------------------------------------------------------------------------- archives
def read_archive(blob: bytes) -> None:
    """Random archive bytes: a one-line LibraryError, or an archive whose every member verifies."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.zip"
        path.write_bytes(blob)
        try:
            out = read_library_archive(path)
        except LibraryError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        for ref, member in out:  # whatever is accepted is fully verified
            assert fingerprint_from_bytes(member, "fuzz").verified_hash == ref.content_sha256


@FAST
@given(data=st.binary(max_size=4096))
def test_library_archive_random_bytes(data):
    read_archive(data)


@FAST
@given(data=st.data())
def test_library_archive_mutated(valid_archive, data):
    read_archive(data.draw(mutated(valid_archive, header_positions(valid_archive))))


def extract(blob: bytes) -> None:
    """Random model-zip bytes: a one-line UploadError, or a folder with config.json inside dest only."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.zip"
        path.write_bytes(blob)
        dest = Path(tmp) / "out"
        try:
            folder = extract_model_zip(path, dest)
        except UploadError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        assert (folder / "config.json").is_file()
        assert dest.resolve() in [folder.resolve(), *folder.resolve().parents]
        for p in Path(tmp).rglob("*"):  # nothing was written outside dest
            assert p == path or p == dest or dest in p.parents, p


@FAST
@given(data=st.binary(max_size=4096))
def test_model_zip_random_bytes(data):
    extract(data)


@FAST
@given(data=st.data())
def test_model_zip_mutated(valid_model_zip, data):
    extract(data.draw(mutated(valid_model_zip, header_positions(valid_model_zip))))


# ---------------------------------------------------------------------------- regressions (bugs the fuzzers found, now fixed)
def _records(blob: bytes, sig: bytes):
    start = 0
    while (i := blob.find(sig, start)) >= 0:
        yield i
        start = i + 4


def patch_member(blob: bytes, member_prefix: bytes, how: str) -> bytes:
    """Edit the local and central headers of the members whose name starts with member_prefix."""
    b = bytearray(blob)
    for sig, flag_at, method_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 8, 26, 30), (b"PK\x01\x02", 8, 10, 28, 46)):
        for i in _records(blob, sig):
            n = struct.unpack_from("<H", b, i + name_len_at)[0]
            if not bytes(b[i + name_at:i + name_at + n]).startswith(member_prefix):
                continue
            flags = struct.unpack_from("<H", b, i + flag_at)[0]
            if how == "encrypted":
                struct.pack_into("<H", b, i + flag_at, flags | 0x1)
            elif how == "compression-99":
                struct.pack_into("<H", b, i + method_at, 99)
            elif how == "version-8.4" and sig == b"PK\x01\x02":  # 'version needed to extract'
                struct.pack_into("<H", b, i + 6, 84)
            elif how == "bad-utf8-name" and sig == b"PK\x01\x02":
                struct.pack_into("<H", b, i + flag_at, flags | 0x800)
                b[i + name_at + n - 1] = 0xFF
    return bytes(b)


ZIP_BUGS = ["encrypted", "compression-99", "version-8.4", "bad-utf8-name"]


@pytest.mark.parametrize("how", ZIP_BUGS)
def test_read_library_archive_unopenable_member(valid_archive, tmp_path, how):
    path = tmp_path / f"{how}.zip"
    path.write_bytes(patch_member(valid_archive, b"fingerprints/", how))
    with pytest.raises(LibraryError):
        read_library_archive(path)


@pytest.mark.parametrize("how", ZIP_BUGS)
def test_extract_model_zip_unopenable_member(valid_model_zip, tmp_path, how):
    path = tmp_path / f"{how}.zip"
    path.write_bytes(patch_member(valid_model_zip, b"tiny/model", how))
    with pytest.raises(UploadError):
        extract_model_zip(path, tmp_path / "out")


def deep_header(where: str, depth: int = 100_000) -> bytes:
    if where == "header":
        raw = b"[" * depth
    else:
        raw = json.dumps({"__metadata__": {"seedprints": "[" * depth}}).encode()
    return len(raw).to_bytes(8, "little") + raw


@pytest.mark.parametrize("where", ["header", "metadata"])
def test_fingerprint_deeply_nested_json(where):
    data = deep_header(where)
    with pytest.raises(FingerprintFileError):
        fingerprint_from_bytes(data, "deep")


def test_cli_deeply_nested_fingerprint_header(tmp_path, capsys):
    from seedprints.cli import is_fingerprint_file, main

    path = tmp_path / "deep.safetensors"
    path.write_bytes(deep_header("header"))
    assert is_fingerprint_file(str(path)) is False
    capsys.readouterr()
    assert main(["compare", str(path), str(path), "-q", "--no-cache"]) == 2


def _plain_zip(members: list[tuple[str, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in members:
            zf.writestr(zipfile.ZipInfo(name), text)
    return buf.getvalue()


CRAFTED_MODEL_ZIPS = {
    # a file and a folder of the same name: mkdir (FileExistsError) or open (IsADirectoryError) fails
    "file-then-folder": lambda valid: _plain_zip([("tiny", "x"), ("tiny/config.json", "{}")]),
    "folder-then-file": lambda valid: _plain_zip([("tiny/config.json", "{}"), ("tiny", "x")]),
    # 'tiny/.' passes the path checks but names the folder itself
    "dot-member": lambda valid: _plain_zip([("tiny/config.json", "{}"), ("tiny/.", "x")]),
    # the first byte removed: every stored offset is off by one, zipfile seeks to -1 (EINVAL)
    "shifted-offsets": lambda valid: valid[1:],
    # an empty member name: ZipInfo.is_dir() indexes filename[-1] (IndexError) before _check_member runs
    "empty-name": lambda valid: _plain_zip([("tiny/config.json", "{}"), ("", "x")]),
}


@pytest.mark.parametrize("case", list(CRAFTED_MODEL_ZIPS))
def test_extract_model_zip_crafted_member(valid_model_zip, tmp_path, case):
    path = tmp_path / f"{case}.zip"
    path.write_bytes(CRAFTED_MODEL_ZIPS[case](valid_model_zip))
    with pytest.raises(UploadError):
        extract_model_zip(path, tmp_path / "out")


def test_library_archive_member_with_deeply_nested_header(valid_archive, tmp_path):
    with zipfile.ZipFile(io.BytesIO(valid_archive)) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    first = next(n for n in members if n.startswith("fingerprints/"))
    members[first] = deep_header("header")
    path = tmp_path / "deep.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(LibraryError):
        read_library_archive(path)
