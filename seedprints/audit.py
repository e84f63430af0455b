"""The pipeline in a few calls: fingerprint a model (with cache), compare two, audit a suspect against a library."""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import time
from typing import Any

import torch

from . import __version__, hub
from .cache import FingerprintCache
from .errors import IncompatibleFingerprintsError, LibraryError, ModelLoadError
from .basis import anchor_ids
from .extract import CancelToken, extract_checkpoint, extract_features, model_anchors
from .fingerprint import Fingerprint
from .loading import (LoadedModel, download_from_hub, hidden_size_of, import_model_code, resolve_source,
                      source_weights_hash, start_weights_hash, wrap_model)
from .progress import ProgressCallback
from .library import Library, Reference
from .probes import ProbeSpec
from . import optional
from .similarity import (SUSPECT_LINEAGE, Embedding, EvidenceMatrix, can_map, map_models, map_needs, not_mapped,
                         pairwise_evidence)
from .stats import SeedPrintsResult
from .verdict import DEFAULT_ALPHA, DEFAULT_TEST, ScanReport, run_test, scan

ModelLike = str | os.PathLike[str] | LoadedModel | torch.nn.Module


def fingerprint_model(
    model: ModelLike,
    spec: ProbeSpec,
    *,
    name: str | None = None,
    cache: FingerprintCache | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    batch_size: int | None = None,
    max_memory: str | int | None = None,
    stream: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    revision: str | None = None,
) -> Fingerprint:
    """Full fingerprint of a model given as a path, Hub id ('org/name[@revision]'), loaded model or in-memory module.

    With a cache, a checkpoint whose (weights hash, probe id) was seen before is neither
    loaded nor run again; a Hub id is first resolved to its commit, keyed as hub:org/name@sha.  A checkpoint
    larger than ``max_memory`` (default: 60% of available memory) is run layer by layer; ``stream`` True/False
    forces either path.
    """
    loaded: LoadedModel | None = None
    pinned: hub.HubRevision | None = None
    if isinstance(model, (str, os.PathLike)):
        src = resolve_source(model, config, revision)
        label = name or src.name
        if src.kind == "hub":  # pin the commit now: the cache is keyed by it and the load must use the same one
            pinned = hub.resolve(src.location)
            model, weights_hash = pinned.pinned, pinned.cache_key
        else:
            start_weights_hash(src)
            if cache is None:  # nothing to look up, so it will load: import its code while the weights hash
                import_model_code(src, trust_remote_code)
            weights_hash = source_weights_hash(src)
    elif revision:
        raise ModelLoadError("a revision applies only to a Hub id given by name, not to a model already loaded")
    else:
        loaded = model if isinstance(model, LoadedModel) else wrap_model(model, name or type(model).__name__)
        weights_hash, label = loaded.facts.weights_hash, name or loaded.name

    def cached() -> Fingerprint | None:
        hit = cache.get(weights_hash, spec.id) if cache is not None and weights_hash is not None else None
        if hit is not None and hit.anchors is None and anchor_ids(spec, hit.d) is not None:
            hit = None  # made before fingerprints kept anchor rows: extract again so the basis check can run
        if hit is not None and progress:
            progress("fingerprint found in the cache", spec.n_samples, spec.n_samples)
        return None if hit is None else hit.with_name(label)

    if (hit := cached()) is not None:
        return hit
    if loaded is None:
        if src.kind == "hub":  # not cached: fetch the pinned commit's files (or find them in the HF cache)
            src = download_from_hub(pinned, trust_remote_code)  # type: ignore[arg-type]  (resolved once, above)
        feats, facts, anchors = extract_checkpoint(src, spec, name=label, device=device, dtype=dtype,
                                          trust_remote_code=trust_remote_code, weights_hash=weights_hash,
                                          batch_size=batch_size, max_memory=max_memory, stream=stream,
                                          progress=progress, cancel=cancel)
        facts = dataclasses.replace(facts, source=os.fspath(model),  # type: ignore[arg-type]
                                    **(src.hub.facts() if src.hub is not None else {}))
    else:
        feats = extract_features(loaded, spec, batch_size=batch_size, progress=progress, cancel=cancel)
        facts, anchors = loaded.facts, model_anchors(loaded, spec)
    fp = Fingerprint.from_features(spec, feats, facts, anchors)
    if cache is not None:
        cache.put(fp)
    return fp


