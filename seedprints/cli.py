"""Command-line interface: ``seedprints fingerprint|compare|scan|library ...`` (also ``python -m seedprints``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from . import __version__, hub
from .audit import check_width, compare, fingerprint_model, suspect_width
from .cache import FingerprintCache
from .demo import SUSPECTS
from .errors import ModelLoadError, SeedPrintsError
from .fingerprint import Fingerprint, load_fingerprint
from .library import Library
from .loading import resolve_source, source_weights_hash, start_weights_hash
from .measured import false_positive_level
from .paths import default_cache, default_library
from .memory import parse_size
from .methods import DEFAULT_ALPHA, DEFAULT_TEST, TESTS
from .stats import DEFAULT_K
from .probes import DEFAULT_PRESET, PRESETS, ProbeSpec, preset
from .seeds import DEFAULT_RECIPE, RECIPES
from .progress import tqdm_progress
from .stats import SeedPrintsResult
from .verdict import EXIT_CODES, ScanReport, format_p, scan


# ---------------------------------------------------------------------------- arguments
def _probe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("probe (models are fingerprinted with it; all fingerprints compared must share it)")
    g.add_argument("--probe", choices=list(PRESETS), default=None,
                   help=f"probe budget preset (default: the library's probe for scan/add, else {DEFAULT_PRESET})")
    g.add_argument("--n-samples", type=int, help="override N, the number of probe sequences")
    g.add_argument("--seq-len", type=int, help="override L, the tokens per sequence")
    g.add_argument("--vocab-range", type=int, help="override V, token ids are drawn from [0, V)")
    g.add_argument("--probe-seed", type=int, help="override the probe seed")
    g.add_argument("--positions", choices=["last", "all"],
                   help="override which hidden states are kept: the last position of each sequence, or all of them")


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loading")
    g.add_argument("--config", help="config.json for a bare .safetensors/.bin file")
    g.add_argument("--revision", help="Hub branch, tag or commit sha for models given as Hub ids "
                                      "(same as org/name@REVISION); recorded as the commit sha")
    g.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU for half checkpoints), float32, ...")
    g.add_argument("--batch-size", type=int, help="probe samples per forward pass (default: automatic)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model's own Python code to run (only for models whose authors you trust)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the fingerprint cache")
    g.add_argument("--max-memory", metavar="SIZE", default=None,
                   help="memory budget for extraction, e.g. 2GB (default: 60%% of available RAM, or of free GPU memory); "
                        "a model that does not fit is run one layer at a time")
    s = g.add_mutually_exclusive_group()
    s.add_argument("--stream", dest="stream", action="store_true", default=None,
                   help="always run the model one layer at a time (safetensors checkpoints)")
    s.add_argument("--no-stream", dest="stream", action="store_false",
                   help="always load the whole model (fails if it does not fit in memory)")


def _test_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("test")
    g.add_argument("--test", choices=list(TESTS), default=DEFAULT_TEST,
                   help="; ".join(f"{m.name}{' (default)' if m.name == DEFAULT_TEST else ''}: {m.help}"
                                  for m in TESTS.values()))
    g.add_argument("--k", type=float, default=None,
                   help=f"identity dimensions: ratio of D (<1) or a count (default {DEFAULT_K:g}; the calibrated "
                        "test uses all D with every-position probes such as fast)")
    g.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                   help=f"significance level (default {DEFAULT_ALPHA:g}{_measured_level()})")
    g.add_argument("--permutations", type=int, default=TESTS["calibrated"].defaults["n_permutations"],
                   help="calibrated test: random re-pairings (default %(default)s)")
    g.add_argument("--no-basis-check", dest="basis_check", action="store_false",
                   help="calibrated test: skip the basis check (reading the suspect again after aligning its hidden "
                        "basis to the reference's, which catches permuted or rotated copies)")
    g.add_argument("--mode", choices=["coset", "base"], default="coset", help="paper test only")
    g.add_argument("--null", choices=["analytical", "simplified", "full_pipeline"], default="analytical",
                   help="paper test only")
    g.add_argument("--null-test", choices=["ttest", "mannwhitney"], default="ttest", help="paper test only")
    g.add_argument("--agg", action="store_true", help="paper test only: add the aggregate-tau signal (Bonferroni x2)")


def _measured_level() -> str:
    """The default probe's measured false-positive rate, for --alpha's help (argparse-escaped)."""
    try:
        level = false_positive_level(DEFAULT_PRESET)
    except SeedPrintsError as exc:
        return f"; no measured false-positive rate: {exc}".replace("%", "%%")
    return (f"; measured at {level.alpha:g} with the default probe {DEFAULT_PRESET}, the calibrated test gives "
            f"{level.percent()} false positives on the seed zoo, {level.source}").replace("%", "%%")


def _verdict_command_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that fingerprints models and gives a verdict: exit code, probe, model, test."""
    _exit_code_arg(p)
    _probe_args(p)
    _model_args(p)
    _test_args(p)


