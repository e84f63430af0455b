"""Engines run :func:`~seedprints.batch.worker.run_row` over many rows: local worker processes, or Ray tasks.

Both yield each row's outcome as it completes and never write anything; both retry a row whose
worker died once, and record it as failed when its worker dies a second time.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import optional
from ..errors import SeedPrintsError, first_line
from .manifest import ManifestRow
from .worker import FAILED, Shared, WorkerSettings, run_row

#: Times a row is started before a dying worker marks it failed.
MAX_ATTEMPTS = 2
#: GPU memory assumed per GPU when sizing Ray requests (the smallest common datacenter GPUs: A10, L4).
DEFAULT_GPU_MEMORY = 24 * 10**9


class EngineError(SeedPrintsError):
    """An engine cannot start (Ray missing or unreachable, bad worker count)."""


def died(row: ManifestRow, why: str) -> dict[str, Any]:
    """The outcome of a row whose worker died on every attempt."""
    return {"line": row.line, "name": row.name, "source": row.source, "status": FAILED, "reason": None,
            "weights_hash": None, "fingerprint": None, "scan": None, "worker": None, "seconds": None,
            "error": f"its worker died {MAX_ATTEMPTS} times ({why}): the model may need more memory than a worker "
                     "has; lower --workers or --max-memory (a model over the budget runs layer by layer)"}


def _signal_text(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (", often the out-of-memory killer" if name == "SIGKILL" else "")
    return f"exit code {exitcode}"


# ---------------------------------------------------------------------------- local
def _die_with_parent() -> None:
    """Linux: have the kernel kill this worker when the driver dies (even by SIGKILL), so no model is orphaned."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _local_worker(conn: Any, settings: WorkerSettings, shared: Shared, parent: int) -> None:
    """A worker process: run one row at a time until told to stop (None) or the driver goes away."""
    import signal

    _die_with_parent()
    if os.getppid() != parent:  # the driver died before the death signal was armed
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the driver stops us
    while True:
        try:
            row = conn.recv()
        except (EOFError, OSError):
            return
        if row is None:
            return
        conn.send(run_row(settings, shared, row))


def local_devices(device: str) -> list[str]:
    """Devices local workers take in turn: every GPU for 'auto' or 'cuda' on a machine with several, else the one."""
    if device not in ("auto", "cuda"):
        return [device]
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(n)] if n > 1 else [device]


class _Slot:
    """One worker process, its pipe and the row it is running."""

    def __init__(self, ctx: Any, settings: WorkerSettings, shared: Shared, device: str) -> None:
        self.device = device
        settings = dataclasses.replace(settings, device=device)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_local_worker, args=(child, settings, shared, os.getpid()), daemon=True,
                                name="seedprints-worker")
        self.proc.start()
        child.close()
        self.task: tuple[ManifestRow, int] | None = None

    def stop(self, timeout: float = 5.0) -> None:
        try:
            if self.proc.is_alive() and self.task is None:
                self.conn.send(None)
                self.proc.join(timeout)
        except (OSError, ValueError):
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout)
        self.conn.close()


class LocalEngine:
    """A pool of ``workers`` spawned processes on this machine, each holding one model at a time.

    Spawned workers re-import the calling script: a script that runs a batch must guard its entry
    point with ``if __name__ == "__main__":`` (otherwise every worker dies and its rows fail).
    """

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise EngineError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self.running = 0

    def describe(self) -> str:
        """One line for summaries."""
        return f"local, {self.workers} worker process{'es' if self.workers > 1 else ''}"

    def run(self, settings: WorkerSettings, shared: Shared, rows: list[ManifestRow]) -> Iterator[dict[str, Any]]:
        """Each row's outcome as it completes."""
        import multiprocessing as mp
        from multiprocessing.connection import wait

        ctx = mp.get_context("spawn")  # never fork a process that may hold torch threads or CUDA
        devices = local_devices(settings.device)
        queue: collections.deque[tuple[ManifestRow, int]] = collections.deque((r, 1) for r in rows)
        slots: list[_Slot] = []
        try:
            while queue or any(s.task for s in slots):
                slots = [s for s in slots if s.proc.is_alive() or s.task is not None]
                while queue and (len(slots) < self.workers or any(s.task is None for s in slots)):
                    slot = next((s for s in slots if s.task is None), None)
                    if slot is None:
                        used = collections.Counter(s.device for s in slots)
                        slot = _Slot(ctx, settings, shared, min(devices, key=lambda d: used[d]))
                        slots.append(slot)
                    slot.task = queue.popleft()
                    try:
                        slot.conn.send(slot.task[0])
                    except OSError:  # the idle worker died: the row goes back, untried, to another one
                        queue.appendleft(slot.task)
                        slot.task = None
                        slot.stop()
                        slots.remove(slot)
                busy = [s for s in slots if s.task is not None]
                self.running = len(busy)
                wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=5.0)
                for slot in busy:
                    outcome = self._collect(slot, queue)
                    if outcome is not None:
                        self.running -= 1
                        yield outcome
        finally:
            self.running = 0
            for slot in slots:
                slot.stop()

    @staticmethod
    def _collect(slot: _Slot, queue: collections.deque[tuple[ManifestRow, int]]) -> dict[str, Any] | None:
        """The slot's finished outcome, or the failure of a died worker (its row retried once), or None."""
        assert slot.task is not None
        row, attempt = slot.task
        try:
            if slot.conn.poll():
                slot.task = None
                return slot.conn.recv()
        except (EOFError, OSError):
            pass
        if slot.proc.is_alive():
            return None
        slot.proc.join()
        slot.task = None
        why = _signal_text(slot.proc.exitcode)
        if attempt < MAX_ATTEMPTS:
            queue.appendleft((row, attempt + 1))
            return None
        return died(row, why)


