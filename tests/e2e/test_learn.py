"""The Learn tab of the real app in headless Chromium: click through the six live steps, and a bad setting."""

from __future__ import annotations

import time

from ui.learn_tab import STEP_HEADINGS

STEP_PLOTS = {1: ["1"], 2: ["2"], 3: ["3", "3b"], 4: ["4", "4b"], 5: ["5"], 6: ["6", "6b"]}

#: number of traces of a plot that carry data (x, y or z values); 0 while the plot is not drawn
TRACES_WITH_DATA = """(sel) => { const h = document.querySelector(sel + ' .js-plotly-plot');
  if (!h || !h._fullData) return 0;
  return h._fullData.filter(t => (t.x && t.x.length) || (t.y && t.y.length) || (t.z && t.z.length)).length }"""


#: (trace names, annotation texts other than subplot titles) of a plot
LEGEND_AND_NOTES = """(sel) => { const h = document.querySelector(sel + ' .js-plotly-plot');
  return [h._fullData.map(t => t.name || ''), (h.layout.annotations || []).map(a => a.text || '')] }"""


def open_learn(page) -> None:
    page.click("button[role=tab]:has-text('Learn')")
    page.wait_for_selector("#learn-run-1")


def run_step(page, n: int) -> float:
    """Press step n's button, wait for its done message and for every plot of the step to hold data."""
    t0 = time.monotonic()
    page.click(f"#learn-run-{n}")
    page.wait_for_selector(f"#learn-status-{n} .sp-msg-ok", timeout=120_000)
    for plot in STEP_PLOTS[n]:
        page.wait_for_function(f"({TRACES_WITH_DATA})('#learn-plot-{plot}') >= 1")
        assert page.evaluate(TRACES_WITH_DATA, f"#learn-plot-{plot}") >= 1
    return time.monotonic() - t0


def test_learn_tab_walkthrough_computes_every_step(page):
    open_learn(page)
    for n in range(1, 7):
        assert page.locator(f"#learn-step-{n}").count() == 1
    seconds = {n: run_step(page, n) for n in range(1, 7)}
    print("Learn steps, seconds from click to plots: " + ", ".join(f"{n}: {s:.1f}" for n, s in seconds.items()))

    config = page.inner_text("#learn-config-1")
    assert "init seed" in config and "hidden_size" in config
    assert "only" in page.inner_text("#learn-result-1")
    assert "identity dimensions" in page.inner_text("#learn-result-2")
    # the trained model matches its own init and not the other seed
    step3 = page.inner_text("#learn-result-3")
    own, other = step3.split("against the other seed")
    assert "match (p < 0.01)" in own and "no match" in other
    assert "re-pairings" in page.inner_text("#learn-result-4")
    table = page.inner_text("#learn-table-5")
    for name in ("int8", "4-bit", "fine-tune", "noise", "prune"):
        assert name in table
    assert "calibrated:" in page.inner_text("#learn-result-6")
    # each heading shows once (the accordion's label), not again as a heading in the text under it
    for n, heading in STEP_HEADINGS.items():
        assert page.inner_text(f"#learn-step-{n}").count(heading) == 1, n
    # the dashed lines of steps 5 and 6 are named in the legend, not written over the bars
    for plot, label in (("5", "z = 2.33"), ("6", "alpha = 0.01")):
        names, notes = page.evaluate(LEGEND_AND_NOTES, f"#learn-plot-{plot}")
        assert any(label in n for n in names) and not any(label in n for n in notes), (plot, names, notes)


def test_learn_step_reruns_with_new_settings_and_rejects_bad_ones(page):
    open_learn(page)
    page.fill("#learn-seed-b input", "-3")
    page.click("#learn-run-1")
    page.wait_for_selector("#learn-status-1 .sp-msg-error")
    assert "seed of model B" in page.inner_text("#learn-status-1")
    assert "Traceback" not in page.inner_text("#tab-learn")
    # step 4 needs a trained model: it trains one itself when step 3 never ran
    page.fill("#learn-seed-b input", "5")
    run_step(page, 4)
    assert "the other seed (5)" in page.inner_text("#learn-result-4")
