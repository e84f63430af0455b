"""Command-line interface: ``seedprints fingerprint|compare|scan|library ...`` (also ``python -m seedprints``).

One module per command group adds its subcommands with ``add_commands`` and stores what each one does as the
parser's ``func`` default; ``main`` parses and calls it.  The option groups the commands share are in _options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from .. import __version__
from ..errors import SeedPrintsError
from . import batch, compare, demo, fingerprint, library, scan, seeds
from ._models import is_fingerprint_file

__all__ = ["build_parser", "is_fingerprint_file", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for the whole CLI."""
    ap = argparse.ArgumentParser(prog="seedprints", description=(
        "Fingerprint LLM checkpoints and test whether they share a training seed\n(SeedPrints, ICLR 2026)."),
        epilog="examples:\n  seedprints demo\n  seedprints compare ./base-model ./suspect-model\n"
               "  seedprints scan ./suspect-model --library ./references",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"seedprints {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (fingerprint, compare, scan, seeds, demo):
        group.add_commands(sub)
    batch.add_commands(sub, library.add_commands(sub))  # library build joins library's actions
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 user error, 3 internal error)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return args.func(args)
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
