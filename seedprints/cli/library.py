"""``seedprints library add|list|remove|export|import``: manage a reference library."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._models import fingerprint
from ._options import add_command, keep_arg, model_args, open_library, probe_args, spec_from_args
from ._text import table


def add_commands(sub: Any) -> Any:
    """Add ``library`` and its actions; returns the actions' subparsers, for ``library build``."""
    lp = add_command(sub, "library", None, "manage a reference library", "seedprints library list")
    actions = lp.add_subparsers(dest="library_command", required=True, metavar="ACTION")
    p = add_command(actions, "add", run_add, "fingerprint a model (or take a fingerprint file) and add it",
                    "seedprints library add ./my-model --family llama --seed 0")
    p.add_argument("model", help="fingerprint file or model")
    p.add_argument("--library", default=None)
    p.add_argument("--name", help="unique reference name (default: from the path)")
    p.add_argument("--family", default="", help="model family, e.g. 'llama-tiny'")
    p.add_argument("--seed", type=int, help="the known training seed")
    p.add_argument("--notes", default="", help="lineage notes")
    p.add_argument("--keep", default="0.2", help="columns stored: ratio of D (default 0.2) or 'all'")
    probe_args(p)
    model_args(p)
    p = add_command(actions, "list", run_list, "list the references of a library",
                    "seedprints library list --library ./references")
    p.add_argument("--library", default=None)
    p = add_command(actions, "remove", run_remove, "remove a reference by name", "seedprints library remove my-model")
    p.add_argument("name")
    p.add_argument("--library", default=None)
    p = add_command(actions, "export", run_export, "write the library to a zip",
                    "seedprints library export references.zip")
    p.add_argument("zip")
    p.add_argument("--library", default=None)
    p = add_command(actions, "import", run_import, "add every reference of a (validated) library zip",
                    "seedprints library import references.zip --skip-existing")
    p.add_argument("zip")
    p.add_argument("--library", default=None)
    p.add_argument("--skip-existing", action="store_true", help="keep existing references of the same name")
    return actions


def run_add(args: argparse.Namespace) -> int:
    lib = open_library(args)
    fp = fingerprint(args, args.model, spec_from_args(args, lib.default_probe()), args.name)
    ref = lib.add(fp, name=args.name or fp.name, family=args.family, seed=args.seed, notes=args.notes,
                  keep=keep_arg(args))
    print(json.dumps(ref.to_dict(), indent=1) if args.json else f"added {ref.name} ({ref.lineage}) to {lib.root}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    refs = open_library(args, create=False).list()
    if args.json:
        print(json.dumps([r.to_dict() for r in refs], indent=1))
    else:
        print(table(["name", "family", "seed", "architecture", "D", "probe", "notes"],
                    [[r.name, r.family or "-", "-" if r.seed is None else str(r.seed), r.architecture,
                      str(r.hidden_size), r.probe_id, r.notes] for r in refs]))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    ref = open_library(args, create=False).remove(args.name)
    print(json.dumps(ref.to_dict()) if args.json else f"removed {ref.name}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    lib = open_library(args, create=False)
    path = lib.export_zip(args.zip)
    print(json.dumps({"file": str(path), "references": len(lib)}) if args.json
          else f"exported {len(lib)} references to {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    refs = open_library(args).import_zip(args.zip, on_conflict="skip" if args.skip_existing else "error")
    print(json.dumps([r.to_dict() for r in refs], indent=1) if args.json else f"imported {len(refs)} references")
    return 0
