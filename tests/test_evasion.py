"""Function-preserving evasion (permuting or rotating the hidden basis, permuting the vocabulary) and the
basis check of the default test that defeats the basis changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seedprints import evasion as ev
from seedprints.audit import compare, fingerprint_model
from seedprints.basis import GATE, anchor_ids, anchor_similarity, classify, fit_rotation
from seedprints.stats import calibrated_test
from seedprints.fingerprint import load_fingerprint
from seedprints.probes import preset
from seedprints.verdict import scan

V = 256
_COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               max_position_embeddings=64)
FAMILIES = {
    "llama": ("LlamaConfig", dict(_COMMON, num_key_value_heads=2)),
    "mistral": ("MistralConfig", dict(_COMMON, num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", dict(_COMMON, num_key_value_heads=2)),
    "qwen3": ("Qwen3Config", dict(_COMMON, num_key_value_heads=2, head_dim=16)),
    "gpt_neox": ("GPTNeoXConfig", dict(_COMMON)),
}
IDS = np.random.default_rng(0).integers(0, V, (3, 12))


def family(arch: str, seed: int = 0, tie: bool = False) -> torch.nn.Module:
    """A tiny random model of one family whose norm weights are not 1 (so that folding matters)."""
    import transformers

    cls_name, kwargs = FAMILIES[arch]
    cfg = getattr(transformers, cls_name)(**kwargs, tie_word_embeddings=tie)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.ndim == 1:
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("arch", list(FAMILIES))
@pytest.mark.parametrize("tie", [False, True])
def test_each_change_keeps_the_logits(arch, tie, tmp_path):
    model = family(arch, tie=tie)
    kinds = ["permuted", "rotated", "partial-rotation"] if arch != "gpt_neox" else ["permuted"]
    for kind in kinds:
        changed = ev.ATTACKS[kind](model, 1)
        assert ev.max_relative_logit_difference(model, changed.model, IDS) < 1e-4, kind
        assert not np.allclose(changed.basis, np.eye(64))
    vocab = ev.permute_vocabulary(model, 1)
    assert ev.max_relative_logit_difference(model, vocab.model, IDS, vocab.vocab_permutation) < 1e-4
    # a rotated model saved and loaded back (untied LM head) still computes the same function
    if arch != "gpt_neox":
        import transformers

        ev.rotate_hidden(model, 2).model.save_pretrained(tmp_path / "rot")
        back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "rot").eval()
        assert ev.max_relative_logit_difference(model, back, IDS) < 1e-4


def test_layernorm_families_refuse_rotations_with_one_line():
    with pytest.raises(ev.UnsupportedReparameterisation, match="LayerNorm") as err:
        ev.rotate_hidden(family("gpt_neox"), 0)
    assert "\n" not in str(err.value)
    with pytest.raises(ev.UnsupportedReparameterisation, match="supported are"):
        ev.permute_hidden(_gpt2())


def _gpt2() -> torch.nn.Module:
    import transformers

    return transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=4))


def test_procrustes_recovers_a_known_rotation_and_classifies_it():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 40))
    q = ev.random_rotation(40, 3)
    np.testing.assert_allclose(fit_rotation(a @ q, a), q.T, atol=1e-10)  # suspect = ref @ q, so R = q^-1
    assert classify(np.eye(40)).kind == "unchanged"
    p = ev.random_signed_permutation(40, 1)
    c = classify(p)
    assert c.kind == "signed permutation" and c.mixed == 0 and c.moved + c.flipped + c.kept == 40
    assert classify(q).kind == "rotation"
    part = classify(ev.block_rotation(40, 1, 0.25))
    assert part.kind == "partial rotation" and part.mixed == 10 and part.kept == 30
    # the gate: no change of basis moves it; independent tables sit near 0
    assert anchor_similarity(a @ q, a) == pytest.approx(1.0, abs=1e-12)
    assert abs(anchor_similarity(rng.standard_normal((300, 40)), a)) < 0.05
    # by hand: the correlation of the upper-triangle cosine-Gram entries of the centred rows
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))

    def cos_gram(t):
        t = t - t.mean(axis=0)
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        return [float(t[i] @ t[j]) for i in range(5) for j in range(i + 1, 5)]

    assert anchor_similarity(x, y) == pytest.approx(np.corrcoef(cos_gram(x), cos_gram(y))[0, 1])


def test_anchor_tokens_are_never_fed_by_the_probe():
    spec = preset("fast", vocab_range=512)
    ids = anchor_ids(spec, 64)
    fed = np.concatenate([spec.sample(i) for i in range(spec.n_samples)])
    assert len(ids) == 128 and not np.intersect1d(ids, fed).size
    assert anchor_ids(spec, 512) is None  # too few free tokens for a 512-wide model: no basis check
    assert anchor_ids(preset("quick", vocab_range=512), 64) is None  # 600 x 32 tokens use all 512 ids


SPEC = preset("fast", vocab_range=512)


@pytest.fixture(scope="module")
def fps():
    from seedprints.tiny import tiny_llama

    base, other = tiny_llama(0, hidden=64, vocab=512), tiny_llama(1, hidden=64, vocab=512)
    models = {"base": base, "permuted": ev.permute_hidden(base, 1).model, "rotated": ev.rotate_hidden(base, 1).model,
              "partial": ev.rotate_hidden(base, 1, 0.25).model, "other": other,
              "other-rotated": ev.rotate_hidden(other, 2).model}
    return {n: fingerprint_model(m, SPEC, name=n) for n, m in models.items()}


def test_basis_check_restores_the_match_and_names_the_change(fps):
    for name, kind in [("permuted", "signed permutation"), ("rotated", "rotation"), ("partial", "partial rotation")]:
        res = compare(fps["base"], fps[name])
        basis = res.details["basis"]
        assert res.significant() and basis["checked"] and basis["change"] == kind, name
        assert basis["reading"] == "aligned" and basis["z_aligned"] > 10
        assert basis["z_as_is"] < basis["z_aligned"]
    same = compare(fps["base"], fps["base"]).details["basis"]
    assert same["change"] == "unchanged" and same["reading"] == "as is"
    for name in ("other", "other-rotated"):
        res = compare(fps["base"], fps[name])
        basis = res.details["basis"]
        assert not res.significant() and basis["anchor_similarity"] < GATE and not basis["aligned"], name
        # below the gate the default test is the plain calibrated test, p not doubled
        assert res.log10_pvalue == calibrated_test(fps["base"], fps[name]).log10_pvalue


def test_verdict_card_and_json_say_the_basis_was_changed(fps):
    report = scan(fps["rotated"], [fps["base"], fps["other"]])
    assert report.verdict.label == "MATCH" and report.verdict.reference == "base"
    assert "rotated relative to the reference" in report.verdict.reason
    row = report.to_dict()["rows"][0]
    assert row["basis"]["change"] == "rotation" and row["basis"]["reading"] == "aligned"


def test_fingerprint_file_keeps_anchors_and_older_files_scan_without_the_check(fps, tmp_path):
    path = fps["rotated"].save(tmp_path / "rot.safetensors")
    back = load_fingerprint(path)
    assert back.format_version == 3 and back.anchors.dtype == np.float16
    np.testing.assert_array_equal(back.anchors, fps["rotated"].anchors)
    assert compare(fps["base"], back).details["basis"]["change"] == "rotation"
    old = fps["base"].__class__(**{**{f: getattr(back, f) for f in ("spec", "features", "columns", "column_means",
                                                                   "model", "tool_version", "created_at")}})
    old.save(tmp_path / "old.safetensors")
    old = load_fingerprint(tmp_path / "old.safetensors")
    assert old.format_version == 2 and old.anchors is None
    res = compare(fps["base"], old)
    assert res.details["basis"]["checked"] is False and "re-fingerprint" in res.details["basis"]["reason"]
    report = scan(old, [fps["base"]])
    assert "basis check" in report.verdict.reason


def test_checkpoint_paths_read_the_same_anchors(tmp_path):
    from seedprints.tiny import tiny_llama

    tiny_llama(3, hidden=64, vocab=512).save_pretrained(tmp_path / "m")
    mem = fingerprint_model(str(tmp_path / "m"), SPEC, stream=False)
    streamed = fingerprint_model(str(tmp_path / "m"), SPEC, stream=True)
    assert mem.anchors is not None
    np.testing.assert_array_equal(mem.anchors, streamed.anchors)
