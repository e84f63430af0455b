"""Fingerprint cache keyed by (weights hash, probe id): a second audit of a checkpoint skips extraction."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import FingerprintFileError
from .fingerprint import Fingerprint, load_fingerprint


class FingerprintCache:
    """A folder of full fingerprints; ``hits`` and ``misses`` count lookups."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, weights_hash: str, probe_id: str) -> Path:
        """File that holds the entry for this key."""
        key = hashlib.sha256(f"{weights_hash}|{probe_id}".encode()).hexdigest()[:32]
        return self.root / f"{key}.safetensors"

    def get(self, weights_hash: str, probe_id: str) -> Fingerprint | None:
        """The cached fingerprint, or None (a damaged entry is discarded and counts as a miss)."""
        p = self.path(weights_hash, probe_id)
        if p.is_file():
            try:
                fp = load_fingerprint(p)
            except FingerprintFileError:
                p.unlink(missing_ok=True)
            else:
                if fp.model.weights_hash == weights_hash and fp.spec.id == probe_id:
                    self.hits += 1
                    return fp
        self.misses += 1
        return None

    def put(self, fp: Fingerprint) -> Path:
        """Store a fingerprint (atomically) under its model's weights hash and its probe id."""
        return fp.save(self.path(fp.model.weights_hash, fp.spec.id))