def compare(reference: Fingerprint, suspect: Fingerprint, test: str = "calibrated", **test_kwargs: Any) -> SeedPrintsResult:
    """Test two fingerprints made with the same probe: the calibrated test by default, or test='paper'."""
    if reference.spec.id != suspect.spec.id:
        raise IncompatibleFingerprintsError(
            f"{reference.name} was fingerprinted with probe {reference.spec.id} and {suspect.name} with "
            f"{suspect.spec.id}: fingerprints are comparable only when made with the same probe; re-fingerprint one"
        )
    if reference.d != suspect.d:
        raise IncompatibleFingerprintsError(
            f"{reference.name} has hidden size {reference.d} and {suspect.name} {suspect.d}: "
            "models of different width cannot share an init"
        )
    return run_test(reference, suspect, test, **test_kwargs)


def suspect_width(suspect: ModelLike, *, config: str | os.PathLike[str] | None = None,
                  trust_remote_code: bool = False) -> int | None:
    """The suspect's hidden size, known before any extraction: from its config.json or GGUF header, or from an
    in-memory model's config.  None when it cannot be told without downloading (a Hub id) or loading."""
    if isinstance(suspect, LoadedModel):
        return suspect.facts.hidden_size or None
    if isinstance(suspect, torch.nn.Module):
        size = getattr(getattr(suspect, "config", None), "hidden_size", None)
        return size if isinstance(size, int) and size > 0 else None
    src = resolve_source(suspect, config)
    return None if src.kind == "hub" else hidden_size_of(src, trust_remote_code)


def check_width(library: Library, spec: ProbeSpec, width: int | None, name: str = "the suspect") -> None:
    """Refuse at once a suspect no reference can be compared with: the library's references made with ``spec``
    all have another hidden size, and models of different width cannot share an init.

    ``width`` None (not known yet) passes; so does a library without references made with ``spec``.
    Raises IncompatibleFingerprintsError whose one line names the widths the library holds.
    """
    widths = sorted({r.hidden_size for r in library.list(spec.id)})
    if width is None or not widths or width in widths:
        return
    held = " or ".join(str(w) for w in widths)
    if width < max(widths):  # narrower: it could be width-pruned from a wider reference, which is not testable here
        raise IncompatibleFingerprintsError(
            f"no reference in this library is as wide as {name} (hidden size {width}; the references have {held}): "
            f"{name} could be a width-pruned copy of a wider one, which this test cannot check across widths; audit it "
            f"against a library of {width}-wide models")
    raise IncompatibleFingerprintsError(
        f"this library holds no model {name} could derive from: {name} has hidden size {width} and every reference "
        f"here has hidden size {held}; audit it against a library of {width}-wide models, or add some to this one")


def _map(matrix: EvidenceMatrix, alpha: float, draw_map: bool | None) -> Embedding:
    """The audit's map, or a note saying why it was left out (see audit_library's draw_map)."""
    if draw_map is False:
        return not_mapped(matrix.n, "not asked for (draw_map=False)")
    if draw_map is None and not can_map(matrix.n):
        need = map_needs(matrix.n)
        return not_mapped(matrix.n, f"{optional.missing(need, 'placing them')}; the evidence matrix holds "  # type: ignore[arg-type]
                                    "the same evidence")
    return map_models(matrix, alpha)


