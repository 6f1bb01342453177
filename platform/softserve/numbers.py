"""Whole numbers typed by a person or a client, read one way everywhere.

`str.isdigit()` is true for superscripts and other Unicode digits ("²", "①") that `int()` refuses, so a
check with it followed by `int()` turns such input into a 500. Only ASCII digits count here.
"""

from __future__ import annotations


def whole_number(text: str) -> int | None:
    """The value of a non-negative whole number written in ASCII digits, else None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text)