def _exit_code_arg(p: argparse.ArgumentParser) -> None:
    codes = ", ".join(f"{code} {label}" for label, code in EXIT_CODES.items())
    p.add_argument("--exit-code", action="store_true",
                   help=f"exit with the verdict's code ({codes}; 2 is still an error), like git diff --exit-code")


def _doc(summary: str, *examples: str, details: str = "") -> dict[str, Any]:
    """add_parser keywords: ``summary`` is the command list's line and, as a sentence, the first line of the
    command's --help; ``details`` (wrapped, its indents kept) follow it and the examples end it."""
    wrap = lambda line: textwrap.fill(line, 79, subsequent_indent=line[:len(line) - len(line.lstrip())])  # noqa: E731
    description = summary[0].upper() + summary[1:] + "."
    if details:
        description += "\n\n" + "\n".join(wrap(line) for line in details.splitlines())
    return {"help": summary.replace("%", "%%"), "description": description,
            "epilog": ("examples:\n" if len(examples) > 1 else "example:\n") + "\n".join(f"  {e}" for e in examples),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for the whole CLI."""
    ap = argparse.ArgumentParser(prog="seedprints", description=(
        "Fingerprint LLM checkpoints and test whether they share a training seed\n(SeedPrints, ICLR 2026)."),
        epilog="examples:\n  seedprints demo\n  seedprints compare ./base-model ./suspect-model\n"
               "  seedprints scan ./suspect-model --library ./references",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"seedprints {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add(*a, parents=[common], **kw)  # type: ignore[method-assign]

    p = sub.add_parser("fingerprint", **_doc(
        "extract a model's fingerprint to a file", "seedprints fingerprint ./my-model -o my-model.safetensors",
        details="The file can stand in for the model in compare, scan and library add."))
    p.add_argument("model", help="model folder, .safetensors/.bin file, .gguf file or Hub id (org/name[@revision])")
    p.add_argument("-o", "--output", required=True, help="fingerprint file to write (.safetensors)")
    p.add_argument("--name", help="name recorded in the fingerprint (default: from the path)")
    p.add_argument("--keep", default="all", help="columns to store: 'all' (default) or a ratio such as 0.2")
    _probe_args(p)
    _model_args(p)

    p = sub.add_parser("compare", **_doc(
        "test whether two models or fingerprints share their init seed",
        "seedprints compare ./base-model ./suspect-model", "seedprints compare base.safetensors suspect.gguf --json",
        details="Prints the test's evidence, then VERDICT: MATCH, NO MATCH or INCONCLUSIVE."))
    p.add_argument("reference", help="fingerprint file or model")
    p.add_argument("suspect", help="fingerprint file or model")
    _verdict_command_args(p)

    p = sub.add_parser("scan", **_doc(
        "test a suspect against every reference in a library and give a verdict",
        "seedprints scan ./suspect-model --library ./references",
        details="Prints the references ranked by evidence, then VERDICT: MATCH, NO MATCH or INCONCLUSIVE."))
    p.add_argument("model", help="suspect: fingerprint file or model")
    p.add_argument("--library", default=None, help=f"library folder (default {default_library()})")
    _verdict_command_args(p)

    for verb, what, example in (
            ("verify-seed", "rebuild the init of a suspect's own config for a claimed seed and test the suspect "
             "against it (no library needed)", "seedprints verify-seed ./my-model --seed 42"),
            ("seed-search", "recover a suspect's training seed by trying a range of seeds (no library needed)",
             "seedprints seed-search ./my-model --seeds 0-999 --stop-at-match --state search.json")):
        p = sub.add_parser(verb, **_doc(what, example))
        p.add_argument("model", help="suspect: model folder, .safetensors file (with --config) or Hub id; its "
                                     "config.json is what the init is rebuilt from")
        if verb == "verify-seed":
            p.add_argument("--seed", type=int, required=True, help="the claimed training (init) seed")
        else:
            p.add_argument("--seeds", required=True, metavar="RANGE",
                           help="seeds to try, e.g. 0-999 or 0-99,1234,3407 (well-known seeds inside it go first)")
            p.add_argument("--stop-at-match", action="store_true",
                           help="stop at the first seed whose p stays below alpha after Holm over the whole range")
            p.add_argument("--state", metavar="FILE",
                           help="JSON file of the seeds tried, written after each seed: rerun to continue a search")
        p.add_argument("--recipe", default=DEFAULT_RECIPE, metavar="NAME",
                       help="how the init is drawn from the seed: " + "; ".join(
                           f"{r.name}{' (default)' if r.name == DEFAULT_RECIPE else ''}: {r.description}"
                           for r in RECIPES.values()))
        p.add_argument("--name", help="name of the suspect in the report (default: from the path)")
        _verdict_command_args(p)

    p = sub.add_parser("demo", **_doc(
        f"build the embedded demo library and scan its {len(SUSPECTS)} suspects", "seedprints demo",
        details="The library holds tiny llama models with known seeds, built on this machine (nothing is "
                "downloaded). The suspects:\n" + "\n".join(f"  {k}: {v}" for k, v in SUSPECTS.items())))
    p.add_argument("--rebuild", action="store_true", help="rebuild the demo from scratch")

    lp = sub.add_parser("library", **_doc("manage a reference library", "seedprints library list"))
    lsub = lp.add_subparsers(dest="library_command", required=True, metavar="ACTION")
    _ladd = lsub.add_parser
    lsub.add_parser = lambda *a, **kw: _ladd(*a, parents=[common], **kw)  # type: ignore[method-assign]
    p = lsub.add_parser("add", **_doc("fingerprint a model (or take a fingerprint file) and add it",
                                      "seedprints library add ./my-model --family llama --seed 0"))
    p.add_argument("model", help="fingerprint file or model")
    p.add_argument("--library", default=None)
    p.add_argument("--name", help="unique reference name (default: from the path)")
    p.add_argument("--family", default="", help="model family, e.g. 'llama-tiny'")
    p.add_argument("--seed", type=int, help="the known training seed")
    p.add_argument("--notes", default="", help="lineage notes")
    p.add_argument("--keep", default="0.2", help="columns stored: ratio of D (default 0.2) or 'all'")
    _probe_args(p)
    _model_args(p)
    p = lsub.add_parser("list", **_doc("list the references of a library",
                                       "seedprints library list --library ./references"))
    p.add_argument("--library", default=None)
    p = lsub.add_parser("remove", **_doc("remove a reference by name", "seedprints library remove my-model"))
    p.add_argument("name")
    p.add_argument("--library", default=None)
    p = lsub.add_parser("export", **_doc("write the library to a zip", "seedprints library export references.zip"))
    p.add_argument("zip")
    p.add_argument("--library", default=None)
    p = lsub.add_parser("import", **_doc("add every reference of a (validated) library zip",
                                         "seedprints library import references.zip --skip-existing"))
    p.add_argument("zip")
    p.add_argument("--library", default=None)
    p.add_argument("--skip-existing", action="store_true", help="keep existing references of the same name")
    from .batch.cli import add_commands  # library build, audit-batch

    add_commands(sub, lsub)
    return ap


# ---------------------------------------------------------------------------- helpers
def is_fingerprint_file(path: str) -> bool:
    """True when path is a file whose safetensors header carries SeedPrints metadata."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".safetensors":
        return False
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n < (100 << 20):
                return False
            header = json.loads(f.read(n))
        return "seedprints" in (header.get("__metadata__") or {})
    except (OSError, ValueError, RecursionError, AttributeError, TypeError):
        return False


def _spec_from_args(args: argparse.Namespace, fallback: ProbeSpec | None = None) -> ProbeSpec:
    overrides = {k: v for k, v in (("n_samples", args.n_samples), ("seq_len", args.seq_len),
                                   ("vocab_range", args.vocab_range), ("seed", args.probe_seed),
                                   ("positions", args.positions)) if v is not None}
    if args.probe is None and fallback is not None:
        return fallback.replace(**overrides) if overrides else fallback
    return preset(args.probe or DEFAULT_PRESET, **overrides)


def _progress(args: argparse.Namespace, label: str, unit: str = "step"):
    """A tqdm bar on stderr for the engine's progress(stage, done, total), and its closer (none with -q/--json)."""
    if args.quiet or args.json:
        return None, lambda: None
    return tqdm_progress(label, unit=unit)


def _is_hub_target(target: str) -> bool:
    return hub.is_hub_id(target) and not Path(target).exists()


def _fingerprint(args: argparse.Namespace, target: str, spec: ProbeSpec, name: str | None = None) -> Fingerprint:
    if args.max_memory is not None:
        parse_size(args.max_memory)  # a bad size is a one-line error before any loading
    if is_fingerprint_file(target):
        return load_fingerprint(target)
    if args.quiet or args.json:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()  # otherwise Hub downloads show their own tqdm bars on stderr
    # compare names two models: --revision pins those given as Hub ids
    revision = args.revision if args.command != "compare" or _is_hub_target(target) else None
    update, close = _progress(args, f"extracting {name or Path(target).name}")
    try:
        return fingerprint_model(
            target, spec, name=name, cache=None if args.no_cache else FingerprintCache(default_cache()),
            config=args.config, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            batch_size=args.batch_size, max_memory=args.max_memory, stream=args.stream, progress=update,
            revision=revision)
    finally:
        close()


def _test_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    k: float | int | None = None if args.k is None else int(args.k) if args.k >= 1 else args.k
    if args.test == "calibrated":
        return {"test": "calibrated", "k": k, "n_permutations": args.permutations, "basis_check": args.basis_check}
    return {"test": "paper", "k": k, "mode": args.mode, "null": args.null, "null_test": args.null_test, "agg": args.agg}


def _library(args: argparse.Namespace, create: bool = True) -> Library:
    return Library(args.library or default_library(), create=create)


def _library_spec(lib: Library) -> ProbeSpec | None:
    return lib.default_probe()


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _result_text(r: SeedPrintsResult, alpha: float) -> str:
    if r.inconclusive:
        return f"INCONCLUSIVE: {r.reason}"
    verdict = "same lineage" if r.significant(alpha) else "no evidence of shared lineage"
    measure = "mean Spearman rho" if r.method.startswith("calibrated") else "mean Kendall tau"
    rows = f"n = {r.n} rows, every probe position" if r.details.get("rows") == "every position" else f"n = {r.n}"
    text = (f"{verdict} at alpha={alpha:g}: {measure} = {r.statistic:.4f} over k = {r.k} columns ({rows}), "
            f"z = {r.z:.2f}, p = {format_p(r.log10_pvalue)} (log10 p = {r.log10_pvalue:.2f}), {r.method}, {r.mode} mode")
    basis = r.details.get("basis")
    if basis and basis.get("aligned"):
        text += (f"; basis check: anchor similarity {basis['anchor_similarity']:.2f}, z = {basis['z_as_is']:.2f} "
                 f"as is, {basis['z_aligned']:.2f} aligned (p doubled for the two readings)")
        if r.significant(alpha) and basis["reading"] == "aligned" and basis["change"] != "unchanged":
            text += f"; {basis['describe']}"
    elif basis and basis.get("checked"):
        text += f"; basis check: anchor similarity {basis['anchor_similarity']:.2f}, below {basis['gate']:g}, so read as is"
    elif basis:
        text += f"; basis check not run: {basis['reason']}"
    return text


def _scan_text(rep: ScanReport) -> str:
    rows = [[str(i + 1), r.reference.name, r.reference.family or "-", "-" if r.reference.seed is None else str(r.reference.seed),
             f"{r.result.statistic:.4f}", f"{r.result.z:.2f}", f"{r.result.log10_pvalue:.2f}", f"{r.log10_p_holm:.2f}",
             str(r.result.k), "inconclusive" if r.result.inconclusive else ("yes" if r.significant else "no")]
            for i, r in enumerate(rep.rows)]
    out = [f"suspect: {rep.suspect}   probe: {rep.probe_id}   alpha: {rep.alpha:g} (Holm-corrected)", "",
           _table(["#", "reference", "family", "seed", "statistic", "z", "log10 p", "log10 p (Holm)", "k", "significant"], rows)]
    if rep.skipped:
        out += ["", "skipped:"] + [f"  {n}: {why}" for n, why in rep.skipped]
    out += ["", f"VERDICT: {rep.verdict.label}", rep.verdict.reason]
    if rep.test.get("test") == "paper" and rep.test.get("null") == "analytical":
        out += ["", "note: paper-mode analytical p-values assume independent columns; docs/method.md shows they can "
                "over-state the evidence between unrelated models, so treat borderline matches (|log10 p| < 10) "
                "with care."]
    return "\n".join(out)


# ---------------------------------------------------------------------------- commands
def _cmd_fingerprint(args: argparse.Namespace) -> int:
    fp = _fingerprint(args, args.model, _spec_from_args(args), args.name)
    keep = args.keep if args.keep == "all" else float(args.keep)
    stored = fp.compact(keep) if keep != "all" else fp
    path = stored.save(args.output)
    if args.json:
        print(json.dumps({"file": str(path), "bytes": path.stat().st_size, **stored.metadata()}, indent=1))
    else:
        print(f"wrote {path} ({path.stat().st_size} bytes): {fp.name}, D = {fp.d}, {fp.spec.describe()}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    if args.revision and not any(_is_hub_target(t) for t in (args.reference, args.suspect)):
        raise ModelLoadError(f"--revision {args.revision} applies only to models given as Hub ids (org/name), "
                             "and neither model is one: drop --revision")
    spec = _spec_from_args(args)
    for target in (args.reference, args.suspect):
        if not is_fingerprint_file(target) and not _is_hub_target(target):
            src = resolve_source(target, args.config)  # a bad second path fails now, not after the first extraction
            with contextlib.suppress(OSError):  # both hash in the background while the first one loads
                start_weights_hash(src)
    ref = _fingerprint(args, args.reference, spec)
    sus_spec = ref.spec if is_fingerprint_file(args.reference) and args.probe is None else spec
    sus = _same_checkpoint(args, ref) or _fingerprint(args, args.suspect, sus_spec)
    r = compare(ref, sus, **_test_kwargs(args))
    label = "INCONCLUSIVE" if r.inconclusive else "MATCH" if r.significant(args.alpha) else "NO MATCH"
    if args.json:
        print(json.dumps({"reference": ref.name, "suspect": sus.name, "alpha": args.alpha,
                          "significant": r.significant(args.alpha), **r.to_dict()}, indent=1))
    else:
        print(f"{ref.name} vs {sus.name}: {_result_text(r, args.alpha)}\n\nVERDICT: {label}")
    return EXIT_CODES[label] if args.exit_code else 0


def _same_checkpoint(args: argparse.Namespace, ref: Fingerprint) -> Fingerprint | None:
    """The reference's fingerprint when compare's suspect is the same checkpoint, so it is not loaded twice: the same
    file, folder or Hub id, or two local models whose weights hash the same (both hash in the background)."""
    if Path(args.reference).expanduser().resolve() == Path(args.suspect).expanduser().resolve():
        return ref
    if any(is_fingerprint_file(t) or _is_hub_target(t) for t in (args.reference, args.suspect)):
        return None
    src = resolve_source(args.suspect, args.config)
    return ref.with_name(src.name) if source_weights_hash(src) == ref.model.weights_hash else None


def _cmd_scan(args: argparse.Namespace) -> int:
    lib = _library(args, create=False)
    spec = _spec_from_args(args, _library_spec(lib))
    if not is_fingerprint_file(args.model) and not args.revision:  # a width no reference has: say so before extracting
        width = suspect_width(args.model, config=args.config, trust_remote_code=args.trust_remote_code)
        check_width(lib, spec, width, Path(args.model).name)
    sus = _fingerprint(args, args.model, spec)
    check_width(lib, spec, sus.d, sus.name)  # a fingerprint file's (or a Hub model's) width is known by now
    rep = scan(sus, lib.items(), alpha=args.alpha, **_test_kwargs(args))
    print(json.dumps(rep.to_dict(), indent=1) if args.json else _scan_text(rep))
    return EXIT_CODES[rep.verdict.label] if args.exit_code else 0


def _recipe_text(info: dict[str, Any]) -> str:
    return (f"recipe: {info['name']} ({info['generator']}, device {info['device']}, torch {info['torch']}, "
            f"transformers {info['transformers']})")


def _seed_command(args: argparse.Namespace) -> tuple[dict[str, Any], Any, Any]:
    """Keyword arguments shared by verify_seed and search_seeds, with the progress bar and its closer."""
    if args.max_memory is not None:
        parse_size(args.max_memory)
    if args.quiet or args.json:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    probe_given = any(v is not None for v in (args.probe, args.n_samples, args.seq_len, args.vocab_range,
                                              args.probe_seed, args.positions))
    load = {"config": args.config, "revision": args.revision, "device": args.device, "dtype": args.dtype,
            "trust_remote_code": args.trust_remote_code, "batch_size": args.batch_size, "stream": args.stream,
            "cache": None if args.no_cache else FingerprintCache(default_cache())}
    update, close = _progress(args, args.command, unit="seed")
    kwargs = {"recipe": args.recipe, "name": args.name, "probe": _spec_from_args(args) if probe_given else None,
              "alpha": args.alpha, "max_memory": args.max_memory, "progress": update, "load": load,
              **_test_kwargs(args)}
    return kwargs, update, close


def _cmd_verify_seed(args: argparse.Namespace) -> int:
    from .seeds import verify_seed

    kwargs, _, close = _seed_command(args)
    try:
        check = verify_seed(args.model, args.seed, **kwargs)
    finally:
        close()
    if args.json:
        print(json.dumps(check.to_dict(), indent=1))
    else:
        print("\n".join([
            f"suspect: {check.suspect}   probe: {check.probe_id}   alpha: {check.alpha:g}", _recipe_text(check.recipe),
            f"seed {check.seed} (rebuilt init {check.init_sha256}): {_result_text(check.result, check.alpha)}", "",
            check.reason, f"reproduce: {check.command}",
            f"VERDICT: {check.label}" + (f" seed {check.seed}" if check.label == "MATCH" else "")]))
    return EXIT_CODES[check.label] if args.exit_code else 0


def _cmd_seed_search(args: argparse.Namespace) -> int:
    from .seeds import search_seeds

    kwargs, _, close = _seed_command(args)
    try:
        res = search_seeds(args.model, args.seeds, stop_at_match=args.stop_at_match, state=args.state, **kwargs)
    finally:
        close()
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return EXIT_CODES[res.label] if args.exit_code else 0
    ranked = res.ranked()
    rows = [[str(t.seed), f"{t.statistic:.4f}", f"{t.z:.2f}", f"{t.log10_p:.2f}", f"{h:.2f}",
             "inconclusive" if t.inconclusive else ("yes" if h < math.log10(res.alpha) else "no")]
            for t, h in ranked[:10]]
    tried = f"tried {len(res.trials)} of {res.n_range} seeds"
    if res.from_state:
        tried += f" ({res.from_state} read from {res.state_file})"
    if res.stopped_early:
        tried += ", stopped at the first decisive match"
    found = f"MATCH seed {res.seed}" if res.label == "MATCH" else (
        f"NO MATCH (no seed recovered in {res.seeds})" if res.label == "NO MATCH" else res.label)
    print("\n".join([
        f"suspect: {res.suspect}   probe: {res.probe_id}   alpha: {res.alpha:g} (Holm over the {res.n_range} seeds "
        f"of {res.seeds})", _recipe_text(res.recipe), tried, "",
        _table(["seed", "statistic", "z", "log10 p", "log10 p (Holm)", "significant"], rows)
        + (f"\n({len(ranked) - 10} more seeds, none stronger)" if len(ranked) > 10 else ""), "",
        res.reason, f"reproduce: {res.command}", f"VERDICT: {found}"]))
    return EXIT_CODES[res.label] if args.exit_code else 0


def _cmd_library(args: argparse.Namespace) -> int:
    action = args.library_command
    if action == "build":
        from .batch.cli import cmd_library_build

        return cmd_library_build(args)
    if action == "add":
        lib = _library(args)
        fp = _fingerprint(args, args.model, _spec_from_args(args, _library_spec(lib)), args.name)
        keep: Any = args.keep if args.keep == "all" else float(args.keep)
        ref = lib.add(fp, name=args.name or fp.name, family=args.family, seed=args.seed, notes=args.notes, keep=keep)
        print(json.dumps(ref.to_dict(), indent=1) if args.json else f"added {ref.name} ({ref.lineage}) to {lib.root}")
    elif action == "list":
        refs = _library(args, create=False).list()
        if args.json:
            print(json.dumps([r.to_dict() for r in refs], indent=1))
        else:
            print(_table(["name", "family", "seed", "architecture", "D", "probe", "notes"],
                         [[r.name, r.family or "-", "-" if r.seed is None else str(r.seed), r.architecture,
                           str(r.hidden_size), r.probe_id, r.notes] for r in refs]))
    elif action == "remove":
        ref = _library(args, create=False).remove(args.name)
        print(json.dumps(ref.to_dict()) if args.json else f"removed {ref.name}")
    elif action == "export":
        lib = _library(args, create=False)
        path = lib.export_zip(args.zip)
        print(json.dumps({"file": str(path), "references": len(lib)}) if args.json
              else f"exported {len(lib)} references to {path}")
    elif action == "import":
        refs = _library(args).import_zip(args.zip, on_conflict="skip" if args.skip_existing else "error")
        print(json.dumps([r.to_dict() for r in refs], indent=1) if args.json else f"imported {len(refs)} references")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import build_demo
    from .paths import home

    if args.rebuild:
        import shutil

        shutil.rmtree(home() / "demo", ignore_errors=True)
    update, close = _progress(args, "the demo library")
    try:
        paths = build_demo(progress=update)
    finally:
        close()
    lib = Library(paths["library"], create=False)
    reports = {}
    for which in SUSPECTS:
        sus = fingerprint_model(paths[which], _library_spec(lib), name=f"suspect-{which}",  # type: ignore[arg-type]
                                cache=FingerprintCache(default_cache()), device="cpu")
        reports[which] = scan(sus, lib.items())
    if args.json:
        print(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=1))
    else:
        print(f"demo library: {paths['library']} ({len(lib)} references)\n")
        print("\n\n".join(_scan_text(r) for r in reports.values()))
    return 0


def _cmd_audit_batch(args: argparse.Namespace) -> int:
    from .batch.cli import cmd_audit_batch

    return cmd_audit_batch(args)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 user error, 3 internal error)."""
    args = build_parser().parse_args(argv)
    args.debug = getattr(args, "debug", False)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        handler = {"fingerprint": _cmd_fingerprint, "compare": _cmd_compare, "scan": _cmd_scan,
                   "library": _cmd_library, "demo": _cmd_demo,
                   "verify-seed": _cmd_verify_seed, "seed-search": _cmd_seed_search, "audit-batch": _cmd_audit_batch}[args.command]
        return handler(args)
    except SeedPrintsError as exc:
        if args.debug:
            raise
        print(f"seedprints: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seedprints: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback, unless --debug
        if args.debug:
            raise
        text = " ".join(str(exc).split())[:300]
        print(f"seedprints: internal error: {type(exc).__name__}: {text} (rerun with --debug for details)", file=sys.stderr)
        return 3


def run() -> None:
    """Console entry point: main(), then exit without finalizing every imported module.

    Tearing down torch and transformers at interpreter exit costs about 0.7 s, a seventh of a cold
    135M compare, and does nothing a one-shot command needs: exit handlers still run (temp folders,
    logging) and output is flushed first.  Library callers use main(), which returns normally.
    """
    import atexit

    code = main()
    atexit._run_exitfuncs()  # noqa: SLF001 - the handlers sys.exit would run, in the same order
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not turn success into a traceback
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