@dataclasses.dataclass(frozen=True)
class LibraryAudit:
    """Everything one audit of a suspect against a library produced, ready to show or save.

    report: the ranked scan and verdict; suspect: its full fingerprint; matrix and embedding:
    pairwise evidence among the suspect (index 0) and the strongest references, and their map
    (``embedding.drawn`` is False, and its note says why, when the map was left out); top: the
    test result of the first-ranked reference (None when nothing could be tested).
    """

    report: ScanReport
    suspect: Fingerprint
    matrix: EvidenceMatrix
    embedding: Embedding
    top: SeedPrintsResult | None
    library: str
    seconds: dict[str, float]
    references: tuple[Reference, ...] = ()

    def command(self, suspect_path: str = "SUSPECT") -> str:
        """The CLI command that re-runs this audit (the probe is the library's)."""
        test = self.report.test
        parts = ["seedprints", "scan", shlex.quote(suspect_path), "--library", shlex.quote(self.library),
                 "--test", str(test.get("test", "calibrated")), "--alpha", f"{self.report.alpha:g}"]
        if test.get("test") == "calibrated":
            if test.get("repairing") == "cyclic":  # D - 1 shifts: nothing to choose
                parts += ["--repairing", "cyclic"]
            else:
                parts += ["--permutations", str(test.get("n_permutations", 2000))]
            if test.get("basis_check") is False:
                parts.append("--no-basis-check")
        spec = self.suspect.spec
        if spec.kind == "token":  # name the probe, so the command holds even if the library changes
            parts += ["--n-samples", str(spec.n_samples), "--seq-len", str(spec.seq_len),
                      "--vocab-range", str(spec.vocab_range), "--probe-seed", str(spec.seed),
                      "--positions", spec.positions]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: verdict, ranked table, probe, model facts and hashes, matrix, map, timings."""
        m = self.matrix
        nan_to_none = lambda a: [[None if not math.isfinite(v) else float(v) for v in row] for row in a]  # noqa: E731
        return {
            "tool": "seedprints", "tool_version": __version__, "library": self.library,
            "probe": self.suspect.spec.to_dict(), "probe_id": self.suspect.spec.id,
            "suspect_model": self.suspect.model.to_dict(), "scan": self.report.to_dict(),
            "matrix": {"names": m.names, "lineages": m.lineages, "z": nan_to_none(m.z), "log10_p": nan_to_none(m.log10_p),
                       "rows": "reference", "columns": "suspect", "test": m.test},
            "map": {"drawn": self.embedding.drawn, "method": self.embedding.method, "note": self.embedding.note,
                    "coords": self.embedding.coords.tolist(), "links": [list(p) for p in self.embedding.links]},
            "references": [r.to_dict() for r in self.references],
            "seconds": self.seconds, "command": self.command(self.suspect.model.source or "SUSPECT"),
        }


def audit_library(
    suspect: ModelLike,
    library: Library,
    *,
    name: str | None = None,
    probe: ProbeSpec | None = None,
    test: str = DEFAULT_TEST,
    alpha: float = DEFAULT_ALPHA,
    cache: FingerprintCache | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str = "auto",
    trust_remote_code: bool = False,
    max_memory: str | int | None = None,
    stream: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    map_size: int = 30,
    revision: str | None = None,
    draw_map: bool | None = None,
) -> LibraryAudit:
    """Fingerprint the suspect with the library's probe, scan the library, and map the strongest references.

    map_size caps how many references (best ranked first) enter the evidence matrix and the map.  A suspect
    whose hidden size (read from its config or GGUF header) no reference of that probe has is refused before
    any extraction (:func:`check_width`).
    The map needs scikit-learn (extra ``app``): with ``draw_map=None`` it is drawn when that is
    installed and otherwise left out, the audit's ``embedding.note`` saying so; ``True`` asks for
    it (MissingDependencyError when it cannot be drawn); ``False`` leaves it out.  The verdict,
    the table and the evidence matrix never depend on it.
    """
    spec = probe or library.default_probe()
    if spec is None:
        raise LibraryError(f"the library at {library.root} is empty: add reference models first")
    if not revision:
        check_width(library, spec, suspect_width(suspect, config=config, trust_remote_code=trust_remote_code),
                    name or "the suspect")
    t0 = time.perf_counter()
    sus = fingerprint_model(suspect, spec, name=name, cache=cache, config=config, device=device,
                            trust_remote_code=trust_remote_code, max_memory=max_memory, stream=stream,
                            progress=progress, cancel=cancel, revision=revision)
    t1 = time.perf_counter()
    refs = list(library.items(spec.id))
    report = scan(sus, refs, alpha=alpha, test=test)  # type: ignore[arg-type]
    t2 = time.perf_counter()
    by_name = {ref.name: (ref, fp) for ref, fp in refs}
    ranked = [by_name[row.reference.name] for row in report.rows[:map_size]]
    items = [(sus.name, SUSPECT_LINEAGE, sus)] + [(ref.name, ref.lineage, fp) for ref, fp in ranked]
    # the scan already tested every reference against the suspect: reuse that column
    known = {(i + 1, 0): row.result for i, row in enumerate(report.rows[:map_size])}
    matrix = pairwise_evidence(items, test=test, known=known)
    embedding = _map(matrix, alpha, draw_map)
    t3 = time.perf_counter()
    top = report.rows[0].result if report.rows else None
    return LibraryAudit(report, sus, matrix, embedding, top, str(library.root),
                        {"fingerprint": t1 - t0, "scan": t2 - t1, "map": t3 - t2}, tuple(ref for ref, _ in refs))
