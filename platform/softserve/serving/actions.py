"""Predictions: resolve the caller's prompt version, check the inputs, send them to the pool, count usage."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.core.cache import cache
from django.db import models, transaction
from django.utils import timezone

from common.contracts import (
    SERVING_ERRORS,
    AuditAction,
    PredictionOutcome,
    ServeRequest,
    ServingStatus,
    ShadowTarget,
    WebhookEvent,
)
from common.task import TemplateError, template_fields
from softserve import errors
from softserve.errors import DomainError, Invalid, NotFound
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt, VersionStatus
from softserve.serving import client
from softserve.serving.models import Prediction as PredictionRecord
from softserve.serving.models import Usage, _commit_without_waiting_for_disk
from softserve.tenancy.actions import record
from softserve.tenancy.models import Tenant
from softserve.tenancy.permissions import Actor
from softserve.webhooks.events import emit

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "production"


class NotReady(errors.Conflict):
    code = "not_ready"


class Overloaded(errors.Unavailable):
    code = "overloaded"
    message = "The serving queue is full; retry shortly."
    retry_after = 1


class DeadlineExceeded(errors.TimedOut):
    code = "deadline_exceeded"
    message = "No prediction within the deadline."


class TenantOverloaded(errors.QuotaExceeded):
    code = "tenant_queue_full"
    message = (
        "Your team already has its share of the serving queue waiting (SERVING_TENANT_QUEUE_MAX); "
        "retry shortly."
    )
    retry_after = 1


class TooManyConcurrent(errors.QuotaExceeded):
    code = "too_many_concurrent"
    message = (
        "Your team already has its share of predictions in progress here (SERVING_TENANT_MAX_CONCURRENT); "
        "retry when one has finished."
    )
    retry_after = 1


class ServingUnavailable(errors.Unavailable):
    code = "serving_unavailable"
    message = "The serving queue cannot be reached; retry shortly."
    retry_after = 2


class ServingFailed(errors.UpstreamFailed):
    code = "serving_failed"


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


@dataclass(frozen=True)
class Route:
    """Where one prediction goes: the prompt, the version that answers, the alias it came through (if
    any), and the alias's shadow version that scores the same inputs alongside (if any)."""

    prompt: TaskPrompt
    version: PromptVersion
    alias: Alias | None = None
    shadow: PromptVersion | None = None

    @property
    def canary(self) -> bool:
        """The alias's split sent this request to a version other than its primary."""
        return self.alias is not None and self.version.pk != self.alias.version_id


def pick_version(alias_id: Any, split: list[dict[str, Any]], routing_key: str | None = None) -> int:
    """The version number one request reaches under `split` ([{"version", "weight"}], weights summing to
    100): a point in [0, total) against the cumulative weights. With a routing key the point is a hash of
    the alias and the key, so the same key always reaches the same version (while the split stands); without
    one, a random draw by weight."""
    entries = [e for e in split if int(e.get("weight", 0)) > 0]
    total = sum(int(e["weight"]) for e in entries)
    if routing_key is not None:
        digest = hashlib.sha256(f"{alias_id}:{routing_key}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") % total
    else:
        point = random.randrange(total)
    for entry in entries:
        point -= int(entry["weight"])
        if point < 0:
            return int(entry["version"])
    return int(entries[-1]["version"])  # unreachable: the points end inside the last entry


def _servable(version: PromptVersion | None) -> bool:
    return version is not None and version.status == VersionStatus.READY and bool(version.artifact_key)


def route(
    actor: Actor,
    name: str,
    alias: str | None = None,
    version: int | None = None,
    routing_key: str | None = None,
) -> Route:
    """The caller's prompt and the ready version named by number or alias (default `production`); an
    alias with a split picks one of its versions per request (by `routing_key` when given), and brings
    its shadow version along.

    One query on the way that succeeds for a plain alias or a version number (it runs on every
    prediction); a split's non-primary pick costs one more. The errors look closer.
    """
    pointer = None
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
            .select_related("prompt", "version", "shadow")
            .defer("version__inspection", "shadow__inspection")
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
    prompt = pointer.prompt if pointer is not None else chosen.prompt
    if not _servable(chosen):
        raise NotReady(f"Version {chosen.number} of {name} is {chosen.status}, not ready to serve.")
    if pointer is None:
        return Route(prompt, chosen)
    if pointer.split:
        number = pick_version(pointer.pk, pointer.split, routing_key)
        if number != chosen.number:
            canary = (
                PromptVersion.objects.for_tenant(actor.tenant)
                .defer("inspection")
                .filter(prompt_id=pointer.prompt_id, number=number)
                .first()
            )
            if _servable(canary):
                chosen = canary
            else:  # a split that names a version no longer servable: the primary answers instead
                log.warning("alias %s of %s: split version %s is not servable", pointer.name, name, number)
    shadow = pointer.shadow if _servable(pointer.shadow) and pointer.shadow_id != chosen.pk else None
    return Route(prompt, chosen, pointer, shadow)


