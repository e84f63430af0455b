"""GGUF loading: a tiny llama written with gguf's GGUFWriter loads back through transformers.

The writer below follows llama.cpp's ``convert_hf_to_gguf.py`` for the ``llama`` architecture:
llama.* hyper-parameter keys, a minimal tokenizer block, ``token_embd`` / ``blk.N.*`` /
``output_norm`` / ``output`` tensor names, and q/k projections permuted into llama.cpp's rotary
layout (transformers' ``LlamaTensorProcessor`` reverse-permutes them on load).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from seedprints import compare, fingerprint_model  # noqa: E402
from seedprints.errors import ModelLoadError  # noqa: E402
from seedprints.loading import load_model  # noqa: E402

from helpers import TINY_VOCAB, tiny_llama, tiny_spec  # noqa: E402

# HF parameter leaf (inside model.layers.N.) -> llama.cpp tensor name (inside blk.N.)
_LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row permutation (HF rotate-half layout -> interleaved rotary pairs)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model: torch.nn.Module, path: Path, *, architecture: str = "llama") -> Path:
    """Write a transformers Llama causal LM to ``path`` as an F32 GGUF file."""
    cfg = model.config
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    rope = getattr(cfg, "rope_parameters", None) or {}
    rope_theta = float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    arch = architecture

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_uint32(f"{arch}.context_length", cfg.max_position_embeddings)
    writer.add_uint32(f"{arch}.embedding_length", cfg.hidden_size)
    writer.add_uint32(f"{arch}.block_count", cfg.num_hidden_layers)
    writer.add_uint32(f"{arch}.feed_forward_length", cfg.intermediate_size)
    writer.add_uint32(f"{arch}.attention.head_count", n_head)
    writer.add_uint32(f"{arch}.attention.head_count_kv", n_kv)
    writer.add_uint32(f"{arch}.rope.dimension_count", head_dim)
    writer.add_float32(f"{arch}.rope.freq_base", rope_theta)
    writer.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", float(cfg.rms_norm_eps))
    writer.add_uint32(f"{arch}.vocab_size", cfg.vocab_size)
    # A minimal tokenizer block, as llama.cpp writes one: transformers reads only the special ids (and
    # the token count, when <arch>.vocab_size is missing) to build the *model*.
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"<t{i}>" for i in range(cfg.vocab_size)])
    writer.add_token_scores([0.0] * cfg.vocab_size)
    writer.add_token_types([int(gguf.TokenType.NORMAL)] * cfg.vocab_size)
    if cfg.bos_token_id is not None:
        writer.add_bos_token_id(int(cfg.bos_token_id))
    if cfg.eos_token_id is not None:
        writer.add_eos_token_id(int(cfg.eos_token_id))

    sd = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        for hf_leaf, gguf_leaf in _LAYER_TENSORS.items():
            w = sd[f"model.layers.{i}.{hf_leaf}.weight"]
            if gguf_leaf == "attn_q":
                w = _llama_cpp_permute(w, n_head)
            elif gguf_leaf == "attn_k":
                w = _llama_cpp_permute(w, n_kv)
            writer.add_tensor(f"blk.{i}.{gguf_leaf}.weight", np.ascontiguousarray(w))
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie_word_embeddings:  # llama.cpp writes `output` only when it is not the embedding
        writer.add_tensor("output.weight", sd["lm_head.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _assert_one_line(err: pytest.ExceptionInfo[ModelLoadError]) -> None:
    msg = str(err.value)
    assert msg and "\n" not in msg and "\r" not in msg, msg


def test_permutation_helper_is_llama_cpp_inverse_of_transformers():
    """Guard the writer: transformers' reverse permutation undoes ours exactly."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    w = np.arange(128 * 8, dtype=np.float32).reshape(128, 8)
    back = LlamaTensorProcessor()._reverse_permute_weights(_llama_cpp_permute(w, 4), 4, 4)
    np.testing.assert_array_equal(back, w)


def test_gguf_roundtrip_matches_original(tmp_path):
    model = tiny_llama(3)
    path = write_llama_gguf(model, tmp_path / "tiny.gguf")
    spec = tiny_spec(n=100)

    loaded = load_model(path, device="cpu")
    assert loaded.facts.hidden_size == 128
    assert loaded.facts.vocab_size == TINY_VOCAB
    assert loaded.facts.model_type == "llama"
    assert bool(loaded.model.config.tie_word_embeddings) == bool(model.config.tie_word_embeddings)
    ref_sd = model.state_dict()
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, ref_sd[key], msg=key)

    fp_mem = fingerprint_model(model, spec, name="in-memory", device="cpu")
    fp_gguf = fingerprint_model(path, spec, device="cpu")
    assert fp_gguf.features.shape == fp_mem.features.shape
    np.testing.assert_allclose(fp_gguf.features, fp_mem.features, atol=1e-4)
    assert compare(fp_mem, fp_gguf).log10_pvalue < -10


def test_gguf_tied_embeddings_roundtrip(tmp_path):
    """No `output` tensor in the file means tied embeddings, as llama.cpp writes them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)
    torch.manual_seed(5)
    model = LlamaForCausalLM(cfg).eval()
    loaded = load_model(write_llama_gguf(model, tmp_path / "tied.gguf"), device="cpu").model
    assert loaded.config.tie_word_embeddings
    ids = torch.randint(0, 64, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)


def test_gguf_unsupported_architecture_is_one_line_error(tmp_path):
    path = write_llama_gguf(tiny_llama(0, hidden=32, layers=1, vocab=64), tmp_path / "odd.gguf",
                            architecture="seedprints-made-up-arch")
    with pytest.raises(ModelLoadError) as err:
        load_model(path, device="cpu")
    _assert_one_line(err)
    assert "odd.gguf" in str(err.value)


def test_gguf_truncated_is_one_line_error(tmp_path):
    path = write_llama_gguf(tiny_llama(0, hidden=32, layers=1, vocab=64), tmp_path / "cut.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as err:
        load_model(path, device="cpu")
    _assert_one_line(err)
    assert "cut.gguf" in str(err.value)
