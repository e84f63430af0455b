"""Public mode rules that hold without a browser: uploads deleted after a job, local paths refused."""

from __future__ import annotations

import pytest

from seedprints.errors import SeedPrintsError
from ui.context import AppConfig, Server
from ui.sources import SOURCE_PATH, ModelChoice, clean_up, resolve_model


def bare_server(public: bool) -> Server:
    """The app's shared state without its worker or demo build (only the functions under test use it)."""
    return Server(AppConfig(public=public), queue=None, throughput=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("public", [True, False])
def test_job_clean_up_removes_scratch_and_in_public_mode_the_uploads(tmp_path, public):
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "config.json").write_text("{}")
    upload = tmp_path / "gradio-cache" / "model.safetensors"
    upload.parent.mkdir()
    upload.write_bytes(b"x" * 10)
    clean_up(bare_server(public), work, [str(upload)])
    assert not work.exists()
    assert upload.exists() is (not public)


def test_public_mode_refuses_local_paths(tmp_path):
    choice = ModelChoice(SOURCE_PATH, local_path=str(tmp_path))
    with pytest.raises(SeedPrintsError, match="local paths are disabled on a public server"):
        resolve_model(bare_server(True), choice, None)
    model, name = resolve_model(bare_server(False), choice, None)
    assert str(model) == str(tmp_path)
