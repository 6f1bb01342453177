"""The soft-prompt methods, one file each: prompt tuning, P-tuning and prefix tuning.

`METHODS` is the one table the engine picks a method from (each file declares its own entry, `METHOD`).
"""

from __future__ import annotations

from workers.engine.methods import p_tuning, prefix_tuning, prompt_tuning
from workers.engine.methods.registry import TrainingMethod

# Keyed by Method, looked up by the plain string a config or an artifact carries (a StrEnum is that str).
METHODS: dict[str, TrainingMethod] = {
    entry.method: entry for entry in (prompt_tuning.METHOD, p_tuning.METHOD, prefix_tuning.METHOD)
}
