"""Batch jobs on the mini seed zoo: library build and audit-batch with the local engine and a real local Ray cluster.

One zoo build and one Ray cluster (``ray.init(num_cpus=2)``) serve the whole module.  Both
engines build the same library from the same manifest (with failing rows), and the fingerprint
files must be byte-identical; the audits must give identical verdicts.  Then: reruns skip what
is done, a Ray worker killed mid-row is survived (and a row whose worker dies twice fails), and
a driver killed with SIGKILL mid-build, then rerun, leaves the same library as an uninterrupted
build.  SOURCE_DATE_EPOCH fixes the fingerprints' timestamp so that files can be compared whole.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from seedprints.batch import LocalEngine, RayEngine, audit_batch, build_library, read_results
from seedprints.library import Library
from seedprints.zoo import MINI, build_zoo

from helpers import tiny_llama, tiny_spec
from test_pickle_safety import write_evil_bin

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray  # every test here runs on the module's local Ray cluster

ROOT = Path(__file__).resolve().parents[1]
SPEC = tiny_spec(n=300, seq_len=16)
PROBE = ["--n-samples", "300", "--seq-len", "16", "--vocab-range", "512", "--positions", "last"]
SLOW_SPEC = tiny_spec(n=4000, seq_len=32)  # about two seconds a row: long enough to kill a worker mid-row
EPOCH = "1767225600"
OPTIONS = {"device": "cpu", "threads": 1, "cache_dir": None}
STAGES = ("init", "pretrain", "ft")


@pytest.fixture(scope="module", autouse=True)
def fixed_env():
    """Reproducible fingerprint timestamps and single-threaded torch in this process (workers set their own)."""
    before, threads = os.environ.get("SOURCE_DATE_EPOCH"), torch.get_num_threads()
    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if before is None:
        os.environ.pop("SOURCE_DATE_EPOCH", None)
    else:
        os.environ["SOURCE_DATE_EPOCH"] = before


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster of 2 CPUs with a small object store, for the whole module."""
    ray.init(address="local", num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False,
             log_to_driver=False, logging_level="warning")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The mini zoo, a reference manifest (9 models + 3 failing rows) and a suspect manifest (4 + 1 failing)."""
    base = tmp_path_factory.mktemp("batch")
    zoo = build_zoo(MINI, root=base / "zoo")
    bad = base / "bad"
    (bad / "truncated").mkdir(parents=True)
    shutil.copy(zoo.get("llama", 0, "init").path / "config.json", bad / "truncated" / "config.json")
    (bad / "truncated" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    (bad / "pickle").mkdir()
    shutil.copy(zoo.get("llama", 0, "init").path / "config.json", bad / "pickle" / "config.json")
    write_evil_bin(bad / "pickle" / "pytorch_model.bin", base / "PWNED", "pickle-path-touch")
    tiny_llama(99).save_pretrained(base / "unrelated")
    refs = base / "refs.csv"
    with open(refs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "name", "family", "seed", "notes"])
        for seed in MINI.seeds:
            for stage in STAGES:  # paths relative to the manifest's folder
                w.writerow([f"zoo/llama/seed{seed}/{stage}", f"llama-s{seed}-{stage}", "mini", seed, stage])
        w.writerow(["bad/truncated", "truncated", "mini", "", "unreadable checkpoint"])
        w.writerow(["bad/pickle", "pickle", "mini", "", "refused pickle"])
        w.writerow(["acme/never-downloaded@v9", "", "mini", "", "missing revision"])
    suspects = base / "suspects.jsonl"
    rows = [{"source": f"zoo/llama/seed{s}/int8", "name": f"suspect-s{s}"} for s in MINI.seeds]
    rows += [{"source": "unrelated"}, {"source": "acme/never-downloaded", "revision": "v1"}]
    suspects.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return base


def _hashes(lib: Path) -> dict[str, str]:
    return {r.name: r.content_sha256 for r in Library(lib, create=False).list()}


def _files(lib: Path) -> dict[str, bytes]:
    return {r.name: (lib / r.file).read_bytes() for r in Library(lib, create=False).list()}


@pytest.fixture(scope="module")
def built(work, ray_cluster):
    """The reference library built by each engine from the same manifest."""
    out = {}
    for name, engine in (("local", LocalEngine(2)), ("ray", RayEngine(workers=2))):
        result = build_library(work / "refs.csv", work / f"lib-{name}", engine, spec=SPEC, **OPTIONS)
        out[name] = result
    return out


# ---------------------------------------------------------------------------- library build
def test_build_adds_every_good_row_and_records_failures(work, built):
    for name, result in built.items():
        assert (result.done, result.skipped, result.failed) == (9, 0, 3), result.summary()
        errors = {r["name"]: r["error"] for r in result.records if r["status"] == "failed"}
        assert set(errors) == {"truncated", "pickle", "acme/never-downloaded@v9"}
        assert all("\n" not in e and len(e) < 400 for e in errors.values())
        assert "acme/never-downloaded@v9" in errors["acme/never-downloaded@v9"]
        assert "pickle" in errors["pickle"].lower() or "unsafe" in errors["pickle"].lower(), errors["pickle"]
        lib = Library(work / f"lib-{name}", create=False)
        refs = lib.list()
        assert sorted(r.name for r in refs) == sorted(f"llama-s{s}-{st}" for s in MINI.seeds for st in STAGES)
        assert all(lib.load(r).spec.id == SPEC.id for r in refs)  # every reference complete and verified
        assert {r.seed for r in refs if r.name.startswith("llama-s1")} == {1}
        # no partial reference: one file per indexed row
        assert len(list((work / f"lib-{name}" / "fingerprints").glob("*.safetensors"))) == 9
    assert not (work / "PWNED").exists()


def test_engines_give_bit_identical_fingerprint_files(work, built):
    assert _hashes(work / "lib-local") == _hashes(work / "lib-ray")
    assert _files(work / "lib-local") == _files(work / "lib-ray")


def test_rerun_skips_what_the_library_holds(work, built):
    before = _hashes(work / "lib-local")
    again = build_library(work / "refs.csv", work / "lib-local", LocalEngine(1), spec=SPEC, **OPTIONS)
    assert (again.done, again.skipped, again.failed) == (0, 9, 3)
    assert {r["reason"] for r in again.records if r["status"] == "skipped"} == {
        f"already in the library as '{name}' (same weights and probe)" for name in before}
    assert _hashes(work / "lib-local") == before


# ---------------------------------------------------------------------------- audit batch
def _verdicts(path: Path) -> dict[str, dict]:
    out = {}
    for rec in read_results(path):
        rec = dict(rec)
        batch = {k: v for k, v in rec.pop("batch").items() if k not in ("worker", "seconds")}
        out[batch["name"]] = {**rec, "batch": batch}
    return out


def test_audit_batch_same_verdicts_on_both_engines_and_resumes(work, built):
    for name, engine in (("local", LocalEngine(2)), ("ray", RayEngine(workers=2))):
        result = audit_batch(work / "suspects.jsonl", work / "lib-local", work / f"audit-{name}.jsonl", engine,
                             **OPTIONS)
        assert (result.done, result.skipped, result.failed) == (4, 0, 1), result.summary()
    local, on_ray = _verdicts(work / "audit-local.jsonl"), _verdicts(work / "audit-ray.jsonl")
    assert local == on_ray
    for seed in MINI.seeds:
        verdict = local[f"suspect-s{seed}"]["verdict"]
        assert verdict["label"] == "MATCH" and verdict["seed"] == seed
    assert local["unrelated"]["verdict"]["label"] == "NO MATCH"
    failed = local["acme/never-downloaded@v1"]
    assert failed["verdict"] is None and "acme/never-downloaded" in failed["batch"]["error"]
    # the records are `scan --json` records
    assert set(local["unrelated"]) >= {"suspect", "probe_id", "alpha", "test", "verdict", "rows", "skipped"}
    # a rerun keeps the verdicts, runs the failed row again and still holds one record per row
    again = audit_batch(work / "suspects.jsonl", work / "lib-local", work / "audit-local.jsonl", LocalEngine(1),
                        **OPTIONS)
    assert (again.done, again.skipped, again.failed) == (0, 4, 1)
    assert _verdicts(work / "audit-local.jsonl") == local
    assert len(read_results(work / "audit-local.jsonl")) == 5


# ---------------------------------------------------------------------------- worker loss
class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) each process titled ray::seedprints_row, up to ``limit`` of them, as soon as it runs."""

    def __init__(self, limit: int) -> None:
        super().__init__(daemon=True)
        self.limit, self.killed, self.stop = limit, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and len(self.killed) < self.limit:
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) in self.killed:
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        title = f.read()
                except OSError:
                    continue
                if title.startswith(b"ray::seedprints_row"):
                    time.sleep(0.3)  # let it load the model: the kill lands mid-row
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    self.killed.append(int(pid))
            time.sleep(0.02)


