"""What the app knows about its server: public or local mode, data folder, libraries, probe choices, speed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from seedprints.demo import DEMO_PROBE
from seedprints.library import Library
from seedprints.paths import home
from seedprints.probes import DEFAULT_PRESET, PRESETS, ProbeSpec, preset
from seedprints.uploads import DEFAULT_MAX_UPLOAD_BYTES

from .jobs import Job, JobQueue

DEMO_LIBRARY = "demo library (read-only)"
MY_LIBRARY = "my library"
#: run-time estimates without a model to size them are per this many parameters
PER_PARAMS = 100_000_000


@dataclasses.dataclass(frozen=True)
class AppConfig:
    """Server settings fixed at launch."""

    public: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    device: str = "auto"
    #: memory budget of one extraction ("4GB"); None: 60% of available memory
    max_memory: str | None = None

    @property
    def local_paths(self) -> bool:
        """Local paths and remote code are offered only when the app is not public."""
        return not self.public


def is_space() -> bool:
    """True on a Hugging Face Space (public by nature)."""
    return bool(os.environ.get("SPACE_ID"))


def visitor_key(identity: str) -> str:
    """The folder name of one visitor's data: sha256 of 'hf:<username>' or 'browser:<random id>'."""
    return hashlib.sha256(identity.encode()).hexdigest()


_KEY = re.compile(r"^[0-9a-f]{64}$")


def libraries(visitor: str | None = None) -> dict[str, Path]:
    """Choice label -> library folder that ``visitor`` may use.

    ``visitor`` None (a local server): the demo, the one shared 'my library' and any library under
    $SEEDPRINTS_HOME/libraries.  On a public server ``visitor`` is the session's key (:func:`visitor_key`,
    set by the server, never a path from the client): the demo and that visitor's own library,
    $SEEDPRINTS_HOME/visitors/<key>/library; an empty key (no session yet) gets the demo only.
    """
    out = {DEMO_LIBRARY: home() / "demo" / "library"}
    if visitor is not None:
        if _KEY.match(visitor):
            out[MY_LIBRARY] = home() / "visitors" / visitor / "library"
        return out
    out[MY_LIBRARY] = home() / "library"
    extra = home() / "libraries"
    if extra.is_dir():
        for d in sorted(extra.iterdir()):
            if (d / "index.sqlite").is_file():
                out[d.name] = d
    return out


def starting_libraries(cfg: AppConfig) -> list[str]:
    """The library choices a page is built with, before its visitor is known (a public page names no other)."""
    return list(libraries()) if cfg.local_paths else [DEMO_LIBRARY, MY_LIBRARY]


def open_library(label: str, visitor: str | None = None) -> Library:
    """The library behind a choice label for ``visitor`` (created empty if it is their own and missing)."""
    from seedprints.errors import LibraryError

    folders = libraries(visitor)
    if label not in folders:
        if label == MY_LIBRARY:
            raise LibraryError("'my library' belongs to a page session or a signed-in user on this public server: "
                               "open the page (or sign in) to have one")
        raise LibraryError(f"unknown library {label!r}: pick one from the list")
    if label == DEMO_LIBRARY and not (folders[label] / "index.sqlite").is_file():
        raise LibraryError("the demo library is still being built: wait for the banner above to say it is ready")
    return Library(folders[label])


