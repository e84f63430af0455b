"""``seedprints compare``: test whether two models or fingerprints share their init seed."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from ..audit import compare
from ..errors import ModelLoadError
from ..fingerprint import Fingerprint
from ..loading import resolve_source, source_weights_hash, start_weights_hash
from ..verdict import EXIT_CODES
from ._models import fingerprint, is_fingerprint_file, is_hub_target
from ._options import add_command, spec_from_args, test_kwargs, verdict_args
from ._text import result_text


def add_commands(sub: Any) -> None:
    p = add_command(sub, "compare", run, "test whether two models or fingerprints share their init seed",
                    "seedprints compare ./base-model ./suspect-model",
                    "seedprints compare base.safetensors suspect.gguf --json",
                    details="Prints the test's evidence, then VERDICT: MATCH, NO MATCH or INCONCLUSIVE.")
    p.add_argument("reference", help="fingerprint file or model")
    p.add_argument("suspect", help="fingerprint file or model")
    verdict_args(p)


def run(args: argparse.Namespace) -> int:
    if args.revision and not any(is_hub_target(t) for t in (args.reference, args.suspect)):
        raise ModelLoadError(f"--revision {args.revision} applies only to models given as Hub ids (org/name), "
                             "and neither model is one: drop --revision")
    spec = spec_from_args(args)
    for target in (args.reference, args.suspect):
        if not is_fingerprint_file(target) and not is_hub_target(target):
            src = resolve_source(target, args.config)  # a bad second path fails now, not after the first extraction
            with contextlib.suppress(OSError):  # both hash in the background while the first one loads
                start_weights_hash(src)
    ref = fingerprint(args, args.reference, spec)
    sus_spec = ref.spec if is_fingerprint_file(args.reference) and args.probe is None else spec
    sus = _same_checkpoint(args, ref) or fingerprint(args, args.suspect, sus_spec)
    r = compare(ref, sus, **test_kwargs(args))
    label = "INCONCLUSIVE" if r.inconclusive else "MATCH" if r.significant(args.alpha) else "NO MATCH"
    if args.json:
        print(json.dumps({"reference": ref.name, "suspect": sus.name, "alpha": args.alpha,
                          "significant": r.significant(args.alpha), **r.to_dict()}, indent=1))
    else:
        print(f"{ref.name} vs {sus.name}: {result_text(r, args.alpha)}\n\nVERDICT: {label}")
    return EXIT_CODES[label] if args.exit_code else 0


def _same_checkpoint(args: argparse.Namespace, ref: Fingerprint) -> Fingerprint | None:
    """The reference's fingerprint when compare's suspect is the same checkpoint, so it is not loaded twice: the same
    file, folder or Hub id, or two local models whose weights hash the same (both hash in the background)."""
    if Path(args.reference).expanduser().resolve() == Path(args.suspect).expanduser().resolve():
        return ref
    if any(is_fingerprint_file(t) or is_hub_target(t) for t in (args.reference, args.suspect)):
        return None
    src = resolve_source(args.suspect, args.config)
    return ref.with_name(src.name) if source_weights_hash(src) == ref.model.weights_hash else None
