"""``seedprints verify-seed`` and ``seed-search``: test a suspect against inits rebuilt from seeds (no library)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ..cache import FingerprintCache
from ..memory import parse_size
from ..paths import default_cache
from ..seeds import DEFAULT_RECIPE, RECIPES
from ..verdict import EXIT_CODES
from ._models import quiet_hub
from ._options import add_command, progress, spec_from_args, test_kwargs, verdict_args
from ._text import result_text, table


def add_commands(sub: Any) -> None:
    p = add_command(sub, "verify-seed", run_verify, "rebuild the init of a suspect's own config for a claimed seed "
                    "and test the suspect against it (no library needed)", "seedprints verify-seed ./my-model --seed 42")
    _suspect_arg(p)
    p.add_argument("--seed", type=int, required=True, help="the claimed training (init) seed")
    _recipe_args(p)

    p = add_command(sub, "seed-search", run_search, "recover a suspect's training seed by trying a range of seeds "
                    "(no library needed)", "seedprints seed-search ./my-model --seeds 0-999 --stop-at-match --state search.json")
    _suspect_arg(p)
    p.add_argument("--seeds", required=True, metavar="RANGE",
                   help="seeds to try, e.g. 0-999 or 0-99,1234,3407 (well-known seeds inside it go first)")
    p.add_argument("--stop-at-match", action="store_true",
                   help="stop at the first seed whose p stays below alpha after Holm over the whole range")
    p.add_argument("--state", metavar="FILE",
                   help="JSON file of the seeds tried, written after each seed: rerun to continue a search")
    _recipe_args(p)


def _suspect_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="suspect: model folder, .safetensors file (with --config) or Hub id; its "
                                 "config.json is what the init is rebuilt from")


def _recipe_args(p: argparse.ArgumentParser) -> None:
    """--recipe and --name, then the options of a verdict command."""
    p.add_argument("--recipe", default=DEFAULT_RECIPE, metavar="NAME",
                   help="how the init is drawn from the seed: " + "; ".join(
                       f"{r.name}{' (default)' if r.name == DEFAULT_RECIPE else ''}: {r.description}"
                       for r in RECIPES.values()))
    p.add_argument("--name", help="name of the suspect in the report (default: from the path)")
    verdict_args(p)


def _recipe_text(info: dict[str, Any]) -> str:
    return (f"recipe: {info['name']} ({info['generator']}, device {info['device']}, torch {info['torch']}, "
            f"transformers {info['transformers']})")


def _seed_kwargs(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """Keyword arguments shared by verify_seed and search_seeds, and the closer of their progress bar."""
    if args.max_memory is not None:
        parse_size(args.max_memory)
    quiet_hub(args)
    probe_given = any(v is not None for v in (args.probe, args.n_samples, args.seq_len, args.vocab_range,
                                              args.probe_seed, args.positions))
    load = {"config": args.config, "revision": args.revision, "device": args.device, "dtype": args.dtype,
            "trust_remote_code": args.trust_remote_code, "batch_size": args.batch_size, "stream": args.stream,
            "cache": None if args.no_cache else FingerprintCache(default_cache())}
    update, close = progress(args, args.command, unit="seed")
    kwargs = {"recipe": args.recipe, "name": args.name, "probe": spec_from_args(args) if probe_given else None,
              "alpha": args.alpha, "max_memory": args.max_memory, "progress": update, "load": load,
              **test_kwargs(args)}
    return kwargs, close


def run_verify(args: argparse.Namespace) -> int:
    from ..seeds import verify_seed

    kwargs, close = _seed_kwargs(args)
    try:
        check = verify_seed(args.model, args.seed, **kwargs)
    finally:
        close()
    if args.json:
        print(json.dumps(check.to_dict(), indent=1))
    else:
        print("\n".join([
            f"suspect: {check.suspect}   probe: {check.probe_id}   alpha: {check.alpha:g}", _recipe_text(check.recipe),
            f"seed {check.seed} (rebuilt init {check.init_sha256}): {result_text(check.result, check.alpha)}", "",
            check.reason, f"reproduce: {check.command}",
            f"VERDICT: {check.label}" + (f" seed {check.seed}" if check.label == "MATCH" else "")]))
    return EXIT_CODES[check.label] if args.exit_code else 0


def run_search(args: argparse.Namespace) -> int:
    from ..seeds import search_seeds

    kwargs, close = _seed_kwargs(args)
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
        table(["seed", "statistic", "z", "log10 p", "log10 p (Holm)", "significant"], rows)
        + (f"\n({len(ranked) - 10} more seeds, none stronger)" if len(ranked) > 10 else ""), "",
        res.reason, f"reproduce: {res.command}", f"VERDICT: {found}"]))
    return EXIT_CODES[res.label] if args.exit_code else 0
