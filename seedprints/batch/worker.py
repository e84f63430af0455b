"""What one worker does with one manifest row, the same under every engine.

A worker fingerprints the row's model with the batch's settings (probe, device, dtype, torch
threads, memory budget) and returns plain data: the fingerprint as safetensors bytes for a
library build, or the scan verdict for an audit.  It never writes the library: the driver does.
Every failure of the row becomes a ``failed`` outcome with a one-line error.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import Any

from ..errors import SeedPrintsError, first_line
from .manifest import ManifestRow

#: Outcome states of a row.
DONE, SKIPPED, FAILED = "done", "skipped", "failed"


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """Everything that decides a row's result; identical for every worker of a batch, whatever the engine."""

    mode: str  # "library" or "audit"
    spec: Any  # ProbeSpec
    device: str = "cpu"
    dtype: str = "auto"
    threads: int = 1
    batch_size: int | None = None
    max_memory: str | int | None = None
    stream: bool | None = None
    trust_remote_code: bool = False
    cache_dir: str | None = None
    keep: float | int | str = 0.2
    test_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    alpha: float = 0.01
    created_at: str | None = None  # fixed fingerprint timestamp (SOURCE_DATE_EPOCH), for reproducible files


@dataclasses.dataclass(frozen=True)
class Shared:
    """Read-only data every row of a batch needs: what the library already holds, or its references."""

    known_hashes: dict[str, str] = dataclasses.field(default_factory=dict)  # weights hash -> reference name
    taken_names: dict[str, str] = dataclasses.field(default_factory=dict)  # reference name -> weights hash
    references: tuple[tuple[Any, bytes], ...] = ()  # (Reference, fingerprint bytes) for audits
    references_id: str = ""  # names the references' contents, so a worker parses them once


class AlreadyDone(Exception):
    """Raised from the cache lookup when the library already holds these weights with this probe."""


def _skip_cache(shared: Shared, cache_dir: str | None, name: str) -> Any:
    """A fingerprint cache that first stops rows the library already holds, or whose name it gives to other weights.

    fingerprint_model looks the cache up once it knows the weights hash and before it loads anything,
    so the check costs no extra hashing.
    """
    from ..cache import FingerprintCache

    class _Cache(FingerprintCache):
        def get(self, weights_hash: str, probe_id: str) -> Any:
            if weights_hash in shared.known_hashes:
                raise AlreadyDone(f"already in the library as {shared.known_hashes[weights_hash]!r} (same weights "
                                  "and probe)")
            if name in shared.taken_names:
                raise SeedPrintsError(f"the library already has a reference named {name!r} with other weights or "
                                      "another probe: rename the row or remove that reference")
            return super().get(weights_hash, probe_id) if cache_dir else None

        def put(self, fp: Any) -> Any:
            return super().put(fp) if cache_dir else None

    return _Cache(cache_dir or ".")


def configure_torch(threads: int) -> None:
    """Fix torch's CPU thread count, so results do not depend on the machine or the engine."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def run_row(settings: WorkerSettings, shared: Shared, row: ManifestRow) -> dict[str, Any]:
    """Fingerprint (and for audits, scan) one row; returns its outcome as plain data, never raises."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"line": row.line, "name": row.name, "source": row.source, "status": FAILED, "error": None,
                           "reason": None, "weights_hash": None, "fingerprint": None, "scan": None,
                           "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        configure_torch(settings.threads)
        fp = _fingerprint(settings, shared, row)
        out["weights_hash"] = fp.model.weights_hash
        if settings.mode == "library":
            stored = fp.compact(settings.keep) if settings.keep != "all" else fp
            out["fingerprint"] = stored.to_bytes()
        else:
            out["scan"] = _scan(settings, shared, fp)
        out["status"] = DONE
    except AlreadyDone as exc:
        out.update(status=SKIPPED, reason=str(exc))
    except SeedPrintsError as exc:
        out["error"] = first_line(exc, 300)
    except MemoryError:
        out["error"] = "out of memory: lower --workers or --max-memory, or give the row a bigger machine"
    except Exception as exc:  # noqa: BLE001 - a row's failure must never stop the batch
        out["error"] = f"{type(exc).__name__}: {first_line(exc, 300)}"
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _fingerprint(settings: WorkerSettings, shared: Shared, row: ManifestRow) -> Any:
    from ..audit import fingerprint_model

    cache = _skip_cache(shared, settings.cache_dir, row.name) if settings.mode == "library" else None
    if cache is None and settings.cache_dir:
        from ..cache import FingerprintCache

        cache = FingerprintCache(settings.cache_dir)
    fp = fingerprint_model(row.source, settings.spec, name=row.name, cache=cache, config=row.config,
                           device=settings.device, dtype=settings.dtype, trust_remote_code=settings.trust_remote_code,
                           batch_size=settings.batch_size, max_memory=settings.max_memory, stream=settings.stream,
                           revision=row.revision)
    if settings.created_at is not None:
        fp = dataclasses.replace(fp, created_at=settings.created_at, verified_hash=None)
    return fp


def _scan(settings: WorkerSettings, shared: Shared, fp: Any) -> dict[str, Any]:
    from ..fingerprint import fingerprint_from_bytes
    from ..verdict import scan

    global _REFERENCES
    if _REFERENCES is None or _REFERENCES[0] != shared.references_id:  # parsed once per worker process and library
        _REFERENCES = (shared.references_id, [(ref, fingerprint_from_bytes(data, ref.name).with_name(ref.name))
                                              for ref, data in shared.references])
    return scan(fp, _REFERENCES[1], alpha=settings.alpha, **settings.test_kwargs).to_dict()


_REFERENCES: tuple[str, list[tuple[Any, Any]]] | None = None