class Throughput:
    """Measured extraction speed on this server (parameters x tokens per second), kept across launches."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home() / "throughput.json"
        self._lock = threading.Lock()

    def rate(self) -> float | None:
        """Measured parameters x tokens per second, or None before the first extraction."""
        try:
            return float(json.loads(self.path.read_text())["param_tokens_per_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def record(self, n_params: int, n_tokens: int, seconds: float) -> None:
        """Remember the speed of one real extraction (ignored when too short to time)."""
        if seconds < 0.2 or n_params <= 0:
            return
        with self._lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"param_tokens_per_s": n_params * n_tokens / seconds, "at": time.time()}))
            os.replace(tmp, self.path)

    def estimate(self, spec: ProbeSpec, n_params: int | None = None) -> str:
        """'about 20 s for a model the size of this library's references (135M parameters) on this server' (with
        ``n_params``, theirs), else 'about 20 s per 100M parameters ...', or a note that nothing was measured yet."""
        r = self.rate()
        if r is None:
            return "run time is measured after the first extraction"
        s = (n_params or PER_PARAMS) * spec.n_tokens / r
        when = f"{s:.1f} s" if s < 10 else f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"
        if n_params is None:
            return f"about {when} per {PER_PARAMS / 1e6:.0f}M parameters on this server"
        size = f"{n_params / 1e6:.1f}M" if n_params < 1e7 else f"{n_params / 1e6:.0f}M"
        return f"about {when} for a model the size of this library's references ({size} parameters) on this server"


#: reference content hash -> its model's parameters (read once from its fingerprint file)
_REFERENCE_PARAMS: dict[str, int] = {}


def reference_params(lib: Library, probe_id: str, sample: int = 3) -> int | None:
    """Parameters of the largest of the first ``sample`` references made with ``probe_id`` (None: none readable)."""
    from seedprints.errors import SeedPrintsError

    sizes = []
    for ref in lib.list(probe_id)[:sample]:
        if ref.content_sha256 not in _REFERENCE_PARAMS:
            try:
                _REFERENCE_PARAMS[ref.content_sha256] = int(lib.load(ref).model.n_params)
            except SeedPrintsError:
                continue
        sizes.append(_REFERENCE_PARAMS[ref.content_sha256])
    return max(sizes) if sizes else None


def probe_choices(lib: Library, throughput: Throughput | None,
                  with_presets: bool = False) -> dict[str, tuple[str, ProbeSpec]]:
    """Probe id -> (plain-words label, probe): the library's probes (most used first), optionally the presets and
    the demo probe.  The id is what a dropdown holds and hands back; the label, with its live run-time estimate
    (none when ``throughput`` is None), is only shown, so it may change while a page keeps the one it got."""
    out: dict[str, tuple[str, ProbeSpec]] = {}

    probes = lib.probes()
    size = reference_params(lib, probes[0][0].id) if probes and throughput is not None else None

    def words(spec: ProbeSpec) -> str:
        every = ", every position kept" if spec.positions == "all" else ""
        estimate = f", {throughput.estimate(spec, size)}" if throughput is not None else ""
        return f"{spec.n_samples} prompts x {spec.seq_len} tokens ({spec.n_tokens:,} tokens{every}){estimate}"

    for spec, count in probes:
        out[spec.id] = (f"library probe {spec.id}: {words(spec)}; {count} reference(s)", spec)
    if with_presets or not out:
        for name in sorted(PRESETS, key=lambda n: n != DEFAULT_PRESET):  # the default first, then as listed
            spec = preset(name)
            out.setdefault(spec.id, (f"{name} preset ({spec.id}): {words(spec)}", spec))
        out.setdefault(DEMO_PROBE.id, (f"demo probe ({DEMO_PROBE.id}, vocabulary 1024): {words(DEMO_PROBE)}",
                                       DEMO_PROBE))
    return out


def probe_dropdown(choices: dict[str, tuple[str, ProbeSpec]]) -> list[tuple[str, str]]:
    """Gradio ``(label, value)`` choices of :func:`probe_choices`: the value is the probe id."""
    return [(label, probe_id) for probe_id, (label, _) in choices.items()]


def find_probe(lib: Library, probe_id: str | None, with_presets: bool = False) -> ProbeSpec | None:
    """The probe a dropdown value (a probe id) names among :func:`probe_choices`, or None."""
    hit = probe_choices(lib, None, with_presets).get(probe_id or "")
    return hit[1] if hit is not None else None


def scratch_dir() -> Path:
    """A fresh temporary folder for one job's uploads (deleted by the job when it ends)."""
    root = Path(tempfile.gettempdir()) / "seedprints-uploads"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root))


def remove_dir(path: Path | None) -> None:
    """Delete a job's temporary folder, ignoring what is already gone."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def download_dir() -> Path:
    """A fresh folder for one job's downloads, named with 128 random bits, inside Gradio's own file cache.

    Gradio serves any file under its cache to whoever asks for its path, so the path must be unguessable:
    sequential names in a shared folder let one visitor fetch another's audit.  Files returned from
    there are served where they lie (Gradio copies files from elsewhere into its cache) and are swept
    with the cache (``delete_cache``) in public mode.
    """
    from gradio.utils import get_upload_folder

    d = Path(get_upload_folder()) / f"seedprints-{secrets.token_hex(16)}"
    d.mkdir(parents=True, mode=0o700)
    return d


def safe_filename(text: str) -> str:
    """``text`` with every character but letters and digits replaced by '-', for a download's file name."""
    return "".join(c if c.isalnum() else "-" for c in text).strip("-") or "model"


@dataclasses.dataclass
class Server:
    """What every tab shares: the settings, the worker queue, the measured speed and the demo library's build."""

    cfg: AppConfig
    queue: JobQueue
    throughput: Throughput
    demo_job: Job | None = None
    _downloads: dict[str, list[Path]] = dataclasses.field(default_factory=dict)

    def download_dir(self, session: str) -> Path:
        """A fresh :func:`download_dir` for ``session``; on a public server it goes when that session ends."""
        folder = download_dir()
        if self.cfg.public and session:
            self._downloads.setdefault(session, []).append(folder)
        return folder

    def session_ended(self, session: str) -> None:
        """Delete a closed session's downloads (public server): its links then lead nowhere, whoever holds them."""
        for folder in self._downloads.pop(session, []):
            remove_dir(folder)