def resolve(
    actor: Actor, name: str, alias: str | None = None, version: int | None = None
) -> tuple[TaskPrompt, PromptVersion]:
    """The prompt and the version a request reaches (`route` without the alias and shadow)."""
    chosen = route(actor, name, alias, version)
    return chosen.prompt, chosen.version


def validate_inputs(prompt: TaskPrompt, inputs: Any) -> list[dict[str, str]]:
    """Rows of the template's fields; else a 400 whose fields say which input and why."""
    try:
        fields = template_fields(prompt.template)
    except TemplateError as exc:  # stored before templates were checked as they are now
        raise NotReady(f"The prompt's template cannot be served: {exc} Recreate the prompt.") from None
    limit, most = settings.SERVING_MAX_INPUT_CHARS, settings.SERVING_MAX_INPUTS
    if not isinstance(inputs, list) or not inputs:
        raise Invalid({"inputs": ["A non-empty list of inputs."]})
    if len(inputs) > most:
        raise Invalid({"inputs": [f"{len(inputs)} inputs; at most {most} per request."]})
    problems: dict[str, list[str]] = {}
    rows = []
    for i, item in enumerate(inputs):
        if isinstance(item, str) and len(fields) == 1:
            item = {fields[0]: item}  # a bare string fills the template's only field
        if not isinstance(item, dict):
            shape = f"an object with the field(s) {fields}" + (" or a string" if len(fields) == 1 else "")
            problems[f"inputs[{i}]"] = [f"Expected {shape}."]
            continue
        for name in fields:
            value = item.get(name)
            if name not in item:
                problems[f"inputs[{i}].{name}"] = ["Missing: the prompt's template needs this field."]
            elif not isinstance(value, str):
                problems[f"inputs[{i}].{name}"] = ["Must be a string."]
            elif not value.strip():
                problems[f"inputs[{i}].{name}"] = ["Must not be empty."]
        for name in sorted(set(item) - set(fields)):
            problems[f"inputs[{i}].{name}"] = [f"Not a field of the prompt's template (fields: {fields})."]
        size = sum(len(v) for v in item.values() if isinstance(v, str))
        if size > limit:
            problems.setdefault(f"inputs[{i}]", []).append(f"{size} characters; the limit is {limit}.")
        rows.append(item)
    if problems:
        raise Invalid(problems)
    return rows


