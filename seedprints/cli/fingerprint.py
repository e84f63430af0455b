"""``seedprints fingerprint``: extract a model's fingerprint to a file."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._models import fingerprint
from ._options import add_command, keep_arg, model_args, probe_args, spec_from_args


def add_commands(sub: Any) -> None:
    p = add_command(sub, "fingerprint", run, "extract a model's fingerprint to a file",
                    "seedprints fingerprint ./my-model -o my-model.safetensors",
                    details="The file can stand in for the model in compare, scan and library add.")
    p.add_argument("model", help="model folder, .safetensors/.bin file, .gguf file or Hub id (org/name[@revision])")
    p.add_argument("-o", "--output", required=True, help="fingerprint file to write (.safetensors)")
    p.add_argument("--name", help="name recorded in the fingerprint (default: from the path)")
    p.add_argument("--keep", default="all", help="columns to store: 'all' (default) or a ratio such as 0.2")
    probe_args(p)
    model_args(p)


def run(args: argparse.Namespace) -> int:
    fp = fingerprint(args, args.model, spec_from_args(args), args.name)
    keep = keep_arg(args)
    stored = fp.compact(keep) if keep != "all" else fp
    path = stored.save(args.output)
    if args.json:
        print(json.dumps({"file": str(path), "bytes": path.stat().st_size, **stored.metadata()}, indent=1))
    else:
        print(f"wrote {path} ({path.stat().st_size} bytes): {fp.name}, D = {fp.d}, {fp.spec.describe()}")
    return 0
