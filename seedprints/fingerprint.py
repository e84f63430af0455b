"""Fingerprint objects and their files: safetensors tensors plus JSON metadata, hash-verified, no pickle.

A file stores the probe spec, model facts, the mean of every feature column (which fixes
the identity dimensions for any k) and the values of the lowest-mean columns only: the
test never reads any other column in coset mode, so ``keep`` x D columns suffice for k <= keep.

Every-position fingerprints (probe ``positions="all"``) hold N x L rows, sample-major, and every
column (their calibrated test reads all D); their files are format version 2, which older
versions of SeedPrints refuse with a one-line error instead of misreading.  Last-position
fingerprints are still written as version 1.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .basis import anchor_ids
from .errors import FingerprintFileError, IncompatibleFingerprintsError, first_line
from .fileio import atomic_write_bytes
from .loading import ModelFacts
from .probes import ProbeSpec

FORMAT = "seedprints-fingerprint"
FORMAT_VERSION = 1
#: format version of files holding every-position fingerprints (N x L rows)
FORMAT_VERSION_ALL_POSITIONS = 2
#: format version of files that carry anchor rows (either read-out)
FORMAT_VERSION_ANCHORS = 3
READABLE_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_ALL_POSITIONS, FORMAT_VERSION_ANCHORS)
DEFAULT_KEEP = 0.2
_META_KEY = "seedprints"
MAX_FILE_BYTES = 2 << 30


@dataclasses.dataclass(frozen=True, eq=False)
class Fingerprint:
    """Probe spec + features (some or all columns) + model facts."""

    spec: ProbeSpec
    features: np.ndarray  # [rows, c] float32: rows = N, or N x L (sample-major) for every-position probes
    columns: np.ndarray  # [c] int64, ascending
    column_means: np.ndarray  # [D] float64, over the last position of every sample
    model: ModelFacts
    tool_version: str = __version__
    created_at: str = ""
    #: content hash checked when the fingerprint was read from a file (None for fingerprints made in memory)
    verified_hash: str | None = dataclasses.field(default=None, compare=False)
    #: [A, D] float16 input-embedding rows of the anchor tokens (:func:`seedprints.basis.anchor_ids`), or None
    anchors: np.ndarray | None = dataclasses.field(default=None, compare=False)
    anchor_ids: np.ndarray | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def from_features(cls, spec: ProbeSpec, features: np.ndarray, model: ModelFacts,
                      anchors: np.ndarray | None = None) -> Fingerprint:
        """Full fingerprint (all D columns) from a [rows, D] feature matrix (rows = ``spec.n_rows``), with the
        anchor rows [A, D] of :func:`seedprints.basis.anchor_ids` when the model's embedding was read."""
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] != spec.n_rows:
            raise FingerprintFileError(f"features of {model.name} have shape {feats.shape}, expected [{spec.n_rows}, D]")
        last = feats[spec.rows_per_sample - 1::spec.rows_per_sample]
        ids = None
        if anchors is not None:
            ids = anchor_ids(spec, feats.shape[1])
            anchors = np.ascontiguousarray(anchors, dtype=np.float16)
            if ids is None or anchors.shape != (len(ids), feats.shape[1]):
                raise FingerprintFileError(f"anchor rows of {model.name} have shape {anchors.shape}, "
                                           "not the probe's anchor tokens x D")
        return cls(spec, feats, np.arange(feats.shape[1], dtype=np.int64), last.astype(np.float64).mean(axis=0),
                   model, __version__, _now(), anchors=anchors, anchor_ids=ids)

    @property
    def name(self) -> str:
        """The model name recorded in the fingerprint."""
        return self.model.name

    @property
    def n(self) -> int:
        """Number of feature rows: the probe's N, or N x L for an every-position fingerprint."""
        return int(self.features.shape[0])

    @property
    def every_position(self) -> bool:
        """True when the fingerprint holds the hidden state at every probe position."""
        return self.spec.positions == "all"

    def last_positions(self) -> Fingerprint:
        """The last-position fingerprint contained in this one (itself when it is one already)."""
        if not self.every_position:
            return self
        step = self.spec.seq_len
        return dataclasses.replace(self, spec=self.spec.replace(positions="last"),
                                   features=np.ascontiguousarray(self.features[step - 1::step]), verified_hash=None)

    @property
    def d(self) -> int:
        """Hidden size D of the model."""
        return int(self.column_means.shape[0])

    @property
    def is_full(self) -> bool:
        """True when all D feature columns are stored."""
        return len(self.columns) == self.d

    def full_features(self) -> np.ndarray:
        """The [N, D] matrix; only for full fingerprints."""
        if not self.is_full:
            raise IncompatibleFingerprintsError(f"fingerprint of {self.name} stores {len(self.columns)} of {self.d} columns")
        return self.features

    def compact(self, keep: float | int = DEFAULT_KEEP) -> Fingerprint:
        """Keep only the columns with the lowest means: a ratio of D, an absolute count, or 'all'.

        Every-position fingerprints always keep every column: their calibrated test reads all D.
        """
        if keep == "all" or keep == 1.0 or self.every_position:
            return self
        from .stats import column_positions, identity_dims, resolve_k

        k = resolve_k(keep, self.d)
        if k >= len(self.columns):
            return self
        wanted = identity_dims(self.column_means, k)
        pos = column_positions(self.columns, wanted)
        if pos is None:
            raise IncompatibleFingerprintsError(f"fingerprint of {self.name} lacks columns needed for keep={keep}")
        return dataclasses.replace(self, features=np.ascontiguousarray(self.features[:, pos]), columns=wanted,
                                   verified_hash=None)

    def with_name(self, name: str) -> Fingerprint:
        """Same fingerprint under another model name."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, name=name), verified_hash=None)

    # ------------------------------------------------------------------ files
    @property
    def format_version(self) -> int:
        """The file format version this fingerprint is written as (3 with anchors, else 2 or 1 by read-out)."""
        if self.anchors is not None:
            return FORMAT_VERSION_ANCHORS
        return FORMAT_VERSION_ALL_POSITIONS if self.every_position else FORMAT_VERSION

    def metadata(self) -> dict[str, Any]:
        """JSON metadata stored in the file header (without the content hash)."""
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "probe": self.spec.to_dict(),
            "probe_id": self.spec.id,
            "model": self.model.to_dict(),
            "tool_version": self.tool_version,
            "created_at": self.created_at,
            "n_samples": self.n,
            "hidden_size": self.d,
            "n_columns": int(len(self.columns)),
        }

    def tensors(self) -> dict[str, np.ndarray]:
        """The arrays stored in the file."""
        out = {
            "features": np.ascontiguousarray(self.features, dtype=np.float32),
            "columns": np.ascontiguousarray(self.columns, dtype=np.int64),
            "column_means": np.ascontiguousarray(self.column_means, dtype=np.float64),
        }
        if self.anchors is not None:
            out["anchors"] = np.ascontiguousarray(self.anchors, dtype=np.float16)
            out["anchor_ids"] = np.ascontiguousarray(self.anchor_ids, dtype=np.int64)
        return out

    @property
    def content_hash(self) -> str:
        """SHA-256 over the canonical metadata and every tensor's name, dtype, shape and bytes."""
        return content_hash(self.metadata(), self.tensors())

    def to_bytes(self) -> bytes:
        """The .safetensors fingerprint file's bytes (what :func:`fingerprint_from_bytes` reads back)."""
        from safetensors.numpy import save

        meta = self.metadata()
        tensors = self.tensors()
        meta["content_sha256"] = content_hash(meta, tensors)
        return save(tensors, metadata={_META_KEY: json.dumps(meta, sort_keys=True)})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file, fsync, rename) as a .safetensors fingerprint file."""
        return atomic_write_bytes(Path(path), self.to_bytes())


def content_hash(meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> str:
    """Hash of a fingerprint's metadata (minus the hash itself) and tensors."""
    h = hashlib.sha256()
    clean = {k: v for k, v in meta.items() if k != "content_sha256"}
    h.update(json.dumps(clean, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Read and verify a fingerprint file; a truncated, edited or foreign file gets a one-line error."""
    p = Path(path)
    if not p.is_file():
        raise FingerprintFileError(f"no such fingerprint file: {os.fspath(path)!r}")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise FingerprintFileError(f"{p.name} is {size} bytes, larger than any fingerprint: not a fingerprint file")
    return fingerprint_from_bytes(p.read_bytes(), p.name)


def fingerprint_from_bytes(data: bytes, label: str = "fingerprint") -> Fingerprint:
    """Parse and verify fingerprint bytes (the contents of a .safetensors fingerprint file)."""
    from safetensors.numpy import load

    bad = f"{label} is not a valid SeedPrints fingerprint"
    if len(data) < 8:
        raise FingerprintFileError(f"{bad}: the file is empty or truncated; re-create it with 'seedprints fingerprint'")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or 8 + header_len > len(data):
        raise FingerprintFileError(f"{bad}: the file is truncated or not a safetensors file; re-create it")
    try:
        header = json.loads(data[8:8 + header_len])
        meta = json.loads(header["__metadata__"][_META_KEY])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise FingerprintFileError(f"{bad}: its header carries no SeedPrints metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FingerprintFileError(f"{bad}: unknown format {meta.get('format') if isinstance(meta, dict) else None!r}")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise FingerprintFileError(f"{label} uses fingerprint format version {meta.get('format_version')!r}; "
                                   f"this seedprints reads versions {', '.join(map(str, READABLE_VERSIONS))}: "
                                   "upgrade or re-create it")
    try:
        tensors = load(data)
    except Exception as exc:
        raise FingerprintFileError(f"{bad}: the file is truncated or corrupt ({first_line(exc, 120)})") from None
    needed = {"features", "columns", "column_means"}
    if meta["format_version"] == FORMAT_VERSION_ANCHORS:
        needed |= {"anchors", "anchor_ids"}
    if set(tensors) != needed:
        raise FingerprintFileError(f"{bad}: expected tensors {sorted(needed)}, found {sorted(tensors)}")
    if content_hash(meta, tensors) != meta.get("content_sha256"):
        raise FingerprintFileError(f"{label} was modified or corrupted (content hash mismatch): re-create it")
    try:
        spec = ProbeSpec.from_dict(meta["probe"])
        facts = ModelFacts.from_dict(meta["model"])
    except Exception as exc:
        raise FingerprintFileError(f"{bad}: {exc}") from None
    feats, cols, means = tensors["features"], tensors["columns"], tensors["column_means"]
    if feats.ndim != 2 or cols.ndim != 1 or means.ndim != 1 or feats.shape[1] != len(cols) \
            or feats.shape[0] != spec.n_rows or (len(cols) and (cols.min() < 0 or cols.max() >= len(means))) \
            or np.any(np.diff(cols) <= 0) or spec.id != meta.get("probe_id") \
            or (meta["format_version"] != FORMAT_VERSION_ANCHORS
                and (meta["format_version"] == FORMAT_VERSION_ALL_POSITIONS) != (spec.positions == "all")) \
            or (spec.positions == "all" and len(cols) != len(means)) \
            or ("anchors" in tensors and not _anchors_consistent(spec, len(means), tensors)):
        raise FingerprintFileError(f"{bad}: its tensors are inconsistent with its metadata")
    return Fingerprint(spec, feats, cols, means, facts, str(meta.get("tool_version", "")), str(meta.get("created_at", "")),
                       verified_hash=str(meta["content_sha256"]), anchors=tensors.get("anchors"),
                       anchor_ids=tensors.get("anchor_ids"))


def _anchors_consistent(spec: ProbeSpec, d: int, tensors: dict[str, np.ndarray]) -> bool:
    """Anchor rows are float16 [A, D] for exactly the probe's anchor token ids."""
    ids = anchor_ids(spec, d)
    a, got = tensors["anchors"], tensors["anchor_ids"]
    return (ids is not None and a.dtype == np.float16 and a.shape == (len(ids), d)
            and got.shape == ids.shape and bool(np.all(got == ids)))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
