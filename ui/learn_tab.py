"""The Learn tab: a guided walkthrough of SeedPrints in six live steps on tiny models.

``build_learn_tab(queue)`` is called inside the app's open ``gr.Tabs()``.  Steps 1-5 build, train and
probe models, so they run on the app's worker queue as tasks (:mod:`ui.tasks`), as the Audit tab's
work does; step 6 only reads the benchmark record and runs in its handler.  Each browser
session keeps its models and fingerprints in a :class:`seedprints.teaching.Lesson` held in a
``gr.State``, so a step reuses what earlier steps made and computes whatever is missing itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from seedprints import plots as P
from seedprints import teaching as T
from seedprints.errors import SeedPrintsError
from seedprints.verdict import format_p

from . import views
from .jobs import Job, JobQueue
from .tasks import Submission, TaskView, wire

IDLE = "Press the button to compute this step."
LR_CHOICES = [("0.0001", 1e-4), ("0.0003", 3e-4), ("0.0005", 5e-4), ("0.001", 1e-3), ("0.003", 3e-3)]

INTRO = f"""## Learn how SeedPrints works, live, in six steps
Each step computes on tiny language models ({T.LAYERS} layers, hidden size {T.HIDDEN}, {T.VOCAB}-token
vocabulary) in a few seconds. Press the button of each step in turn; change the **try it** settings and
press it again. Later steps use the settings chosen in earlier ones and compute whatever is missing."""

STEP_TEXT = {
    1: """We build two llama-style language models from one recipe: the same architecture, sizes and initialisation
rule. The only difference is the random seed given to the initialiser, so their weights come from the same
distribution but are different numbers. As the next steps show, that seed leaves a trace.""",
    2: """Both models read the same probe: N sequences of L random token ids. For every hidden dimension we average
the last layer's output at the last position over the probe; the k dimensions with the lowest average are
the model's **identity dimensions**. Two seeds pick nearly unrelated sets: they share about as many as chance
(k²/D) predicts.""",
    3: """Now model A learns for a few steps (AdamW on a short built-in text, one byte per token); the loss is recorded
at every step. Training moves every weight and the mean profile drifts, so only part of the identity set
stays the lowest, yet each dimension keeps the sample-by-sample pattern its seed gave it. The calibrated
test, which reads that pattern, links the trained model to its own init and not to the other seed.""",
    4: """For each identity dimension of the reference (the init) we correlate (Spearman) its activations over the
probe with the **same** dimension of the suspect (the trained model); the statistic is the mean correlation.
The null re-pairs each identity dimension with a random **other** dimension of the suspect: for models of
different seeds dimension numbers mean nothing, so the aligned pairing is just one more random pairing.
Grey: the null; blue and the red line: what we observe.""",
    5: """Models are rarely published exactly as trained. We modify the trained model in five common ways and test
each copy against the init of its own seed and against the other seed. A copy matches when p < 0.01
(roughly, a bar above the dashed line).""",
    6: """A p-value is how often an **unrelated** model would agree with the reference at least this strongly. It is
