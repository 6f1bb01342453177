"""Formatting for the operator pages: durations and byte counts."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """12 s, 4 m 05 s, 3 h 20 m, 2 d 4 h; – for none."""
    if seconds is None or seconds == "":
        return "–"
    s = round(float(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} m {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} m"
    return f"{s // 86400} d {s % 86400 // 3600} h"


@register.filter
def gib(value: int | None) -> str:
    if not value:
        return "–"
    return f"{value / 2**30:.1f} GiB"


@register.filter
def percent(value: float | None) -> str:
    if value is None or value == "":  # a missing key in a template resolves to ""
        return "–"
    return f"{100 * float(value):.0f}%"
