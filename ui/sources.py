"""Where a model comes from (demo suspect, upload, Hub id, local path): the form, its checks, its scratch files."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from seedprints import hub
from seedprints.demo import SUSPECTS
from seedprints.errors import SeedPrintsError, UploadError
from seedprints.uploads import prepare_upload

from .context import Server, remove_dir, scratch_dir
from .jobs import DONE, FINISHED

SOURCE_DEMO, SOURCE_UPLOAD, SOURCE_HUB, SOURCE_PATH = "demo suspect", "upload files", "Hugging Face Hub id", "local path"
MODEL_FILE_TYPES = [".gguf", ".zip", ".safetensors", ".bin", ".json"]
#: the demo suspects as Gradio (label, value) choices: the value is the suspect's key in SUSPECTS
DEMO_CHOICES = [(f"{k}: {v}", k) for k, v in SUSPECTS.items()]


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """The raw values of a model form: which source, and the field of each source."""

    source: str
    demo_key: str | None = None
    files: list[str] | None = None
    hub_id: str = ""
    local_path: str = ""

    @property
    def shown(self) -> str:
        """How the status names the model before it is resolved: the demo suspect's key, the uploaded weights'
        file name, the Hub id or the path's last part."""
        if self.source == SOURCE_DEMO:
            return self.demo_key or "demo suspect"
        if self.source == SOURCE_UPLOAD:
            return Path(upload_name(self.files)).name or "the upload"
        if self.source == SOURCE_HUB:
            return (self.hub_id or "").strip() or "Hub model"
        return Path(str(self.local_path or "").strip()).name or "local model"


def upload_name(files: list[str] | None) -> str:
    """The file that names an upload: the first that is not a config or tokenizer .json (the weights, the .gguf or
    the .zip), else the first."""
    files = list(files or [])
    return next((f for f in files if not f.lower().endswith(".json")), files[0] if files else "")


def resolve_model(server: Server, choice: ModelChoice, work: Path | None) -> tuple[str | Path, str]:
    """(model path or Hub id, display name) for the chosen source; with ``work`` None it only checks the form.

    An upload is unpacked into ``work``; a demo suspect whose library is still building resolves to "".
    """
    if choice.source == SOURCE_DEMO:
        key = choice.demo_key or ""
        if key not in SUSPECTS:
            raise SeedPrintsError("choose one of the demo suspects from the list")
        demo = server.demo_job
        if demo is None or demo.state != DONE:
            if demo is not None and demo.state in FINISHED:
                raise SeedPrintsError(f"the demo library could not be built ({demo.error}); restart the app")
            return "", f"suspect-{key}"
        return demo.result[key], f"suspect-{key}"
    if choice.source == SOURCE_UPLOAD:
        if not choice.files:
            raise UploadError("no file uploaded: add a .gguf, a .zip of the model folder, or weights + config.json")
        name = Path(upload_name(choice.files)).stem
        return (prepare_upload(choice.files, work, server.cfg.max_upload_bytes) if work is not None else ""), name
    if choice.source == SOURCE_HUB:
        hub_id = (choice.hub_id or "").strip()
        if not hub_id or " " in hub_id:
            raise SeedPrintsError("enter a Hugging Face Hub id such as 'HuggingFaceTB/SmolLM-135M'")
        if work is None and server.cfg.public:
            check_hub_size(hub_id, server.cfg.max_upload_bytes)
        return hub_id, hub_id.split("/")[-1]
    if choice.source == SOURCE_PATH:
        if not server.cfg.local_paths:
            raise SeedPrintsError("local paths are disabled on a public server: upload the model instead")
        if not str(choice.local_path or "").strip():
            raise SeedPrintsError("enter the path of a model folder, .safetensors, .gguf or fingerprint file")
        p = Path(choice.local_path.strip()).expanduser()
        if not p.exists():
            raise SeedPrintsError(f"no such file or folder: {p}: check the path")
        return p, p.name
    raise SeedPrintsError(f"unknown suspect source {choice.source!r}")


def check_hub_size(hub_id: str, limit: int) -> None:
    """Refuse a Hub model whose weight files exceed the upload limit, before anything is downloaded (public mode)."""
    size = hub.weight_bytes(hub_id)
    if size is not None and size > limit:
        raise UploadError(f"{hub_id} has {size / 2**20:,.0f} MB of weights, over this server's limit of "
                          f"{limit / 2**20:,.0f} MB: audit it with the seedprints command on your own machine")


def clean_up(server: Server, work: Path | None, files: list[str] | None) -> None:
    """Delete a job's scratch folder; in public mode also the uploaded files themselves."""
    remove_dir(work)
    if server.cfg.public:
        for f in files or []:
            Path(f).unlink(missing_ok=True)


@contextlib.contextmanager
def prepared_model(server: Server, choice: ModelChoice) -> Iterator[tuple[str | Path, str]]:
    """On the worker: the resolved model (an upload unpacked into scratch space), cleaned up when the job ends."""
    work = scratch_dir() if choice.source == SOURCE_UPLOAD else None
    try:
        yield resolve_model(server, choice, work)
    finally:
        clean_up(server, work, choice.files)


@dataclasses.dataclass(frozen=True)
class ModelForm:
    """The components of a model form; ``inputs`` are its values in :class:`ModelChoice` order."""

    source: Any
    demo_key: Any
    files: Any
    hub_id: Any
    local_path: Any

    @property
    def inputs(self) -> list[Any]:
        """The form's components, in the order of the fields of :class:`ModelChoice`."""
        return [self.source, self.demo_key, self.files, self.hub_id, self.local_path]


def model_form(sources: list[str], value: str, *, ids: dict[str, str], labels: dict[str, str]) -> ModelForm:
    """Lay out a source radio and the field of each source (only the chosen one shown); wires the switching."""
    source = gr.Radio(sources, value=value, label=labels["source"], elem_id=ids["source"])
    demo_key = (gr.Dropdown(DEMO_CHOICES, value=DEMO_CHOICES[0][1], label="Demo suspect", elem_id=ids["demo"],
                            visible=value == SOURCE_DEMO)
                if SOURCE_DEMO in sources else gr.State(None))
    files = gr.File(file_count="multiple", label=labels["files"], visible=value == SOURCE_UPLOAD,
                    elem_id=ids["files"], file_types=MODEL_FILE_TYPES)
    hub_id = gr.Textbox(label=labels["hub"], placeholder="org/model", visible=value == SOURCE_HUB, elem_id=ids["hub"])
    local_path = gr.Textbox(label=labels["path"], visible=value == SOURCE_PATH, placeholder="/path/to/model-folder",
                            elem_id=ids["path"])
    fields = {SOURCE_DEMO: demo_key, SOURCE_UPLOAD: files, SOURCE_HUB: hub_id, SOURCE_PATH: local_path}
    shown = [c for s, c in fields.items() if s in sources]

    def show(src: str) -> list[Any]:
        return [gr.update(visible=s == src) for s, c in fields.items() if s in sources]

    source.change(show, source, shown, queue=False)
    return ModelForm(source, demo_key, files, hub_id, local_path)
