"""The driver of a batch: decides which rows still need work, runs them on an engine, and alone writes results.

``build_library`` adds each row's fingerprint to the library as it arrives (file written
atomically, then its index row in one transaction), so a driver killed at any point leaves a
consistent library and a rerun skips what is already there.  ``audit_batch`` appends one
fsynced JSON line per row to its results file; a rerun keeps the finished verdicts, drops a
torn last line and the failed rows, and runs the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ..errors import LibraryError, SeedPrintsError, first_line
from ..fileio import atomic_write_bytes
from ..fingerprint import fingerprint_from_bytes
from ..library import Library
from ..probes import DEFAULT_PRESET, ProbeSpec, preset
from ..progress import ProgressCallback
from .manifest import ManifestRow, read_manifest
from .worker import DONE, FAILED, SKIPPED, Shared, WorkerSettings


class Engine(Protocol):
    """What the driver needs of an engine."""

    name: str
    running: int

    def describe(self) -> str: ...

    def run(self, settings: WorkerSettings, shared: Shared, rows: list[ManifestRow]) -> Iterable[dict[str, Any]]: ...


@dataclasses.dataclass
class BatchResult:
    """Outcome of a batch: one record per manifest row (done, skipped or failed) and the counts."""

    command: str
    engine: str
    probe_id: str
    records: list[dict[str, Any]]
    seconds: float

    def count(self, status: str) -> int:
        """Rows with this status."""
        return sum(r["status"] == status for r in self.records)

    @property
    def done(self) -> int:
        """Rows finished by this run."""
        return self.count(DONE)

    @property
    def skipped(self) -> int:
        """Rows already finished before this run (or duplicates of one)."""
        return self.count(SKIPPED)

    @property
    def failed(self) -> int:
        """Rows that failed, each with its one-line error."""
        return self.count(FAILED)

    def summary(self) -> str:
        """One line of counts, then one line per failed row."""
        lines = [f"{self.command}: {self.done} done, {self.skipped} skipped, {self.failed} failed of "
                 f"{len(self.records)} rows in {_duration(self.seconds)} ({self.engine}, probe {self.probe_id})"]
        lines += [f"  failed: line {r['line']} {r['name']}: {r['error']}" for r in self.records if r["status"] == FAILED]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"command": self.command, "engine": self.engine, "probe_id": self.probe_id, "done": self.done,
                "skipped": self.skipped, "failed": self.failed, "seconds": round(self.seconds, 3),
                "rows": self.records}


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def fixed_timestamp() -> str | None:
    """The fingerprint timestamp SOURCE_DATE_EPOCH asks for (reproducible files), else None (the current time)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return None
    try:
        return _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc).isoformat()
    except (ValueError, OverflowError, OSError):
        raise SeedPrintsError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {epoch!r}") from None


