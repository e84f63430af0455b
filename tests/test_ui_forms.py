"""The app's page and forms without a browser: the tab layout, choices keyed by id, widths refused at once."""

from __future__ import annotations

import gradio as gr
import pytest

from seedprints.audit import fingerprint_model
from seedprints.errors import IncompatibleFingerprintsError
from seedprints.library import Library
from seedprints.methods import DEFAULT_ALPHA, DEFAULT_TEST, TESTS
from seedprints.paths import home
from seedprints.probes import DEFAULT_PRESET, preset
from ui.app import build_blocks
from ui.audit_tab import audit_probe_choices, check_form, parse_form, run_audit
from ui.context import MY_LIBRARY, AppConfig, Server, Throughput
from ui.jobs import Job, JobQueue
from ui.library_tab import add_probe_choices, check_add
from ui.sources import DEMO_CHOICES, SOURCE_DEMO, SOURCE_PATH, ModelChoice, resolve_model

from helpers import tiny_llama, tiny_spec

#: two probes in one library: the one most references use (the library's default) and another
MAIN, OTHER = tiny_spec(n=200, seq_len=8), tiny_spec(n=120, seq_len=8, seed=1)


def server() -> Server:
    return Server(AppConfig(), JobQueue(), Throughput())


@pytest.fixture
def my_library(saved_model) -> tuple[Library, str]:
    """'my library' (this test's SEEDPRINTS_HOME) with seed 0 under two probes and seed 1 under the main one,
    and seed 0 saved as a folder to audit."""
    lib = Library(home() / "library")
    model = tiny_llama(0)
    lib.add(fingerprint_model(model, MAIN, name="s0"), name="s0", family="tiny", seed=0)
    lib.add(fingerprint_model(tiny_llama(1), MAIN, name="s1"), name="s1", family="tiny", seed=1)
    lib.add(fingerprint_model(model, OTHER, name="s0-other"), name="s0-other", family="tiny", seed=0)
    return lib, saved_model(0)


def test_every_child_of_the_tabs_is_a_tab(tmp_path):
    """A task's hidden State and Timer between two tabs made the browser's tab bar grow a copy of each tab
    opened (#24); the browser test in tests/e2e/test_app.py watches the bar itself."""
    blocks = build_blocks(Server(AppConfig(), JobQueue(), Throughput()))
    tabs = [b for b in blocks.blocks.values() if isinstance(b, gr.Tabs)]
    assert tabs
    for t in tabs:
        assert [type(c).__name__ for c in t.children] == ["Tab"] * len(t.children)


def test_a_probe_choice_still_resolves_after_its_run_time_estimate_changes(my_library):
    """The dropdown's value is the probe id: the label, with its run-time estimate, may change while the page
    keeps the one it got, and the audit still uses the chosen probe (not the library's default)."""
    lib, model = my_library
    srv = server()
    assert lib.default_probe().id == MAIN.id
    shown = audit_probe_choices(srv, MY_LIBRARY)
    label, value = next((label, value) for label, value in shown.choices if value == OTHER.id)
    srv.throughput.record(10_000_000, 1000, 1.0)  # the first measured extraction: every estimate changes
    # the page still holds the old label, which the server no longer offers
    assert label not in [lbl for lbl, _ in audit_probe_choices(srv, MY_LIBRARY).choices]
    form = parse_form(SOURCE_PATH, None, None, "", model, MY_LIBRARY, value, TESTS[DEFAULT_TEST].label,
                      DEFAULT_ALPHA, False)
    check_form(srv, form)
    result = run_audit(srv, form, Job("audit", lambda job: None))
    assert result.audit.suspect.spec.id == OTHER.id
    assert result.audit.report.rows[0].reference.name == "s0-other"

    # Library add: a preset chosen before the estimate changed is still that preset
    fast = preset(DEFAULT_PRESET)
    add_choices = add_probe_choices(srv, MY_LIBRARY).choices
    assert fast.id in [value for _, value in add_choices]
    srv.throughput.record(10_000_000, 1000, 3.0)
    added = check_add(srv, SOURCE_PATH, None, "", model, MY_LIBRARY, fast.id, "new-ref", "tiny", "0", "", True)
    assert added.probe_id == fast.id


