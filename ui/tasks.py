"""One way to run page work on the worker queue: a button submits, a timer polls, Cancel stops, a box shows status.

Every long action of the page (audit, robustness check, library add, each Learn step, the demo build) is
a :class:`TaskView` (its status box, result components and how a result fills them) wired by :func:`wire`.
A handler only checks the form and submits ``Submission.work``; the work (models, statistics, files to
download) runs on the worker thread, and the poll handler only turns a finished result into outputs.

Why a job queue of our own rather than Gradio's: Gradio cancels an event by cancelling its asyncio task,
which cannot stop a synchronous function already running in a thread, so a running extraction would go
on to its end. Our worker hands ``job.cancel_event`` to the engine, which checks it between batches, and
it shows every session its place in one FIFO, since one extraction at a time is all a server can hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from seedprints.errors import SeedPrintsError

from . import views
from .jobs import DONE, FINISHED, BusyError, Job, JobQueue

POLL_SECONDS = 0.5


def _check_place() -> None:
    """Refuse to add a task's hidden parts (its job-id State, its Timer) as direct children of a ``gr.Tabs``.

    The browser numbers the tabs by their place among the Tabs' children, so a Timer between two tabs
    shifts the next tab's number: when a not-yet-shown tab renders for the first time it registers
    again under that other number, and the tab bar grows a copy of it on every first visit (#24).
    Wire a tab's tasks inside its ``gr.Tab``.
    """
    from gradio.context import Context

    if isinstance(Context.block, gr.Tabs):
        raise RuntimeError("wire() / watch() called directly inside gr.Tabs(): call them inside the gr.Tab they "
                           "belong to (or outside the Tabs), or the tab bar duplicates its tabs")


@dataclasses.dataclass(frozen=True)
class Submission:
    """What a start handler hands the worker: a label for people and the work, ``work(job) -> result``."""

    label: str
    work: Callable[[Job], Any]


@dataclasses.dataclass(frozen=True)
class TaskView:
    """How one kind of job shows on the page.

    ``render(result, *render_inputs)`` returns one value per component of ``outputs``; ``done(result)``
    words the end message (default: "Done: label in time"); ``unit`` names what the progress counts.
    ``cleared()``, when given, returns one value per output that empties it: the button sets them at
    once, so a new job (or a form error) never shows beside the previous job's result (#24).
    """

    status: gr.HTML
    outputs: Sequence[Any] = ()
    render: Callable[..., Sequence[Any]] = lambda result: []
    render_inputs: Sequence[Any] = ()
    done: Callable[[Any], str] | None = None
    unit: str | None = "probe samples"
    idle: str = "Press the button to start."
    cancellable: bool = True
    cleared: Callable[[], Sequence[Any]] | None = None

    def status_html(self, job: Job | None, position: int = 0) -> str:
        """The status box for this job (its progress, place in the queue or end state)."""
        if job is not None and job.state == DONE and self.done is not None:
            return views.message(self.done(job.result), "ok")
        return views.job_status(job, position, idle=self.idle, unit=self.unit, cancellable=self.cancellable)

    def poll(self, queue: JobQueue, job: Job | None, *render_values: Any) -> list[Any]:
        """Status, the timer (active while the job is unfinished) and the outputs: filled once, when it is done."""
        keep = [gr.skip()] * len(self.outputs)
        if job is None or job.state not in FINISHED:
            position = queue.position(job) if job is not None else 0
            return [self.status_html(job, position), gr.Timer(active=job is not None), *keep]
        if job.state != DONE:
            return [self.status_html(job), gr.Timer(active=False), *keep]
        return [self.status_html(job), gr.Timer(active=False), *self.render(job.result, *render_values)]


def session_of(request: gr.Request | None) -> str:
    """The session a request comes from: the owner of the jobs it submits."""
    return getattr(request, "session_hash", "") or ""


def wire(queue: JobQueue, view: TaskView, button: Any, inputs: Sequence[Any],
         start: Callable[..., Submission], cancel_button: Any = None) -> None:
    """Wire ``button`` to submit ``start(*input values)`` to the queue, a timer to poll it, ``cancel_button`` to stop it.

    ``start`` checks the form and raises SeedPrintsError with a one-line message for people.
    Call it inside the ``gr.Tab`` that holds ``button`` (see :func:`_check_place`).
    """
    _check_place()
    job_id = gr.State(None)
    timer = gr.Timer(POLL_SECONDS, active=False)

    cleared = list(view.outputs) if view.cleared is not None else []

    def submit(request: gr.Request, *values: Any) -> list[Any]:
        empty = list(view.cleared()) if view.cleared is not None else []
        try:
            sub = start(*values)
            job = queue.submit(sub.label, sub.work, owner=session_of(request))
        except BusyError as exc:  # the session's job in progress keeps its place, and its view keeps polling it
            return [gr.skip(), views.message(str(exc), "error"), gr.skip(), *[gr.skip()] * len(empty)]
        except SeedPrintsError as exc:  # no earlier result stays up beside the error
            return [None, views.error_message(str(exc)), gr.Timer(active=False), *empty]
        return [job.id, view.status_html(job, queue.position(job)), gr.Timer(active=True), *empty]

    def poll(job_id_value: str | None, *render_values: Any) -> list[Any]:
        return view.poll(queue, queue.get(job_id_value), *render_values)

    # submitting is quick, so it needs no place in Gradio's queue; the work waits in ours
    button.click(submit, list(inputs), [job_id, view.status, timer, *cleared], concurrency_limit=None)
    timer.tick(poll, [job_id, *view.render_inputs], [view.status, timer, *view.outputs], queue=False)
    if cancel_button is not None:
        cancel_button.click(lambda j: cancel(queue, j), job_id, view.status, queue=False)


def watch(queue: JobQueue, view: TaskView, job: Job) -> None:
    """Show a job started by the server itself (not by a button) in ``view`` until it ends."""
    _check_place()
    timer = gr.Timer(POLL_SECONDS, active=True)
    timer.tick(lambda *values: view.poll(queue, job, *values), list(view.render_inputs),
               [view.status, timer, *view.outputs], queue=False)


def cancel(queue: JobQueue, job_id: str | None) -> str:
    """Cancel a job: drop it from the queue, or stop it before its next batch."""
    job = queue.get(job_id)
    if job is None or job.state in FINISHED:
        return views.message("Nothing to cancel.")
    queue.cancel(job_id)
    if job.state in FINISHED:
        return views.job_status(job)
    return views.message("Cancelling: the work stops before its next batch.")
