"""Uploaded files turned into a loadable model path; unsafe or malformed uploads refused with one-line errors."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from seedprints.audit import fingerprint_model
from seedprints.errors import UploadError
from seedprints.uploads import extract_model_zip, prepare_upload

from helpers import tiny_llama, tiny_spec


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "m"
    tiny_llama(0).save_pretrained(path)
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    return path


def zip_folder(folder: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, prefix + f.name)
    return dest


def make_zip(dest: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]],
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(dest, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return dest


def refused(match: str, fn, *args, **kwargs) -> UploadError:
    with pytest.raises(UploadError, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return info.value


def all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


# ---------------------------------------------------------------------------- accepted uploads
@pytest.mark.parametrize("prefix", ["", "my-model/"], ids=["flat", "top-folder"])
def test_zip_of_model_folder(model_dir, tmp_path, prefix):
    z = zip_folder(model_dir, tmp_path / "upload.zip", prefix)
    work = tmp_path / "work"
    out = prepare_upload([z], work)
    assert out.is_dir() and (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert out.resolve().is_relative_to(work.resolve())
    if prefix:
        assert out.name == "my-model"
    assert (out / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    fp = fingerprint_model(out, tiny_spec(n=50), device="cpu")
    assert fp.is_full and fp.features.shape == (50, 128)


def test_extract_model_zip_directly(model_dir, tmp_path):
    z = zip_folder(model_dir, tmp_path / "m.zip", "a/b/")
    out = extract_model_zip(z, tmp_path / "dest")
    assert out == tmp_path / "dest" / "a" / "b" and (out / "config.json").is_file()


def test_weights_plus_config_as_separate_files(model_dir, tmp_path):
    # uploads arrive in separate temporary folders; tokenizer/generation configs are ignored
    files = [model_dir / "config.json", model_dir / "model.safetensors"]
    if (model_dir / "generation_config.json").is_file():
        files.append(model_dir / "generation_config.json")
    tok = tmp_path / "tokenizer_config.json"
    tok.write_text("{}")
    files.append(tok)
    out = prepare_upload(files, tmp_path / "work")
    assert out.is_dir() and {p.name for p in out.iterdir()} == {"config.json", "model.safetensors"}
    assert (out / "config.json").read_bytes() == (model_dir / "config.json").read_bytes()
    fp = fingerprint_model(out, tiny_spec(n=50), device="cpu")
    assert fp.features.shape == (50, 128)


def test_gguf_path_is_returned_as_is(tmp_path):
    g = tmp_path / "x.gguf"
    g.write_bytes(b"GGUF" + b"\0" * 60)
    work = tmp_path / "work"
    assert prepare_upload([str(g)], work) == g
    assert all_files(work) == set()  # nothing copied


def test_gguf_suffix_is_case_insensitive(tmp_path):
    g = tmp_path / "Model.GGUF"
    g.write_bytes(b"GGUF")
    assert prepare_upload([g], tmp_path / "work") == g


def test_sharded_weights_with_index_as_separate_files(tmp_path):
    src = tmp_path / "sharded"
    tiny_llama(0).save_pretrained(src, max_shard_size="500KB")
    shards = sorted(src.glob("model-*.safetensors"))
    assert len(shards) > 1 and (src / "model.safetensors.index.json").is_file()
    out = prepare_upload(sorted(src.iterdir()), tmp_path / "work")
    fp = fingerprint_model(out, tiny_spec(n=50), device="cpu")
    assert fp.features.shape == (50, 128)


def test_zip_of_sharded_folder_loads(tmp_path):
    src = tmp_path / "sharded"
    tiny_llama(0).save_pretrained(src, max_shard_size="500KB")
    assert len(list(src.glob("model-*.safetensors"))) > 1
    out = prepare_upload([zip_folder(src, tmp_path / "s.zip", "sharded/")], tmp_path / "work")
    assert (out / "model.safetensors.index.json").is_file()
    assert fingerprint_model(out, tiny_spec(n=50), device="cpu").features.shape == (50, 128)


# ---------------------------------------------------------------------------- refused zips
def test_zip_with_parent_path_is_refused_and_writes_nothing(model_dir, tmp_path):
    z = make_zip(tmp_path / "evil.zip", [("config.json", (model_dir / "config.json").read_bytes()),
                                         (zipfile.ZipInfo("../evil.txt"), b"owned"),
                                         (zipfile.ZipInfo("model/../../evil2.txt"), b"owned")])
    before = all_files(tmp_path)
    dest = tmp_path / "box" / "dest"
    err = refused(r"unsafe path '\.\./evil\.txt'", extract_model_zip, z, dest)
    assert "evil.zip" in str(err)
    assert not (tmp_path / "box" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "evil2.txt").exists()
    assert all_files(tmp_path) == before  # validated before anything was extracted
    # same through prepare_upload
    refused("unsafe path", prepare_upload, [z], tmp_path / "work")
    assert all_files(tmp_path / "work" / "model") == set()


@pytest.mark.parametrize("name", ["/etc/x", "\\windows\\x", "C:/x/config.json", "a/../../x", "a\\..\\..\\x"])
def test_absolute_or_escaping_member_is_refused(tmp_path, name):
    z = make_zip(tmp_path / "abs.zip", [("config.json", b"{}"), (zipfile.ZipInfo(name), b"x")])
    refused("unsafe path", extract_model_zip, z, tmp_path / "dest")
    assert all_files(tmp_path / "dest") == set()
    assert not Path("/etc/x").exists() or Path("/etc/x").read_bytes() != b"x"


def test_symlink_member_is_refused(tmp_path):
    link = zipfile.ZipInfo("model/config.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    link.create_system = 3
    z = make_zip(tmp_path / "link.zip", [(link, b"/etc/passwd")])
    err = refused("symbolic link", extract_model_zip, z, tmp_path / "dest")
    assert "model/config.json" in str(err)
    assert all_files(tmp_path / "dest") == set()


def test_decompression_bomb_is_refused(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", [("config.json", b"{}"), ("model.safetensors", b"\0" * (50 << 20))])
    info = zipfile.ZipFile(z).getinfo("model.safetensors")
    assert info.file_size / info.compress_size > 200  # the archive really is a bomb by the module's rule
    err = refused("decompression bomb", extract_model_zip, z, tmp_path / "dest")
    assert "model.safetensors" in str(err)
    assert all_files(tmp_path / "dest") == set()


def test_highly_compressible_small_member_is_accepted(tmp_path):
    # below the 1 MB threshold a high ratio is normal (e.g. a JSON config full of spaces)
    z = make_zip(tmp_path / "ok.zip", [("config.json", b"{" + b" " * 500_000 + b"}")])
    out = extract_model_zip(z, tmp_path / "dest")
    assert (out / "config.json").stat().st_size == 500_002


def test_zip_expanding_over_the_limit_is_refused(tmp_path):
    z = make_zip(tmp_path / "big.zip", [("config.json", b"{}"), ("model.safetensors", bytes(range(256)) * 4096)],
                 compression=zipfile.ZIP_STORED)
    refused("would expand to .* over this server's", extract_model_zip, z, tmp_path / "dest", max_bytes=100_000)
    assert all_files(tmp_path / "dest") == set()


def test_upload_over_max_bytes_is_refused(model_dir, tmp_path):
    z = zip_folder(model_dir, tmp_path / "m.zip")
    refused("over this server's .* limit", prepare_upload, [z], tmp_path / "work", max_bytes=1000)
    refused("over this server's .* limit", prepare_upload,
            [model_dir / "config.json", model_dir / "model.safetensors"], tmp_path / "work2", max_bytes=1000)
    assert not (tmp_path / "work" / "model").exists() and not (tmp_path / "work2" / "model").exists()


def test_zip_without_config_is_refused(model_dir, tmp_path):
    z = make_zip(tmp_path / "noconf.zip", [("m/model.safetensors", (model_dir / "model.safetensors").read_bytes())])
    refused("noconf.zip has no config.json", prepare_upload, [z], tmp_path / "work")


def test_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "model.zip"
    fake.write_bytes(b"this is not a zip archive at all\n" * 10)
    refused("model.zip is not a valid zip archive", prepare_upload, [fake], tmp_path / "work")
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    refused("empty.zip is not a valid zip archive", extract_model_zip, empty, tmp_path / "dest")


def test_corrupt_member_is_refused(tmp_path):
    payload = b"weights!" * 1000
    z = make_zip(tmp_path / "bad.zip", [("config.json", b"{}"), ("model.safetensors", payload)],
                 compression=zipfile.ZIP_STORED)
    raw = bytearray(z.read_bytes())
    at = raw.index(payload) + 100
    raw[at] ^= 0xFF  # one flipped byte: the CRC no longer matches
    z.write_bytes(bytes(raw))
    refused("'model.safetensors' is corrupt", extract_model_zip, z, tmp_path / "dest")


def test_member_larger_than_declared_is_refused(tmp_path):
    # a member whose headers under-declare its size (so it slips past the size and ratio checks)
    payload = b"x" * 4096
    z = make_zip(tmp_path / "liar.zip", [("config.json", b"{}"), ("model.safetensors", payload)])
    info = zipfile.ZipFile(z).getinfo("model.safetensors")
    raw = bytearray(z.read_bytes())
    true_size = info.file_size.to_bytes(4, "little")
    fake_size = (100).to_bytes(4, "little")
    n = 0
    start = 0
    while (at := raw.find(true_size, start)) != -1:  # local header and central directory
        raw[at:at + 4] = fake_size
        start, n = at + 4, n + 1
    assert n == 2
    z.write_bytes(bytes(raw))
    assert zipfile.ZipFile(z).getinfo("model.safetensors").file_size == 100
    refused("(expands beyond its declared size|is corrupt)", extract_model_zip, z, tmp_path / "dest")


def test_too_many_members_is_refused(tmp_path, monkeypatch):
    import seedprints.uploads as uploads

    monkeypatch.setattr(uploads, "MAX_ZIP_MEMBERS", 5)
    z = make_zip(tmp_path / "many.zip", [(f"f{i}.txt", b"x") for i in range(6)])
    refused("more than the limit of 5", extract_model_zip, z, tmp_path / "dest")


# ---------------------------------------------------------------------------- refused file sets
def test_lone_weights_without_config_is_refused(model_dir, tmp_path):
    refused("without their config.json", prepare_upload, [model_dir / "model.safetensors"], tmp_path / "work")


def test_config_without_weights_is_refused(model_dir, tmp_path):
    refused("no weights among the uploaded files", prepare_upload, [model_dir / "config.json"], tmp_path / "work")


def test_two_config_files_are_refused(model_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    err = refused("2 config files were uploaded", prepare_upload,
                  [model_dir / "config.json", other / "config.json", model_dir / "model.safetensors"],
                  tmp_path / "work")
    assert "exactly one config.json" in str(err)


def test_no_files_is_refused(tmp_path):
    refused("no file was uploaded", prepare_upload, [], tmp_path / "work")


def test_missing_file_is_refused(tmp_path):
    refused("'gone.gguf' is missing", prepare_upload, [tmp_path / "gone.gguf"], tmp_path / "work")


@pytest.mark.parametrize("other", ["config.json", "x.gguf"])
def test_zip_together_with_another_file_is_refused(model_dir, tmp_path, other):
    z = zip_folder(model_dir, tmp_path / "m.zip")
    extra = tmp_path / other
    extra.write_bytes(b"{}")
    refused("on its own", prepare_upload, [z, extra], tmp_path / "work")


def test_gguf_together_with_weights_is_refused(model_dir, tmp_path):
    g = tmp_path / "x.gguf"
    g.write_bytes(b"GGUF")
    refused("on its own", prepare_upload, [g, model_dir / "config.json", model_dir / "model.safetensors"],
            tmp_path / "work")
