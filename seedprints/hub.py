"""Hugging Face Hub checkpoints pinned to one commit: ``org/name@revision`` ids, offline use of the local cache,
downloads of exactly the files a model needs, and the per-file sha256 the Hub itself records.

A Hub id resolves to a commit sha before anything else, so a fingerprint (and the fingerprint
cache key ``hub:org/name@<sha>``) always names the exact weights it came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, first_line

#: ``org/name`` optionally followed by ``@revision`` (a branch, tag or commit sha).
HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w.][\w./-]*))?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Weight layouts in order of preference: safetensors before pickled .bin, an index before a single file.
WEIGHT_LAYOUTS = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                  "pytorch_model.bin")


@dataclasses.dataclass(frozen=True)
class HubRevision:
    """A Hub repo at one commit: the revision as named (default 'main') and the commit sha it resolved to."""

    repo_id: str
    requested: str
    commit: str
    remote_files: tuple[str, ...] = dataclasses.field(default=(), compare=False)

    @property
    def pinned(self) -> str:
        """'org/name@<commit sha>', the id that always names these weights."""
        return f"{self.repo_id}@{self.commit}"

    @property
    def cache_key(self) -> str:
        """The weights hash recorded for Hub models, and the fingerprint cache key with the probe id."""
        return f"hub:{self.pinned}"


@dataclasses.dataclass(frozen=True)
class HubSnapshot:
    """The local files of one Hub commit that loading needs, with their sha256 by file name."""

    revision: HubRevision
    folder: Path
    config_path: Path
    weight_files: tuple[Path, ...]
    files: dict[str, str]

    def facts(self) -> dict[str, Any]:
        """The ModelFacts fields that record where the weights came from."""
        return {"hub_repo": self.revision.repo_id, "hub_revision": self.revision.commit, "hub_files": dict(self.files)}


# ---------------------------------------------------------------------------- ids and settings
def parse_hub_id(text: str) -> tuple[str, str | None]:
    """('org/name', revision or None) from 'org/name' or 'org/name@revision'."""
    m = HUB_ID.match(text)
    if m is None or ".." in (m.group("rev") or ""):
        raise ModelLoadError(f"{text!r} is not a Hub id: write org/name or org/name@revision (branch, tag or commit sha)")
    return m.group("repo"), m.group("rev")


def is_hub_id(text: str) -> bool:
    """True when text has the shape of a Hub id, with or without '@revision'."""
    m = HUB_ID.match(text)
    return m is not None and ".." not in (m.group("rev") or "")


def with_revision(text: str, revision: str | None) -> str:
    """The Hub id with a separately given revision attached; refuses two different revisions."""
    if not revision:
        return text
    repo, named = parse_hub_id(text)
    if named is not None and named != revision:
        raise ModelLoadError(f"{text} names revision {named!r} and --revision names {revision!r}: give only one")
    return f"{repo}@{revision}"


def is_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or when huggingface_hub was imported."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(f.lower() in ("1", "true", "yes", "on") for f in flags)


def cache_dir() -> Path:
    """The Hugging Face Hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else huggingface_hub's default."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_cache(repo_id: str) -> Path:
    """The cache folder of one model repo: <cache>/models--org--name."""
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


# ---------------------------------------------------------------------------- revisions
def resolve(text: str) -> HubRevision:
    """Resolve 'org/name[@revision]' to a commit sha: from refs/ offline, from the Hub online."""
    repo, rev = parse_hub_id(text)
    rev = rev or "main"
    if _COMMIT.match(rev):
        return HubRevision(repo, rev, rev)
    if is_offline():
        return HubRevision(repo, rev, _local_commit(repo, rev))
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo, revision=rev, timeout=10)
    except Exception as exc:
        known = _hub_error(exc, repo, rev)
        if known is not None:
            raise known from None
        try:  # the Hub is unreachable: the local cache may still know this revision
            return HubRevision(repo, rev, _local_commit(repo, rev))
        except ModelLoadError:
            raise ModelLoadError(f"cannot reach the Hugging Face Hub to resolve {repo}@{rev} ({first_line(exc)}): "
                                 "check your connection, or set HF_HUB_OFFLINE=1 to use the local cache") from None
    if not info.sha:
        raise ModelLoadError(f"the Hugging Face Hub returned no commit for {repo}@{rev}: retry, or pin a commit sha")
    return HubRevision(repo, rev, str(info.sha), tuple(s.rfilename for s in info.siblings or ()))


