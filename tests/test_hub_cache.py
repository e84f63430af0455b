"""Hub checkpoints from a real Hugging Face cache folder, offline: revisions, recorded commit and files, cache hits."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import huggingface_hub
import pytest
import torch

from seedprints import hub, loading
from seedprints.audit import audit_library, fingerprint_model
from seedprints.cache import FingerprintCache
from seedprints.cli import main
from seedprints.errors import ModelLoadError, SeedPrintsError
from seedprints.fingerprint import load_fingerprint
from seedprints.library import Library
from seedprints.probes import ProbeSpec

from helpers import count_calls, count_loads

REPO = "seedprints-test/tiny-llama"
SHA_A = hashlib.sha1(b"revision A").hexdigest()  # tagged v1
SHA_B = hashlib.sha1(b"revision B").hexdigest()  # main
SPEC = ProbeSpec(n_samples=20, seq_len=8, vocab_range=500)
PROBE_ARGS = ["--n-samples", "20", "--seq-len", "8", "--vocab-range", "500", "--device", "cpu"]


def _tiny_llama_folder(path: Path, seed: int) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                      architectures=["LlamaForCausalLM"])
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(path, max_shard_size="300KB")  # an index and several shards
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Two sharded tiny llamas of different seeds, as save_pretrained wrote them."""
    base = tmp_path_factory.mktemp("checkpoints")
    return {SHA_A: _tiny_llama_folder(base / "a", 1), SHA_B: _tiny_llama_folder(base / "b", 2)}


def _add_commit(repo_dir: Path, commit: str, folder: Path, extra: dict[str, bytes] | None = None) -> dict[str, str]:
    """Store a folder as one commit the way huggingface_hub does; returns {file: sha256 of its content}."""
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} | (extra or {})
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        _add_blob(repo_dir, snap, name, data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def _add_blob(repo_dir: Path, snap: Path, name: str, data: bytes) -> None:
    """One file of a snapshot: a blob named by sha256 (LFS files) or git's sha1 (small files), and a relative link."""
    (repo_dir / "blobs").mkdir(exist_ok=True)
    lfs = name.endswith(".safetensors")
    blob = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    (repo_dir / "blobs" / blob).write_bytes(data)
    os.symlink(f"../../blobs/{blob}", snap / name)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, checkpoints) -> dict[str, object]:
    """A Hugging Face cache holding REPO at two commits (main -> B, tag v1 -> A), used by this test only."""
    root = tmp_path / "hf" / "hub"
    repo_dir = root / ("models--" + REPO.replace("/", "--"))
    files = {SHA_A: _add_commit(repo_dir, SHA_A, checkpoints[SHA_A]),
             SHA_B: _add_commit(repo_dir, SHA_B, checkpoints[SHA_B], {"consolidated.safetensors": b"duplicate"})}
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(SHA_B)
    (repo_dir / "refs" / "v1").write_text(SHA_A)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    unused = {"generation_config.json", "consolidated.safetensors"}  # on the Hub, but not needed to load weights
    loaded = {c: {n: h for n, h in f.items() if n not in unused} for c, f in files.items()}
    return {"root": root, "repo_dir": repo_dir, "files": loaded}


def _one_line(exc: BaseException, *parts: str) -> str:
    text = str(exc)
    assert "\n" not in text and isinstance(exc, ModelLoadError), text
    for part in parts:
        assert part in text, (part, text)
    return text


def test_the_cache_folder_is_one_huggingface_hub_reads(hf_cache):
    info = huggingface_hub.scan_cache_dir(hf_cache["root"])
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO and {r.commit_hash for r in repo.revisions} == {SHA_A, SHA_B}
    assert {r.commit_hash: set(r.refs) for r in repo.revisions} == {SHA_A: {"v1"}, SHA_B: {"main"}}


