"""The Audit tab's "which seed" section: check a claimed seed, or search a range of seeds, with no library (#26).

Both run on the worker queue through :func:`ui.tasks.wire` (progress, cancel, status), on the suspect of the
audit form; the engine is :mod:`seedprints.seeds`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from seedprints.cache import FingerprintCache
from seedprints.paths import default_cache
from seedprints.plots import evidence_plot
from seedprints.seeds import (DEFAULT_RECIPE, RECIPES, SeedAnswer, SeedCheck, SeedSearch, check_seed, get_recipe,
                              parse_seeds, search_seeds, verify_seed)

from . import views
from .context import Server
from .sources import prepared_model, resolve_model
from .tasks import Submission, TaskView, wire


def _claimed(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return check_seed(value)


def _run(server: Server, values: tuple[Any, ...], job: Any, seed: int | None, seeds: str, recipe: str,
         stop: bool) -> SeedAnswer:
    from .audit_tab import parse_form

    form = parse_form(*values)
    job.stage = "preparing the suspect"
    with prepared_model(server, form.model) as (model, name):
        options = {"recipe": recipe, "name": name, "test": form.test, "alpha": form.alpha,
                   "max_memory": server.cfg.max_memory, "progress": job.progress, "cancel": job.cancel_event,
                   "load": {"device": server.cfg.device, "cache": FingerprintCache(default_cache()),
                            "trust_remote_code": form.trust and server.cfg.local_paths}}
        if seed is not None:
            return verify_seed(model, seed, **options)
        return search_seeds(model, seeds, stop_at_match=stop, **options)


CHECK, SEARCH = "check the claimed seed", "search the range"


def start(server: Server, mode: str, seed_value: Any, seeds: str, recipe: str, stop: bool, *values: Any) -> Submission:
    """Check the form (suspect, seed or range, recipe); the submission checks or searches on the worker."""
    from .audit_tab import parse_form

    form = parse_form(*values)
    resolve_model(server, form.model, None)
    get_recipe(recipe)
    if mode == SEARCH:
        parse_seeds(seeds)
        return Submission(f"search of seeds {seeds} for {form.model.shown}",
                          lambda job: _run(server, values, job, None, seeds, recipe, stop))
    seed = _claimed(seed_value)
    return Submission(f"check of seed {seed} for {form.model.shown}", lambda job: _run(server, values, job, seed, "", recipe, stop))


def render(answer: SeedAnswer) -> list[Any]:
    """Verdict text, the seeds table and the evidence plot (a seed check's) of a finished answer."""
    r = answer.recipe
    head = (f"### {answer.label}" + (f" seed {answer.seed}" if answer.label == "MATCH" else "") + "\n\n"
            f"{answer.reason}\n\nRecipe **{r['name']}** ({r['generator']}, torch {r['torch']}, transformers "
            f"{r['transformers']}); probe `{answer.probe_id}`.\n\nReproduce:\n\n```\n{answer.command}\n```")
    if isinstance(answer, SeedCheck):
        res = answer.result
        rows = [[answer.seed, round(res.z, 2), round(res.log10_pvalue, 2), round(res.log10_pvalue, 2)]]
        plot = None if res.inconclusive else evidence_plot(res, f"seed {answer.seed} init", answer.suspect)
    else:
        assert isinstance(answer, SeedSearch)
        rows = [[t.seed, round(t.z, 2), round(t.log10_p, 2), round(h, 2)] for t, h in answer.ranked()[:20]]
        head += f"\n\nTried {len(answer.trials)} of {answer.n_range} seeds" + (
            ", stopped at the first decisive match." if answer.stopped_early else ".")
        plot = None
    return [head, gr.Dataframe(value=rows, headers=["seed", "z", "log10 p", "log10 p (Holm)"], visible=True),
            gr.Plot(plot, visible=plot is not None)]


def build_seed_section(server: Server) -> Callable[[list[Any]], None]:
    """Lay out the section (inside the Audit tab); returns the function that wires it to the audit form's inputs
    (suspect, test, alpha), called once they exist."""
    with gr.Accordion("Which seed? Check a claimed seed or search a range, with no library", open=False,
                      elem_id="seed-check"):
        gr.Markdown("Rebuilds the init of the suspect's own configuration for a seed with a known recipe, and tests "
                    "the suspect against it. No reference library is needed.")
        recipe = gr.Dropdown(list(RECIPES), value=DEFAULT_RECIPE, label="Init recipe", elem_id="seed-recipe",
                             info="; ".join(f"{k}: {v.description}" for k, v in RECIPES.items()))
        with gr.Row():
            seed = gr.Number(42, precision=0, label="Claimed seed", minimum=0, elem_id="seed-claimed")
            seeds = gr.Textbox("0-99", label="Range of seeds", elem_id="seed-range",
                               info="well-known seeds inside it go first; Holm over the whole range")
            stop = gr.Checkbox(True, label="Stop at the first decisive match", elem_id="seed-stop")
        with gr.Row():
            mode = gr.Radio([CHECK, SEARCH], value=CHECK, show_label=False, elem_id="seed-mode")
            run_btn = gr.Button("Run", elem_id="seed-run")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="seed-cancel")
        status = gr.HTML(elem_id="seed-status")
        verdict = gr.Markdown(elem_id="seed-verdict")
        # hidden until an answer: no empty table or figure frame before
        table = gr.Dataframe(interactive=False, elem_id="seed-table", visible=False)
        plot = gr.Plot(show_label=False, elem_id="seed-plot", visible=False)
    view = TaskView(status, [verdict, table, plot], render, unit=None,
                    idle="Choose the suspect above, then check a seed or search a range.",
                    done=lambda a: f"Done: {a.label}" + (f" seed {a.seed}" if a.label == "MATCH" else "")
                    + (f" ({len(a.trials)} seeds tried)" if isinstance(a, SeedSearch) else ""))
    return lambda form: wire(server.queue, view, run_btn, [mode, seed, seeds, recipe, stop, *form],
                             lambda *v: start(server, *v), cancel_btn)
