"""The background job queue of the web UI: FIFO, one job at a time, positions, cancel, errors, progress/ETA."""

from __future__ import annotations

import threading
import time

import pytest

from seedprints.errors import Cancelled, ExtractionError
from ui.jobs import CANCELLED, DONE, FAILED, FINISHED, QUEUED, RUNNING, BusyError, Job, JobQueue

TIMEOUT = 10.0


def wait_until(pred, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def wait_finished(*jobs: Job) -> None:
    # the worker sets the final state a moment before the finish time: wait for both
    wait_until(lambda: all(j.state in FINISHED and j.finished is not None for j in jobs))


class Gate:
    """A job function that signals when it starts and runs until released (or cancelled)."""

    def __init__(self, log: list | None = None, result=None) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.log = log if log is not None else []
        self.result = result

    def __call__(self, job: Job):
        self.log.append(("start", job.label))
        self.started.set()
        while not self.release.wait(0.002):
            if job.cancel_event.is_set():
                self.log.append(("cancelled", job.label))
                raise Cancelled(f"{job.label} cancelled by the user")
        self.log.append(("end", job.label))
        return self.result


@pytest.fixture
def queue() -> JobQueue:
    return JobQueue()


def test_jobs_run_one_at_a_time_in_fifo_order(queue):
    log: list = []
    lock = threading.Lock()
    active = [0]
    max_active = [0]

    def work(job: Job):
        with lock:
            active[0] += 1
            max_active[0] = max(max_active[0], active[0])
            log.append(("start", job.label))
        time.sleep(0.005)
        with lock:
            log.append(("end", job.label))
            active[0] -= 1
        return job.label.upper()

    first = Gate(log, result="first")
    j0 = queue.submit("j0", first)
    assert first.started.wait(TIMEOUT)
    jobs = [queue.submit(f"j{i}", work) for i in range(1, 6)]  # all queued while j0 holds the worker
    assert all(j.state == QUEUED for j in jobs) and queue.pending() == 6
    first.release.set()
    wait_finished(j0, *jobs)
    assert [j.state for j in (j0, *jobs)] == [DONE] * 6
    assert j0.result == "first" and [j.result for j in jobs] == [f"J{i}" for i in range(1, 6)]
    expected = [x for i in range(6) for x in (("start", f"j{i}"), ("end", f"j{i}"))]
    assert log == expected  # every job ended before the next started, in submission order
    assert max_active[0] == 1
    for a, b in zip((j0, *jobs), jobs):
        assert a.finished <= b.started
    wait_until(lambda: queue.pending() == 0)
    assert queue.current is None


def test_job_ids_are_unique_and_get_finds_them(queue):
    gate = Gate()
    gate.release.set()
    a, b = queue.submit("a", gate, owner="s1"), queue.submit("b", gate, owner="s2")
    assert a.id != b.id and queue.get(a.id) is a and queue.get(b.id) is b and a.owner == "s1"
    assert queue.get("nope") is None and queue.get(None) is None
    wait_finished(a, b)


def test_positions(queue):
    gates = [Gate() for _ in range(3)]
    jobs = [queue.submit(f"j{i}", g) for i, g in enumerate(gates)]
    assert gates[0].started.wait(TIMEOUT)
    wait_until(lambda: jobs[0].state == RUNNING)
    assert [queue.position(j) for j in jobs] == [0, 1, 2]
    assert queue.pending() == 3
    gates[0].release.set()
    assert gates[1].started.wait(TIMEOUT)
    wait_until(lambda: jobs[1].state == RUNNING)
    assert [queue.position(j) for j in jobs] == [0, 0, 1]
    gates[1].release.set()
    gates[2].release.set()
    wait_finished(*jobs)
    assert [queue.position(j) for j in jobs] == [0, 0, 0]


def test_cancel_queued_job_drops_it_at_once(queue):
    log: list = []
    blocker, victim, after = Gate(log), Gate(log), Gate(log)
    victim.release.set()
    after.release.set()
    j0 = queue.submit("blocker", blocker)
    assert blocker.started.wait(TIMEOUT)
    j1 = queue.submit("victim", victim)
    j2 = queue.submit("after", after)
    assert queue.position(j2) == 2
    assert queue.cancel(j1.id) is True
    assert j1.state == CANCELLED and j1.finished is not None and j1.cancel_event.is_set()  # immediately
    assert queue.position(j2) == 1 and queue.pending() == 2
    assert queue.cancel(j1.id) is False  # already finished
    blocker.release.set()
    wait_finished(j0, j2)
    assert j0.state == DONE and j2.state == DONE
    assert ("start", "victim") not in log and not victim.started.is_set()
    assert j1.started is None and j1.elapsed() == 0.0


def test_cancel_running_job_sets_its_event_and_ends_cancelled(queue):
    gate = Gate()
    job = queue.submit("long", gate)
    assert gate.started.wait(TIMEOUT)
    wait_until(lambda: job.state == RUNNING)
    assert not job.cancel_event.is_set()
    assert queue.cancel(job.id) is True
    assert job.cancel_event.is_set()
    wait_finished(job)
    assert job.state == CANCELLED and job.error == "long cancelled by the user"
    assert job.result is None and job.finished >= job.started
    assert queue.cancel(job.id) is False and queue.cancel("unknown") is False and queue.cancel(None) is False
    # the worker is free again
    nxt = Gate(result=42)
    nxt.release.set()
    j2 = queue.submit("next", nxt)
    wait_finished(j2)
    assert j2.state == DONE and j2.result == 42


def test_running_job_that_ignores_cancel_finishes_done(queue):
    started, release = threading.Event(), threading.Event()

    def stubborn(job: Job):
        started.set()
        assert release.wait(TIMEOUT)
        return "finished anyway"

    job = queue.submit("stubborn", stubborn)
    assert started.wait(TIMEOUT)
    wait_until(lambda: job.state == RUNNING)
    assert queue.cancel(job.id) and job.state == RUNNING  # a running job is only asked to stop
    release.set()
    wait_finished(job)
    assert job.state == DONE and job.result == "finished anyway"


def test_seedprints_error_fails_the_job_with_its_message(queue):
    def broken(job: Job):
        raise ExtractionError("model produced NaN activations:\n  check   the checkpoint")

    job = queue.submit("broken", broken)
    wait_finished(job)
    assert job.state == FAILED
    assert job.error == "model produced NaN activations: check the checkpoint"


def test_unexpected_exception_fails_the_job_in_one_line_and_worker_goes_on(queue, capsys):
    def bug(job: Job):
        return 1 / 0

    def multi_line(job: Job):
        raise RuntimeError("first line\nsecond line\nthird")

    j1 = queue.submit("bug", bug)
    j2 = queue.submit("multi", multi_line)
    ok = Gate(result="ok")
    ok.release.set()
    j3 = queue.submit("ok", ok)
    wait_finished(j1, j2, j3)
    assert j1.state == FAILED and "ZeroDivisionError" in j1.error and "division by zero" in j1.error
    assert "\n" not in j1.error
    assert j2.state == FAILED and "RuntimeError: first line" in j2.error and "\n" not in j2.error
    assert "second line" not in j2.error
    assert j3.state == DONE and j3.result == "ok"  # the worker kept serving
    assert "ZeroDivisionError" in capsys.readouterr().err  # the trace goes to the server log


def test_job_state_timestamps_and_stage(queue):
    gate = Gate()
    job = queue.submit("t", gate)
    assert job.submitted <= time.monotonic()
    assert gate.started.wait(TIMEOUT)
    wait_until(lambda: job.state == RUNNING)
    assert job.started is not None and job.finished is None and job.elapsed() >= 0.0
    gate.release.set()
    wait_finished(job)
    assert job.finished >= job.started >= job.submitted
    assert job.elapsed() == pytest.approx(job.finished - job.started)


def test_old_finished_jobs_are_forgotten():
    q = JobQueue(keep=3)
    done = []
    for i in range(5):
        j = q.submit(f"j{i}", lambda job: job.label)
        wait_finished(j)
        done.append(j)
    last = q.submit("last", lambda job: "x")
    wait_finished(last)
    assert q.get(done[0].id) is None and q.get(done[1].id) is None and q.get(done[2].id) is None
    assert q.get(done[4].id) is done[4] and q.get(last.id) is last


# ---------------------------------------------------------------------------- progress and ETA (no queue)
def test_eta_needs_two_updates_and_is_positive():
    job = Job("p", lambda j: None)
    assert job.eta() is None and not job.measured
    job.progress("extracting", 10, 100)
    assert job.eta() is None and (job.done, job.total) == (10, 100) and not job.measured
    time.sleep(0.01)
    job.progress("extracting", 20, 100)
    eta = job.eta()
    assert isinstance(eta, float) and eta > 0.0 and not job.measured
    job.progress("extracting", 30, 100)
    assert job.measured and job.eta() > 0.0


def test_eta_roughly_follows_the_rate():
    job = Job("p", lambda j: None)
    job.progress("extracting", 0, 1000)
    time.sleep(0.05)
    job.progress("extracting", 500, 1000)  # half done after ~0.05 s: about as long again to go
    eta = job.eta()
    assert 0.0 < eta < 5.0
    job.progress("extracting", 1000, 1000)
    assert job.eta() == 0.0


def test_eta_none_without_progress_or_total():
    job = Job("p", lambda j: None)
    job.progress("extracting", 5, 0)
    job.progress("extracting", 7, 0)
    assert job.eta() is None
    cached = Job("c", lambda j: None)
    cached.progress("extracting", 100, 100)  # served from the cache: one jump to the end
    assert cached.eta() is None and not cached.measured


def test_progress_takes_the_engine_contract_and_a_new_total_restarts_the_eta():
    job = Job("p", lambda j: None)
    job.progress("layer 1/2", 0, 100)
    time.sleep(0.01)
    job.progress("layer 1/2", 50, 100)
    assert job.stage == "layer 1/2" and job.eta() > 0.0
    job.progress("testing 8 references", 0, 8)  # a new phase: its rate is not known yet
    assert (job.stage, job.done, job.total) == ("testing 8 references", 0, 8) and job.eta() is None


def test_one_job_per_owner_when_asked():
    q = JobQueue(one_per_owner=True)
    first = Gate()
    running = q.submit("audit A", first, owner="session-a")
    first.started.wait(TIMEOUT)
    queued = q.submit("audit B", Gate(), owner="session-b")  # another owner queues as usual
    for label in ("second audit", "learn step"):
        with pytest.raises(BusyError, match=r"already have a job running \(audit A\).*one job per visitor"):
            q.submit(label, Gate(), owner="session-a")
    with pytest.raises(BusyError, match=r"job queued \(audit B\)"):
        q.submit("again", Gate(), owner="session-b")
    q.cancel(queued.id)
    again = q.submit("audit B again", Gate(), owner="session-b")  # a cancelled job no longer counts
    first.release.set()
    wait_finished(running)
    assert q.submit("audit A2", lambda j: 1, owner="session-a").owner == "session-a"
    q.cancel(again.id)
    server_jobs = [q.submit(f"server job {i}", lambda j: 1, owner="") for i in range(2)]  # the server's own
    wait_finished(*server_jobs)


def test_local_queue_takes_many_jobs_per_owner(queue):
    gate = Gate()
    jobs = [queue.submit(f"job {i}", gate, owner="s") for i in range(3)]
    gate.release.set()
    wait_finished(*jobs)
