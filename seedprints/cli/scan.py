"""``seedprints scan``: test a suspect against every reference in a library and give a verdict."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..audit import check_width, suspect_width
from ..paths import default_library
from ..verdict import EXIT_CODES, scan
from ._models import fingerprint, is_fingerprint_file
from ._options import add_command, open_library, spec_from_args, test_kwargs, verdict_args
from ._text import scan_text


def add_commands(sub: Any) -> None:
    p = add_command(sub, "scan", run, "test a suspect against every reference in a library and give a verdict",
                    "seedprints scan ./suspect-model --library ./references",
                    details="Prints the references ranked by evidence, then VERDICT: MATCH, NO MATCH or INCONCLUSIVE.")
    p.add_argument("model", help="suspect: fingerprint file or model")
    p.add_argument("--library", default=None, help=f"library folder (default {default_library()})")
    verdict_args(p)


def run(args: argparse.Namespace) -> int:
    lib = open_library(args, create=False)
    spec = spec_from_args(args, lib.default_probe())
    if not is_fingerprint_file(args.model) and not args.revision:  # a width no reference has: say so before extracting
        width = suspect_width(args.model, config=args.config, trust_remote_code=args.trust_remote_code)
        check_width(lib, spec, width, Path(args.model).name)
    sus = fingerprint(args, args.model, spec)
    check_width(lib, spec, sus.d, sus.name)  # a fingerprint file's (or a Hub model's) width is known by now
    rep = scan(sus, lib.items(), alpha=args.alpha, **test_kwargs(args))
    print(json.dumps(rep.to_dict(), indent=1) if args.json else scan_text(rep))
    return EXIT_CODES[rep.verdict.label] if args.exit_code else 0