class _Progress:
    """Rows done / total on the one progress contract; the stage names rows running, failures and time left."""

    def __init__(self, progress: ProgressCallback | None, engine: Engine, total: int, finished: int) -> None:
        self.progress, self.engine, self.total = progress, engine, total
        self.finished, self.failed, self.ran = finished, 0, 0  # ran: rows finished by the engine in this run
        self.t0 = time.perf_counter()

    def row(self, status: str) -> None:
        self.finished += 1
        self.failed += status == FAILED
        self.ran += 1
        self.show()

    def show(self) -> None:
        if self.progress is None:
            return
        left = self.total - self.finished
        parts = [f"{self.engine.running} running"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.ran and left:
            eta = (time.perf_counter() - self.t0) / self.ran * left
            parts.append(f"~{_duration(eta)} left")
        self.progress(", ".join(parts), self.finished, self.total)


def _rows(manifest: str | os.PathLike[str] | list[ManifestRow]) -> list[ManifestRow]:
    return list(manifest) if isinstance(manifest, list) else read_manifest(manifest)


def _public(out: dict[str, Any]) -> dict[str, Any]:
    """An outcome without its payload (fingerprint bytes, scan)."""
    return {k: v for k, v in out.items() if k not in ("fingerprint", "scan")}


def _settings(mode: str, spec: ProbeSpec, options: dict[str, Any]) -> WorkerSettings:
    return WorkerSettings(mode=mode, spec=spec, created_at=fixed_timestamp(), **options)


# ---------------------------------------------------------------------------- library build
def build_library(
    manifest: str | os.PathLike[str] | list[ManifestRow],
    library: Library | str | os.PathLike[str],
    engine: Engine,
    *,
    spec: ProbeSpec | None = None,
    progress: ProgressCallback | None = None,
    log: str | os.PathLike[str] | None = None,
    **options: Any,
) -> BatchResult:
    """Fingerprint every manifest row with the library's probe (``spec`` for an empty one) and add it.

    Rows whose weights (content hash, or Hub repo + commit) the library already holds with this
    probe are skipped.  ``options`` are :class:`WorkerSettings` fields (device, threads, keep, ...).
    ``log``: a JSON Lines file that each row's outcome is appended to.
    """
    t0 = time.perf_counter()
    rows = _rows(manifest)
    lib = library if isinstance(library, Library) else Library(library)
    spec = spec or lib.default_probe() or preset(DEFAULT_PRESET)
    settings = _settings("library", spec, options)
    refs = lib.list()
    shared = Shared(known_hashes={r.weights_hash: r.name for r in refs if r.probe_id == spec.id},
                    taken_names={r.name: r.weights_hash for r in refs})
    by_line = {r.line: r for r in rows}
    records: list[dict[str, Any]] = []
    shown = _Progress(progress, engine, len(rows), 0)
    shown.show()
    writer = _Appender(Path(log)) if log is not None else None
    with contextlib.closing(iter(engine.run(settings, shared, rows))) as outcomes:  # closed: workers stop on errors
        for out in outcomes:
            row = by_line[out["line"]]
            if out["status"] == DONE:
                out = _add(lib, row, out, spec, settings)
            record = _public(out)
            records.append(record)
            if writer is not None:
                writer.append(record)
            shown.row(record["status"])
    records.sort(key=lambda r: r["line"])
    return BatchResult("library build", engine.describe(), spec.id, records, time.perf_counter() - t0)


def _add(lib: Library, row: ManifestRow, out: dict[str, Any], spec: ProbeSpec,
         settings: WorkerSettings) -> dict[str, Any]:
    """Add one worker's fingerprint to the library (the only writer); a duplicate of an earlier row is skipped."""
    out = dict(out)
    try:
        fp = fingerprint_from_bytes(out["fingerprint"], row.name)
        same = [r for r in lib.list(spec.id) if r.weights_hash == fp.model.weights_hash]
        if same:
            out.update(status=SKIPPED, reason=f"already in the library as {same[0].name!r} (same weights and probe)")
            return out
        ref = lib.add(fp, name=row.name, family=row.family, seed=row.seed, notes=row.notes, keep=settings.keep)
        out["content_sha256"] = ref.content_sha256
    except (SeedPrintsError, OSError) as exc:
        out.update(status=FAILED, error=first_line(exc, 300))
    return out


# ---------------------------------------------------------------------------- audit batch
class _Appender:
    """A JSON Lines file written one fsynced line at a time (a crash loses at most the line being written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete records of a results file (a torn last line, from a killed run, is left out)."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("batch"), dict):
            out.append(rec)
    return out


def _library_payload(lib: Library, spec: ProbeSpec) -> tuple[tuple[Any, bytes], ...]:
    items = []
    for ref in lib.list(spec.id):
        lib.load(ref)  # verifies the file against the index: a damaged reference stops the batch before it starts
        items.append((ref, (lib.root / ref.file).read_bytes()))
    if not items:
        raise LibraryError(f"the library at {lib.root} has no reference made with probe {spec.id}: build it first")
    return tuple(items)


def audit_batch(
    manifest: str | os.PathLike[str] | list[ManifestRow],
    library: Library | str | os.PathLike[str],
    output: str | os.PathLike[str],
    engine: Engine,
    *,
    spec: ProbeSpec | None = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> BatchResult:
    """Scan every manifest row against the library; one record per row in ``output`` (JSON Lines), resumable.

    Each record is the JSON of ``seedprints scan --json`` plus a ``batch`` object (row, source,
    status, error, weights hash, worker, seconds, and ``library``, which names the references the
    verdict was made against); a failed row has ``verdict`` null.  A rerun keeps the verdicts made
    against the same references and probe and runs every other row.
    """
    t0 = time.perf_counter()
    rows = _rows(manifest)
    lib = library if isinstance(library, Library) else Library(library, create=False)
    spec = spec or lib.default_probe()
    if spec is None:
        raise LibraryError(f"the library at {lib.root} is empty: add reference models first")
    settings = _settings("audit", spec, options)
    payload = _library_payload(lib, spec)
    ident = hashlib.sha256("|".join(sorted(r.content_sha256 for r, _ in payload)).encode()).hexdigest()[:16]
    shared = Shared(references=payload, references_id=ident)
    out_path = Path(output)
    # keep the verdicts made against this very library and probe; failed rows, torn lines and verdicts against
    # another state of the library are dropped (rewritten atomically) and run again
    kept = [r for r in read_results(out_path) if r["batch"].get("status") == DONE
            and r["batch"].get("library") == ident and r.get("probe_id") == spec.id]
    atomic_write_bytes(out_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept).encode())
    finished = {(r["batch"].get("name"), r["batch"].get("source")) for r in kept}
    todo = [r for r in rows if (r.name, r.source) not in finished]
    records = [{"line": r.line, "name": r.name, "source": r.source, "status": SKIPPED, "error": None,
                "reason": f"its verdict is already in {out_path.name}"} for r in rows if r not in todo]
    writer = _Appender(out_path)
    shown = _Progress(progress, engine, len(rows), len(records))
    shown.show()
    with contextlib.closing(iter(engine.run(settings, shared, todo))) as outcomes:
        for out in outcomes:
            batch = {**{k: out.get(k) for k in ("line", "name", "source", "status", "error", "reason", "weights_hash",
                                                "worker", "seconds")}, "library": ident}
            scan_json = out.get("scan") or {"suspect": out["name"], "probe_id": spec.id, "verdict": None}
            writer.append({**scan_json, "batch": batch})
            records.append(batch)
            shown.row(batch["status"])
    records.sort(key=lambda r: r["line"])
    return BatchResult("audit-batch", engine.describe(), spec.id, records, time.perf_counter() - t0)
