"""Tables, plots and the summary of `quality.py`, computed from the per-seed records."""
from __future__ import annotations


def report(protocol, rows, seeds, plots=True):
    return {}
