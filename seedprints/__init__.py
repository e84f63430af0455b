"""SeedPrints: decide whether two LLM checkpoints share their training seed, from probe fingerprints."""

__version__ = "0.1.0"

from .audit import LibraryAudit, audit_library, compare, fingerprint_model  # noqa: E402
from .cache import FingerprintCache  # noqa: E402
from .errors import SeedPrintsError  # noqa: E402
from .fingerprint import Fingerprint, load_fingerprint  # noqa: E402
from .library import Library, Reference  # noqa: E402
from .loading import load_model  # noqa: E402
from .probes import PRESETS, ProbeSpec, preset  # noqa: E402
from .stats import SeedPrintsResult, calibrated_test, seedprints_test  # noqa: E402
from .verdict import ScanReport, scan  # noqa: E402

__all__ = [
    "PRESETS", "Fingerprint", "FingerprintCache", "Library", "LibraryAudit", "Reference", "ScanReport",
    "SeedPrintsError", "SeedPrintsResult", "ProbeSpec", "audit_library", "calibrated_test", "compare",
    "fingerprint_model", "load_fingerprint", "load_model", "preset", "scan", "seedprints_test",
]
