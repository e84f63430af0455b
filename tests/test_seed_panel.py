"""The Audit tab's "which seed" section (#26) without a browser: the page builds with it, and its submissions
check and search seeds on a local suspect with no library at all."""

from __future__ import annotations

import pytest

from seedprints.errors import SeedPrintsError
from seedprints.methods import DEFAULT_TEST, TESTS
from seedprints.seeds import SeedCheck, SeedSearch
from ui.context import AppConfig, Server
from ui.jobs import Job, JobQueue
from ui.seed_panel import CHECK, SEARCH, render, start
from ui.sources import SOURCE_PATH

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def server():
    from ui.context import Throughput

    return Server(AppConfig(), JobQueue(), Throughput())


@pytest.fixture(scope="module")
def suspect(tmp_path_factory):
    from seedprints.tiny import tiny_llama

    path = tmp_path_factory.mktemp("panel") / "seed77"
    tiny_llama(77, hidden=64).save_pretrained(path)  # the demo's recipe, a seed no library holds
    return str(path)


def _form(path: str) -> list:
    # the audit form: model (source, demo, files, hub, path), library, probe, test, alpha, trust, visitor
    return [SOURCE_PATH, None, None, "", path, "no library", None, TESTS[DEFAULT_TEST].label, 0.01, False, None]


def test_the_page_builds_with_the_seed_section(server):
    from ui.app import build_blocks

    blocks = build_blocks(server)
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"seed-check", "seed-run", "seed-cancel", "seed-status", "seed-verdict"} <= ids


def test_check_and_search_with_no_library(server, suspect):
    sub = start(server, CHECK, 77.0, "", "zoo", True, *_form(suspect))
    check = sub.work(Job(sub.label, sub.work))
    assert isinstance(check, SeedCheck) and check.label == "MATCH"
    text, _, plot = render(check)
    assert text.startswith("### MATCH seed 77") and "seedprints verify-seed" in text and plot is not None
    sub = start(server, SEARCH, None, "70-80", "transformers-cpu", True, *_form(suspect))
    job = Job(sub.label, sub.work)
    found = sub.work(job)
    assert isinstance(found, SeedSearch) and found.seed == 77 and found.stopped_early
    assert job.total == found.n_range  # the engine's progress reached the job


@pytest.mark.parametrize("mode, seed, seeds, recipe, message", [
    (SEARCH, None, "9-1", "zoo", "ends before it starts"), (CHECK, 1.5, "", "zoo", "not a whole number"),
    (CHECK, 1, "", "nope", "unknown recipe")])
def test_bad_form_is_a_one_line_error_before_queueing(server, suspect, mode, seed, seeds, recipe, message):
    with pytest.raises(SeedPrintsError, match=message):
        start(server, mode, seed, seeds, recipe, True, *_form(suspect))
