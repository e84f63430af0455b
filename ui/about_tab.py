"""The About tab: what a verdict means, how the test works and what it cannot tell."""

from __future__ import annotations

import gradio as gr

from seedprints.measured import false_positive_level
from seedprints.probes import DEFAULT_PRESET, PRESETS

ABOUT = """## What the verdict means
* **MATCH**: the suspect shares its random initialisation with the named reference: it was trained,
  fine-tuned, quantized, pruned or merged from a model of that seed. The p-value is the chance that an
  unrelated model would agree at least this strongly (after Holm correction over all references).
* **NO MATCH**: no reference shows more agreement than chance. The suspect may still come from a seed that
  is not in the library.
* **AMBIGUOUS**: references of several different seeds match; check whether those references are related.
* **INCONCLUSIVE**: nothing could be tested (empty library, different probe or hidden size).

## How it works
The body of each model reads the same random token sequences (the *probe*). For every hidden dimension
we record its activation {READ_OUT}. Dimensions with the lowest mean activation are a model's
*identity dimensions*; they are set by the initialisation and survive training. The **calibrated test**
correlates (Spearman) {COMPARED} with the same dimensions of the suspect and
compares the mean with re-pairings to random other dimensions: for models from different seeds the aligned
pairing is just one more random pairing, so the p-value holds its level. The **paper test** is the published
SeedPrints test (Kendall tau, analytical null); on models trained on the same data it can report evidence
where there is none, so it is offered for comparison only.

## What it cannot tell
* It links models through their **initialisation**; two models trained from different seeds on the same data
  are, correctly, not linked. A seed label is only as true as the library that records it.
* Models of different hidden size, or fingerprinted with different probes, cannot be compared.
* Evidence is statistical: at alpha = 0.01 about 1 unrelated reference in 100 may cross the threshold before
  correction; the Holm correction controls this over the whole library. Measured on many unrelated pairs (random
  inits and independently trained seeds) with the default probe, the calibrated test gives {LEVEL}.

The same engine runs from the command line (`seedprints scan MODEL --library DIR`) and from Python
(`seedprints.audit.audit_library`)."""


def about_markdown() -> str:
    """The About text with its figures read from the code (the default probe) and the shipped benchmark results."""
    default = PRESETS[DEFAULT_PRESET]
    if default.positions == "all":
        read_out = (f"at every position of each sequence (the default probe, {DEFAULT_PRESET}; presets that keep the "
                    "last position only read that one)")
        compared = ("every hidden dimension of the reference (with every-position probes; the reference's identity "
                    "dimensions with last-position probes)")
    else:
        read_out = f"at the last position of each sequence (the default probe, {DEFAULT_PRESET})"
        compared = "the reference's identity dimensions"
    return ABOUT.format(READ_OUT=read_out, COMPARED=compared, LEVEL=false_positive_level(DEFAULT_PRESET).text())


def build_about_tab() -> None:
    """Add the About tab; call inside an open ``gr.Tabs()``."""
    with gr.Tab("About", id="about", elem_id="tab-about"):
        gr.Markdown(about_markdown())
