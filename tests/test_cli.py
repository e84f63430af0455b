"""The command-line interface on a real library of 5 tiny references."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seedprints.cli import main

from helpers import count_loads, tiny_llama
from seedprints.derive import weight_noise

PROBE = ["--n-samples", "300", "--seq-len", "16", "--vocab-range", "512", "--positions", "last", "-q"]
REF_SEEDS = [10, 11, 12, 13, 14]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    os.environ["SEEDPRINTS_HOME"] = str(base / "home")
    lib = base / "lib"
    for s in REF_SEEDS:
        tiny_llama(s).save_pretrained(base / f"ref{s}")
        assert main(["library", "add", str(base / f"ref{s}"), "--library", str(lib), "--family", "tiny",
                     "--seed", str(s), "--notes", "random init", *PROBE]) == 0
    weight_noise(tiny_llama(12), rel=0.01).save_pretrained(base / "derived")
    tiny_llama(99).save_pretrained(base / "unrelated")
    return base


def run_cli(*args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEEDPRINTS_HOME": str(env_home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "seedprints", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_library_list(workspace, capsys):
    capsys.readouterr()
    assert main(["library", "list", "--library", str(workspace / "lib"), "--json"]) == 0
    refs = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in refs] == REF_SEEDS and all(r["family"] == "tiny" for r in refs)


def test_scan_prints_ranked_table_and_match(workspace):
    # scan uses the library's probe automatically: no probe flags needed
    proc = run_cli("scan", str(workspace / "derived"), "--library", str(workspace / "lib"), "-q",
                   env_home=workspace / "home")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "VERDICT: MATCH" in out and "seed 12" in out
    table = [line for line in out.splitlines() if line[:2].strip().isdigit()]
    assert len(table) == 5 and table[0].split()[1] == "ref12"


def test_scan_json_parses(workspace, capsys):
    capsys.readouterr()
    assert main(["scan", str(workspace / "derived"), "--library", str(workspace / "lib"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["verdict"]["label"] == "MATCH" and rep["verdict"]["seed"] == 12
    assert rep["rows"][0]["name"] == "ref12" and rep["rows"][0]["log10_p_holm"] < -10
    assert len(rep["rows"]) + len(rep["skipped"]) == 5


def test_scan_unrelated_is_not_a_match(workspace, capsys):
    capsys.readouterr()
    assert main(["scan", str(workspace / "unrelated"), "--library", str(workspace / "lib"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["verdict"]["label"] in ("NO MATCH", "INCONCLUSIVE")
    assert not any(r["significant"] for r in rep["rows"])


def test_fingerprint_compare_and_export_import(workspace, capsys, tmp_path):
    fp_file = tmp_path / "derived.safetensors"
    assert main(["fingerprint", str(workspace / "derived"), "-o", str(fp_file), *PROBE]) == 0
    capsys.readouterr()
    assert main(["compare", str(workspace / "ref12"), str(fp_file), *PROBE, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["significant"] and res["log10_pvalue"] < -10
    assert main(["compare", str(workspace / "ref11"), str(fp_file), *PROBE]) == 0
    assert "same lineage at" not in capsys.readouterr().out
    zip_path = tmp_path / "lib.zip"
    assert main(["library", "export", str(zip_path), "--library", str(workspace / "lib")]) == 0
    assert main(["library", "import", str(zip_path), "--library", str(tmp_path / "lib2")]) == 0
    assert main(["library", "remove", "ref10", "--library", str(tmp_path / "lib2")]) == 0
    capsys.readouterr()
    assert main(["library", "list", "--library", str(tmp_path / "lib2"), "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["ref11", "ref12", "ref13", "ref14"]


def test_fast_preset_is_a_probe_choice(workspace, tmp_path):
    from seedprints.fingerprint import load_fingerprint
    from seedprints.probes import PRESETS

    fp_file = tmp_path / "fast.safetensors"
    assert main(["fingerprint", str(workspace / "derived"), "-o", str(fp_file), "--probe", "fast",
                 "--vocab-range", "512", "-q"]) == 0
    spec = load_fingerprint(fp_file).spec
    assert spec == PRESETS["fast"].replace(vocab_range=512)
    assert spec.n_tokens < PRESETS["quick"].n_tokens and spec.positions == "all"


def test_every_position_probe_from_library_to_scan(workspace, tmp_path, capsys):
    """fast keeps every position: a library made with it stores every column, and scan finds the seed."""
    from seedprints.library import Library

    lib = tmp_path / "fastlib"
    fast = ["--probe", "fast", "--vocab-range", "512", "-q"]
    for s in (11, 12):
        assert main(["library", "add", str(workspace / f"ref{s}"), "--library", str(lib), "--family", "tiny",
                     "--seed", str(s), *fast]) == 0  # --keep 0.2 by default: every column is kept anyway
    (ref, fp), = [x for x in Library(lib).items() if x[0].name == "ref12"]
    assert fp.every_position and fp.is_full and fp.n == 200
    capsys.readouterr()
    assert main(["scan", str(workspace / "derived"), "--library", str(lib), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"]["label"] == "MATCH" and out["verdict"]["seed"] == 12
    assert out["rows"][0]["k"] == 128  # all D
    assert main(["compare", str(workspace / "ref12"), str(workspace / "derived"), *fast[:-1]]) == 0
    assert "n = 200 rows, every probe position" in capsys.readouterr().out
    # the last position alone, asked for explicitly, is another probe
    assert main(["compare", str(workspace / "ref12"), str(workspace / "derived"), *fast, "--positions", "last",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 50


def test_errors_are_one_line_with_nonzero_exit(workspace, capsys):
    capsys.readouterr()
    assert main(["scan", str(workspace / "derived"), "--library", str(workspace / "nolib")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seedprints: error: no reference library")
    proc = run_cli("compare", "/does/not/exist", "org/model", env_home=workspace / "home")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such model" in proc.stderr


def test_compare_refuses_a_missing_suspect_before_extracting_the_reference(workspace, capsys, monkeypatch):
    loads = count_loads(monkeypatch)
    assert main(["compare", str(workspace / "ref10"), str(workspace / "nope"), *PROBE, "--no-cache"]) == 2
    assert loads == []  # the reference was not loaded for nothing
    assert "no such model" in capsys.readouterr().err


def test_exit_code_follows_the_verdict(workspace):
    lib = ["--library", str(workspace / "lib"), "-q"]
    derived, unrelated = str(workspace / "derived"), str(workspace / "unrelated")
    assert main(["scan", derived, *lib]) == 0  # without the flag: 0 whatever the verdict
    assert main(["scan", unrelated, *lib]) == 0
    assert main(["scan", derived, *lib, "--exit-code"]) == 0  # MATCH
    assert main(["scan", unrelated, *lib, "--exit-code"]) == 1  # NO MATCH
    assert main(["scan", str(workspace / "missing"), *lib, "--exit-code"]) == 2  # an error stays 2
    ref12 = str(workspace / "ref12")
    assert main(["compare", ref12, derived, *PROBE, "--exit-code"]) == 0
    assert main(["compare", ref12, unrelated, *PROBE, "--exit-code"]) == 1
    assert main(["compare", ref12, unrelated, *PROBE]) == 0


def test_quiet_hides_the_gguf_conversion_bar(workspace, tmp_path):
    """transformers draws its own bar while it de-quantizes a GGUF; -q hides it with every other bar."""
    pytest.importorskip("gguf")
    from test_gguf import write_llama_gguf

    gguf_file = write_llama_gguf(tiny_llama(3), tmp_path / "tiny.gguf")
    loud = run_cli("fingerprint", str(gguf_file), "-o", str(tmp_path / "loud.safetensors"), *PROBE[:-1], "--no-cache",
                   env_home=workspace / "home")
    assert loud.returncode == 0, loud.stderr
    assert "GGUF tensors" in loud.stderr  # without -q the conversion bar is drawn: the check below can see one
    quiet = run_cli("fingerprint", str(gguf_file), "-o", str(tmp_path / "quiet.safetensors"), *PROBE, "--no-cache",
                    env_home=workspace / "home")
    assert quiet.returncode == 0, quiet.stderr
    assert not any(mark in quiet.stderr for mark in ("\r", "%|", "it/s", "s/it", "GGUF tensors")), quiet.stderr


def _subcommands(parser, path=()):
    """(command words, parser) for every subcommand of the CLI, library actions included."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subcommands(sub, (*path, name))


