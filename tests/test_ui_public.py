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


class FakeHub:
    """HfApi stand-in: one repo's files with their sizes; records the calls; any download fails the test."""

    def __init__(self, files: dict[str, int]) -> None:
        self.files, self.calls = files, []

    def model_info(self, repo_id, revision=None, files_metadata=False, timeout=None):
        from unittest import mock

        self.calls.append((repo_id, revision, files_metadata))
        if repo_id == "org/missing":
            from huggingface_hub.errors import RepositoryNotFoundError

            raise RepositoryNotFoundError("404", response=mock.Mock(headers={}))
        return mock.Mock(sha="0" * 40, siblings=[mock.Mock(rfilename=n, size=s) for n, s in self.files.items()])


@pytest.fixture
def online(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("downloaded"))

    def serve(files: dict[str, int]) -> FakeHub:
        fake = FakeHub(files)
        monkeypatch.setattr(huggingface_hub, "HfApi", lambda: fake)
        return fake

    return serve


MB = 2**20


def test_weight_bytes_counts_the_files_loading_would_download(online):
    from seedprints import hub

    online({"config.json": 700, "model.safetensors.index.json": 9_000, "model-00001-of-00002.safetensors": 300 * MB,
            "model-00002-of-00002.safetensors": 200 * MB, "pytorch_model.bin": 999 * MB, "onnx/model.safetensors": MB})
    assert hub.weight_bytes("org/sharded") == 500 * MB  # the preferred layout only: no .bin, no subfolder
    fake = online({"config.json": 1, "model.safetensors": 42 * MB, "training_args.bin": 5})
    assert hub.weight_bytes("org/single@v1") == 42 * MB
    assert fake.calls == [("org/single", "v1", True)]
    online({"config.json": 1, "pytorch_model-00001-of-00002.bin": 3, "pytorch_model-00002-of-00002.bin": 4,
            "pytorch_model.bin.index.json": 1, "training_args.bin": 100})
    assert hub.weight_bytes("org/bins") == 7
    with pytest.raises(SeedPrintsError, match="org/missing is not on the Hugging Face Hub"):
        hub.weight_bytes("org/missing")


def test_public_mode_refuses_a_hub_model_over_the_limit_before_download(online):
    from ui.sources import SOURCE_HUB

    fake = online({"config.json": 1, "model.safetensors": 30 * MB})
    choice = ModelChoice(SOURCE_HUB, hub_id="org/big")
    small = Server(AppConfig(public=True, max_upload_bytes=20 * MB), queue=None, throughput=None)  # type: ignore[arg-type]
    with pytest.raises(SeedPrintsError, match=r"org/big has 30 MB of weights, over this server's limit of 20 MB"):
        resolve_model(small, choice, None)
    roomy = Server(AppConfig(public=True, max_upload_bytes=40 * MB), queue=None, throughput=None)  # type: ignore[arg-type]
    assert resolve_model(roomy, choice, None) == ("org/big", "big")
    calls = len(fake.calls)
    resolve_model(bare_server(False), choice, None)  # a local server downloads what it is asked to
    assert len(fake.calls) == calls


def test_offline_the_hub_size_is_not_asked(monkeypatch):
    from seedprints import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.weight_bytes("org/cached") is None


def test_each_visitor_opens_only_their_own_library(tmp_path, monkeypatch):
    from seedprints.errors import LibraryError
    from ui.context import DEMO_LIBRARY, MY_LIBRARY, libraries, open_library, visitor_key

    monkeypatch.setenv("SEEDPRINTS_HOME", str(tmp_path))
    (tmp_path / "libraries" / "team").mkdir(parents=True)
    (tmp_path / "libraries" / "team" / "index.sqlite").write_bytes(b"")
    a, b = visitor_key("browser:" + "a" * 32), visitor_key("hf:bob")
    assert list(libraries(None)) == [DEMO_LIBRARY, MY_LIBRARY, "team"]  # local: as before
    assert list(libraries(a)) == [DEMO_LIBRARY, MY_LIBRARY]  # public: no other folder is offered
    assert libraries(a)[MY_LIBRARY] != libraries(b)[MY_LIBRARY] != libraries(None)[MY_LIBRARY]
    for bad in ("", "../library", "a" * 63, str(tmp_path)):
        assert MY_LIBRARY not in libraries(bad)
        with pytest.raises(LibraryError):
            open_library(MY_LIBRARY, bad)
    with pytest.raises(LibraryError, match="unknown library 'team'"):
        open_library("team", a)
    assert open_library(MY_LIBRARY, a).root == tmp_path / "visitors" / a / "library"


def test_session_downloads_go_when_the_session_ends_on_a_public_server_only(monkeypatch, tmp_path):
    import gradio.utils

    monkeypatch.setattr(gradio.utils, "get_upload_folder", lambda: str(tmp_path))
    for public in (True, False):
        server = Server(AppConfig(public=public), queue=None, throughput=None)  # type: ignore[arg-type]
        mine, other = server.download_dir("s1"), server.download_dir("s2")
        server.session_ended("s1")
        assert mine.exists() is (not public) and other.exists()


def test_identify_keys_by_user_else_by_a_random_browser_id():
    from unittest import mock

    from ui.visitors import identify

    assert identify(False, None, None) == (None, None, "")
    key, browser, note = identify(True, None, None)
    assert len(browser) == 32 and "temporary" in note
    assert identify(True, browser, None)[:2] == (key, browser)  # the same browser comes back to its library
    assert identify(True, "../../etc", None)[1] != "../../etc"  # anything else gets a fresh id
    user_key, _, user_note = identify(True, browser, mock.Mock(username="alice"))
    assert user_key != key and "alice" in user_note
