"""The pipeline in a few calls: fingerprint a model (with cache), compare two, scan a library."""

from __future__ import annotations

import os
from typing import Any

import torch

from .cache import FingerprintCache
from .errors import IncompatibleFingerprintsError
from .extract import CancelToken, ProgressCallback, extract_features
from .fingerprint import Fingerprint
from .loading import LoadedModel, load_model, resolve_source, source_weights_hash, wrap_model
from .probes import ProbeSpec
from .stats import SeedPrintsResult
from .verdict import run_test

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
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Fingerprint:
    """Full fingerprint of a model given as a path, Hub id, loaded model or in-memory module.

    With a cache, a checkpoint whose (weights hash, probe id) was seen before is neither
    loaded nor run again.
    """
    loaded: LoadedModel | None = None
    if isinstance(model, (str, os.PathLike)):
        src = resolve_source(model, config)
        weights_hash = source_weights_hash(src)  # None for a Hub id until it is downloaded
        label = name or src.name
    else:
        loaded = model if isinstance(model, LoadedModel) else wrap_model(model, name or type(model).__name__)
        weights_hash, label = loaded.facts.weights_hash, name or loaded.name

    def cached() -> Fingerprint | None:
        hit = cache.get(weights_hash, spec.id) if cache is not None and weights_hash is not None else None
        if hit is not None and progress:
            progress(spec.n_samples, spec.n_samples)
        return None if hit is None else hit.with_name(label)

    if (hit := cached()) is not None:
        return hit
    if loaded is None:
        loaded = load_model(model, config=config, device=device, dtype=dtype,  # type: ignore[arg-type]
                            trust_remote_code=trust_remote_code, name=label)
        if weights_hash is None:
            weights_hash = loaded.facts.weights_hash
            if (hit := cached()) is not None:
                return hit
    feats = extract_features(loaded, spec, batch_size=batch_size, progress=progress, cancel=cancel)
    fp = Fingerprint.from_features(spec, feats, loaded.facts)
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
