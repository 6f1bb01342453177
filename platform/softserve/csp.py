"""Content-Security-Policy on every answer (Django 5.2 has none built in).

The policy (CONTENT_SECURITY_POLICY) allows scripts and styles from this origin only: no inline
script, no inline style attribute, no eval. The pages keep to it (charts read JSON islands, widths are set
from data attributes by app.js, htmx runs with allowEval and allowScriptTags off). Three fixed `<style>`
blocks are let through by their hashes, computed here from the templates that hold them: the standalone
500 and 503 pages and drf-spectacular's Swagger page.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)
HEADER = "Content-Security-Policy"
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def _style_hashes() -> list[str]:
    import drf_spectacular

    pages = [
        Path(__file__).resolve().parent / "templates" / "500.html",
        Path(__file__).resolve().parent / "templates" / "503.html",
        Path(drf_spectacular.__file__).resolve().parent / "templates" / "drf_spectacular" / "swagger_ui.html",
    ]
    hashes = set()
    for page in pages:
        for block in _STYLE.findall(page.read_text(encoding="utf-8")):
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
            hashes.add(f"'sha256-{digest}'")
    return sorted(hashes)


def policy(base: str) -> str:
    """The configured policy with the fixed style blocks' hashes added to its style-src."""
    hashes = " ".join(_style_hashes())
    directives = [d.strip() for d in base.split(";") if d.strip()]
    out = [f"{d} {hashes}" if d.split()[0] == "style-src" and hashes else d for d in directives]
    return "; ".join(out)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.value = policy(settings.CONTENT_SECURITY_POLICY) if settings.CONTENT_SECURITY_POLICY else ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.value and HEADER not in response:
            response[HEADER] = self.value
        return response
