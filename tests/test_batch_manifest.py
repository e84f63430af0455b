"""Batch manifests (CSV and JSON Lines), their one-line errors, and the batch commands on the local engine.

No Ray and no zoo here: tiny real models saved from seeds.  The Ray engine and the mini zoo
are exercised in test_batch.py.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from seedprints.batch import LocalEngine, ManifestError, WorkerSettings, build_library, read_manifest
from seedprints.batch.engines import ray_resources
from seedprints.cli import main
from seedprints.library import Library

from helpers import tiny_llama, tiny_spec

PROBE = ["--n-samples", "300", "--seq-len", "16", "--vocab-range", "512", "--positions", "last"]
OPTIONS = {"device": "cpu", "threads": 1, "cache_dir": None}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("batch-models")
    for seed in (0, 1):
        tiny_llama(seed).save_pretrained(base / f"tiny{seed}")
    return base


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------- manifests
def test_csv_manifest_resolves_paths_and_defaults(models):
    m = _write(models / "refs.csv", "source,name,family,seed,notes\n"
                                    "tiny0,,tiny,0,first\n"
                                    f"{models / 'tiny1'},one,tiny,1,\n"
                                    "\n"
                                    "org/model@v2,,hub,,\n"
                                    "org/other,,,,\n")
    rows = read_manifest(m)
    assert [r.name for r in rows] == ["tiny0", "one", "org/model@v2", "org/other"]
    assert rows[0].source == str(models / "tiny0") and rows[0].seed == 0 and rows[0].notes == "first"
    assert rows[2].source == "org/model@v2" and rows[2].seed is None and rows[2].line == 5


def test_jsonl_manifest_with_comments_and_revision_column(models):
    m = _write(models / "refs.jsonl", '# suspects\n{"source": "tiny1", "seed": 1}\n\n'
                                      '{"source": "org/model", "revision": "abc", "notes": "pinned"}\n')
    rows = read_manifest(m)
    assert [(r.name, r.seed, r.revision) for r in rows] == [("tiny1", 1, None), ("org/model@abc", None, "abc")]


@pytest.mark.parametrize("name, text, message", [
    ("cols.csv", "source,sead\ntiny0,1\n", "unknown column(s) sead"),
    ("seed.csv", "source,seed\ntiny0,one\n", "line 2: seed must be an integer"),
    ("float.jsonl", '{"source": "tiny0", "seed": 1.5}\n', "line 1: seed must be an integer"),
    ("dup.csv", "source,name\ntiny0,a\ntiny1,a\n", "lines 2 and 3 both name 'a'"),
    ("empty.csv", "source,name\n,a\n", "line 2: source is empty"),
    ("header.csv", "tiny0,a\n", "must be a header"),
    ("fields.csv", "source,name\ntiny0,a,b\n", "line 2: more fields than header columns"),
    ("obj.jsonl", '["tiny0"]\n', "line 1: not a JSON object"),
    ("rows.csv", "source,name\n", "has no rows"),
    ("rev.csv", "source,revision\ntiny0,main\n", "a revision applies only to a Hub id"),
    ("two.csv", "source,revision\norg/m@v1,v2\n", "line 2:"),
    ("list.txt", "tiny0\n", "a manifest is a .csv or .jsonl file"),
])
def test_malformed_manifest_is_one_line_naming_the_row(models, name, text, message):
    with pytest.raises(ManifestError) as err:
        read_manifest(_write(models / name, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "nope.csv")


# ---------------------------------------------------------------------------- the commands
def test_library_build_cli_json_summary_and_exit_codes(models, tmp_path, capsys):
    m = _write(tmp_path / "m.csv", f"source,name,family,seed\n{models / 'tiny0'},t0,tiny,0\n"
                                   f"{models / 'tiny1'},t1,tiny,1\n{tmp_path / 'gone'},gone,tiny,\n")
    lib = tmp_path / "lib"
    log = tmp_path / "build.jsonl"
    args = ["library", "build", str(m), "--library", str(lib), *PROBE, "--device", "cpu", "--no-cache",
            "--workers", "2", "-o", str(log)]
    capsys.readouterr()
    assert main([*args, "--json"]) == 1  # finished, with a failed row
    out = json.loads(capsys.readouterr().out)
    assert (out["done"], out["skipped"], out["failed"]) == (2, 0, 1)
    failed = [r for r in out["rows"] if r["status"] == "failed"]
    assert failed[0]["name"] == "gone" and "no such model file or folder" in failed[0]["error"]
    assert [r.name for r in Library(lib, create=False).list()] == ["t0", "t1"]
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()].count("done") == 2
    # the text summary counts rows and names each failure; reruns skip what the library holds
    assert main(args + ["-q"]) == 1
    text = capsys.readouterr().out
    assert "library build: 0 done, 2 skipped, 1 failed of 3 rows" in text and "failed: line 4 gone:" in text


def test_library_name_taken_by_other_weights_fails_that_row(models, tmp_path):
    lib = tmp_path / "lib"
    first = _write(tmp_path / "a.csv", f"source,name\n{models / 'tiny0'},shared-name\n")
    second = _write(tmp_path / "b.csv", f"source,name\n{models / 'tiny1'},shared-name\n")
    assert build_library(first, lib, LocalEngine(1), spec=tiny_spec(), **OPTIONS).done == 1
    result = build_library(second, lib, LocalEngine(1), spec=tiny_spec(), **OPTIONS)
    assert result.failed == 1 and "already has a reference named 'shared-name'" in result.records[0]["error"]


@pytest.mark.parametrize("extra, message", [
    (["--engine", "local", "--address", "auto"], "--address applies to --engine ray only"),
    (["--revision", "main"], "give them in the manifest's config and revision columns"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--max-memory", "lots"], "cannot read memory size"),
])
def test_bad_batch_options_are_one_line_errors(models, tmp_path, capsys, extra, message):
    m = _write(tmp_path / "m.csv", f"source\n{models / 'tiny0'}\n")
    capsys.readouterr()
    assert main(["library", "build", str(m), "--library", str(tmp_path / "lib"), "-q", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_manifest_from_the_cli_exits_2(tmp_path, capsys):
    m = _write(tmp_path / "m.csv", "source,seed\nx,notanumber\n")
    assert main(["audit-batch", str(m), "--library", str(tmp_path / "lib"), "-o", str(tmp_path / "r.jsonl")]) == 2
    assert "no reference library" in capsys.readouterr().err
    Library(tmp_path / "lib")
    assert main(["library", "build", str(m), "--library", str(tmp_path / "lib"), "-q"]) == 2
    assert "line 2: seed must be an integer" in capsys.readouterr().err


def test_local_worker_killed_holding_a_row_is_replaced_and_the_row_retried(models, tmp_path):
    """SIGKILL of a local worker process (as the out-of-memory killer does): its row runs again in a new one."""
    m = _write(tmp_path / "m.csv", f"source,name\n{models / 'tiny0'},t0\n")
    me, killed, stop = os.getpid(), [], threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == me and b"spawn_main" in cmd:
                    time.sleep(0.5)
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    break
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        result = build_library(m, tmp_path / "lib", LocalEngine(1), spec=tiny_spec(n=2000, seq_len=32), **OPTIONS)
    finally:
        stop.set()
        thread.join()
    assert len(killed) == 1
    assert (result.done, result.failed) == (1, 0), result.summary()
    assert result.records[0]["worker"].split(":")[1] != str(killed[0])


def test_ray_requests_are_sized_from_the_checkpoint():
    gb, gib = 10**9, 1 << 30
    gpu = WorkerSettings("library", tiny_spec(), device="auto", threads=4)
    cpu = WorkerSettings("library", tiny_spec(), device="cpu", threads=2, max_memory="8GB")
    # a 15 GB checkpoint on 80 GB GPUs: a quarter of one GPU (shares in quarters), and a host-side staging budget
    small = ray_resources(15 * gb, gpu, cluster_gpus=8, node_memory=512 * gb, gpu_memory=80 * gb)
    assert small["num_cpus"] == 4 and small["num_gpus"] == 0.25 and small["memory"] < 15 * gb
    assert ray_resources(40 * gb, gpu, 8, 512 * gb, 80 * gb)["num_gpus"] == 0.75
    # larger than one GPU (streamed layer by layer) or of unknown size: a whole GPU
    assert ray_resources(140 * gb, gpu, 8, 512 * gb, 80 * gb)["num_gpus"] == 1.0
    assert ray_resources(None, gpu, 8, 512 * gb, 80 * gb) == {"num_cpus": 4, "num_gpus": 1.0}
    # a CPU cluster: no GPU asked for; memory = checkpoint x 1.2 + 1 GiB, capped by the budget and the nodes
    assert "num_gpus" not in ray_resources(1 * gb, gpu, 0, 64 * gb)
    assert ray_resources(1 * gb, cpu, 0, 64 * gb)["memory"] == int(1.2 * gb + gib)
    assert ray_resources(70 * gb, cpu, 0, 64 * gb)["memory"] == 8 * gb + gib
    assert ray_resources(70 * gb, WorkerSettings("library", tiny_spec(), device="cpu"), 0, 64 * gb)["memory"] \
        == int(0.8 * 64 * gb)