@dataclass
class Prediction:
    body: dict[str, Any]
    # A Server-Timing header: time in the queue, the batch's forward passes, the whole round trip.
    server_timing: str
    prediction_id: str | None = None  # the prediction log's row (None: not recorded)
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
    *,
    alias: Alias | None = None,
    shadow: PromptVersion | None = None,
    record_prediction: bool = True,
) -> Prediction:
    """Outputs for `rows` from the serving pool; counts the tenant's usage when answered. The caller holds
    the tenant's place (`admit`) around the whole request.

    `alias`: the alias the version was reached through (named in the reply and the log; a canary pick
    of its split is watched for automatic rollback). `shadow`: a version that scores the same rows in the
    same batch; the caller never sees its outputs, the log keeps them and their agreement. Every answered
    request, and every one that fails in or after the pool, writes one prediction log row (unless
    `record_prediction` is off: platform-internal scoring that is not traffic)."""
    timeout_s = min(timeout_ms or settings.SERVING_TIMEOUT_MS, settings.SERVING_TIMEOUT_MS) / 1000
    request = _serve_request(actor, prompt, version, rows, timeout_s, max_new_tokens, shadow)
    log_entry = _LogEntry(actor.tenant, prompt, version, alias, rows) if record_prediction else None
    sent = time.perf_counter()

    def failed(code: str, exc: DomainError) -> NoReturn:
        if log_entry is not None:
            log_entry.failed(code, 1000 * (time.perf_counter() - sent))
        raise exc

    try:
        reply = client.submit(request, timeout_s + client.REPLY_GRACE_S)
    except client.TenantOverloaded:
        raise TenantOverloaded from None
    except client.Overloaded:
        raise Overloaded from None
    except client.NoReply:
        reply = {"status": ServingStatus.EXPIRED}  # no answer within the deadline: the same 504
    except client.Unavailable:
        raise ServingUnavailable from None
    if reply.get("status") == ServingStatus.EXPIRED:
        failed(DeadlineExceeded.code, DeadlineExceeded())
    if reply.get("status") != ServingStatus.OK:
        code, exc = _refusal(request["request_id"], reply)
        failed(code, exc)
    round_trip_ms = 1000 * (time.perf_counter() - sent)
    Usage.count(actor.tenant, prompt.name, len(rows))
    timing = (
        f"queue;dur={reply.get('queue_ms', 0):.1f}, model;dur={reply.get('batch_ms', 0):.1f}, "
        f"pool;dur={round_trip_ms:.1f}"
    )
    outputs, tokens = _split_tokens(reply["outputs"])
    body: dict[str, Any] = {"version": version.number}
    prediction_id = None
    if log_entry is not None:
        shadow_outputs = reply.get("shadow_outputs") if shadow is not None else None
        prediction_id = log_entry.answered(outputs, round_trip_ms, shadow, shadow_outputs)
        body["prediction_id"] = prediction_id
    if alias is not None:
        body["alias"] = alias.name
    body["outputs"] = outputs
    return Prediction(body, timing, prediction_id, tokens)


def _serve_request(
    actor: Actor,
    prompt: TaskPrompt,
    version: PromptVersion,
    rows: list[dict[str, str]],
    timeout_s: float,
    max_new_tokens: int | None,
    shadow: PromptVersion | None,
) -> ServeRequest:
    """The pool's request for `rows` (common/contracts.py: ServeRequest), its deadline `timeout_s` away."""
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
    if shadow is not None:
        request["shadow"] = ShadowTarget(
            version=shadow.number,
            version_id=str(shadow.pk),
            artifact_key=shadow.artifact_key,
            artifact_sha256=shadow.artifact_sha256,
        )
    return request


@dataclass(frozen=True)
class ServeCall:
    """One predict request as its caller read it. `inputs` is the list to check, or a function of the
    prompt that makes it (the playground parses its text box by the template's fields). `inputs_field`
    is the name the caller knows the inputs by (the completions call's `prompt`): errors name it."""

    name: str
    inputs: Any
    alias: str | None = None
    version: int | None = None
    routing_key: str | None = None
    timeout_ms: int | None = None
    max_new_tokens: int | None = None
    inputs_field: str = "inputs"


@dataclass
class Served:
    """What `serve` did: the route taken, the rows checked, the prediction, and its round trip (ms)."""

    route: Route
    rows: list[dict[str, str]]
    prediction: Prediction
    latency_ms: float


def serve(actor: Actor, read: Callable[[], ServeCall]) -> Served:
    """The predict sequence, for the API and the playground alike: hold the tenant's place (`admit`),
    read the request, route it to a version, check its inputs, predict. `read` runs once the place is
    held, so a team over its share is refused before its request is parsed."""
    with admit(actor):
        call = read()
        where = route(actor, call.name, call.alias, call.version, call.routing_key)
        inputs = call.inputs(where.prompt) if callable(call.inputs) else call.inputs
        try:
            rows = validate_inputs(where.prompt, inputs)
        except Invalid as exc:
            if call.inputs_field == "inputs":
                raise
            renamed = {key.replace("inputs", call.inputs_field, 1): v for key, v in exc.fields.items()}
            raise Invalid(renamed) from None
        started = time.perf_counter()
        prediction = predict(
            actor,
            where.prompt,
            where.version,
            rows,
            call.timeout_ms,
            call.max_new_tokens,
            alias=where.alias,
            shadow=where.shadow,
        )
        return Served(where, rows, prediction, 1000 * (time.perf_counter() - started))