def _local_commit(repo: str, rev: str) -> str:
    root = repo_cache(repo)
    ref = root / "refs" / rev
    if ref.is_file():
        return ref.read_text().strip()
    if not (root / "snapshots").is_dir():
        raise _not_cached(repo, rev)
    refs = sorted(str(p.relative_to(root / "refs")) for p in (root / "refs").rglob("*") if p.is_file())
    commits = len(list((root / "snapshots").iterdir()))
    raise ModelLoadError(f"revision {rev!r} of {repo} is not in the local Hugging Face cache at {cache_dir()} "
                         f"(it holds refs {', '.join(refs) or 'none'} and {commits} commit(s)) and this machine is "
                         "offline (HF_HUB_OFFLINE is set): name a cached branch, tag or full commit sha, or run "
                         f"'hf download {repo} --revision {rev}' online")


def _not_cached(repo: str, rev: str) -> ModelLoadError:
    return ModelLoadError(f"{repo}@{rev} is not in the local Hugging Face cache at {cache_dir()} and this machine is "
                          f"offline (HF_HUB_OFFLINE is set): run 'hf download {repo} --revision {rev}' while online "
                          "(same HF_HUB_CACHE), or unset HF_HUB_OFFLINE")


def _hub_error(exc: BaseException, repo: str, rev: str) -> ModelLoadError | None:
    """One-line error for the Hub's 'no such repo/revision/file' answers; None for anything else."""
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, HFValidationError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if isinstance(exc, RevisionNotFoundError):
        return ModelLoadError(f"revision {rev!r} does not exist in {repo} on the Hugging Face Hub: "
                              "name a branch, tag or commit sha that the repo has")
    if isinstance(exc, GatedRepoError):
        return ModelLoadError(f"{repo} is gated on the Hugging Face Hub: accept its terms on the Hub and log in "
                              "with 'hf auth login'")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelLoadError(f"{repo} is not on the Hugging Face Hub (or it is private): check the id, or log in "
                              "with 'hf auth login' if you have access")
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        return ModelLoadError(f"{repo}@{rev} lacks a file it needs ({first_line(exc)}): "
                              "it is not a complete transformers checkpoint")
    if isinstance(exc, HFValidationError):
        return ModelLoadError(f"{repo}@{rev} is not a valid Hub id or revision: {first_line(exc)}")
    return None


# ---------------------------------------------------------------------------- sizes
def weight_bytes(text: str) -> int | None:
    """Bytes of the weight files loading 'org/name[@revision]' would download, from the Hub's file metadata.

    None when nothing would be downloaded: offline, where only the local cache is read.  Counts the files
    of the preferred layout (:data:`WEIGHT_LAYOUTS`): every safetensors (or .bin) file beside an index, else
    the single file; 0 when the repo has no weights (loading then refuses it).
    """
    repo, rev = parse_hub_id(text)
    if is_offline():
        return None
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo, revision=rev or "main", files_metadata=True, timeout=10)
    except Exception as exc:
        raise _hub_error(exc, repo, rev or "main") or ModelLoadError(
            f"cannot ask the Hugging Face Hub for the size of {repo} ({first_line(exc)}): retry later") from None
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or ()}
    layout = _layout(set(sizes))
    if layout is None:
        return 0
    if not layout.endswith(".index.json"):
        return sizes[layout]
    stem, suffix = ("model", ".safetensors") if layout.startswith("model.safetensors") else ("pytorch_model", ".bin")
    return sum(n for name, n in sizes.items() if name.startswith(stem) and name.endswith(suffix) and "/" not in name)


