"""Chart data for app.js as a data attribute: `<div hidden id="X-data" data-json="{{ spec|json_attr }}">`.

Not a `<script type="application/json">` island: htmx runs with allowScriptTags off (the page's
Content-Security-Policy allows no inline script), and then it removes every script element from the HTML it
swaps in, JSON ones included, so a polled fragment would lose its chart data.
"""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def json_attr(value) -> str:
    """The value as JSON text; the template's autoescaping makes it safe inside a quoted attribute."""
    return json.dumps(value, separators=(",", ":"))
