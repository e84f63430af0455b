"""Tiny llama-style models from a seed: the one recipe the demo, the Learn tab and the tests share."""

from __future__ import annotations

from typing import Any

import torch


def tiny_llama_config(hidden: int = 128, layers: int = 2, vocab: int = 512, intermediate: int | None = None) -> Any:
    """A llama config with 4 heads (no grouped KV), MLP width 2 x hidden unless given, 256 positions."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=256, architectures=["LlamaForCausalLM"])


def tiny_llama(seed: int, hidden: int = 128, layers: int = 2, vocab: int = 512,
               intermediate: int | None = None) -> torch.nn.Module:
    """A freshly initialised llama-style LM in eval mode whose weights depend only on its arguments.

    The global torch RNG is seeded inside ``fork_rng``, so the caller's RNG state is left as it was.
    """
    from transformers import LlamaForCausalLM

    cfg = tiny_llama_config(hidden, layers, vocab, intermediate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model.eval()
