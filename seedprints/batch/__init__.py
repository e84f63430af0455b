"""Batch jobs over a manifest of models: build a reference library, or audit many suspects, locally or on Ray.

``read_manifest`` checks a manifest; ``build_library`` and ``audit_batch`` run it on an engine
(:class:`LocalEngine`: worker processes on this machine; :class:`RayEngine`: one Ray task per
row) and return a :class:`BatchResult`.  Only the driver writes; workers return plain data.
"""

from __future__ import annotations

from .engines import EngineError, LocalEngine, RayEngine
from .manifest import ManifestError, ManifestRow, read_manifest
from .runner import BatchResult, audit_batch, build_library, read_results
from .worker import WorkerSettings

__all__ = ["BatchResult", "EngineError", "LocalEngine", "ManifestError", "ManifestRow", "RayEngine", "WorkerSettings",
           "audit_batch", "build_library", "read_manifest", "read_results"]
