"""audit_library: fingerprint a suspect with the library's probe, scan, build the evidence matrix and map."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from seedprints.audit import LibraryAudit, audit_library, fingerprint_model
from seedprints.derive import weight_noise
from seedprints.errors import Cancelled, LibraryError
from seedprints.library import Library

from helpers import tiny_llama, tiny_spec

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3]
KEEP = {0: "all", 1: 0.2, 2: "all", 3: "all"}  # seed 1 stored compact (the library default)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    lib = Library(base / "lib")
    spec = tiny_spec()
    for s in SEEDS:
        fp = fingerprint_model(tiny_llama(s), spec, name=f"tiny-{s}")
        kw = {} if KEEP[s] == 0.2 else {"keep": KEEP[s]}
        lib.add(fp, name=f"ref-seed{s}", family="tiny", seed=s, **kw)
    suspect = base / "suspect-model"
    weight_noise(tiny_llama(2), rel=0.01).save_pretrained(suspect)
    return base, lib, suspect


@pytest.fixture(scope="module")
def audit(workspace) -> LibraryAudit:
    _, lib, suspect = workspace
    return audit_library(str(suspect), lib, device="cpu")


def test_library_holds_compact_and_full_references(workspace):
    _, lib, _ = workspace
    assert len(lib) == 4
    assert not lib.load("ref-seed1").is_full and lib.load("ref-seed0").is_full


def test_verdict_is_match_seed_2(audit):
    v = audit.report.verdict
    assert v.label == "MATCH" and v.seed == 2 and v.reference == "ref-seed2" and v.family == "tiny"
    assert len(audit.report.rows) == 4 and not audit.report.skipped  # the compact reference is testable too
    assert audit.report.rows[0].reference.name == "ref-seed2"
    assert audit.top is audit.report.rows[0].result and audit.top.z > 5
    assert audit.report.test["test"] == "calibrated" and audit.report.test["n_permutations"] == 2000
    assert audit.suspect.is_full
    assert audit.suspect.spec.id == audit.report.probe_id


def test_suspect_uses_the_library_probe(workspace, audit):
    _, lib, _ = workspace
    assert audit.suspect.spec.id == lib.default_probe().id == tiny_spec().id
    assert audit.library == str(lib.root)
    assert set(audit.seconds) == {"fingerprint", "scan", "map"} and all(v >= 0 for v in audit.seconds.values())


def test_matrix_and_embedding(audit):
    m = audit.matrix
    assert m.n == 5 and m.names[0] == audit.suspect.name == "suspect-model"
    assert m.lineages[0] == "suspect"
    assert m.names[1:] == [r.reference.name for r in audit.report.rows]  # best ranked first
    assert m.names[1] == "ref-seed2" and m.lineages[1] == "tiny seed 2"
    assert m.z.shape == (5, 5) and np.all(np.isnan(np.diag(m.z)))
    # suspect vs its parent: strong both ways
    assert m.z[1, 0] > 5 and m.z[0, 1] > 5
    # the compact reference cannot be the suspect side: its column is all NaN
    c = m.names.index("ref-seed1")
    assert np.all(np.isnan(m.z[:, c])) and np.isfinite(m.z[c, 0])
    # the scan row and the matrix agree on reference vs suspect
    assert m.z[1, 0] == pytest.approx(audit.top.z) and m.log10_p[1, 0] == pytest.approx(audit.top.log10_pvalue)
    assert audit.embedding.coords.shape == (5, 2) and np.all(np.isfinite(audit.embedding.coords))
    assert audit.embedding.method == "mds"
    d = m.distance()
    assert d[0, 1] < 0.2 and np.all(np.diag(d) == 0)


def test_map_size_caps_the_matrix(workspace):
    _, lib, suspect = workspace
    a = audit_library(str(suspect), lib, device="cpu", map_size=2)
    assert a.matrix.n == 3 and a.matrix.names[0] == "suspect-model" and a.matrix.names[1] == "ref-seed2"
    assert a.embedding.coords.shape == (3, 2)
    assert len(a.report.rows) == 4  # the scan itself still covers the whole library


def test_map_left_out_on_request_keeps_the_evidence(workspace, audit):
    _, lib, suspect = workspace
    a = audit_library(str(suspect), lib, device="cpu", draw_map=False)
    assert not a.embedding.drawn and a.embedding.method == "none" and a.embedding.coords.shape == (0, 2)
    assert a.embedding.note == "map of 5 models not drawn: not asked for (draw_map=False)"
    assert a.report.verdict.label == "MATCH" and a.matrix.n == 5
    np.testing.assert_array_equal(np.isnan(a.matrix.z), np.isnan(audit.matrix.z))
    assert json.loads(json.dumps(a.to_dict(), allow_nan=False))["map"] == {
        "drawn": False, "method": "none", "note": a.embedding.note, "coords": [], "links": []}


def test_to_dict_is_json_ready(audit):
    d = audit.to_dict()
    text = json.dumps(d, allow_nan=False)  # NaN must have become null
    back = json.loads(text)
    for key in ("command", "matrix", "scan", "probe", "map", "suspect_model", "probe_id", "library", "seconds"):
        assert key in back, key
    assert back["scan"]["verdict"]["label"] == "MATCH" and back["scan"]["verdict"]["seed"] == 2
    assert back["matrix"]["names"] == audit.matrix.names
    assert back["matrix"]["z"][0][0] is None and back["matrix"]["z"][1][0] == pytest.approx(audit.matrix.z[1, 0])
    assert len(back["map"]["coords"]) == 5 and back["map"]["drawn"] is True
    assert back["probe"] == audit.suspect.spec.to_dict()
    assert back["command"] == audit.command(str(audit.suspect.model.source))
    assert shlex.split(back["command"])[2] == audit.suspect.model.source


def test_command_reruns_the_same_audit(workspace, audit, tmp_path):
    base, lib, suspect = workspace
    cmd = audit.command(str(suspect))
    argv = shlex.split(cmd)
    assert argv[0] == "seedprints" and argv[1] == "scan" and argv[2] == str(suspect)
    assert argv[argv.index("--library") + 1] == str(lib.root)
    assert argv[argv.index("--n-samples") + 1] == "300" and argv[argv.index("--permutations") + 1] == "2000"
    env = {**os.environ, "SEEDPRINTS_HOME": str(tmp_path / "cli-home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "seedprints", *argv[1:], "--json"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["verdict"]["label"] == audit.report.verdict.label == "MATCH"
    assert out["verdict"]["seed"] == audit.report.verdict.seed == 2
    assert out["probe_id"] == audit.report.probe_id
    assert out["rows"][0]["name"] == "ref-seed2"
    assert out["rows"][0]["z"] == pytest.approx(audit.top.z, rel=1e-4)


def test_command_for_the_paper_test(workspace):
    _, lib, suspect = workspace
    a = audit_library(str(suspect), lib, device="cpu", test="paper", alpha=0.05)
    cmd = a.command()
    argv = shlex.split(cmd)
    assert argv[2] == "SUSPECT" and argv[argv.index("--test") + 1] == "paper" and "--permutations" not in argv
    assert argv[argv.index("--alpha") + 1] == "0.05"
    assert a.report.verdict.label == "MATCH" and a.report.verdict.seed == 2
    assert a.matrix.test == "paper"


def test_empty_library_is_refused(workspace, tmp_path):
    _, _, suspect = workspace
    with pytest.raises(LibraryError, match="is empty: add reference models first") as info:
        audit_library(str(suspect), Library(tmp_path / "empty"), device="cpu")
    assert "\n" not in str(info.value)


def test_cancelled_before_start(workspace):
    _, lib, suspect = workspace
    token = threading.Event()
    token.set()
    with pytest.raises(Cancelled, match="cancelled"):
        audit_library(str(suspect), lib, device="cpu", cancel=token)


def test_progress_reaches_the_total(workspace):
    _, lib, suspect = workspace
    calls: list[tuple[int, int]] = []
    a = audit_library(str(suspect), lib, device="cpu", progress=lambda stage, done, total: calls.append((done, total)))
    assert len(calls) >= 2
    total = calls[-1][1]
    assert total == 300 and calls[-1][0] == total
    assert all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[0] == 0
    assert a.report.verdict.label == "MATCH"


def test_in_memory_suspect_with_a_name(workspace):
    _, lib, _ = workspace
    a = audit_library(weight_noise(tiny_llama(3), rel=0.01), lib, name="mystery", map_size=1)
    assert a.matrix.names == ["mystery", "ref-seed3"] and a.embedding.method == "line"
    assert a.report.verdict.label == "MATCH" and a.report.verdict.seed == 3
    assert not math.isnan(a.matrix.z[1, 0])


def test_listing_probes_reads_the_index_not_the_files(workspace, monkeypatch):
    _, lib, _ = workspace
    expected = lib.probes()
    def refuse(*a, **k):
        raise AssertionError("a fingerprint file was opened to list probes")

    monkeypatch.setattr(Library, "load", refuse)
    assert [(s.id, n) for s, n in lib.probes()] == [(s.id, n) for s, n in expected]
    assert lib.default_probe().id == expected[0][0].id


def test_library_written_before_the_probe_table_backfills_it(workspace):
    import sqlite3

    _, lib, _ = workspace
    expected = [(s.id, n) for s, n in lib.probes()]
    with sqlite3.connect(lib.index_path) as conn:  # as an older seedprints left it: no probe specs
        conn.execute("DELETE FROM probes")
    assert [(s.id, n) for s, n in lib.probes()] == expected  # read from a fingerprint once...
    with sqlite3.connect(lib.index_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM probes").fetchone()[0] == len(expected)  # ...and recorded


def test_a_suspect_no_reference_is_as_wide_as_is_refused_before_extraction(workspace, tmp_path, capsys):
    """A 64-wide model against the 128-wide library: one sentence naming the widths, nothing extracted (#24)."""
    from seedprints.audit import suspect_width
    from seedprints.cli import main
    from seedprints.errors import IncompatibleFingerprintsError
    from tests.test_gguf import write_llama_gguf

    _, lib, _ = workspace
    wide = tiny_llama(7, hidden=64)
    folder = tmp_path / "wide-64"
    wide.save_pretrained(folder)
    calls = []
    with pytest.raises(IncompatibleFingerprintsError) as err:
        audit_library(str(folder), lib, name="wide-64", device="cpu", progress=lambda *a: calls.append(a))
    msg = str(err.value)
    # narrower than every reference: it could be width-pruned, which is said rather than "cannot derive"
    assert msg.startswith("no reference in this library is as wide as wide-64") and "width-pruned" in msg
    assert "hidden size 64" in msg and "have 128" in msg and "\n" not in msg
    assert calls == []  # refused before any loading or extraction reported progress
    # the CLI's scan says the same in one line, as a user error
    capsys.readouterr()  # (saving the model printed a progress bar)
    assert main(["scan", str(folder), "--library", str(lib.root), "--no-cache"]) == 2
    out = capsys.readouterr()
    assert "is as wide as wide-64" in out.err and out.err.count("\n") == 1 and not out.out
    # the width is read from a GGUF header and an in-memory model's config just as well
    assert suspect_width(write_llama_gguf(wide, tmp_path / "wide.gguf")) == 64
    assert suspect_width(wide) == 64 and suspect_width(str(folder)) == 64
