"""Reference library: a folder of fingerprint files indexed by SQLite (WAL, transactions).

Layout: ``index.sqlite`` and ``fingerprints/<id>.safetensors``.  A fingerprint file is
written (atomically) before its index row is committed, so an interrupted add leaves the
library as it was plus at most one unreferenced file, which is never read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import stat
import uuid
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ZIP_ERRORS, FingerprintFileError, LibraryError, SeedPrintsError, first_line
from .fileio import atomic_write_bytes
from .fingerprint import Fingerprint, fingerprint_from_bytes, load_fingerprint
from .probes import ProbeSpec
from .verdict import lineage_label

ARCHIVE_FORMAT = "seedprints-library"
ARCHIVE_VERSION = 1
MAX_ARCHIVE_MEMBERS = 10_000
MAX_MEMBER_BYTES = 512 << 20
MAX_ARCHIVE_BYTES = 8 << 30
MAX_COMPRESSION_RATIO = 200


_MEMBER = re.compile(r"^fingerprints/[0-9a-f]{16,32}\.safetensors$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    family TEXT NOT NULL DEFAULT '',
    seed INTEGER,
    notes TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL,
    hidden_size INTEGER NOT NULL,
    probe_id TEXT NOT NULL,
    weights_hash TEXT NOT NULL,
    file TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refs_probe ON refs(probe_id);
CREATE TABLE IF NOT EXISTS probes (
    probe_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
"""
_COLUMNS = ("id", "name", "family", "seed", "notes", "architecture", "hidden_size", "probe_id", "weights_hash",
            "file", "content_sha256", "created_at")


@dataclasses.dataclass(frozen=True)
class Reference:
    """One index row: a model with known lineage and where its fingerprint lives."""

    id: str
    name: str
    family: str
    seed: int | None
    notes: str
    architecture: str
    hidden_size: int
    probe_id: str
    weights_hash: str
    file: str
    content_sha256: str
    created_at: str

    @property
    def lineage(self) -> str:
        """'family seed 42' style label for people."""
        return lineage_label(self.family, self.seed)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return dataclasses.asdict(self)


def _validate_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200 or any(c in name for c in "\n\r\t\0"):
        raise LibraryError(f"invalid reference name {name!r}: use 1-200 printable characters")
    return name


def _validate_seed(seed: Any) -> int | None:
    if seed is None or seed == "":
        return None
    try:
        value = int(seed)
    except (TypeError, ValueError):
        raise LibraryError(f"seed must be an integer, got {seed!r}") from None
    if isinstance(seed, float) and not float(seed).is_integer():
        raise LibraryError(f"seed must be an integer, got {seed!r}")
    if not -(2**63) <= value < 2**63:
        raise LibraryError(f"seed {value} does not fit in 64 bits")
    return value


