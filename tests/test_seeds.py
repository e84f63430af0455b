"""Which seed, without a library (#26): init recipes, verify-seed and seed-search on real tiny models.

The suspect is a tiny llama initialised the transformers way (``torch.manual_seed(11)`` then
``AutoModelForCausalLM.from_config``) and fine-tuned briefly; every init it is tested against is rebuilt
from its own config.json.  Torch runs single-threaded here, as in test_zoo.py.
"""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
from safetensors.torch import load_file

from seedprints import evasion
from seedprints.cli import main
from seedprints.derive import fine_tune
from seedprints.errors import Cancelled
from seedprints.loading import read_config, resolve_source
from seedprints.memory import MemoryBudgetError
from seedprints.seeds import (RECIPES, SeedSearchError, WELL_KNOWN_SEEDS, check_fits, get_recipe, parse_seeds,
                              search_seeds, seed_probe, verify_seed)
from seedprints.stats import holm_log10
from seedprints.tiny import tiny_llama, tiny_llama_config
from seedprints.zoo import MINI, _save, new_model

SEED = 11


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def suspect_model():
    from transformers import AutoModelForCausalLM

    torch.manual_seed(SEED)
    init = AutoModelForCausalLM.from_config(tiny_llama_config(hidden=64))
    return fine_tune(init, steps=15, lr=1e-3, seed=5)