def _slow_manifest(work: Path, name: str, seeds: tuple[int, ...]) -> Path:
    path = work / f"{name}.csv"
    path.write_text("source,name,seed\n" + "".join(f"zoo/llama/seed{s}/pretrain,slow-s{s},{s}\n" for s in seeds))
    return path


def _build_while_killing(work: Path, name: str, seed: int, lib: str, kills: int):
    """Build a one-row library on Ray while a WorkerKiller kills up to ``kills`` of its workers."""
    killer = WorkerKiller(limit=kills)
    killer.start()
    try:
        result = build_library(_slow_manifest(work, name, (seed,)), work / lib, RayEngine(workers=1),
                               spec=SLOW_SPEC, **OPTIONS)
    finally:
        killer.stop.set()
        killer.join()
    return result, killer


def test_ray_worker_killed_mid_row_is_retried(work, built):
    result, killer = _build_while_killing(work, "slow-a", 0, "lib-killed", kills=1)
    assert len(killer.killed) == 1
    assert (result.done, result.failed) == (1, 0), result.summary()
    # the retried row gives the fingerprint an undisturbed local run gives
    local = build_library(_slow_manifest(work, "slow-a", (0,)), work / "lib-killed-ref", LocalEngine(1),
                          spec=SLOW_SPEC, **OPTIONS)
    assert local.done == 1 and _files(work / "lib-killed") == _files(work / "lib-killed-ref")