class Library:
    """A reference library folder; every method opens its own SQLite connection (thread-safe)."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(root).expanduser()
        if not (self.root / "index.sqlite").is_file():
            if not create:
                raise LibraryError(f"no reference library at {os.fspath(root)!r}: create it with 'seedprints library add'")
            if self.root.exists() and not self.root.is_dir():
                raise LibraryError(f"{os.fspath(root)!r} is a file, not a library folder")
        (self.root / "fingerprints").mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @property
    def index_path(self) -> Path:
        """Path of the SQLite index."""
        return self.root / "index.sqlite"

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.index_path, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"library index {self.index_path} is unreadable ({exc}): restore it from an export") from None
        return conn

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Reference]:
        conn = self._connect()
        try:
            return [Reference(*row) for row in conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM refs {sql}", args)]
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"library index {self.index_path} is damaged ({exc}): restore it from an export") from None
        finally:
            conn.close()

    # ------------------------------------------------------------------ queries
    def list(self, probe_id: str | None = None) -> list[Reference]:
        """All references (optionally only those made with one probe), ordered by family, seed, name."""
        if probe_id is None:
            return self._rows("ORDER BY family, seed, name")
        return self._rows("WHERE probe_id = ? ORDER BY family, seed, name", (probe_id,))

    def probes(self) -> list[tuple[ProbeSpec, int]]:
        """Every probe the references were fingerprinted with and how many use it, most used first.

        Specs come from the index; a library written before the index kept them reads one
        fingerprint per probe once and records its spec.
        """
        counts = Counter(r.probe_id for r in self.list())
        specs = self._probe_specs()
        out = []
        for probe_id, count in counts.most_common():
            spec = specs.get(probe_id)
            if spec is None:
                spec = self.load(next(r for r in self.list(probe_id))).spec
                self._record_probes({probe_id: spec})
            out.append((spec, count))
        return out

    def _probe_specs(self) -> dict[str, ProbeSpec]:
        conn = self._connect()
        try:
            rows = conn.execute("SELECT probe_id, spec FROM probes").fetchall()
        except sqlite3.DatabaseError as exc:
            raise LibraryError(f"library index {self.index_path} is damaged ({exc}): restore it from an export") from None
        finally:
            conn.close()
        out = {}
        for probe_id, text in rows:
            try:
                spec = ProbeSpec.from_dict(json.loads(text))
            except (SeedPrintsError, ValueError, TypeError):
                continue  # an unreadable row is ignored: the spec is read from a fingerprint instead
            if spec.id == probe_id:
                out[probe_id] = spec
        return out

    def _record_probes(self, specs: dict[str, ProbeSpec], conn: sqlite3.Connection | None = None) -> None:
        rows = [(pid, json.dumps(spec.to_dict(), sort_keys=True)) for pid, spec in specs.items()]
        if conn is not None:
            conn.executemany("INSERT OR IGNORE INTO probes (probe_id, spec) VALUES (?, ?)", rows)
            return
        own = self._connect()
        try:
            with own:
                own.executemany("INSERT OR IGNORE INTO probes (probe_id, spec) VALUES (?, ?)", rows)
        finally:
            own.close()

    def default_probe(self) -> ProbeSpec | None:
        """The probe most references share (None for an empty library): suspects are fingerprinted with it."""
        probes = self.probes()
        return probes[0][0] if probes else None

    def __len__(self) -> int:
        return len(self.list())

    def get(self, name: str) -> Reference:
        """The reference called ``name``."""
        rows = self._rows("WHERE name = ?", (name,))
        if not rows:
            raise LibraryError(f"no reference named {name!r} in {self.root}: 'seedprints library list' shows the names")
        return rows[0]

    def load(self, ref: Reference | str) -> Fingerprint:
        """The verified fingerprint of a reference."""
        ref = self.get(ref) if isinstance(ref, str) else ref
        try:
            fp = load_fingerprint(self.root / ref.file)
        except FingerprintFileError as exc:
            raise LibraryError(f"reference {ref.name!r}: {exc}") from None
        if fp.verified_hash != ref.content_sha256:
            raise LibraryError(f"reference {ref.name!r}: its file does not match the index (hash differs); "
                               "remove and re-add it")
        return fp.with_name(ref.name)

    def items(self, probe_id: str | None = None) -> Iterator[tuple[Reference, Fingerprint]]:
        """(reference, fingerprint) pairs, loading one fingerprint at a time."""
        for ref in self.list(probe_id):
            yield ref, self.load(ref)

    # ------------------------------------------------------------------ changes
    def add(self, fp: Fingerprint, *, name: str | None = None, family: str = "", seed: int | None = None,
            notes: str = "", keep: float | int | str = 0.2) -> Reference:
        """Store a fingerprint (compacted to ``keep``) under a unique name with its known lineage."""
        name = _validate_name(name or fp.name)
        seed = _validate_seed(seed)
        if self._rows("WHERE name = ?", (name,)):
            raise LibraryError(f"the library already has a reference named {name!r}: choose another name or remove it")
        stored = fp.compact(keep) if keep != "all" else fp
        ref_id = uuid.uuid4().hex[:16]
        rel = f"fingerprints/{ref_id}.safetensors"
        stored.save(self.root / rel)
        ref = Reference(ref_id, name, family or "", seed, notes or "", fp.model.architecture, fp.d, fp.spec.id,
                        fp.model.weights_hash, rel, stored.content_hash, stored.created_at)
        try:
            self._insert([ref], {fp.spec.id: fp.spec})
        except BaseException:
            (self.root / rel).unlink(missing_ok=True)
            raise
        return ref

    def _insert(self, refs: list[Reference], specs: dict[str, ProbeSpec]) -> None:
        """Index new references and their probes' specs in one transaction."""
        conn = self._connect()
        try:
            with conn:
                conn.executemany(f"INSERT INTO refs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                                 [dataclasses.astuple(r) for r in refs])
                self._record_probes(specs, conn)
        except sqlite3.IntegrityError as exc:
            raise LibraryError(f"cannot add to the library: {exc} (names must be unique)") from None
        finally:
            conn.close()

    def remove(self, name: str) -> Reference:
        """Delete a reference: the index row first (committed), then its file."""
        ref = self.get(name)
        conn = self._connect()
        try:
            with conn:
                conn.execute("DELETE FROM refs WHERE id = ?", (ref.id,))
        finally:
            conn.close()
        (self.root / ref.file).unlink(missing_ok=True)
        return ref

    # ------------------------------------------------------------------ archives
    def export_zip(self, path: str | os.PathLike[str]) -> Path:
        """Write every reference (manifest.json + fingerprint files) to a zip, atomically."""
        import io

        refs = self.list()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            manifest = {"format": ARCHIVE_FORMAT, "version": ARCHIVE_VERSION,
                        "references": [r.to_dict() for r in refs]}
            zf.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
            for r in refs:
                self.load(r)  # never export a damaged file
                zf.write(self.root / r.file, r.file)
        return atomic_write_bytes(Path(path), buf.getvalue())

    def import_zip(self, path: str | os.PathLike[str], *, on_conflict: str = "error") -> list[Reference]:
        """Validate a library zip completely, then add all its references in one transaction.

        on_conflict: 'error' (nothing is imported if a name exists) or 'skip' (existing names kept).
        """
        if on_conflict not in ("error", "skip"):
            raise LibraryError(f"on_conflict must be 'error' or 'skip', got {on_conflict!r}")
        entries = read_library_archive(path)
        existing = {r.name for r in self.list()}
        clash = [e[0].name for e in entries if e[0].name in existing]
        if clash and on_conflict == "error":
            raise LibraryError(f"the library already has references named {clash[:3]}: "
                               "remove them or import with on_conflict='skip'")
        new: list[Reference] = []
        written: list[Path] = []
        specs: dict[str, ProbeSpec] = {}
        try:
            for ref, data in entries:
                if ref.name in existing:
                    continue
                if ref.probe_id not in specs:
                    specs[ref.probe_id] = fingerprint_from_bytes(data, ref.name).spec
                ref_id = uuid.uuid4().hex[:16]
                rel = f"fingerprints/{ref_id}.safetensors"
                written.append(atomic_write_bytes(self.root / rel, data))
                new.append(dataclasses.replace(ref, id=ref_id, file=rel))
                existing.add(ref.name)
            self._insert(new, specs)
        except BaseException:
            for p in written:
                p.unlink(missing_ok=True)
            raise
        return new


def read_library_archive(path: str | os.PathLike[str]) -> list[tuple[Reference, bytes]]:
    """Open and fully validate a library zip: safe member names, sizes, manifest, every file's hash."""
    p = Path(path)
    if not p.is_file():
        raise LibraryError(f"no such library archive: {os.fspath(path)!r}")
    try:
        zf = zipfile.ZipFile(p)
    except ZIP_ERRORS as exc:
        raise LibraryError(f"{p.name} is not a valid zip archive ({first_line(exc)})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARCHIVE_MEMBERS:
            raise LibraryError(f"{p.name} has {len(infos)} entries, more than the limit of {MAX_ARCHIVE_MEMBERS}")
        total = 0
        names = set()
        for info in infos:
            name = info.filename
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise LibraryError(f"{p.name} contains a symbolic link ({name!r}): refused")
            if name != "manifest.json" and not _MEMBER.match(name):
                raise LibraryError(f"{p.name} contains an unexpected path {name!r} (only manifest.json and "
                                   "fingerprints/*.safetensors are allowed): refused")
            if info.file_size > MAX_MEMBER_BYTES or (info.compress_size and
                                                     info.file_size / info.compress_size > MAX_COMPRESSION_RATIO
                                                     and info.file_size > (1 << 20)):
                raise LibraryError(f"{p.name}: entry {name!r} would expand to {info.file_size} bytes "
                                   "(decompression bomb or oversized file): refused")
            total += info.file_size
            names.add(name)
        if total > MAX_ARCHIVE_BYTES:
            raise LibraryError(f"{p.name} would expand to {total} bytes, over the {MAX_ARCHIVE_BYTES} limit: refused")
        if "manifest.json" not in names:
            raise LibraryError(f"{p.name} has no manifest.json: it is not a SeedPrints library export")
        not_manifest = LibraryError(f"{p.name}: manifest.json is not a SeedPrints library manifest")
        try:
            manifest = json.loads(_read_member(zf, "manifest.json"))
        except (ValueError, RecursionError):
            raise not_manifest from None
        refs_raw = manifest.get("references") if isinstance(manifest, dict) else None
        if not isinstance(refs_raw, list) or manifest.get("format") != ARCHIVE_FORMAT:
            raise not_manifest
        if manifest.get("version") != ARCHIVE_VERSION:
            raise LibraryError(f"{p.name} is library archive version {manifest.get('version')!r}; "
                               f"this seedprints reads version {ARCHIVE_VERSION}")
        out: list[tuple[Reference, bytes]] = []
        seen_names: set[str] = set()
        for raw in refs_raw:
            try:
                ref = Reference(**{c: raw[c] for c in _COLUMNS})
                _validate_name(ref.name)
                seed = _validate_seed(ref.seed)
                ref = dataclasses.replace(ref, seed=seed, family=str(ref.family), notes=str(ref.notes))
            except Exception:
                raise LibraryError(f"{p.name}: manifest entry {str(raw)[:80]!r} is malformed") from None
            if ref.name in seen_names:
                raise LibraryError(f"{p.name}: the manifest names {ref.name!r} twice")
            seen_names.add(ref.name)
            if ref.file not in names:
                raise LibraryError(f"{p.name}: manifest entry {ref.name!r} points to missing file {ref.file!r}")
            data = _read_member(zf, ref.file)
            try:
                fp = fingerprint_from_bytes(data, f"{p.name}:{ref.file}")
            except FingerprintFileError as exc:
                raise LibraryError(str(exc)) from None
            if (fp.verified_hash != ref.content_sha256 or fp.spec.id != ref.probe_id
                    or fp.model.weights_hash != ref.weights_hash or fp.d != ref.hidden_size):
                raise LibraryError(f"{p.name}: manifest entry {ref.name!r} does not match its fingerprint file "
                                   "(forged or edited index): refused")
            out.append((ref, data))
        return out


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    """Read one member, stopping if it expands beyond its declared or allowed size."""
    info = zf.getinfo(name)
    limit = min(info.file_size, MAX_MEMBER_BYTES)
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except ZIP_ERRORS as exc:
        raise LibraryError(f"archive entry {name!r} is corrupt or uses an unsupported zip feature ({first_line(exc)}): "
                           "refused") from None
    if len(data) > limit:
        raise LibraryError(f"archive entry {name!r} expands beyond its declared size: refused")
    return data
