"""Webhook settings: the team's hooks (URL, events, on or off and why), a new hook (its secret shown
once), enable/disable, a test delivery, delete, and each hook's delivery log. Owners and admins only."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from common.contracts import WebhookEvent
from softserve.webhooks import actions
from softserve.webhooks.models import Webhook, WebhookDelivery
from softserve.webhooks.serializers import SECRET_SHOWN, WebhookCreateSerializer
from webui.forms import REFUSALS, errors_of, page_of
from webui.team import team_page

MANAGE = "manage_webhooks"
DELIVERIES_PAGE = 25
HOOK_ACTIONS = ("enable", "disable", "test", "delete")


def _render(request: HttpRequest, errors: dict | None = None, values: dict | None = None, created=None):
    hooks = Webhook.objects.for_tenant(request.actor.tenant).order_by("-created_at")
    context = {
        "hooks": page_of(request, hooks, DELIVERIES_PAGE),
        "events": [e.value for e in WebhookEvent],
        "errors": errors or {},
        "values": values or {},
        "created": created,
        "shown": SECRET_SHOWN,
    }
    return render(request, "webui/webhooks.html", context, status=422 if errors else 200)


@require_http_methods(["GET", "POST"])
@team_page(MANAGE, post=MANAGE)
def webhook_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render(request)
    values = {
        "url": request.POST.get("url", "").strip(),
        "events": request.POST.getlist("events"),
        "description": request.POST.get("description", "").strip(),
    }
    form = WebhookCreateSerializer(data=values)
    try:
        form.is_valid(raise_exception=True)
        data = form.validated_data
        hook = actions.create_webhook(request.actor, data["url"], data["events"], data["description"])
    except REFUSALS as exc:
        return _render(request, {f"hook_{k}": v for k, v in errors_of(exc).items()}, values)
    # The secret is in this response only: never in a message that survives a reload, nor in any cache.
    response = _render(request, created=hook)
    add_never_cache_headers(response)
    return response


@require_http_methods(["GET", "POST"])
@team_page(MANAGE, post=MANAGE)
def webhook_detail(request: HttpRequest, pk) -> HttpResponse:
    hook = get_object_or_404(Webhook.objects.for_tenant(request.actor.tenant), pk=pk)
    if request.method == "POST":
        return _act(request, hook)
    deliveries = WebhookDelivery.objects.for_tenant(request.actor.tenant).filter(webhook=hook)
    context = {
        "hook": hook,
        "deliveries": page_of(request, deliveries, DELIVERIES_PAGE),
        "shown": SECRET_SHOWN,
    }
    return render(request, "webui/webhook_detail.html", context)


def _act(request: HttpRequest, hook: Webhook) -> HttpResponse:
    action = request.POST.get("action", "")
    try:
        if action == "enable":
            actions.update_webhook(request.actor, hook, {"enabled": True})
            flash.success(request, "The webhook is enabled; its failure count starts again at 0.")
        elif action == "disable":
            actions.update_webhook(request.actor, hook, {"enabled": False})
            flash.success(request, "The webhook is disabled: no events are delivered to it.")
        elif action == "test":
            actions.send_test(request.actor, hook)
            flash.success(request, "A test delivery (ping) is queued; its outcome shows in the log below.")
        elif action == "delete":
            actions.delete_webhook(request.actor, hook)
            flash.success(request, f"The webhook to {hook.url} is deleted.")
            return redirect("webui:webhooks")
        else:
            flash.error(request, f"Choose one of: {', '.join(HOOK_ACTIONS)}.")
    except REFUSALS as exc:
        for text in (m for ms in errors_of(exc).values() for m in ms):
            flash.error(request, text)
    return redirect("webui:webhook", pk=hook.pk)
