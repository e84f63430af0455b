"""Turn uploaded files into a model path the loader accepts, refusing unsafe or oversized input.

Accepted: one ``.gguf`` file; a ``.zip`` of a model folder; or weights (``.safetensors`` or
``.bin``) together with their ``config.json`` (tokenizer files may come along and are ignored).
Zip members are checked before anything is written: no absolute or ``..`` paths, no links,
a member-count, size and compression-ratio limit.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .errors import ZIP_ERRORS, UploadError, first_line

DEFAULT_MAX_UPLOAD_BYTES = 2 << 30
MAX_ZIP_MEMBERS = 2_000
MAX_RATIO = 200
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def prepare_upload(files: Sequence[str | os.PathLike[str]], workdir: str | os.PathLike[str],
                   max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Path:
    """Check the uploaded files and return the model path (file or folder) to fingerprint.

    Files are copied or extracted under ``workdir`` (the caller deletes it after the audit).
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise UploadError("no file was uploaded: choose a .gguf, a .zip of the model folder, or weights + config.json")
    for p in paths:
        if not p.is_file():
            raise UploadError(f"uploaded file {p.name!r} is missing on the server: upload it again")
    total = sum(p.stat().st_size for p in paths)
    if total > max_bytes:
        raise UploadError(f"the upload is {_mb(total)}, over this server's {_mb(max_bytes)} limit: "
                          "use a smaller checkpoint, the command-line tool, or a Hub id")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    suffixes = [p.suffix.lower() for p in paths]
    if suffixes == [".gguf"]:
        return paths[0]
    if suffixes == [".zip"]:
        return extract_model_zip(paths[0], work / "model", max_bytes)
    weights = [p for p in paths if p.suffix.lower() in WEIGHT_SUFFIXES]
    configs = [p for p in paths if p.name.endswith(".json") and "config" in p.name and "tokenizer" not in p.name
               and "generation" not in p.name]
    if ".zip" in suffixes or ".gguf" in suffixes:
        raise UploadError("upload a .gguf or a .zip on its own, not together with other files")
    if not weights:
        raise UploadError("no weights among the uploaded files: add the .safetensors (or .bin) file, or upload a "
                          ".zip of the model folder or a .gguf")
    if not configs:
        raise UploadError("the weights came without their config.json: upload config.json together with them, "
                          "or a .zip of the whole model folder")
    if len(configs) > 1:
        raise UploadError(f"{len(configs)} config files were uploaded ({', '.join(c.name for c in configs)}): "
                          "upload exactly one config.json")
    folder = work / "model"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(configs[0], folder / "config.json")
    for w in weights + [p for p in paths if p.name.endswith(".index.json")]:  # shards keep their index
        shutil.copyfile(w, folder / w.name)
    return folder


def extract_model_zip(path: str | os.PathLike[str], dest: str | os.PathLike[str],
                      max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Path:
    """Validate every member of a model-folder zip, extract it under ``dest``, return the folder holding config.json."""
    p, out = Path(path), Path(dest)
    try:
        zf = zipfile.ZipFile(p)
    except ZIP_ERRORS as exc:
        raise UploadError(f"{p.name} is not a valid zip archive ({first_line(exc)}): zip the model folder again") from None
    with zf:
        all_infos = zf.infolist()
        if len(all_infos) > MAX_ZIP_MEMBERS:
            raise UploadError(f"{p.name} has {len(all_infos)} entries, more than the limit of {MAX_ZIP_MEMBERS}: "
                              "zip only the model folder")
        for info in all_infos:
            _check_member(p.name, info)
        infos = [i for i in all_infos if not i.filename.endswith("/")]
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise UploadError(f"{p.name} would expand to {_mb(total)}, over this server's {_mb(max_bytes)} limit: refused")
        try:
            for info in infos:
                target = out.joinpath(*PurePosixPath(info.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(zf, info, target, p.name)
        except UploadError:
            raise
        except ZIP_ERRORS as exc:
            raise UploadError(f"{p.name} cannot be unpacked ({first_line(exc)}): zip the model folder again") from None
    configs = sorted(out.rglob("config.json"), key=lambda c: len(c.parts))
    if not configs:
        raise UploadError(f"{p.name} has no config.json: zip the folder that save_pretrained() wrote")
    return configs[0].parent


def _check_member(archive: str, info: zipfile.ZipInfo) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or not parts:
        raise UploadError(f"{archive} contains an unsafe path {name!r} (absolute or with '..'): refused")
    if not name.strip("/") or any(part in (".", "") for part in name.replace("\\", "/").rstrip("/").split("/")):
        raise UploadError(f"{archive} contains an empty or '.' path {name!r}: refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadError(f"{archive} contains a symbolic link ({name!r}): refused")
    if info.compress_size and info.file_size > (1 << 20) and info.file_size / info.compress_size > MAX_RATIO:
        raise UploadError(f"{archive}: {name!r} would expand {info.file_size // max(info.compress_size, 1)}-fold "
                          "(a decompression bomb): refused")


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: str) -> None:
    """Stream one member to disk, stopping if it grows past its declared size."""
    written = 0
    try:
        with zf.open(info) as src, open(target, "wb") as dst:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > info.file_size:
                    raise UploadError(f"{archive}: {info.filename!r} expands beyond its declared size: refused")
                dst.write(chunk)
    except ZIP_ERRORS as exc:
        raise UploadError(f"{archive}: {info.filename!r} is corrupt or cannot be unpacked ({first_line(exc)}): "
                          "zip the model folder again") from None
