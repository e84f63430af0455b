"""``python -m seedprints`` runs the command-line interface."""

from .cli import run

run()
