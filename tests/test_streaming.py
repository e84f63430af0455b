"""Layer-streamed extraction equals in-memory extraction on every supported architecture family."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import tiny_llama, tiny_spec
from seedprints.audit import fingerprint_model
from seedprints.cli import main
from seedprints.errors import Cancelled, ModelLoadError, SeedPrintsError
from seedprints.extract import extract_features
from seedprints.loading import load_model
from seedprints.memory import MemoryBudgetError, parse_size
from seedprints.streaming import read_checkpoint_index

VOCAB = 256
_COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
               max_position_embeddings=128)
#: One tiny config per decoder-only family; each streams with transformers' own layer code.
ARCHS = {
    "llama": ("LlamaConfig", dict(_COMMON, num_key_value_heads=2)),
    "mistral": ("MistralConfig", dict(_COMMON, num_key_value_heads=2, sliding_window=8)),
    "qwen2": ("Qwen2Config", dict(_COMMON, num_key_value_heads=2)),
    "qwen3": ("Qwen3Config", dict(_COMMON, num_key_value_heads=2, head_dim=16)),
    "gemma": ("GemmaConfig", dict(_COMMON, num_key_value_heads=1, head_dim=16)),
    "gemma2": ("Gemma2Config", dict(_COMMON, num_key_value_heads=2, head_dim=16, sliding_window=8)),
    "gemma3_text": ("Gemma3TextConfig", dict(_COMMON, num_key_value_heads=2, head_dim=16, sliding_window=8)),
    "phi3": ("Phi3Config", dict(_COMMON, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    "gpt_neox": ("GPTNeoXConfig", dict(_COMMON)),
    "gpt2": ("GPT2Config", dict(vocab_size=VOCAB, n_embd=64, n_layer=3, n_head=4, n_positions=128)),
    "olmo2": ("Olmo2Config", dict(_COMMON, num_key_value_heads=2, pad_token_id=0)),
    "starcoder2": ("Starcoder2Config", dict(_COMMON, num_key_value_heads=2)),
    "stablelm": ("StableLmConfig", dict(_COMMON, num_key_value_heads=2)),
    "granite": ("GraniteConfig", dict(_COMMON, num_key_value_heads=2)),
}


def build(arch: str, seed: int = 0) -> torch.nn.Module:
    """A tiny randomly initialised causal LM of one family."""
    import transformers

    cls_name, kwargs = ARCHS[arch]
    cfg = getattr(transformers, cls_name)(**kwargs)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    return model.eval()


def close(a: np.ndarray, b: np.ndarray) -> float:
    """Max abs difference relative to the largest feature value."""
    return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.mark.parametrize("arch", list(ARCHS))
def test_streamed_features_equal_in_memory_features(arch, tmp_path):
    folder = tmp_path / arch
    build(arch, seed=1).save_pretrained(folder, max_shard_size="100KB")  # several shards + index
    assert (folder / "model.safetensors.index.json").is_file()
    spec = tiny_spec(n=40, seq_len=12, vocab=VOCAB)
    loaded = load_model(str(folder), device="cpu")  # transformers' own loader: the reference
    reference = extract_features(loaded, spec)
    ref = fingerprint_model(str(folder), spec, device="cpu", stream=False)
    calls: list[tuple[str, int, int]] = []
    got = fingerprint_model(str(folder), spec, device="cpu", stream=True, max_memory="6MB",
                            progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert got.model.extraction.startswith("streamed layer by layer"), got.model.extraction
    assert ref.model.extraction == "in-memory"
    assert "chunk(s) of" in got.model.extraction
    assert close(reference, got.features) <= 1e-5
    assert close(reference, ref.features) <= 1e-5
    assert got.model.n_params == ref.model.n_params == loaded.facts.n_params
    assert any(stage.startswith("layer 3/3, chunk") for stage, _, _ in calls)


def test_several_chunks_and_bf16_checkpoint_upcast_on_cpu(tmp_path):
    folder = tmp_path / "bf16"
    tiny_llama(2, layers=3).to(torch.bfloat16).save_pretrained(folder)
    spec = tiny_spec(n=60, seq_len=16)
    ref = fingerprint_model(str(folder), spec, device="cpu", stream=False)
    assert close(extract_features(load_model(str(folder), device="cpu"), spec), ref.features) <= 1e-5
    calls: list[str] = []
    got = fingerprint_model(str(folder), spec, device="cpu", stream=True, max_memory="5MB",
                            progress=lambda stage, done, total: calls.append(stage))
    assert close(ref.features, got.features) <= 1e-5
    assert got.model.dtype == "float32" and got.model.checkpoint_dtype == "bfloat16"
    assert ref.model.checkpoint_dtype == "bfloat16"
    n_chunks = int(got.model.extraction.split(": ")[1].split(" chunk")[0])
    assert n_chunks > 1
    assert any(f"chunk {n_chunks}/{n_chunks} (each extra chunk re-reads the weights)" in c for c in calls)


def test_every_position_rows_stream_in_chunks_like_in_memory(tmp_path):
    folder = tmp_path / "m"
    tiny_llama(3, layers=3).save_pretrained(folder)
    spec = tiny_spec(n=60, seq_len=16).replace(positions="all")
    ref = fingerprint_model(str(folder), spec, device="cpu", stream=False)
    got = fingerprint_model(str(folder), spec, device="cpu", stream=True, max_memory="5MB")
    assert ref.every_position and ref.n == got.n == 960
    assert int(got.model.extraction.split(": ")[1].split(" chunk")[0]) > 1
    assert close(ref.features, got.features) <= 1e-5


def test_streaming_is_chosen_automatically_when_the_model_does_not_fit(saved_model):
    path = saved_model(4, layers=3)
    spec = tiny_spec(n=30)
    small = fingerprint_model(path, spec, device="cpu", max_memory="3MB")
    big = fingerprint_model(path, spec, device="cpu", max_memory="1GB")
    assert small.model.extraction.startswith("streamed") and big.model.extraction == "in-memory"
    assert close(big.features, small.features) <= 1e-5


def test_budget_too_small_for_one_layer_names_the_need(saved_model):
    path = saved_model(4, layers=2)
    with pytest.raises(MemoryBudgetError, match=r"too small for .*one layer needs .*--max-memory [0-9.]+GB"):
        fingerprint_model(path, tiny_spec(n=30), device="cpu", max_memory="100kB")


def test_cancel_stops_within_one_layer(tmp_path):
    folder = tmp_path / "m"
    tiny_llama(0, layers=4).save_pretrained(folder)
    cancel = threading.Event()
    seen: list[str] = []

    def progress(stage, done, total):
        seen.append(stage)
        if stage.startswith("layer 2/4"):
            cancel.set()

    with pytest.raises(Cancelled, match="at layer 3/4"):
        fingerprint_model(str(folder), tiny_spec(n=30), device="cpu", stream=True, progress=progress, cancel=cancel)
    assert not any(s.startswith("layer 3/4") for s in seen)


def test_missing_shard_and_index_disagreement_are_one_line_errors(tmp_path):
    folder = tmp_path / "sharded"
    tiny_llama(0, layers=3).save_pretrained(folder, max_shard_size="100KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    (folder / shards[-1]).rename(tmp_path / "moved.safetensors")
    with pytest.raises(ModelLoadError, match=f"shard {shards[-1]} named by model.safetensors.index.json is missing"):
        read_checkpoint_index(sorted(folder.glob("*.safetensors")))
    assert main(["fingerprint", str(folder), "-o", str(tmp_path / "f.safetensors"), "--stream", "-q",
                 "--n-samples", "10", "--vocab-range", "100"]) == 2
    (tmp_path / "moved.safetensors").rename(folder / shards[-1])
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = shards[0] if index["weight_map"][name] != shards[0] else shards[1]
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match="shards disagree with their index"):
        read_checkpoint_index(sorted(folder.glob("*.safetensors")))


def test_pickled_bin_cannot_stream_but_falls_back_when_it_fits(tmp_path):
    folder = tmp_path / "bin"
    model = tiny_llama(0, layers=2)
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    spec = tiny_spec(n=20)
    fp = fingerprint_model(str(folder), spec, device="cpu", stream=True)
    assert fp.model.extraction.startswith("in-memory (no streaming path"), fp.model.extraction
    with pytest.raises(ModelLoadError, match=r"needs about .* more than the budget .* cannot be streamed"):
        fingerprint_model(str(folder), spec, device="cpu", max_memory="200kB")


def test_cli_memory_flags(saved_model, tmp_path, capsys):
    path = saved_model(1, layers=2)
    out = tmp_path / "fp.safetensors"
    args = ["fingerprint", path, "-o", str(out), "--n-samples", "20", "--vocab-range", "500", "-q", "--no-cache"]
    assert main(args + ["--max-memory", "2MB", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["model"]["extraction"].startswith("streamed")
    assert main(args + ["--no-stream"]) == 0
    assert main(args + ["--max-memory", "lots"]) == 2
    assert "cannot read memory size 'lots'" in capsys.readouterr().err
    assert main(["compare", path, path, "--n-samples", "20", "--vocab-range", "500", "-q", "--stream"]) == 0


@pytest.mark.parametrize("text,value", [("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5g", 1_500_000_000),
                                        ("1000", 1000), (" 3 kb ", 3000)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "GB", "-1GB", "2 parsecs", "0"])
def test_parse_size_rejects(text):
    with pytest.raises(SeedPrintsError):
        parse_size(text)
