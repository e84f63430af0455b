"""The one progress contract of the engine: ``progress(stage, done, total)``.

``stage`` is a short human phrase ("layer 3/32, chunk 1/2"), ``done`` and ``total`` count
the steps of that work (samples, layers or models).  The CLI shows it with :func:`tqdm_progress`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[str, int, int], None]


def tqdm_progress(label: str, unit: str = "step") -> tuple[ProgressCallback, Callable[[], None]]:
    """A progress callback drawing one tqdm bar on stderr (created at the first call), and its closer."""
    from tqdm import tqdm

    bars: list[Any] = []

    def update(stage: str, done: int, total: int) -> None:
        if not bars or bars[0].total != total:
            for b in bars:
                b.close()
            bars[:] = [tqdm(total=total, desc=label, unit=unit, file=sys.stderr, leave=False)]
        bar = bars[0]
        bar.set_postfix_str(stage, refresh=False)
        bar.n = done
        bar.refresh()

    return update, lambda: [b.close() for b in bars]


def scaled(progress: ProgressCallback | None, part: int, parts: int, prefix: str = "") -> ProgressCallback | None:
    """A callback for part ``part`` of ``parts`` equal parts of a larger job, on a 0..1000 scale; ``prefix`` names
    the part in each stage ("fine-tune copy: extracting ...")."""
    if progress is None:
        return None

    def update(stage: str, done: int, total: int) -> None:
        frac = (part + (done / total if total else 0.0)) / parts
        progress(f"{prefix}{stage}", int(round(1000 * frac)), 1000)

    return update
