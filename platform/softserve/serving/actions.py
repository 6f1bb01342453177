"""Predictions: resolve the caller's prompt version, check the inputs, send them to the pool, count usage."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError

from softserve.prompts.models import Alias, PromptVersion, TaskPrompt, VersionStatus
from softserve.serving import client
from softserve.serving.models import Usage
from softserve.tenancy.permissions import Actor
from workers.contracts import SERVING_ERRORS, ServeRequest, ServingStatus
from workers.engine.task import TemplateError, template_fields

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "production"


class NotReady(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_ready"


class Overloaded(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "overloaded"
    default_detail = "The serving queue is full; retry shortly."
    wait = 1  # seconds: DRF's handler turns this into Retry-After


class DeadlineExceeded(APIException):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "deadline_exceeded"
    default_detail = "No prediction within the deadline."


class TenantOverloaded(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "tenant_queue_full"
    default_detail = (
        "Your team already has its share of the serving queue waiting (SERVING_TENANT_QUEUE_MAX); "
        "retry shortly."
    )
    wait = 1


class TooManyConcurrent(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_concurrent"
    default_detail = (
        "Your team already has its share of predictions in progress here (SERVING_TENANT_MAX_CONCURRENT); "
        "retry when one has finished."
    )
    wait = 1


class ServingUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "serving_unavailable"
    default_detail = "The serving queue cannot be reached; retry shortly."
    wait = 2


class ServingFailed(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "serving_failed"


class _ThreadShares:
    """Predictions each tenant has waiting in this process's threads; over the share: TooManyConcurrent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    @contextmanager
    def hold(self, tenant_id: str) -> Iterator[None]:
        with self._lock:
            if self._held.get(tenant_id, 0) >= settings.SERVING_TENANT_MAX_CONCURRENT:
                raise TooManyConcurrent
            self._held[tenant_id] = self._held.get(tenant_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._held[tenant_id] -= 1
                if not self._held[tenant_id]:
                    del self._held[tenant_id]


thread_shares = _ThreadShares()


def admit(actor: Actor):
    """Hold one of the tenant's SERVING_TENANT_MAX_CONCURRENT places in this process for a prediction, or
    refuse it (429). Taken first, before the body is parsed, the prompt looked up or the inputs checked:
    a team over its share is refused at almost no cost, so its flood cannot take the CPU (and database)
    time that other teams' predictions in this process need."""
    return thread_shares.hold(str(actor.tenant.pk))


def resolve(
    actor: Actor, name: str, alias: str | None = None, version: int | None = None
) -> tuple[TaskPrompt, PromptVersion]:
    """The caller's prompt and the ready version named by number or alias (default `production`).

    One query on the way that succeeds (it runs on every prediction); the errors look closer.
    """
    if version is not None:
        chosen = (
            PromptVersion.objects.for_tenant(actor.tenant)
            .select_related("prompt")
            .defer("inspection")  # a prediction never reads the nearest-token JSON
            .filter(prompt__name=name, number=version)
            .first()
        )
    else:
        alias = alias or DEFAULT_ALIAS
        pointer = (
            Alias.objects.for_tenant(actor.tenant)
            .select_related("prompt", "version")
            .defer("version__inspection")
            .filter(prompt__name=name, name=alias)
            .first()
        )
        chosen = pointer.version if pointer else None
    if chosen is None:
        if not TaskPrompt.objects.for_tenant(actor.tenant).filter(name=name).exists():
            raise NotFound(f"No prompt named {name!r}.")
        if version is not None:
            raise NotFound(f"{name} has no version {version}.")
        raise NotFound(f"{name} has no alias {alias!r}; name a version or move the alias first.")
    prompt = pointer.prompt if version is None else chosen.prompt
    if chosen.status != VersionStatus.READY or not chosen.artifact_key:
        raise NotReady(f"Version {chosen.number} of {name} is {chosen.status}, not ready to serve.")
    return prompt, chosen


def validate_inputs(prompt: TaskPrompt, inputs: Any) -> list[dict[str, str]]:
    """Rows of the template's fields; else a 400 whose fields say which input and why."""
    try:
        fields = template_fields(prompt.template)
    except TemplateError as exc:  # stored before templates were checked as they are now
        raise NotReady(f"The prompt's template cannot be served: {exc} Recreate the prompt.") from None
    limit, most = settings.SERVING_MAX_INPUT_CHARS, settings.SERVING_MAX_INPUTS
    if not isinstance(inputs, list) or not inputs:
        raise ValidationError({"inputs": ["A non-empty list of inputs."]})
    if len(inputs) > most:
        raise ValidationError({"inputs": [f"{len(inputs)} inputs; at most {most} per request."]})
    errors: dict[str, list[str]] = {}
    rows = []
    for i, item in enumerate(inputs):
        if isinstance(item, str) and len(fields) == 1:
            item = {fields[0]: item}  # a bare string fills the template's only field
        if not isinstance(item, dict):
            shape = f"an object with the field(s) {fields}" + (" or a string" if len(fields) == 1 else "")
            errors[f"inputs[{i}]"] = [f"Expected {shape}."]
            continue
        for name in fields:
            value = item.get(name)
            if name not in item:
                errors[f"inputs[{i}].{name}"] = ["Missing: the prompt's template needs this field."]
            elif not isinstance(value, str):
                errors[f"inputs[{i}].{name}"] = ["Must be a string."]
            elif not value.strip():
                errors[f"inputs[{i}].{name}"] = ["Must not be empty."]
        for name in sorted(set(item) - set(fields)):
            errors[f"inputs[{i}].{name}"] = [f"Not a field of the prompt's template (fields: {fields})."]
        size = sum(len(v) for v in item.values() if isinstance(v, str))
        if size > limit:
            errors.setdefault(f"inputs[{i}]", []).append(f"{size} characters; the limit is {limit}.")
        rows.append(item)
    if errors:
        raise ValidationError(errors)
    return rows


@dataclass
class Prediction:
    body: dict[str, Any]
    # A Server-Timing header: time in the queue, the batch's forward passes, the whole round trip.
    server_timing: str
    # Tokens per output as the serving worker counted them: {"prompt_tokens": [...], "completion_tokens":
    # [...]} (the completions call reports their sums as OpenAI's usage).
    tokens: dict[str, list[int]] = field(default_factory=dict)


TOKEN_COUNTS = ("prompt_tokens", "completion_tokens")


def _split_tokens(outputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """The outputs in their public shape, and the worker's token counts per output taken out of them."""
    public = [{k: v for k, v in out.items() if k not in TOKEN_COUNTS} for out in outputs]
    tokens = {name: [int(out.get(name) or 0) for out in outputs] for name in TOKEN_COUNTS}
    return public, tokens


def predict(
    actor: Actor,
    prompt: TaskPrompt,
    version: PromptVersion,
    rows: list[dict[str, str]],
    timeout_ms: int | None = None,
    max_new_tokens: int | None = None,
) -> Prediction:
    """Outputs for `rows` from the serving pool; counts the tenant's usage when answered. The caller holds
    the tenant's place (`admit`) around the whole request."""
    timeout_s = min(timeout_ms or settings.SERVING_TIMEOUT_MS, settings.SERVING_TIMEOUT_MS) / 1000
    now = time.time()
    request: ServeRequest = {
        "request_id": uuid.uuid4().hex,
        "tenant_id": str(actor.tenant.pk),
        "prompt": prompt.name,
        "version": version.number,
        "version_id": str(version.pk),
        "artifact_key": version.artifact_key,
        "artifact_sha256": version.artifact_sha256,
        "base_model": prompt.base_model,
        "inputs": rows,
        "enqueued_at": now,
        "deadline": now + timeout_s,
    }
    if max_new_tokens:
        request["max_new_tokens"] = max_new_tokens
    sent = time.perf_counter()
    try:
        reply = client.submit(request, timeout_s + client.REPLY_GRACE_S)
    except client.TenantOverloaded:
        raise TenantOverloaded from None
    except client.Overloaded:
        raise Overloaded from None
    except client.NoReply:
        raise DeadlineExceeded from None
    except client.Unavailable:
        raise ServingUnavailable from None
    if reply.get("status") == ServingStatus.EXPIRED:
        raise DeadlineExceeded
    if reply.get("status") != ServingStatus.OK:
        _refuse(request["request_id"], reply)
    round_trip_ms = 1000 * (time.perf_counter() - sent)
    Usage.count(actor.tenant, prompt.name, len(rows))
    timing = (
        f"queue;dur={reply.get('queue_ms', 0):.1f}, model;dur={reply.get('batch_ms', 0):.1f}, "
        f"pool;dur={round_trip_ms:.1f}"
    )
    outputs, tokens = _split_tokens(reply["outputs"])
    return Prediction({"version": version.number, "outputs": outputs}, timing, tokens)


def _refuse(request_id: str, reply: dict[str, Any]) -> NoReturn:
    """A worker's error reply as the tenant sees it: a stable message for its code and the request id
    (the worker logged the detail under that id); never the text of an exception."""
    code = reply.get("code") if reply.get("code") in SERVING_ERRORS else "internal"
    log.warning("prediction %s failed in the serving pool: %s", request_id, code)
    message = f"{SERVING_ERRORS[code]} (request id {request_id})"
    if code == "too_large":
        raise ValidationError({"inputs": [message]})
    raise ServingFailed(message, code=code)
