"""The batch commands: ``seedprints library build`` and ``seedprints audit-batch`` (local workers or Ray)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..batch.engines import DEFAULT_GPU_MEMORY, LocalEngine, RayEngine
from ..batch.runner import BatchResult, audit_batch, build_library
from ..errors import SeedPrintsError
from ..memory import parse_size
from ._options import (add_command, keep_arg, model_args, open_library, probe_args, progress, spec_from_args,
                       test_args, test_kwargs)

#: Exit code of a batch that finished with failed rows (0: none failed, 2: bad input, 3: internal error).
EXIT_ROWS_FAILED = 1

MANIFEST_HELP = ("CSV (with a header) or JSON Lines manifest, one model per row: source (folder, file or Hub id "
                 "org/name[@revision]), name, family, seed, notes, revision, config")


def add_commands(sub: Any, library_actions: Any) -> None:
    """Add ``build`` to ``library``'s actions and ``audit-batch`` to the commands."""
    p = add_command(library_actions, "build", run_build, "fingerprint every model of a manifest and add it (resumable)",
                    "seedprints library build models.csv --library ./references")
    p.add_argument("manifest", help=MANIFEST_HELP)
    p.add_argument("--library", default=None)
    p.add_argument("--keep", default="0.2", help="columns stored: ratio of D (default 0.2) or 'all'")
    p.add_argument("-o", "--log", default=None, help="append each row's outcome to this JSON Lines file")
    probe_args(p)
    _engine_args(p)

    p = add_command(sub, "audit-batch", run_audit, "scan every suspect of a manifest against a library (resumable)",
                    "seedprints audit-batch suspects.csv --library ./references -o results.jsonl")
    p.add_argument("manifest", help=MANIFEST_HELP)
    p.add_argument("--library", default=None)
    p.add_argument("-o", "--output", required=True,
                   help="results file (JSON Lines): one `scan --json` record per row, plus a 'batch' object")
    _engine_args(p)
    test_args(p)


def _engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine (the same manifest gives the same fingerprints and verdicts on either)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: worker processes on this machine (default); ray: one Ray task per row "
                        "(pip install 'seedprints[cluster]')")
    g.add_argument("--workers", type=int, default=None,
                   help="local: worker processes, each holding one model at a time (default 1); "
                        "ray: most rows running at once (default: the cluster's CPUs / --threads)")
    g.add_argument("--address", default=None,
                   help="ray: 'auto' (the cluster this machine belongs to) or ray://HOST:10001 "
                        "(default: start Ray on this machine)")
    g.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per worker, the same in every worker so results never depend on "
                        "the machine (default 1; a Ray task asks for as many CPUs)")
    g.add_argument("--gpu-memory", metavar="SIZE", default=None,
                   help="ray: memory of one GPU, to size each row's GPU share (default 24GB)")
    # loading: the single-model flags; --max-memory is per worker (local workers on a CPU share 60%% of the RAM)
    model_args(p)


def _engine(args: argparse.Namespace) -> LocalEngine | RayEngine:
    if args.engine == "local":
        if args.address:
            raise SeedPrintsError("--address applies to --engine ray only")
        return LocalEngine(1 if args.workers is None else args.workers)
    gpu = parse_size(args.gpu_memory) if args.gpu_memory else DEFAULT_GPU_MEMORY
    return RayEngine(args.address, args.workers, gpu_memory=gpu)


def _worker_options(args: argparse.Namespace) -> dict[str, Any]:
    from ..loading import select_device
    from ..memory import DEFAULT_SHARE, available_ram
    from ..paths import default_cache

    if args.config or args.revision:
        raise SeedPrintsError("--config and --revision differ per model: give them in the manifest's config and "
                              "revision columns")
    if args.threads < 1:
        raise SeedPrintsError(f"--threads must be at least 1, got {args.threads}")
    max_memory: str | int | None = args.max_memory
    if max_memory is not None:
        parse_size(max_memory)
    elif args.engine == "local" and (args.workers or 1) > 1 and select_device(args.device).type == "cpu":
        max_memory = int(DEFAULT_SHARE * available_ram() / args.workers)  # local workers share this machine's RAM
    return {"device": args.device, "dtype": args.dtype, "threads": args.threads, "batch_size": args.batch_size,
            "max_memory": max_memory, "stream": args.stream, "trust_remote_code": args.trust_remote_code,
            "cache_dir": None if args.no_cache else str(default_cache())}


def _finish(args: argparse.Namespace, result: BatchResult) -> int:
    print(json.dumps(result.to_dict(), indent=1) if args.json else result.summary())
    return EXIT_ROWS_FAILED if result.failed else 0


def run_build(args: argparse.Namespace) -> int:
    engine = _engine(args)
    options = _worker_options(args)
    lib = open_library(args)
    keep = keep_arg(args)
    update, close = progress(args, "library build", unit="row")
    try:
        result = build_library(args.manifest, lib, engine, spec=spec_from_args(args, lib.default_probe()),
                               progress=update, log=args.log, keep=keep, **options)
    finally:
        close()
    return _finish(args, result)


def run_audit(args: argparse.Namespace) -> int:
    engine = _engine(args)
    options = _worker_options(args)
    lib = open_library(args, create=False)
    update, close = progress(args, "audit-batch", unit="row")
    try:
        result = audit_batch(args.manifest, lib, args.output, engine, progress=update, alpha=args.alpha,
                             test_kwargs=test_kwargs(args), **options)
    finally:
        close()
    return _finish(args, result)
