"""Optional dependencies, checked in one place: which extra brings each, and one plain error when it is missing.

The core (``pip install seedprints``: the engine, the Python API and the ``seedprints`` command)
needs only pyproject's ``dependencies``.  Everything else is imported through :func:`require`
where a feature needs it, and :func:`available` lets a caller leave a feature out (the map of
an audit, say) instead of failing.  An extra's packages are listed here and in pyproject.toml.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

#: import name -> (distribution to install, the seedprints extra that brings it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "sklearn": ("scikit-learn", "app"),
    "umap": ("umap-learn", "app"),
    "plotly": ("plotly", "app"),
    "pandas": ("pandas", "app"),
    "gradio": ("gradio", "app"),
    "tokenizers": ("tokenizers", "zoo"),
    "peft": ("peft", "zoo"),
    "ray": ("ray[client]", "cluster"),
}


def _entry(module: str) -> tuple[str, str]:
    try:
        return OPTIONAL[module]
    except KeyError:
        raise ValueError(f"{module!r} is not an optional dependency of seedprints: add it to OPTIONAL") from None


def install_hint(module: str) -> str:
    """The command that installs an optional module: ``pip install 'seedprints[<extra>]'``."""
    return f"pip install 'seedprints[{_entry(module)[1]}]'"


@functools.cache
def available(module: str) -> bool:
    """True when the optional module is installed (found without importing it)."""
    _entry(module)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(module: str, purpose: str) -> MissingDependencyError:
    """The error for ``purpose`` (e.g. 'the map of models') lacking an optional module: one line naming the fix."""
    package, extra = _entry(module)
    return MissingDependencyError(f"{purpose} needs {package}, which is not installed: {install_hint(module)}",
                                  name=module, package=package, extra=extra)


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional module (or a submodule such as 'plotly.io') for ``purpose``.

    Raises MissingDependencyError, naming the extra to install, when its package is not installed.
    An installed package that fails to import for another reason raises its own error.
    """
    top = module.split(".", 1)[0]
    _entry(top)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".", 1)[0] != top:
            raise  # the package is there but one of its own dependencies is broken: show that error
        raise missing(top, purpose) from None
