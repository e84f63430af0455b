"""``seedprints demo``: build the embedded demo library and scan its suspects."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..audit import fingerprint_model
from ..cache import FingerprintCache
from ..demo import SUSPECTS
from ..library import Library
from ..paths import default_cache
from ..verdict import scan
from ._options import add_command, progress
from ._text import scan_text


def add_commands(sub: Any) -> None:
    p = add_command(sub, "demo", run, f"build the embedded demo library and scan its {len(SUSPECTS)} suspects",
                    "seedprints demo",
                    details="The library holds tiny llama models with known seeds, built on this machine (nothing is "
                            "downloaded). The suspects:\n" + "\n".join(f"  {k}: {v}" for k, v in SUSPECTS.items()))
    p.add_argument("--rebuild", action="store_true", help="rebuild the demo from scratch")


def run(args: argparse.Namespace) -> int:
    from ..demo import build_demo
    from ..paths import home

    if args.rebuild:
        import shutil

        shutil.rmtree(home() / "demo", ignore_errors=True)
    update, close = progress(args, "the demo library")
    try:
        paths = build_demo(progress=update)
    finally:
        close()
    lib = Library(paths["library"], create=False)
    reports = {}
    for which in SUSPECTS:
        sus = fingerprint_model(paths[which], lib.default_probe(), name=f"suspect-{which}",  # type: ignore[arg-type]
                                cache=FingerprintCache(default_cache()), device="cpu")
        reports[which] = scan(sus, lib.items())
    if args.json:
        print(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=1))
    else:
        print(f"demo library: {paths['library']} ({len(lib)} references)\n")
        print("\n\n".join(scan_text(r) for r in reports.values()))
    return 0
