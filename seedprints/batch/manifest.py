"""Batch manifests: one model per row, as CSV (with a header) or JSON Lines.

Columns: ``source`` (required: a model folder, a .safetensors/.bin/.gguf file or a Hub id
``org/name[@revision]``), ``name``, ``family``, ``seed``, ``notes``, ``revision`` and ``config``.
A relative path is read from the manifest's folder.  The whole manifest is checked before any
work starts: a malformed row is a one-line error naming its line, not a failed row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any

from .. import hub
from ..errors import SeedPrintsError

COLUMNS = ("source", "name", "family", "seed", "notes", "revision", "config")
MAX_MANIFEST_BYTES = 64 << 20


class ManifestError(SeedPrintsError):
    """A batch manifest is missing, unreadable or has a malformed row."""


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One model of a batch: where it is, the name it gets and its known lineage."""

    line: int
    source: str
    name: str
    family: str = ""
    seed: int | None = None
    notes: str = ""
    revision: str | None = None
    config: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return dataclasses.asdict(self)


def _seed(value: Any, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ManifestError(f"{where}: seed must be an integer, got {value!r}")
    try:
        seed = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: seed must be an integer, got {value!r}") from None
    if not -(2**63) <= seed < 2**63:
        raise ManifestError(f"{where}: seed {seed} does not fit in 64 bits")
    return seed


def _text(value: Any, column: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ManifestError(f"{where}: {column} must be text, got {type(value).__name__}")
    text = str(value).strip()
    if any(c in text for c in "\n\r\0"):
        raise ManifestError(f"{where}: {column} holds a line break or NUL character")
    return text


def _local(text: str, base: Path) -> str:
    """An existing path relative to the manifest's folder, made absolute; anything else unchanged."""
    p = Path(text).expanduser()
    if not p.is_absolute() and (base / p).exists():
        return str((base / p).resolve())
    return str(p.resolve()) if p.exists() else text


def _hub_name(source: str, revision: str | None, where: str) -> str:
    try:
        return hub.with_revision(source, revision)
    except SeedPrintsError as exc:
        raise ManifestError(f"{where}: {exc}") from None


def _row(raw: dict[str, Any], line: int, base: Path, label: str) -> ManifestRow:
    where = f"{label} line {line}"
    unknown = sorted(str(k) for k in raw if k not in COLUMNS)
    if unknown:
        raise ManifestError(f"{where}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}")
    source = _text(raw.get("source"), "source", where)
    if not source:
        raise ManifestError(f"{where}: source is empty (a model folder, file or Hub id org/name[@revision])")
    revision = _text(raw.get("revision"), "revision", where) or None
    config = _text(raw.get("config"), "config", where) or None
    local = _local(source, base)
    if revision and (Path(local).exists() or not hub.is_hub_id(source)):
        raise ManifestError(f"{where}: a revision applies only to a Hub id (org/name), and {source!r} is not one")
    name = _text(raw.get("name"), "name", where)
    if not name:  # as elsewhere: a folder's name, a file's stem, or the Hub id with its revision
        local_path = Path(local)
        name = (local_path.name if local_path.is_dir() else local_path.stem) if local_path.exists() \
            else _hub_name(source, revision, where)
    if len(name) > 200:
        raise ManifestError(f"{where}: name is longer than 200 characters")
    return ManifestRow(line, local, name, _text(raw.get("family"), "family", where), _seed(raw.get("seed"), where),
                       _text(raw.get("notes"), "notes", where), revision,
                       _local(config, base) if config else None)


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Every row of a CSV (.csv, with a header) or JSON Lines (.jsonl/.json) manifest, checked; names unique."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ManifestError(f"no such manifest file: {os.fspath(path)!r}")
    if p.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{p.name} is larger than {MAX_MANIFEST_BYTES >> 20} MB: split the manifest")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {p.name}: {type(exc).__name__}") from None
    base = p.resolve().parent
    rows: list[ManifestRow] = []
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                raw = json.loads(line)
            except (ValueError, RecursionError):
                raise ManifestError(f"{p.name} line {i}: not a JSON object") from None
            if not isinstance(raw, dict):
                raise ManifestError(f"{p.name} line {i}: not a JSON object")
            rows.append(_row(raw, i, base, p.name))
    elif p.suffix.lower() in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if p.suffix.lower() == ".tsv" else ",")
        if not reader.fieldnames or "source" not in [f.strip() for f in reader.fieldnames]:
            raise ManifestError(f"{p.name}: the first line must be a header naming the columns, with 'source' "
                                f"(columns: {', '.join(COLUMNS)})")
        try:
            for raw in reader:
                if None in raw:
                    raise ManifestError(f"{p.name} line {reader.line_num}: more fields than header columns")
                clean = {k.strip(): v for k, v in raw.items() if k is not None}
                if not any((v or "").strip() for v in clean.values()):
                    continue
                rows.append(_row(clean, reader.line_num, base, p.name))
        except csv.Error as exc:
            raise ManifestError(f"{p.name} line {reader.line_num}: {exc}") from None
    else:
        raise ManifestError(f"{p.name}: a manifest is a .csv or .jsonl file")
    if not rows:
        raise ManifestError(f"{p.name} has no rows")
    seen: dict[str, int] = {}
    for r in rows:
        if r.name in seen:
            raise ManifestError(f"{p.name} lines {seen[r.name]} and {r.line} both name {r.name!r}: names must be "
                                "unique (add a name column)")
        seen[r.name] = r.line
    return rows