def test_offline_hub_ids_load_from_the_cache_and_revisions_pin_commits(hf_cache):
    main_fp = fingerprint_model(REPO, SPEC, device="cpu")
    by_sha = fingerprint_model(f"{REPO}@{SHA_A}", SPEC, device="cpu")
    by_tag = fingerprint_model(REPO, SPEC, device="cpu", revision="v1")
    assert (main_fp.model.hub_revision, by_sha.model.hub_revision, by_tag.model.hub_revision) == (SHA_B, SHA_A, SHA_A)
    assert torch.equal(torch.from_numpy(by_sha.features), torch.from_numpy(by_tag.features))
    assert not torch.equal(torch.from_numpy(main_fp.features), torch.from_numpy(by_sha.features))
    assert main_fp.name == REPO and by_tag.name == f"{REPO}@v1"

    facts = main_fp.model
    expected = hf_cache["files"][SHA_B]
    assert facts.hub_repo == REPO and facts.hub_files == expected  # every file loaded, the duplicate is not
    assert len(expected) > 3 and "model.safetensors.index.json" in expected  # config, index and >= 2 shards
    assert facts.weights_hash == f"hub:{REPO}@{SHA_B}" and facts.source == f"{REPO}@{SHA_B}"


def test_streamed_extraction_of_a_hub_model_records_the_commit_too(hf_cache):
    fp = fingerprint_model(REPO, SPEC, device="cpu", revision="v1", stream=True)
    assert fp.model.extraction.startswith("streamed"), fp.model.extraction
    assert (fp.model.hub_revision, fp.model.hub_files) == (SHA_A, hf_cache["files"][SHA_A])
    assert fp.model.weights_hash == f"hub:{REPO}@{SHA_A}" and fp.model.source == f"{REPO}@{SHA_A}"


def test_hub_facts_survive_the_fingerprint_file_and_old_files_stay_as_they_were(hf_cache, tmp_path):
    fp = fingerprint_model(REPO, SPEC, device="cpu", revision="v1")
    again = load_fingerprint(fp.save(tmp_path / "fp.safetensors"))
    assert again.model == fp.model and again.model.hub_files == hf_cache["files"][SHA_A]
    plain = loading.ModelFacts.from_dict({k: v for k, v in fp.model.to_dict().items() if not k.startswith("hub_")})
    assert plain.hub_repo == "" and plain.hub_files == {} and "hub_repo" not in plain.to_dict()


def test_a_repeat_audit_of_a_revision_neither_fetches_nor_loads(hf_cache, tmp_path, monkeypatch):
    cache = FingerprintCache(tmp_path / "fp-cache")
    first = fingerprint_model(REPO, SPEC, device="cpu", cache=cache)
    loads, fetches = count_loads(monkeypatch), count_calls(monkeypatch, hub, "fetch")
    for spelling, revision in ((REPO, None), (f"{REPO}@main", None), (f"{REPO}@{SHA_B}", None), (REPO, "main")):
        hit = fingerprint_model(spelling, SPEC, device="cpu", cache=cache, revision=revision)
        assert hit.model.hub_revision == SHA_B and torch.equal(torch.from_numpy(hit.features),
                                                               torch.from_numpy(first.features))
    assert (loads, fetches) == ([], [])  # nothing located, hashed or loaded
    assert cache.hits == 4 and cache.misses == 1
    fingerprint_model(REPO, SPEC, device="cpu", cache=cache, revision="v1")  # another commit is another key
    assert len(loads) == 1 and cache.misses == 2


def test_audit_json_and_html_report_name_repo_and_commit(hf_cache, tmp_path):
    from seedprints.report import report_html

    lib = Library(tmp_path / "lib")
    for commit, tag in ((SHA_A, "v1"), (SHA_B, "main")):
        lib.add(fingerprint_model(REPO, SPEC, device="cpu", revision=tag), name=f"ref-{tag}", family="tiny")
    audit = audit_library(REPO, lib, device="cpu", revision="v1")
    record = json.loads(json.dumps(audit.to_dict()))
    assert record["suspect_model"]["hub_repo"] == REPO and record["suspect_model"]["hub_revision"] == SHA_A
    assert record["suspect_model"]["hub_files"] == hf_cache["files"][SHA_A]
    assert f"{REPO}@{SHA_A}" in record["command"]  # re-running names the commit, not the moving tag
    page = report_html(audit, audit.command(audit.suspect.model.source))
    assert f'<code id="hub-revision">{REPO}@{SHA_A}</code>' in page


