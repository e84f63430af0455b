"""One background worker thread that runs extraction jobs one at a time, with progress, ETA and cancel.

Gradio handlers only submit jobs and read their state, so the web server never waits for a model.
Why not Gradio's own queue: its ``cancels=`` stops a pending event or an async generator, but a
synchronous extraction already running in a worker thread cannot be interrupted from outside;
this queue hands each job a cancel event that the engine checks between batches and layers, and
it runs one extraction at a time across all visitors (one CPU/GPU) with a per-visitor limit.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from seedprints.errors import Cancelled, SeedPrintsError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
_ids = itertools.count(1)


class BusyError(SeedPrintsError):
    """The submitter already has a job queued or running on a server that runs one per visitor."""


@dataclasses.dataclass
class Job:
    """A unit of work with observable state; ``run(job)`` passes ``job.progress`` to the engine as its callback."""

    label: str
    run: Callable[[Job], Any]
    owner: str = ""
    id: str = dataclasses.field(default_factory=lambda: f"job{next(_ids)}")
    state: str = QUEUED
    stage: str = "waiting for the worker"
    done: int = 0
    total: int = 0
    submitted: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str = ""
    cancel_event: threading.Event = dataclasses.field(default_factory=threading.Event)
    _first: tuple[float, int] | None = None
    _updates: int = 0

    def progress(self, stage: str, done: int, total: int) -> None:
        """The engine's progress callback (seedprints.progress): ``stage``, then ``done`` of ``total`` steps.

        A new ``total`` starts a new phase of the work, so the ETA is measured afresh from there.
        """
        if self._first is None or total != self.total:
            self._first = (time.monotonic(), done)
        self.stage, self.done, self.total = stage, done, total
        self._updates += 1

    @property
    def measured(self) -> bool:
        """True when the job ran several batches itself (not served from the cache)."""
        return self._updates > 2

    def eta(self) -> float | None:
        """Seconds left, from the batch rate so far (None until two batches finished)."""
        if self._first is None or self.done <= self._first[1] or self.total <= 0:
            return None
        t0, d0 = self._first
        rate = (self.done - d0) / max(time.monotonic() - t0, 1e-9)
        return (self.total - self.done) / rate

    def elapsed(self) -> float:
        """Seconds since the job started running (0 while queued)."""
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


class JobQueue:
    """FIFO of jobs served by one daemon thread: one extraction at a time, however many sessions submit."""

    def __init__(self, keep: int = 200, one_per_owner: bool = False) -> None:
        """``one_per_owner`` (public servers): an owner may have one job queued or running at a time."""
        self._jobs: dict[str, Job] = {}
        self._waiting: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._keep = keep
        self.one_per_owner = one_per_owner
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name="seedprints-worker", daemon=True)
        self._thread.start()

    def submit(self, label: str, run: Callable[[Job], Any], owner: str = "") -> Job:
        """Queue a job; returns it at once.

        With ``one_per_owner``, refuses (BusyError) a second job of an owner whose first is still queued or running.
        """
        job = Job(label, run, owner)
        with self._cond:
            if self.one_per_owner and owner and (busy := self._active(owner)) is not None:
                raise BusyError(f"you already have a job {busy.state} ({busy.label}): wait for it to end or cancel it "
                                "first; this public server runs one job per visitor at a time")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._cond.notify()
        return job

    def get(self, job_id: str | None) -> Job | None:
        """The job with this id, if it is still remembered."""
        return self._jobs.get(job_id or "")

    def position(self, job: Job) -> int:
        """0 while running or finished; otherwise how many jobs run before it (1 = next)."""
        with self._cond:
            if job.state != QUEUED:
                return 0
            ahead = list(self._waiting).index(job) if job in self._waiting else 0
            return ahead + (1 if self.current is not None else 0)

    def cancel(self, job_id: str | None) -> bool:
        """Ask a job to stop: a queued job is dropped at once, a running one stops before its next batch."""
        job = self.get(job_id)
        if job is None or job.state in FINISHED:
            return False
        job.cancel_event.set()
        with self._cond:
            if job.state == QUEUED and job in self._waiting:
                self._waiting.remove(job)
                job.state, job.stage, job.finished = CANCELLED, "cancelled while queued", time.monotonic()
        return True

    def _active(self, owner: str) -> Job | None:
        """The owner's queued or running job, if any (call with the lock held)."""
        if self.current is not None and self.current.owner == owner:
            return self.current
        return next((j for j in self._waiting if j.owner == owner), None)

    def pending(self) -> int:
        """Jobs waiting or running."""
        with self._cond:
            return len(self._waiting) + (1 if self.current is not None else 0)

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for j in finished[: max(0, len(self._jobs) - self._keep)]:
            self._jobs.pop(j.id, None)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                job = self._waiting.popleft()
                self.current = job
            job.state, job.started, job.stage = RUNNING, time.monotonic(), "starting"
            state = FAILED
            try:
                job.result = job.run(job)
                state = DONE
            except Cancelled as exc:
                state, job.error = CANCELLED, str(exc)
            except SeedPrintsError as exc:
                job.error = str(exc)
            except Exception as exc:  # a bug or an unexpected library error: one line for people, trace in the log
                traceback.print_exc(file=sys.stderr)
                first = (str(exc).strip().splitlines() or [""])[0][:300]
                job.error = f"unexpected error ({type(exc).__name__}: {first}); see the server log"
            finally:
                # the final state is published last, so a finished job always has its end time and is off the queue
                job.finished = time.monotonic()
                with self._cond:
                    self.current = None
                job.state = state