not the chance that the models are unrelated, and it says nothing about how the suspect was made. A test is
**calibrated** when, over unrelated pairs, the share with p < alpha stays at or below alpha. The bars come
from this project's benchmark on a zoo of small models (`bench/results/accuracy.json`): the paper's
analytical null assumes independent dimensions and independent models, but trained models share features
driven by the input, so it flags unrelated pairs more often than alpha promises.""",
}

#: each step's heading is its accordion's label; the step's text does not repeat it (#24)
STEP_HEADINGS = {
    1: "Step 1 · Two models that differ only in their seed",
    2: "Step 2 · Mean activation profiles and identity dimensions",
    3: "Step 3 · Train one model and look again",
    4: "Step 4 · The statistic against its null",
    5: "Step 5 · Quantize, fine-tune, add noise, prune",
    6: "Step 6 · What a p-value says, and where the paper's null fails",
}

TITLES = {1: "build two models", 2: "probe both models", 3: "train model A", 4: "test against the null",
          5: "modify and test", 6: "false-positive rates"}


@dataclasses.dataclass(frozen=True)
class LearnParams:
    """The settings of all steps, checked; every step reads the ones it depends on."""

    seed_a: int = T.SEED_A
    seed_b: int = T.SEED_B
    n: int = T.PROBE_N
    seq_len: int = T.PROBE_L
    k: int = T.K
    steps: int = T.TRAIN_STEPS
    lr: float = T.TRAIN_LR
    data_seed: int = 0
    permutations: int = T.PERMUTATIONS
    ft_steps: int = 20
    noise: float = 0.05
    prune: float = 0.3

    @classmethod
    def parse(cls, *values: Any) -> LearnParams:
        """From the raw control values, in the order of :data:`CONTROL_ORDER`; one-line error if one is wrong."""
        raw = dict(zip(CONTROL_ORDER, values))
        seed_a = T.check_seed("seed of model A", raw["seed_a"])
        seed_b = T.check_seed("seed of model B", raw["seed_b"])
        # the ranges of the sliders: they bound the work one click can put on the shared worker
        n = T.int_setting("probe size N", raw["n"], 50, 1000)
        seq_len = T.int_setting("sequence length L", raw["seq_len"], 4, 64)
        k = T.int_setting("identity dimensions k", raw["k"], 2, T.HIDDEN - 1)
        steps = T.int_setting("training steps", raw["steps"], 5, 400)
        lr = T.float_setting("learning rate", raw["lr"], 1e-6, 0.01)
        data_seed = T.check_seed("data seed", raw["data_seed"])
        permutations = T.int_setting("re-pairings", raw["permutations"], 200, 5000)
        ft_steps = T.int_setting("fine-tune steps", raw["ft_steps"], 5, 200)
        noise = T.float_setting("noise level", raw["noise"], 0.0, 1.5)
        prune = T.float_setting("pruned fraction", raw["prune"], 0.0, 0.95)
        return cls(seed_a, seed_b, n, seq_len, k, steps, lr, data_seed, permutations, ft_steps, noise, prune)

    @property
    def spec(self) -> Any:
        return T.teaching_probe(self.n, self.seq_len)


CONTROL_ORDER = ("seed_a", "seed_b", "n", "seq_len", "k", "steps", "lr", "data_seed", "permutations", "ft_steps",
                 "noise", "prune")


# ---------------------------------------------------------------------------- work done on the worker thread
def _fmt_z(result: Any) -> str:
    return f"z = {result.z:.1f}, p = {format_p(result.log10_pvalue)}"


def _verdict(result: Any) -> str:
    return "**match** (p < 0.01)" if result.significant(T.ALPHA) else "no match"


def work_step1(lesson: T.Lesson, p: LearnParams, say: T.Progress) -> dict[str, Any]:
    say("building the two models", 0, 2)
    a, b = lesson.init_model(p.seed_a), lesson.init_model(p.seed_b)
    say("comparing them", 1, 2)
    rows = T.config_rows(a, b, p.seed_a, p.seed_b)
    fig = P.weights_figure(T.weight_matrix(a), T.weight_matrix(b), p.seed_a, p.seed_b)
    differ = [r["setting"] for r in rows if not r["same"]]
    table = pd.DataFrame([{**r, "same": "yes" if r["same"] else "NO"} for r in rows])
    note = (f"Everything in the recipe is identical; only **{', '.join(differ)}** differ"
            if differ else "These two models are identical: choose two different seeds")
    return {"outputs": [fig, table, note + "."]}


def work_step2(lesson: T.Lesson, p: LearnParams, say: T.Progress) -> dict[str, Any]:
    spec = p.spec
    fa = lesson.init_fingerprint(p.seed_a, spec, say)
    fb = lesson.init_fingerprint(p.seed_b, spec, say)
    ov = T.identity_overlap(fa, fb, p.k)
    res = T.calibrated_pair(fa, fb, p.k, p.permutations)
    fig = P.profile_figure(fa.column_means, fb.column_means, p.k, f"model A (seed {p.seed_a})",
                           f"model B (seed {p.seed_b})")
    md = (f"Probe: N = {spec.n_samples} sequences of L = {spec.seq_len} random tokens. Models A and B share "
          f"**{ov.count} of their k = {ov.k}** identity dimensions; two unrelated sets of {ov.k} out of {ov.d} "
          f"share {ov.expected:.1f} on average (chance of {ov.count} or more: {ov.chance_p:.0%}). "
          f"Calibrated test of B against A: {_fmt_z(res)}, {_verdict(res)}.")
    return {"outputs": [fig, md]}


def work_step3(lesson: T.Lesson, p: LearnParams, say: T.Progress) -> dict[str, Any]:
    spec = p.spec
    fa = lesson.init_fingerprint(p.seed_a, spec, say)
    fb = lesson.init_fingerprint(p.seed_b, spec, say)
    trained = lesson.trained(p.seed_a, p.steps, p.lr, p.data_seed, say)
    ft = lesson.trained_fingerprint(p.seed_a, p.steps, p.lr, p.data_seed, spec, say)
    own = T.calibrated_pair(fa, ft, p.k, p.permutations)
    other = T.calibrated_pair(fb, ft, p.k, p.permutations)
    ov = T.identity_overlap(fa, ft, p.k)
    losses = trained.losses
    md = (f"Loss: {losses[0]:.2f} at step 1, {losses[-1]:.2f} at step {len(losses)} (learning rate {p.lr:g}). "
          f"Still among the {ov.k} lowest after training: **{ov.count} of the init's {ov.k} identity dimensions** "
          f"(chance: {ov.expected:.1f}). Calibrated test of the trained model against its own init "
          f"(seed {p.seed_a}): {_fmt_z(own)}, {_verdict(own)}; against the other seed ({p.seed_b}): "
          f"{_fmt_z(other)}, {_verdict(other)}.")
    return {"outputs": [P.loss_figure(losses), P.before_after_figure(fa, ft, p.k, f"init (seed {p.seed_a})",
                                                                      f"after {p.steps} steps"), md]}


def work_step4(lesson: T.Lesson, p: LearnParams, say: T.Progress) -> dict[str, Any]:
    spec = p.spec
    fa = lesson.init_fingerprint(p.seed_a, spec, say)
    fb = lesson.init_fingerprint(p.seed_b, spec, say)
    ft = lesson.trained_fingerprint(p.seed_a, p.steps, p.lr, p.data_seed, spec, say)
    say("testing against the re-pairing null", 0, 1)
    own = T.calibrated_pair(fa, ft, p.k, p.permutations)
    other = T.calibrated_pair(fb, ft, p.k, p.permutations)
    name = f"trained A ({p.steps} steps)"

    def line(ref: str, r: Any) -> str:
        return (f"* **vs {ref}**: mean rho over the k = {r.k} identity dimensions {r.statistic:.3f}; the null's mean "
                f"{r.details['null_mean']:.3f} and spread {r.details['null_sd']:.3f} over {p.permutations} "
                f"re-pairings: {_fmt_z(r)}, {_verdict(r)}.")

    md = "\n".join([line(f"its own init (seed {p.seed_a})", own), line(f"the other seed ({p.seed_b})", other)])
    return {"outputs": [P.evidence_plot(own, f"init seed {p.seed_a}", name),
                        P.evidence_plot(other, f"init seed {p.seed_b}", name), md]}


def work_step5(lesson: T.Lesson, p: LearnParams, say: T.Progress, cancel: Any = None) -> dict[str, Any]:
    spec = p.spec
    fa = lesson.init_fingerprint(p.seed_a, spec, say)
    fb = lesson.init_fingerprint(p.seed_b, spec, say)
    trained = lesson.trained(p.seed_a, p.steps, p.lr, p.data_seed, say)
    rows = T.derivative_tests(trained.model, fa, fb, spec, k=p.k, n_permutations=p.permutations,
                              variants=T.derivatives(p.ft_steps, p.noise, p.prune), progress=say, cancel=cancel)
    table = pd.DataFrame([{**r, "match own": "yes" if r["match own"] else "no",
                           "match other": "yes" if r["match other"] else "no"} for r in rows])
    mods = [r for r in rows if r["derivative"] != "as trained"]
    own_hits = sum(r["match own"] for r in mods)
    other_hits = sum(r["match other"] for r in mods)
    md = (f"**{own_hits} of {len(mods)}** modified copies still match the init of their own seed ({p.seed_a}); "
          f"**{other_hits} of {len(mods)}** match the other seed ({p.seed_b}). Push the noise level towards 1 or "
          "prune most of the weights to see where the trace is finally erased.")
    return {"outputs": [P.derivative_figure(rows), table, md]}


def render_step6(alpha: Any, probe: str, budget: str) -> tuple[Any, Any, str]:
    """Figures and numbers of step 6 for one alpha, probe kind and budget (raises SeedPrintsError)."""
    a = T.float_setting("alpha", alpha, 0.0005, 0.5)
    rows = T.fpr_table_from_accuracy(alpha=a)
    sel = [r for r in rows if r["probe"] == probe]
    if not sel:
        raise SeedPrintsError(f"the benchmark record has no results for the {probe} probe")
    bars = P.fpr_figure(sel, a)
    curves = T.fpr_curves_from_accuracy(probe=probe, budget=budget)
    if not curves:
        raise SeedPrintsError(f"the benchmark record has no {probe} / {budget} results")
    curve = P.fpr_curve_figure(curves, a, f"False-positive rate against alpha ({probe} probe, {budget} budget)")
    here = [r for r in sel if r["budget"] == budget]
    parts = [f"{r['test']}: {r['false_positives']} of {r['negatives']} unrelated pairs, "
             f"{r['fpr']:.1%} [95% interval {r['ci_low']:.1%} to {r['ci_high']:.1%}]" for r in here]
    src = "as stored by the benchmark" if here and here[0]["source"] == "stored" else "recomputed from its pairs"
    md = (f"At alpha = {a:g}, {probe} probe, {budget} budget ({src}):\n\n" + "\n".join(f"* {x}" for x in parts)
          + f"\n\nA calibrated test would flag about {a:.1%} or fewer. A tiny p-value is strong evidence of a shared "
          "seed only if the null behind it holds; the re-pairing null of the calibrated test is built from the "
          "suspect's own dimensions, so it keeps its promise where the analytical null does not.")
    return bars, curve, md


# ---------------------------------------------------------------------------- layout and wiring
def build_learn_tab(queue: JobQueue) -> None:
    """Add the Learn tab; call inside an open ``gr.Tabs()``.  ``queue`` runs the heavy steps."""
    with gr.Tab("Learn", id="learn", elem_id="tab-learn"):
        gr.Markdown(INTRO, elem_id="learn-intro")
        lesson = gr.State(T.Lesson)  # one memo per browser session (a callable value is called per session)
        c: dict[str, Any] = {}
        plots: dict[str, Any] = {}
        extra: dict[int, list[Any]] = {}
        buttons: dict[int, Any] = {}
        statuses: dict[int, Any] = {}
        results: dict[int, Any] = {}

        def step_box(n: int):
            return gr.Accordion(STEP_HEADINGS[n], open=True, elem_id=f"learn-step-{n}")

        def footer(n: int, label: str) -> None:
            buttons[n] = gr.Button(label, variant="primary", elem_id=f"learn-run-{n}")
            statuses[n] = gr.HTML(views.message(IDLE), elem_id=f"learn-status-{n}")

        with step_box(1):
            gr.Markdown(STEP_TEXT[1])
            with gr.Row():
                c["seed_a"] = gr.Number(T.SEED_A, label="Try it: seed of model A", precision=0,
                                        elem_id="learn-seed-a")
                c["seed_b"] = gr.Number(T.SEED_B, label="Try it: seed of model B", precision=0,
                                        elem_id="learn-seed-b")
            footer(1, "Build the two models")
            plots["1"] = gr.Plot(label="One weight matrix of each model", elem_id="learn-plot-1")
            extra[1] = [gr.Dataframe(label="The two recipes", interactive=False, wrap=True, elem_id="learn-config-1")]
            results[1] = gr.Markdown(elem_id="learn-result-1")

        with step_box(2):
            gr.Markdown(STEP_TEXT[2])
            with gr.Row():
                c["n"] = gr.Slider(50, 1000, T.PROBE_N, step=50, label="Try it: probe size N (sequences)",
                                   elem_id="learn-n")
                c["seq_len"] = gr.Slider(4, 64, T.PROBE_L, step=4, label="Try it: sequence length L", elem_id="learn-l")
                c["k"] = gr.Slider(2, 64, T.K, step=1, label="Try it: identity dimensions k", elem_id="learn-k")
            footer(2, "Run the probe through both models")
            plots["2"] = gr.Plot(label="Mean activation profiles", elem_id="learn-plot-2")
            results[2] = gr.Markdown(elem_id="learn-result-2")

        with step_box(3):
            gr.Markdown(STEP_TEXT[3])
            with gr.Row():
                c["steps"] = gr.Slider(5, 400, T.TRAIN_STEPS, step=5, label="Try it: training steps",
                                       elem_id="learn-steps")
                c["lr"] = gr.Dropdown(LR_CHOICES, value=T.TRAIN_LR, label="Try it: learning rate", elem_id="learn-lr")
                c["data_seed"] = gr.Number(0, label="Try it: data order seed", precision=0,
                                           elem_id="learn-data-seed")
            footer(3, "Train model A")
            # one plot per line: side by side, plotly draws them half-width and a phone's single column keeps that
            plots["3"] = gr.Plot(label="Training loss", elem_id="learn-plot-3")
            plots["3b"] = gr.Plot(label="Mean per dimension before and after", elem_id="learn-plot-3b")
            results[3] = gr.Markdown(elem_id="learn-result-3")

        with step_box(4):
            gr.Markdown(STEP_TEXT[4])
            with gr.Row():
                c["permutations"] = gr.Slider(200, 5000, T.PERMUTATIONS, step=100,
                                              label="Try it: re-pairings in the null (R)", elem_id="learn-permutations")
            footer(4, "Test the trained model")
            plots["4"] = gr.Plot(label="Trained model vs its own init", elem_id="learn-plot-4")
            plots["4b"] = gr.Plot(label="Trained model vs the other seed", elem_id="learn-plot-4b")
            results[4] = gr.Markdown(elem_id="learn-result-4")

        with step_box(5):
            gr.Markdown(STEP_TEXT[5])
            with gr.Row():
                c["ft_steps"] = gr.Slider(5, 200, 20, step=5, label="Try it: fine-tune steps", elem_id="learn-ft-steps")
                c["noise"] = gr.Slider(0.0, 1.5, 0.05, step=0.05, label="Try it: noise (x each tensor's std)",
                                       elem_id="learn-noise")
                c["prune"] = gr.Slider(0.0, 0.95, 0.3, step=0.05, label="Try it: fraction of weights pruned",
                                       elem_id="learn-prune")
            footer(5, "Modify the trained model and test again")
            plots["5"] = gr.Plot(label="z of each modified copy", elem_id="learn-plot-5")
            extra[5] = [gr.Dataframe(label="Tests of the modified copies", interactive=False, wrap=True,
                                     elem_id="learn-table-5")]
            results[5] = gr.Markdown(elem_id="learn-result-5")

        with step_box(6):
            gr.Markdown(STEP_TEXT[6])
            with gr.Row():
                alpha = gr.Slider(0.001, 0.1, T.ALPHA, step=0.001, label="Try it: alpha", elem_id="learn-alpha")
                probe_kind = gr.Radio([("token", "token"), ("embedding (experimental: above its level at quick)", "embedding")],
                                      value="token", label="Try it: probe",
                                      elem_id="learn-probe-kind")
                budget = gr.Radio(["quick", "standard"], value="quick", label="Try it: probe budget",
                                  elem_id="learn-budget")
            footer(6, "Show false-positive rates")
            plots["6"] = gr.Plot(label="False-positive rate at alpha", elem_id="learn-plot-6")
            plots["6b"] = gr.Plot(label="False-positive rate against alpha", elem_id="learn-plot-6b")
            results[6] = gr.Markdown(elem_id="learn-result-6")

        # wired inside the tab: the hidden parts of a task (State, Timer) must not sit between tabs (ui.tasks)
        controls = [c[name] for name in CONTROL_ORDER]
        step_outputs = {
            1: [plots["1"], *extra[1], results[1]],
            2: [plots["2"], results[2]],
            3: [plots["3"], plots["3b"], results[3]],
            4: [plots["4"], plots["4b"], results[4]],
            5: [plots["5"], *extra[5], results[5]],
        }
        work: dict[int, Callable[..., dict[str, Any]]] = {1: work_step1, 2: work_step2, 3: work_step3, 4: work_step4,
                                                          5: work_step5}

        for n in range(1, 6):
            view = TaskView(statuses[n], step_outputs[n], lambda result: result["outputs"], unit=None, idle=IDLE,
                            cancellable=False)
            wire(queue, view, buttons[n], [lesson, *controls], _step_start(n, work[n]))

        def show6(a, p, b):
            try:
                bars, curve, md = render_step6(a, p, b)
            except SeedPrintsError as exc:
                return views.message(str(exc), "error"), P.empty_figure(str(exc)), P.empty_figure(""), ""
            return views.message("Done: false-positive rates from the benchmark record.", "ok"), bars, curve, md

        buttons[6].click(show6, [alpha, probe_kind, budget], [statuses[6], plots["6"], plots["6b"], results[6]],
                         concurrency_limit=1)


def _step_start(n: int, work: Callable[..., dict[str, Any]]) -> Callable[..., Submission]:
    """The start handler of step ``n``: check the settings; the submission runs the step in the session's lesson."""

    def start(lesson_value: Any, *values: Any) -> Submission:
        params = LearnParams.parse(*values)
        memo = lesson_value if isinstance(lesson_value, T.Lesson) else T.Lesson()

        def run(job: Job) -> dict[str, Any]:
            with T.torch_threads(1):
                if n == 5:
                    return work(memo, params, job.progress, cancel=job.cancel_event)
                return work(memo, params, job.progress)

        return Submission(f"Learn step {n} ({TITLES[n]})", run)

    return start
