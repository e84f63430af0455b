"""The robustness check's progress names the stage that runs: making a modified copy, then that copy's extraction."""

from __future__ import annotations

from seedprints.audit import fingerprint_model
from seedprints.library import Library
from seedprints.robustness import robustness_check

from conftest import tiny_llama, tiny_spec


def test_each_modification_is_a_stage_of_its_own(tmp_path):
    """The page said "extracting probe activations: 500 of 1000" for 18 s while the suspect was being fine-tuned."""
    spec = tiny_spec(n=100, seq_len=8)
    lib = Library(tmp_path / "lib")
    lib.add(fingerprint_model(tiny_llama(0), spec, name="s0"), name="s0", family="tiny", seed=0)
    stages: list[str] = []
    rows = robustness_check(tiny_llama(0), lib, probe=spec, modifications=("fine-tune",),
                            progress=lambda stage, done, total: stages.append(stage))
    assert [r.modification for r in rows] == ["none", "fine-tune"]
    making = next(i for i, s in enumerate(stages) if s.startswith("making the fine-tune copy: fine-tune"))
    # before it, only the unmodified suspect's extraction; after it, only the fine-tuned copy's
    assert all(not s.startswith("fine-tune copy") for s in stages[:making])
    after = stages[making + 1:]
    assert after and all(s.startswith("fine-tune copy: ") for s in after), after