def _answer(output: dict[str, Any]) -> str:
    """What a caller got for one input, as the log keeps it: the label, or the generated text."""
    return str(output.get("label", output.get("text", "")))


class _LogEntry:
    """One request's row in the prediction log, written once the request ends: one INSERT in its own
    transaction, committed without waiting for the disk (like Usage.count), so the log costs a prediction
    about a round trip to the database. A canary's entry then looks at its rollback thresholds."""

    def __init__(
        self,
        tenant: Tenant,
        prompt: TaskPrompt,
        version: PromptVersion,
        alias: Alias | None,
        rows: list[dict[str, str]],
    ):
        self.tenant, self.prompt, self.version, self.alias, self.rows = tenant, prompt, version, alias, rows

    def _write(self, **fields: Any) -> PredictionRecord:
        entry = PredictionRecord(
            id=uuid.uuid4(),
            tenant=self.tenant,
            prompt=self.prompt,
            version=self.version,
            alias=self.alias.name if self.alias else "",
            rows=len(self.rows),
            inputs=self.rows if self.prompt.keep_inputs else None,
            **fields,
        )
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            entry.save(force_insert=True)
        return entry

    def answered(
        self,
        outputs: list[dict[str, Any]],
        latency_ms: float,
        shadow: PromptVersion | None,
        shadow_outputs: list[dict[str, Any]] | None,
    ) -> str:
        answers = [_answer(o) for o in outputs]
        fields: dict[str, Any] = {"outputs": answers, "latency_ms": latency_ms}
        if shadow is not None and shadow_outputs:
            theirs = [_answer(o) for o in shadow_outputs]
            fields["shadow_version"] = shadow
            fields["shadow_outputs"] = theirs
            fields["shadow_agreement"] = sum(a == b for a, b in zip(answers, theirs, strict=False)) / max(
                1, len(answers)
            )
        elif shadow is not None:
            log.warning("prediction of %s: shadow v%s sent no outputs", self.prompt.name, shadow.number)
        entry = self._write(**fields)
        self._watch()
        return str(entry.pk)

    def failed(self, code: str, latency_ms: float) -> None:
        """The error row; never hides the caller's error behind a database one."""
        try:
            self._write(outcome=PredictionOutcome.ERROR, error_code=code, latency_ms=latency_ms)
        except Exception:
            log.exception("could not log the failed prediction of %s", self.prompt.name)
            return
        self._watch()

    def _watch(self) -> None:
        if self.alias is None or self.version.pk == self.alias.version_id:
            return
        try:
            watch_canary(self.tenant, self.alias, self.version)
        except Exception:  # the caller's answer never depends on the watch
            log.exception("checking canary v%s of %s failed", self.version.number, self.prompt.name)


def _refusal(request_id: str, reply: dict[str, Any]) -> tuple[str, DomainError]:
    """A worker's error reply as the tenant sees it: a stable message for its code and the request id
    (the worker logged the detail under that id); never the text of an exception. (code, exception)."""
    code = reply.get("code") if reply.get("code") in SERVING_ERRORS else "internal"
    log.warning("prediction %s failed in the serving pool: %s", request_id, code)
    message = f"{SERVING_ERRORS[code]} (request id {request_id})"
    if code == "too_large":
        return code, Invalid({"inputs": [message]})
    return code, ServingFailed(message, code=code)


# --- automatic rollback of a canary ----------------------------------------------------------------
# The audit log's name for the platform itself when it, not a member or key, changes an alias.
CANARY_WATCH = "canary-watch"
SYSTEM_ACTOR = f"system:{CANARY_WATCH}"  # as `Actor.system(tenant, CANARY_WATCH).audit_by` names it
# A canary's figures are looked at most this often per alias (every web process shares the throttle
# through the cache), so a busy canary costs its predictions two aggregate queries every few seconds.
CANARY_CHECK_EVERY_S = 5.0
DEFAULT_WINDOW_S = 300
DEFAULT_MIN_REQUESTS = 20
# p95 over at most this many of the newest predictions in the window: bounded reads on a busy canary.
P95_SAMPLE = 2000


