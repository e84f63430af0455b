"""What the commands share: their option groups, the help layout with examples, and reading options back."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from ..errors import SeedPrintsError
from ..library import Library
from ..measured import false_positive_level
from ..methods import DEFAULT_ALPHA, DEFAULT_TEST, TESTS
from ..paths import default_library
from ..probes import DEFAULT_PRESET, PRESETS, ProbeSpec, preset
from ..progress import tqdm_progress
from ..stats import DEFAULT_K
from ..verdict import EXIT_CODES

#: A command: parsed arguments in, exit code out.
Command = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------- commands and their help
def add_command(sub: Any, name: str, run: Command | None, summary: str, *examples: str,
                details: str = "") -> argparse.ArgumentParser:
    """A subcommand with the options every command has and its help (see doc); ``run`` is what it does,
    stored as the parser's ``func`` default (None for a group of subcommands)."""
    p = sub.add_parser(name, parents=[_output_options()], **doc(summary, *examples, details=details))
    if run is not None:
        p.set_defaults(func=run)
    return p


def _output_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON instead of tables")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return common


def doc(summary: str, *examples: str, details: str = "") -> dict[str, Any]:
    """add_parser keywords: ``summary`` is the command list's line and, as a sentence, the first line of the
    command's --help; ``details`` (wrapped, its indents kept) follow it and the examples end it."""
    wrap = lambda line: textwrap.fill(line, 79, subsequent_indent=line[:len(line) - len(line.lstrip())])  # noqa: E731
    description = summary[0].upper() + summary[1:] + "."
    if details:
        description += "\n\n" + "\n".join(wrap(line) for line in details.splitlines())
    return {"help": summary.replace("%", "%%"), "description": description,
            "epilog": ("examples:\n" if len(examples) > 1 else "example:\n") + "\n".join(f"  {e}" for e in examples),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


# ---------------------------------------------------------------------------- option groups
def probe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("probe (models are fingerprinted with it; all fingerprints compared must share it)")
    g.add_argument("--probe", choices=list(PRESETS), default=None,
                   help=f"probe budget preset (default: the library's probe for scan/add, else {DEFAULT_PRESET})")
    g.add_argument("--n-samples", type=int, help="override N, the number of probe sequences")
    g.add_argument("--seq-len", type=int, help="override L, the tokens per sequence")
    g.add_argument("--vocab-range", type=int, help="override V, token ids are drawn from [0, V)")
    g.add_argument("--probe-seed", type=int, help="override the probe seed")
    g.add_argument("--positions", choices=["last", "all"],
                   help="override which hidden states are kept: the last position of each sequence, or all of them")


def model_args(p: argparse.ArgumentParser) -> None:
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


def test_args(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--repairing", choices=["auto", "cyclic", "random"], default="auto",
                   help="calibrated test: the re-pairing null: the D - 1 cyclic shifts of the dimensions (auto from "
                        "D = 500 on; exact and fast) or --permutations random maps (auto below D = 500)")
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
            f"{level.percent()} false positives ({level.scope.split(':')[0]}), {level.source}").replace("%", "%%")


def verdict_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that fingerprints models and gives a verdict: exit code, probe, model, test."""
    codes = ", ".join(f"{code} {label}" for label, code in EXIT_CODES.items())
    p.add_argument("--exit-code", action="store_true",
                   help=f"exit with the verdict's code ({codes}; 2 is still an error), like git diff --exit-code")
    probe_args(p)
    model_args(p)
    test_args(p)


# ---------------------------------------------------------------------------- reading them back
def spec_from_args(args: argparse.Namespace, fallback: ProbeSpec | None = None) -> ProbeSpec:
    """The probe the options name: a preset with overrides, or ``fallback`` (a library's probe) overridden."""
    overrides = {k: v for k, v in (("n_samples", args.n_samples), ("seq_len", args.seq_len),
                                   ("vocab_range", args.vocab_range), ("seed", args.probe_seed),
                                   ("positions", args.positions)) if v is not None}
    if args.probe is None and fallback is not None:
        return fallback.replace(**overrides) if overrides else fallback
    return preset(args.probe or DEFAULT_PRESET, **overrides)


def test_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The test options as keyword arguments of compare and scan."""
    k: float | int | None = None if args.k is None else int(args.k) if args.k >= 1 else args.k
    if args.test == "calibrated":
        return {"test": "calibrated", "k": k, "n_permutations": args.permutations, "basis_check": args.basis_check,
                "repairing": args.repairing}
    return {"test": "paper", "k": k, "mode": args.mode, "null": args.null, "null_test": args.null_test, "agg": args.agg}


def keep_arg(args: argparse.Namespace) -> Any:
    """--keep: 'all' or a ratio of D."""
    return args.keep if args.keep == "all" else float(args.keep)


def open_library(args: argparse.Namespace, create: bool = True) -> Library:
    return Library(args.library or default_library(), create=create)


def progress(args: argparse.Namespace, label: str, unit: str = "step"):
    """A tqdm bar on stderr for the engine's progress(stage, done, total), and its closer (none with -q/--json)."""
    if args.quiet or args.json:
        return None, lambda: None
    return tqdm_progress(label, unit=unit)