def _help(capsys, *words: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_subcommand_help_says_what_it_does_and_ends_with_an_example(capsys):
    from seedprints.cli import build_parser

    commands = [words for words, _ in _subcommands(build_parser())]
    assert {("compare",), ("scan",), ("demo",), ("library", "add"), ("audit-batch",)} <= set(commands)
    for words in commands:
        out = _help(capsys, *words)
        paragraphs = out.strip().split("\n\n")  # usage, description, ..., epilog
        first = paragraphs[1].splitlines()[0]
        assert first[0].isupper() and first.endswith(".") and len(first.split()) >= 2, (words, first)
        assert paragraphs[-1].startswith("example"), (words, paragraphs[-1])
        examples = [line.split() for line in paragraphs[-1].splitlines()[1:]]
        assert examples and all(ex[:len(words) + 1] == ["seedprints", *words] for ex in examples), (words, examples)


def test_top_level_help_counts_the_demo_suspects(capsys):
    from seedprints.demo import SUSPECTS

    out = _help(capsys)
    demo = next(line for line in out.splitlines() if line.split()[:1] == ["demo"])
    assert f"scan its {len(SUSPECTS)} suspects" in " ".join(demo.split())
    demo_help = _help(capsys, "demo")
    assert all(f"{key}: {what}" in demo_help for key, what in SUSPECTS.items())  # and says which they are


def test_compare_text_ends_with_a_verdict_line_and_json_has_none(workspace, capsys):
    ref12 = str(workspace / "ref12")
    for suspect, label in (("derived", "MATCH"), ("unrelated", "NO MATCH")):
        capsys.readouterr()
        assert main(["compare", ref12, str(workspace / suspect), *PROBE]) == 0
        assert capsys.readouterr().out.rstrip().splitlines()[-1] == f"VERDICT: {label}"
    assert main(["compare", ref12, str(workspace / "derived"), *PROBE, "--json"]) == 0
    out = capsys.readouterr().out
    assert "VERDICT" not in out and json.loads(out)["significant"]


def test_compare_of_one_checkpoint_twice_loads_it_once(workspace, tmp_path, capsys, monkeypatch):
    """The same folder twice, or a copy of it (same weights hash), is fingerprinted once and matches itself."""
    import shutil

    loads = count_loads(monkeypatch)
    ref10 = workspace / "ref10"
    copy = shutil.copytree(ref10, tmp_path / "copy-of-ref10")
    for suspect, name in ((str(ref10), "ref10"), (f"{ref10}/../ref10", "ref10"), (str(copy), "copy-of-ref10")):
        capsys.readouterr()
        loads.clear()
        assert main(["compare", str(ref10), suspect, *PROBE, "--no-cache", "--json"]) == 0
        assert len(loads) == 1, suspect
        res = json.loads(capsys.readouterr().out)
        assert (res["reference"], res["suspect"], res["significant"]) == ("ref10", name, True)
    loads.clear()  # a different checkpoint is still loaded
    assert main(["compare", str(copy), str(workspace / "ref11"), *PROBE, "--no-cache"]) == 0
    assert len(loads) == 2


def test_the_re_pairing_null_is_a_test_option():
    from seedprints.cli import build_parser
    from seedprints.cli._options import test_kwargs

    parser = build_parser()
    assert test_kwargs(parser.parse_args(["compare", "a", "b"]))["repairing"] == "auto"
    assert test_kwargs(parser.parse_args(["scan", "s", "--library", "l", "--repairing", "random"]))["repairing"] == "random"
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "a", "b", "--repairing", "dihedral"])