# ---------------------------------------------------------------------------- snapshots
def fetch(rev: HubRevision, check_config: Callable[[Path], None] | None = None) -> HubSnapshot:
    """The local snapshot of a resolved revision, downloading (online) only config, weight index and its shards.

    check_config runs on config.json before any weights are downloaded or checked.
    """
    folder = repo_cache(rev.repo_id) / "snapshots" / rev.commit
    local = _layout(_listing(folder))
    if is_offline() or (local is not None and local.startswith("model.safetensors") and not _missing(folder, local)):
        if not folder.is_dir():
            raise _not_cached(rev.repo_id, rev.requested)
        layout = local
        if check_config is not None and (folder / "config.json").is_file():
            check_config(folder / "config.json")
    else:
        layout = _download(rev, check_config)
    where = f"snapshot {rev.pinned} at {folder}"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{where} has no config.json: it is not a transformers checkpoint")
    if layout is None:
        raise ModelLoadError(f"{where} has no {' or '.join(WEIGHT_LAYOUTS)}: it holds no transformers weights")
    if missing := _missing(folder, layout):
        raise ModelLoadError(f"{where} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} named by "
                             f"{layout}: run 'hf download {rev.repo_id} --revision {rev.commit}' while online to "
                             "complete it")
    weights = _weight_names(folder, layout)
    names = ["config.json"] + ([layout] if layout.endswith(".index.json") else []) + weights
    return HubSnapshot(rev, folder, folder / "config.json", tuple(folder / n for n in weights),
                       {n: file_sha256(folder / n) for n in names})


def _download(rev: HubRevision, check_config: Callable[[Path], None] | None) -> str | None:
    """Download config.json, then the weight index and exactly the shards it names (or the single weight file)."""
    from huggingface_hub import HfApi, hf_hub_download

    def get(filename: str) -> Path:
        return Path(hf_hub_download(rev.repo_id, filename, revision=rev.commit, cache_dir=cache_dir()))

    try:
        names = rev.remote_files or tuple(s.rfilename for s in HfApi().model_info(
            rev.repo_id, revision=rev.commit, timeout=10).siblings or ())
        config = get("config.json")
        if check_config is not None:
            check_config(config)
        layout = _layout(set(names))
        if layout is not None:
            get(layout)
            for shard in _weight_names(config.parent, layout) if layout.endswith(".index.json") else ():
                get(shard)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise _hub_error(exc, rev.repo_id, rev.requested) or ModelLoadError(
            f"cannot download {rev.pinned} from the Hugging Face Hub ({first_line(exc)}): check your connection, "
            "or pass a local folder") from None
    return layout


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _layout(names: set[str]) -> str | None:
    """The preferred weight file or index among the names, or None."""
    return next((n for n in WEIGHT_LAYOUTS if n in names), None)


def _weight_names(folder: Path, layout: str) -> list[str]:
    """The weight files a layout needs: the shards its index names, or the single file."""
    if not layout.endswith(".index.json"):
        return [layout]
    try:
        weight_map = json.loads((folder / layout).read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"weight index {folder / layout} is unreadable ({first_line(exc)}): "
                             "re-download the snapshot") from None
    if not shards or not all(isinstance(s, str) and s and "/" not in s and ".." not in s for s in shards):
        raise ModelLoadError(f"weight index {folder / layout} names no usable shard files: re-download the snapshot")
    return shards


def _missing(folder: Path, layout: str) -> list[str]:
    """Files the layout needs that the snapshot folder lacks (a dangling link counts as missing)."""
    if not (folder / layout).is_file():
        return [layout]
    return [n for n in _weight_names(folder, layout) if not (folder / n).is_file()]


def file_sha256(path: Path) -> str:
    """sha256 of a snapshot file: the blob name the Hub cache links it to (LFS files), else hashed here."""
    if path.is_symlink():
        blob = Path(os.readlink(path)).name
        if _SHA256.match(blob):
            return blob
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
