"""The models a command line names: fingerprint files, local checkpoints and Hub ids, and fingerprinting them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import hub
from ..audit import fingerprint_model
from ..cache import FingerprintCache
from ..fingerprint import Fingerprint, load_fingerprint
from ..memory import parse_size
from ..paths import default_cache
from ..probes import ProbeSpec
from ._options import progress


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


def is_hub_target(target: str) -> bool:
    return hub.is_hub_id(target) and not Path(target).exists()


def quiet_hub(args: argparse.Namespace) -> None:
    """With -q/--json, Hub downloads show no tqdm bars of their own on stderr."""
    if args.quiet or args.json:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def fingerprint(args: argparse.Namespace, target: str, spec: ProbeSpec, name: str | None = None) -> Fingerprint:
    """The fingerprint of a command's model: read from a fingerprint file, or extracted with the loading options."""
    if args.max_memory is not None:
        parse_size(args.max_memory)  # a bad size is a one-line error before any loading
    if is_fingerprint_file(target):
        return load_fingerprint(target)
    quiet_hub(args)
    # compare names two models: --revision pins those given as Hub ids
    revision = args.revision if args.command != "compare" or is_hub_target(target) else None
    update, close = progress(args, f"extracting {name or Path(target).name}")
    try:
        return fingerprint_model(
            target, spec, name=name, cache=None if args.no_cache else FingerprintCache(default_cache()),
            config=args.config, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code,
            batch_size=args.batch_size, max_memory=args.max_memory, stream=args.stream, progress=update,
            revision=revision)
    finally:
        close()