@pytest.fixture(scope="module")
def suspect(suspect_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("seeds") / "suspect"
    suspect_model.save_pretrained(path)
    return str(path)


def _same_tensors(model: torch.nn.Module, stored: dict[str, torch.Tensor]) -> bool:
    state = model.state_dict()
    return all(name in state and state[name].dtype == t.dtype and torch.equal(state[name], t)
               for name, t in stored.items())


# ---------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_cpu_recipes_rebuild_the_zoos_stored_inits_bit_for_bit(arch, tmp_path):
    folder = tmp_path / "init"
    _save(new_model(arch, MINI, 2), folder)  # what build_zoo stores as <arch>/seed2/init
    stored = load_file(str(folder / "model.safetensors"))
    config = read_config(resolve_source(folder), False)
    for name in ("transformers-cpu", "zoo"):
        assert _same_tensors(RECIPES[name].build(config, 2), stored), name
        assert not _same_tensors(RECIPES[name].build(config, 3), stored), name


def test_zoo_recipe_is_the_tiny_models_recipe():
    assert _same_tensors(RECIPES["zoo"].build(tiny_llama_config(hidden=64), 5),
                         tiny_llama(5, hidden=64).state_dict())


def test_rebuild_leaves_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RECIPES["transformers-cpu"].build(tiny_llama_config(hidden=32, layers=1, vocab=64), 9)
    assert torch.equal(torch.rand(3), expected)


def test_recipe_records_what_it_is():
    info = RECIPES["transformers-cpu"].info()
    assert info["torch"] == torch.__version__ and info["transformers"] and info["generator"] == "torch CPU generator"
    assert "from_config" in info["code"]


def test_recipe_that_cannot_rebuild_an_architecture_says_so_in_one_line():
    from transformers import GPT2Config

    with pytest.raises(SeedSearchError, match="zoo builds llama and qwen2 models only, not 'gpt2'") as err:
        RECIPES["zoo"].check(GPT2Config(n_layer=1))
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_recipe_without_gpu_is_a_one_line_error(suspect, capsys):
    with pytest.raises(SeedSearchError, match="needs a CUDA GPU"):
        RECIPES["transformers-cuda"].build(tiny_llama_config(), 0)
    assert main(["verify-seed", suspect, "--seed", "1", "--recipe", "transformers-cuda", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs a CUDA GPU" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_recipe_is_deterministic_and_draws_other_numbers_than_the_cpu():
    cfg = tiny_llama_config(hidden=64)
    a, b = (RECIPES["transformers-cuda"].build(cfg, 4) for _ in range(2))
    assert _same_tensors(a, b.state_dict())
    cpu = RECIPES["transformers-cpu"].build(cfg, 4)
    assert not _same_tensors(a.cpu(), cpu.state_dict())


def test_unknown_recipe_is_a_one_line_error(suspect, capsys):
    with pytest.raises(SeedSearchError, match="unknown recipe 'nope': choose one of transformers-cpu"):
        get_recipe("nope")
    assert main(["seed-search", suspect, "--seeds", "0-3", "--recipe", "nope", "-q"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_memory_budget_refuses_with_the_needed_size(suspect, capsys):
    cfg = tiny_llama_config(hidden=64)
    with pytest.raises(MemoryBudgetError, match=r"needs about .* parameters in float32\), more than the memory budget"):
        check_fits(RECIPES["transformers-cpu"], cfg, seed_probe(cfg), "tiny", max_memory="100kB")
    assert main(["verify-seed", suspect, "--seed", "1", "--max-memory", "100kB", "-q"]) == 2
    assert "cannot be rebuilt layer by layer" in capsys.readouterr().err


# ---------------------------------------------------------------------------- seeds
def test_well_known_seeds_go_first_and_only_those_inside_the_range():
    order = parse_seeds("0-5000")
    assert order[:9] == (0, 1, 42, 1234, 3407, 123, 2024, 7, 1337)
    assert sorted(order) == list(range(5001))
    assert parse_seeds("40-45") == (42, 40, 41, 43, 44, 45)
    assert parse_seeds("3,1,5-6") == (1, 3, 5, 6)
    assert all(s in WELL_KNOWN_SEEDS for s in parse_seeds("0-99")[:8])


@pytest.mark.parametrize("text, message", [("5-3", "ends before it starts"), ("a-9", "cannot read seed range"),
                                           ("", "cannot read seed range"), ("-4", "cannot read seed range"),
                                           ("0-2000000", "more than 1,000,000 seeds")])
def test_bad_range_is_a_one_line_error(text, message, suspect, capsys):
    with pytest.raises(SeedSearchError, match=message):
        parse_seeds(text)
    assert main(["seed-search", suspect, "--seeds", text, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------- verify
def test_verify_seed_matches_the_right_seed_and_not_a_wrong_one(suspect, capsys):
    assert main(["verify-seed", suspect, "--seed", str(SEED), "--json", "--exit-code"]) == 0
    right = json.loads(capsys.readouterr().out)
    assert right["label"] == "MATCH" and right["seed"] == SEED and right["result"]["z"] > 10
    assert right["recipe"]["name"] == "transformers-cpu" and right["recipe"]["torch"] == torch.__version__
    assert right["init_sha256"].startswith("tensors-sha256:") and right["probe"]["vocab_range"] == 512
    assert right["command"].startswith(f"seedprints verify-seed {suspect} --seed {SEED} --recipe transformers-cpu")
    assert main(["verify-seed", suspect, "--seed", str(SEED + 1), "--exit-code", "-q"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "VERDICT: NO MATCH" and any("z = " in line for line in out)


def test_text_output_ends_with_the_verdict(suspect, capsys):
    assert main(["verify-seed", suspect, "--seed", str(SEED), "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"VERDICT: MATCH seed {SEED}" and out[1].startswith("recipe: transformers-cpu")


@pytest.mark.parametrize("attack", ["permuted", "rotated"])
def test_permuted_or_rotated_copy_still_verifies(attack, suspect_model):
    copy = evasion.ATTACKS[attack](suspect_model, 3).model
    check = verify_seed(copy, SEED, name=attack)
    assert check.label == "MATCH" and check.result.details["basis"]["reading"] == "aligned"


# ---------------------------------------------------------------------------- search
def test_search_finds_the_seed_and_applies_holm(suspect):
    res = search_seeds(suspect, "8-13")
    assert res.label == "MATCH" and res.seed == SEED and not res.stopped_early
    assert [t.seed for t in res.trials] == [10, 8, 9, 11, 12, 13]  # the well-known 10 first
    expected = holm_log10([t.log10_p for t in res.trials])
    assert list(res.log10_p_holm) == pytest.approx(list(expected))
    hits = [t.seed for t, h in zip(res.trials, res.log10_p_holm) if h < -2]
    assert hits == [SEED] and res.best.seed == SEED and res.best.init_sha256


def test_search_stops_at_a_decisive_match_valid_for_the_whole_range(suspect, capsys):
    assert main(["seed-search", suspect, "--seeds", "0-40", "--stop-at-match", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["label"] == "MATCH" and res["seed"] == SEED and res["stopped_early"]
    assert res["trials"][-1]["seed"] == SEED and res["tried"] < res["n_range"] == 41
    last = res["trials"][-1]
    assert last["log10_p_holm"] == pytest.approx(last["log10_p"] + math.log10(41))  # Bonferroni over all 41


def test_open_set_no_seed_recovered_outside_the_range(suspect, capsys):
    assert main(["seed-search", suspect, "--seeds", "100-103", "-q", "--exit-code"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "VERDICT: NO MATCH (no seed recovered in 100-103)"
    assert any(line.startswith("No seed recovered") for line in out)


def test_cancel_then_resume_from_the_state_file(suspect, tmp_path):
    state = tmp_path / "state.json"
    cancel = threading.Event()
    stages = []

    def progress(stage, done, total):
        stages.append((stage, done, total))
        if stage.startswith("seed ") and done == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="cancelled after 3 of 6 seeds.*rerun to continue"):
        search_seeds(suspect, "8-13", state=state, progress=progress, cancel=cancel)
    assert sorted(json.loads(state.read_text())["trials"]) == ["10", "8", "9"]
    assert ("seed 10 (1/6)", 0, 6) in stages
    res = search_seeds(suspect, "8-13", state=state)
    assert res.from_state == 3 and res.label == "MATCH" and res.seed == SEED
    assert sorted(json.loads(state.read_text())["trials"], key=int) == [str(s) for s in range(8, 14)]
    again = search_seeds(suspect, "8-13", state=state)
    assert again.from_state == 6 and again.log10_p_holm == res.log10_p_holm


def test_state_file_of_another_search_is_refused(suspect, tmp_path):
    state = tmp_path / "state.json"
    search_seeds(suspect, "100", state=state)
    with pytest.raises(SeedSearchError, match=r"written for another search \(different recipe\)"):
        search_seeds(suspect, "100", state=state, recipe="zoo")
    state.write_text("{not json")
    with pytest.raises(SeedSearchError, match="is not a seed-search state"):
        search_seeds(suspect, "100", state=state)