# ---------------------------------------------------------------------------- ray
def seedprints_row(settings: WorkerSettings, shared: Shared, row: ManifestRow) -> dict[str, Any]:
    """The Ray task: one row (its process is titled ray::seedprints_row while it runs)."""
    return run_row(settings, shared, row)


def checkpoint_bytes(row: ManifestRow) -> int | None:
    """Bytes of a row's weight files, from the file system or the Hub's file list; None when unknown."""
    from .. import hub
    from ..loading import resolve_source

    try:
        if Path(row.source).exists():
            return sum(p.stat().st_size for p in resolve_source(row.source, row.config).weight_files)
        if hub.is_hub_id(row.source):
            return hub.weight_bytes(hub.with_revision(row.source, row.revision))
    except (SeedPrintsError, OSError):
        return None
    return None


def ray_resources(nbytes: int | None, settings: WorkerSettings, cluster_gpus: float, node_memory: float,
                  gpu_memory: int = DEFAULT_GPU_MEMORY) -> dict[str, Any]:
    """Ray resource requests for one row: CPUs = torch threads, a GPU share and memory from the checkpoint size.

    A checkpoint that does not fit one GPU (or a node's memory) gets a whole GPU (or the
    memory a node has) and is streamed layer by layer by the worker.
    """
    opts: dict[str, Any] = {"num_cpus": settings.threads}
    need = None if nbytes is None else nbytes * 1.2 + (1 << 30)  # weights, activations and the Python process
    wants_gpu = cluster_gpus > 0 and not settings.device.startswith(("cpu", "mps"))
    if wants_gpu:
        share = 1.0 if need is None else min(1.0, math.ceil(4 * need / gpu_memory) / 4)
        opts["num_gpus"] = share
        need = None if need is None else min(need, 2 * (1 << 30) + (nbytes or 0) * 0.1)  # host side: a staging copy
    if need is not None:
        from ..memory import parse_size

        cap = 0.8 * node_memory if node_memory else need
        if settings.max_memory is not None:
            cap = min(cap, parse_size(settings.max_memory) + (1 << 30))
        opts["memory"] = int(min(need, cap))
    return opts


class RayEngine:
    """One Ray task per row on a Ray cluster (``address``: 'auto', 'ray://host:port', or None for a local one)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None,
                 gpu_memory: int = DEFAULT_GPU_MEMORY, init_kwargs: dict[str, Any] | None = None) -> None:
        if workers is not None and workers < 1:
            raise EngineError(f"--workers must be at least 1, got {workers}")
        if not optional.available("ray"):
            raise optional.missing("ray", "--engine ray")
        self.address = address
        self.workers = workers
        self.gpu_memory = gpu_memory
        self.init_kwargs = init_kwargs or {}
        self.running = 0

    def describe(self) -> str:
        """One line for summaries."""
        where = self.address or "a local Ray instance"
        return f"ray on {where}" + (f", at most {self.workers} rows at a time" if self.workers else "")

    def _connect(self) -> bool:
        """Join (or start) the cluster; True when this engine started Ray and must shut it down."""
        import ray

        if ray.is_initialized():
            return False
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning", **self.init_kwargs}
        if self.address is None and self.workers is not None:
            kwargs.setdefault("num_cpus", self.workers)
        try:  # no address: a new Ray instance on this machine, even where one is already running
            ray.init(address=self.address or "local", **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot connect to the Ray cluster at {self.address!r}: {first_line(exc)}") from None
        return True

    def run(self, settings: WorkerSettings, shared: Shared, rows: list[ManifestRow]) -> Iterator[dict[str, Any]]:
        """Each row's outcome as it completes."""
        import ray

        started = self._connect()
        pending: dict[Any, ManifestRow] = {}
        try:
            resources = ray.cluster_resources()
            gpus = float(resources.get("GPU", 0))
            node_memory = max((n.get("Resources", {}).get("memory", 0) for n in ray.nodes() if n.get("Alive")),
                              default=0)
            window = self.workers or max(1, int(resources.get("CPU", 1) // settings.threads))
            task = ray.remote(seedprints_row)
            shared_ref = ray.put(shared)
            queue = collections.deque(rows)
            while queue or pending:
                while queue and len(pending) < window:
                    row = queue.popleft()
                    opts = ray_resources(checkpoint_bytes(row), settings, gpus, node_memory, self.gpu_memory)
                    # max_retries: Ray reruns a task whose worker died once; Python errors are outcomes, not retried
                    ref = task.options(**opts, max_retries=MAX_ATTEMPTS - 1, retry_exceptions=False,
                                       name="seedprints_row").remote(settings, shared_ref, row)
                    pending[ref] = row
                self.running = len(pending)
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
                for ref in ready:
                    row = pending.pop(ref)
                    self.running = len(pending)
                    yield self._outcome(ref, row)
        finally:
            self.running = 0
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    @staticmethod
    def _outcome(ref: Any, row: ManifestRow) -> dict[str, Any]:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # run_row never raises: this is a failure around it
            out = died(row, "")
            out["error"] = f"the Ray task failed: {first_line(exc.cause if exc.cause is not None else exc, 300)}"
            return out
        except ray.exceptions.RayError as exc:  # worker or node lost on every attempt, out of memory, ...
            return died(row, f"{type(exc).__name__}: {first_line(exc, 150)}")