def test_ray_row_whose_worker_dies_twice_is_failed(work, built):
    result, killer = _build_while_killing(work, "slow-b", 1, "lib-dead", kills=2)
    assert len(killer.killed) == 2
    assert (result.done, result.failed) == (0, 1), result.summary()
    assert "died 2 times" in result.records[0]["error"]
    assert Library(work / "lib-dead", create=False).list() == []


# ---------------------------------------------------------------------------- driver killed
def _cli(*args: str, work: Path) -> subprocess.Popen:
    env = {**os.environ, "SEEDPRINTS_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "SOURCE_DATE_EPOCH": EPOCH}
    return subprocess.Popen([sys.executable, "-m", "seedprints", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _count(lib: Path) -> int:
    try:
        with sqlite3.connect(f"file:{lib / 'index.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM refs").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_driver_sigkill_mid_build_then_rerun_gives_the_same_library(work, built, ray_cluster, engine):
    """The driver is a `seedprints library build` process; with Ray it joins the module's cluster by its address."""
    lib = work / f"lib-sigkill-{engine}"
    args = ("library", "build", str(work / "refs.csv"), "--library", str(lib), *PROBE, "--device", "cpu",
            "--no-cache", "--threads", "1", "-q", "--engine", engine)
    if engine == "ray":
        args += ("--address", ray_cluster)
    proc = _cli(*args, work=work)
    deadline = time.monotonic() + 240
    while _count(lib) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    added = _count(lib)
    assert 2 <= added < 9, f"the build was not killed mid-way ({added} references)"
    Library(lib, create=False).list()  # the index opens and reads
    again = _cli(*args, work=work)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 1, err  # 1: finished, with failed rows
    assert f"{9 - added} done, {added} skipped, 3 failed" in out, out
    assert _files(lib) == _files(work / "lib-local")