def test_demo_suspects_are_chosen_by_key():
    """The demo dropdown shows 'key: description' and hands back the key; no label is split apart."""
    assert all(label.startswith(f"{key}: ") for label, key in DEMO_CHOICES)
    key = DEMO_CHOICES[0][1]
    srv = server()
    srv.demo_job = Job("demo", lambda job: None)  # still building: the suspect resolves to its name only
    assert resolve_model(srv, ModelChoice(SOURCE_DEMO, key), None) == ("", f"suspect-{key}")


def test_a_suspect_no_reference_is_as_wide_as_is_refused_by_the_form(my_library, saved_model):
    """A 64-wide model against 128-wide references: one line, before anything is queued or extracted."""
    wide = saved_model(3, name="wide-64", hidden=64)
    form = parse_form(SOURCE_PATH, None, None, "", wide, MY_LIBRARY, None, TESTS[DEFAULT_TEST].label,
                      DEFAULT_ALPHA, False)
    with pytest.raises(IncompatibleFingerprintsError) as err:
        check_form(server(), form)
    msg = str(err.value)
    # narrower than every reference: it could be width-pruned, which is said rather than "cannot derive"
    assert msg.startswith("no reference in this library is as wide as wide-64") and "width-pruned" in msg
    assert "hidden size 64" in msg and "have 128" in msg and "\n" not in msg


def test_the_audit_does_not_say_ready_while_the_demo_library_builds():
    from ui.audit_tab import READY, audit_idle

    srv = server()
    srv.demo_job = Job("preparing the demo library", lambda job: None)
    assert "Ready" not in audit_idle(srv) and "being built" in audit_idle(srv)
    srv.demo_job.state = "done"
    assert audit_idle(srv) == READY


def test_run_time_estimates_are_for_the_librarys_models(my_library):
    """Not "for a 135M-parameter model", which the user may not have: for the size of the library's references."""
    lib, _ = my_library
    srv = server()
    srv.throughput.record(10_000_000, 1000, 1.0)
    n_params = lib.load("s0").model.n_params
    for label, _ in audit_probe_choices(srv, MY_LIBRARY).choices:
        assert "the size of this library's references" in label and "135M" not in label, label
        assert f"{n_params / 1e6:.1f}M parameters" in label
    empty = Library(home() / "libraries" / "empty")
    assert "per 100M parameters" in add_probe_choices(srv, "empty").choices[0][0]
    assert len(empty) == 0


def test_errors_say_what_to_do_in_the_apps_terms():
    """No save_pretrained(), HF_HUB_OFFLINE=1 or [Errno -2] in what the page says; the engine's text stays one click
    away, collapsed."""
    from ui.views import error_message, plain_error

    engine = [
        "cannot reach the Hugging Face Hub to resolve org/m@main ([Errno -2] Name or service not known): check your "
        "connection, or set HF_HUB_OFFLINE=1 to use the local cache",
        "org/m@main is not in the local Hugging Face cache at /c and this machine is offline (HF_HUB_OFFLINE is set): "
        "run 'hf download org/m --revision main' while online (same HF_HUB_CACHE), or unset HF_HUB_OFFLINE",
        "m.zip has no config.json: zip the folder that save_pretrained() wrote",
        "m.bin needs a config.json: put one beside it or pass --config PATH",
    ]
    for text in engine:
        plain, detail = plain_error(text)
        assert detail == text
        for jargon in ("save_pretrained", "HF_HUB", "Errno", "hf download", "--config"):
            assert jargon not in plain, (jargon, plain)
        box = error_message(text)
        assert box.index("sp-msg-error") < box.index("<details") and "<details open" not in box
    assert "org/m" in plain_error(engine[0])[0] and "upload files" in plain_error(engine[1])[0]
    assert plain_error("no such file or folder: /x: check the path") == ("no such file or folder: /x: check the path",
                                                                        None)
