"""Exception types: every error a user can cause is a SeedPrintsError with a one-line message."""

from __future__ import annotations


class SeedPrintsError(Exception):
    """Base class; str(err) is a single line that names the problem and, where possible, the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ProbeError(SeedPrintsError):
    """A probe specification is invalid or does not fit the model."""


class ModelLoadError(SeedPrintsError):
    """A checkpoint cannot be loaded (missing, unknown format, unsupported architecture, offline Hub id)."""


class ExtractionError(SeedPrintsError):
    """Feature extraction failed, e.g. the model produced NaN or infinite activations."""


class Cancelled(SeedPrintsError):
    """The caller cancelled a long-running operation."""


class FingerprintFileError(SeedPrintsError):
    """A fingerprint file is missing, truncated, edited or not a fingerprint."""


class IncompatibleFingerprintsError(SeedPrintsError):
    """Two fingerprints cannot be compared (different probes, missing columns)."""


class LibraryError(SeedPrintsError):
    """A reference library operation failed (duplicate name, unknown reference, bad archive)."""


class UploadError(SeedPrintsError):
    """An uploaded file or archive was refused (size, type, unsafe paths)."""
