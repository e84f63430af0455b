"""Public mode rules that hold without a browser: uploads deleted after a job, local paths refused."""

from __future__ import annotations

import pytest

from seedprints.errors import SeedPrintsError
from ui.app import SOURCE_PATH, SeedPrintsApp
from ui.context import AppConfig


def bare_app(public: bool) -> SeedPrintsApp:
    """The app object without its worker or demo build (only the methods under test are used)."""
    app = SeedPrintsApp.__new__(SeedPrintsApp)
    app.cfg = AppConfig(public=public)
    return app


@pytest.mark.parametrize("public", [True, False])
def test_job_clean_up_removes_scratch_and_in_public_mode_the_uploads(tmp_path, public):
    work = tmp_path / "work"
    (work / "model").mkdir(parents=True)
    (work / "model" / "config.json").write_text("{}")
    upload = tmp_path / "gradio-cache" / "model.safetensors"
    upload.parent.mkdir()
    upload.write_bytes(b"x" * 10)
    bare_app(public)._clean_up(work, [str(upload)])
    assert not work.exists()
    assert upload.exists() is (not public)


def test_public_mode_refuses_local_paths(tmp_path):
    with pytest.raises(SeedPrintsError, match="local paths are disabled on a public server"):
        bare_app(True)._resolve_model(SOURCE_PATH, None, None, "", str(tmp_path), None)
    model, name = bare_app(False)._resolve_model(SOURCE_PATH, None, None, "", str(tmp_path), None)
    assert str(model) == str(tmp_path)
