"""Gradio front end of SeedPrints: arranges the engine in ``seedprints`` for people; no statistics here."""