def test_cli_revision_option_everywhere_a_model_is_named(hf_cache, tmp_path, capsys):
    out = tmp_path / "v1.safetensors"
    assert main(["fingerprint", REPO, "--revision", "v1", "-o", str(out), "--json", *PROBE_ARGS]) == 0
    meta = load_fingerprint(out).model
    assert (meta.hub_repo, meta.hub_revision, meta.hub_files) == (REPO, SHA_A, hf_cache["files"][SHA_A])
    lib = str(tmp_path / "lib")
    assert main(["library", "add", REPO, "--revision", "v1", "--library", lib, "--name", "ref-v1", "--json",
                 *PROBE_ARGS]) == 0
    capsys.readouterr()
    assert main(["scan", f"{REPO}@{SHA_A}", "--library", lib, "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["name"] == "ref-v1"
    assert main(["compare", str(out), REPO, "--revision", SHA_A, "--json", *PROBE_ARGS]) == 0
    assert json.loads(capsys.readouterr().out)["z"] > 3  # the same commit as the reference file


def test_a_revision_the_cache_does_not_hold_is_one_line(hf_cache, capsys, tmp_path):
    with pytest.raises(SeedPrintsError) as ei:
        fingerprint_model(f"{REPO}@v9", SPEC, device="cpu")
    _one_line(ei.value, "'v9'", REPO, str(hf_cache["root"]), "offline", "hf download")
    with pytest.raises(SeedPrintsError) as ei:
        loading.load_model(f"{REPO}@{'0' * 40}", device="cpu")
    _one_line(ei.value, f"{REPO}@{'0' * 40}", "not in the local Hugging Face cache", str(hf_cache["root"]))
    with pytest.raises(SeedPrintsError) as ei:
        fingerprint_model("seedprints-test/absent", SPEC, device="cpu")
    _one_line(ei.value, "seedprints-test/absent@main", "not in the local Hugging Face cache", "offline")
    capsys.readouterr()
    assert main(["fingerprint", REPO, "--revision", "v9", "-o", str(tmp_path / "x.safetensors"), *PROBE_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'v9'" in err and err.startswith("seedprints: error:")


def test_conflicting_or_misplaced_revisions_are_refused(hf_cache, tmp_path, capsys):
    with pytest.raises(SeedPrintsError) as ei:
        fingerprint_model(f"{REPO}@main", SPEC, revision="v1")
    _one_line(ei.value, "'main'", "'v1'", "only one")
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(SeedPrintsError) as ei:
        loading.load_model(folder, revision="v1")
    _one_line(ei.value, "only to Hugging Face Hub ids", "drop --revision")


def test_a_snapshot_missing_a_shard_is_refused_before_loading(hf_cache, tmp_path, capsys, monkeypatch):
    snap = hf_cache["repo_dir"] / "snapshots" / SHA_A
    index = json.loads((snap / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    (snap / shard).unlink()
    loads = count_loads(monkeypatch)
    with pytest.raises(SeedPrintsError) as ei:
        fingerprint_model(REPO, SPEC, device="cpu", revision="v1")
    _one_line(ei.value, shard, SHA_A, "model.safetensors.index.json", "hf download")
    assert loads == []  # refused before any weights were loaded
    capsys.readouterr()
    assert main(["fingerprint", f"{REPO}@v1", "-o", str(tmp_path / "x.safetensors"), *PROBE_ARGS]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and shard in err


def test_a_hub_repo_that_is_not_a_causal_lm_is_refused(hf_cache, tmp_path):
    repo_dir = hf_cache["root"] / "models--seedprints-test--tiny-bert"
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"],
                                                    "vocab_size": 100, "hidden_size": 16}))
    (folder / "model.safetensors").write_bytes(b"not read")
    commit = hashlib.sha1(b"bert").hexdigest()
    _add_commit(repo_dir, commit, folder)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    with pytest.raises(SeedPrintsError) as ei:
        loading.load_model("seedprints-test/tiny-bert", device="cpu")
    _one_line(ei.value, "seedprints-test/tiny-bert", "encoder-only")


def test_hub_ids_and_revisions_parse():
    assert hub.parse_hub_id("org/name") == ("org/name", None)
    assert hub.parse_hub_id("org/na.me-1@refs/pr/3") == ("org/na.me-1", "refs/pr/3")
    assert hub.with_revision("org/name", "v1") == hub.with_revision("org/name@v1", "v1") == "org/name@v1"
    for bad in ("org/name@", "org/name@../x", "name", "org/name@a b"):
        assert not hub.is_hub_id(bad)
    with pytest.raises(ModelLoadError):
        hub.parse_hub_id("org/name@../../etc")


@pytest.fixture
def online_hub(hf_cache, checkpoints, monkeypatch) -> dict[str, object]:
    """Pretend to be online: a fake Hub serving checkpoint A (plus a duplicate and a .bin) as REMOTE@main."""
    from unittest import mock

    from huggingface_hub.errors import RevisionNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    commit = hashlib.sha1(b"remote").hexdigest()
    served = {p.name: p.read_bytes() for p in checkpoints[SHA_A].iterdir()}
    served |= {"consolidated.safetensors": b"duplicate", "pytorch_model.bin": b"pickle"}
    calls: dict[str, list[str]] = {"info": [], "download": []}

    class FakeApi:
        def model_info(self, repo_id: str, revision: str | None = None, timeout: float | None = None) -> object:
            calls["info"].append(f"{repo_id}@{revision}")
            if revision not in ("main", commit):
                raise RevisionNotFoundError(f"404 {revision}", response=mock.Mock(headers={}))
            return mock.Mock(sha=commit, siblings=[mock.Mock(rfilename=n) for n in sorted(served)])

    def fake_download(repo_id: str, filename: str, *, revision: str, cache_dir: Path) -> str:
        assert revision == commit  # downloads always name the resolved commit, never a moving branch
        calls["download"].append(filename)
        repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
        snap = repo_dir / "snapshots" / commit
        if not (snap / filename).exists():
            snap.mkdir(parents=True, exist_ok=True)
            _add_blob(repo_dir, snap, filename, served[filename])
        return str(snap / filename)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    return {"commit": commit, "calls": calls}


def test_online_downloads_config_index_and_named_shards_only(online_hub, hf_cache):
    loaded = loading.load_model("seedprints-test/remote", device="cpu")
    shards = sorted(n for n in hf_cache["files"][SHA_A] if n.startswith("model-"))
    assert online_hub["calls"]["download"] == ["config.json", "model.safetensors.index.json", *shards]
    assert online_hub["calls"]["info"] == ["seedprints-test/remote@main"]  # resolved once, listed from that answer
    assert loaded.facts.hub_revision == online_hub["commit"] and set(loaded.facts.hub_files) == set(hf_cache["files"][SHA_A])
    online_hub["calls"]["download"].clear()
    loading.load_model("seedprints-test/remote", device="cpu")  # complete in the cache: nothing downloaded again
    assert online_hub["calls"]["download"] == []


def test_online_unknown_revision_is_one_line(online_hub, tmp_path, capsys):
    with pytest.raises(SeedPrintsError) as ei:
        fingerprint_model("seedprints-test/remote", SPEC, revision="v9")
    _one_line(ei.value, "'v9'", "does not exist", "seedprints-test/remote")
    assert main(["fingerprint", "seedprints-test/remote@v9", "-o", str(tmp_path / "x.safetensors"), *PROBE_ARGS]) == 2