def _policy_number(policy: dict[str, Any], key: str) -> float | None:
    value = policy.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def canary_figures(tenant: Tenant, alias: Alias, version: PromptVersion, window_s: float) -> dict[str, Any]:
    """Requests, errors, error rate and p95 latency (ms) of `version` through `alias` over the window."""
    since = timezone.now() - timedelta(seconds=window_s)
    recent = PredictionRecord.objects.for_tenant(tenant).filter(
        version=version, alias=alias.name, created_at__gte=since
    )
    outcomes = dict(recent.values_list("outcome").annotate(n=models.Count("id")).order_by())
    requests = sum(outcomes.values())
    errors = outcomes.get(PredictionOutcome.ERROR, 0)
    latencies = list(recent.order_by("-created_at").values_list("latency_ms", flat=True)[:P95_SAMPLE])
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "p95_ms": percentile(latencies, 0.95),
        "window_s": window_s,
    }


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))], 2)


def watch_canary(tenant: Tenant, alias: Alias, version: PromptVersion) -> bool:
    """After a prediction that a split sent to the canary `version`: past the alias policy's thresholds
    over its window (with at least min_requests seen), roll the canary back. Throttled per alias.
    True when it rolled back."""
    policy = alias.policy or {}
    max_error_rate = _policy_number(policy, "max_error_rate")
    max_p95_ms = _policy_number(policy, "max_p95_ms")
    if max_error_rate is None and max_p95_ms is None:
        return False
    if CANARY_CHECK_EVERY_S > 0 and not cache.add(
        f"softserve:canary-check:{alias.pk}", 1, timeout=CANARY_CHECK_EVERY_S
    ):
        return False
    window_s = min(_policy_number(policy, "window_s") or DEFAULT_WINDOW_S, 24 * 3600)
    min_requests = _policy_number(policy, "min_requests") or DEFAULT_MIN_REQUESTS
    figures = canary_figures(tenant, alias, version, window_s)
    if figures["requests"] < min_requests:
        return False
    reasons = []
    if max_error_rate is not None and figures["error_rate"] > max_error_rate:
        reasons.append("max_error_rate")
    if max_p95_ms is not None and figures["p95_ms"] is not None and figures["p95_ms"] > max_p95_ms:
        reasons.append("max_p95_ms")
    if not reasons:
        return False
    return rollback_canary(tenant, alias.pk, version, figures, reasons)


@transaction.atomic
def rollback_canary(
    tenant: Tenant, alias_id: Any, version: PromptVersion, figures: dict[str, Any], reasons: list[str]
) -> bool:
    """Take `version` out of the alias's split, its weight to the primary (a split left with one entry is
    cleared), audited as the system and announced (`canary.rolled_back`). False when another process did
    it first, or the alias moved meanwhile so the version is no longer its canary."""
    alias = Alias.objects.for_tenant(tenant).select_for_update().filter(pk=alias_id).first()
    if alias is None or alias.version_id == version.pk:
        return False
    split = list(alias.split or [])
    out = next((e for e in split if int(e.get("version", 0)) == version.number), None)
    if out is None:
        return False
    primary = alias.version.number
    kept = [dict(e) for e in split if e is not out]
    into = next((e for e in kept if int(e["version"]) == primary), None)
    if into is None:
        kept.append({"version": primary, "weight": int(out["weight"])})
    else:
        into["weight"] = int(into["weight"]) + int(out["weight"])
    alias.split = kept if len(kept) > 1 else []
    alias.save(update_fields=["split", "updated_at"])
    prompt_name = alias.prompt.name
    after = {
        "alias": alias.name,
        "split": alias.split,
        "version": primary,
        "rolled_back": version.number,
        "reasons": reasons,
        "figures": figures,
    }
    record(
        Actor.system(tenant, CANARY_WATCH),  # audited as system:canary-watch (after.by)
        tenant,
        AuditAction.ALIAS_ROLLBACK,
        alias,
        before={"alias": alias.name, "split": split},
        after=after,
    )
    emit(
        tenant,
        WebhookEvent.CANARY_ROLLED_BACK,
        {
            "prompt": prompt_name,
            "alias": alias.name,
            "version": version.number,
            "primary": primary,
            "split": alias.split,
            "reasons": reasons,
            "figures": figures,
            "policy": alias.policy,
        },
    )
    log.warning(
        "rolled back canary v%s of %s@%s (%s): %s", version.number, prompt_name, alias.name, reasons, figures
    )
    return True
