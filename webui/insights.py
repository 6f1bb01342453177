"""Read-only figures for pages: a dataset version's statistics and series thinned for charts."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from django.core.cache import cache
from django.core.files.storage import default_storage

from softserve.datasets.models import DatasetVersion

# A version's statistics scan its stored rows once, then come from the cache (versions never change).
STATS_MAX_ROWS = 200_000
HISTOGRAM_BINS = 20
PREVIEW_PAGE = 20
# A page past this row would mean reading that far into the stored file for one page: refuse.
PREVIEW_MAX_ROW = 100_000
CHART_MAX_POINTS = 300

_SPACE = re.compile(r"\s+")


def _norm(texts: list[str]) -> bytes:
    joined = "\0".join(_SPACE.sub(" ", t.strip().lower()) for t in texts)
    return hashlib.blake2b(joined.encode(), digest_size=12).digest()


def dataset_stats(version: DatasetVersion) -> dict[str, Any]:
    """Text lengths (a histogram), near-duplicate rows and dev rows whose text is also in train.

    Near-duplicates compare texts case- and whitespace-insensitively (exact duplicates never pass
    validation). At most STATS_MAX_ROWS rows are read; `scanned` says how many were."""
    key = f"webui:dataset-stats:{version.pk}:{version.checksum}"
    stats = cache.get(key)
    if stats is None:
        stats = _scan(version)
        cache.set(key, stats, timeout=None)
    return stats


def _scan(version: DatasetVersion) -> dict[str, Any]:
    fields = version.fields
    lengths: list[int] = []
    seen: set[bytes] = set()
    train: set[bytes] = set()
    dev: list[bytes] = []
    duplicates = 0
    with default_storage.open(version.storage_key, "rb") as handle:
        for line in handle:
            if len(lengths) >= STATS_MAX_ROWS:
                break
            row = json.loads(line)
            texts = [str(row.get(f, "")) for f in fields]
            lengths.append(sum(len(t) for t in texts))
            digest = _norm(texts)
            duplicates += digest in seen
            seen.add(digest)
            (dev.append(digest) if row.get("split") == "dev" else train.add(digest))
    overlap = sum(d in train for d in dev)
    return {
        "scanned": len(lengths),
        "duplicates": duplicates,
        "overlap": overlap,
        "histogram": histogram(lengths),
        "max_length": max(lengths, default=0),
        "mean_length": round(sum(lengths) / len(lengths), 1) if lengths else 0,
    }


def histogram(values: list[int], bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    if not values:
        return {"labels": [], "counts": []}
    low, high = min(values), max(values)
    width = max(1, math.ceil((high - low + 1) / bins))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, (v - low) // width)] += 1
    labels = [f"{low + i * width}-{low + (i + 1) * width - 1}" for i in range(bins)]
    while counts and counts[-1] == 0:
        counts.pop()
        labels.pop()
    return {"labels": labels, "counts": counts}


def preview_rows(version: DatasetVersion, page: int) -> list[dict[str, Any]]:
    """Rows of one preview page, read from the start of the stored JSONL (bounded by PREVIEW_MAX_ROW)."""
    start = (page - 1) * PREVIEW_PAGE
    rows: list[dict[str, Any]] = []
    with default_storage.open(version.storage_key, "rb") as handle:
        for index, line in enumerate(handle):
            if index >= start + PREVIEW_PAGE:
                break
            if index >= start:
                rows.append(json.loads(line))
    return rows


def thin(points: list[dict[str, Any]], most: int = CHART_MAX_POINTS) -> list[dict[str, Any]]:
    """At most `most` points spread evenly over a long history, always keeping the first and the last."""
    if len(points) <= most:
        return points
    stride = (len(points) - 1) / (most - 1)
    return [points[round(i * stride)] for i in range(most)]
