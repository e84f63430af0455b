"""Exception types: every error a user can cause is a SeedPrintsError with a one-line message."""

from __future__ import annotations

import zipfile
import zlib

#: What zipfile and the file system raise on damaged, exotic (encrypted, unknown compression, bad
#: names) or self-contradicting archives: every archive reader turns these into one line.
ZIP_ERRORS: tuple[type[BaseException], ...] = (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError,
                                               NotImplementedError, UnicodeDecodeError, ValueError, IndexError)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when it has none), at most ``limit`` characters."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]


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


class MissingDependencyError(SeedPrintsError, ImportError):
    """An optional package a feature needs is not installed (see :mod:`seedprints.optional`).

    ``name`` is the module that could not be imported, ``package`` the distribution to install and
    ``extra`` the seedprints extra that brings it (``pip install 'seedprints[<extra>]'``).
    """

    def __init__(self, message: str, *, name: str, package: str, extra: str) -> None:
        super().__init__(message)
        self.name, self.package, self.extra = name, package, extra
