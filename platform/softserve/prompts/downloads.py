"""A version's artifact in each format and its nearest-token view: one lookup for the API and the web UI.

Both formats are objects the tuning worker wrote next to each other in storage (the Softserve
safetensors file and the PEFT adapter zip); they are served through Django's storage backend, found
through the caller's own tenant (another tenant's version: 404)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404

from common.contracts import VersionStatus
from common.formats import nearest_tokens_unavailable, peft_unavailable
from softserve.prompts.models import PromptVersion, TaskPrompt


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    content_type: str
    label: str


SOFTSERVE = Format("softserve", "safetensors", "application/octet-stream", "Softserve (.safetensors)")
PEFT = Format("peft", "peft.zip", "application/zip", "PEFT adapter (.zip)")
FORMATS = {f.name: f for f in (SOFTSERVE, PEFT)}

NOT_TRAINED = "This version has no artifact: it is not ready."
NOT_EXPORTED = "This version was made before PEFT export; train it again for a PEFT download."
NOT_COMPUTED = "Not computed: this version was made before the nearest-token view."


def tenant_version(tenant, prompt_name: str, number: int) -> tuple[TaskPrompt, PromptVersion]:
    """The caller's prompt and version, or 404 (another tenant's look the same as missing ones)."""
    prompt = get_object_or_404(TaskPrompt.objects.for_tenant(tenant), name=prompt_name)
    version = get_object_or_404(PromptVersion.objects.for_tenant(tenant), prompt=prompt, number=number)
    version.prompt = prompt  # already read: the serializer's URLs need its name
    return prompt, version


def unavailable(version: PromptVersion, fmt: Format) -> str | None:
    """Why `version` has no download in `fmt` (None: it has one)."""
    if not version.artifact_key or version.status != VersionStatus.READY:
        return NOT_TRAINED
    if fmt is PEFT:
        return peft_unavailable(version.method, version.ensemble_size) or (
            None if version.peft_key else NOT_EXPORTED
        )
    return None


def file_response(prompt: TaskPrompt, version: PromptVersion, fmt: Format) -> FileResponse:
    """The stored object as an attachment, streamed from the storage backend; 404 with the reason."""
    reason = unavailable(version, fmt)
    if reason:
        raise Http404(reason)
    key = version.peft_key if fmt is PEFT else version.artifact_key
    try:
        handle = default_storage.open(key, "rb")
    except FileNotFoundError:
        raise Http404("The stored file is missing.") from None
    filename = f"{prompt.name}-v{version.number}.{fmt.suffix}"
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=fmt.content_type)


def inspection(version: PromptVersion) -> dict[str, Any]:
    """The nearest-token view with its state: "computed" (the worker's JSON: per position its norm and
    nearest tokens), "not_applicable" (prefix tuning) or "not_computed" (an older or unfinished
    version); the last two say why in "reason"."""
    reason = nearest_tokens_unavailable(version.method)
    if reason:
        return {"state": "not_applicable", "reason": reason}
    if not version.inspection.get("applies"):
        return {"state": "not_computed", "reason": NOT_COMPUTED if version.artifact_key else NOT_TRAINED}
    return {"state": "computed", "reason": None, **version.inspection}
