"""Team settings: members and roles, API keys (shown once), usage per prompt and day."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages as flash
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from softserve.serving.models import Usage
from softserve.tenancy import actions
from softserve.tenancy.models import SCOPES, ApiKey, Invitation, InvitationStatus, Membership, Role
from softserve.tenancy.serializers import (
    ApiKeyCreateSerializer,
    MembershipCreateSerializer,
    MembershipUpdateSerializer,
)
from webui.forms import REFUSALS, errors_of, page_of
from webui.team import team_page

USAGE_DAYS = 30
SETTINGS_PAGE = 25  # members and keys per page: each row carries its own small form
USAGE_PROMPTS = 8  # the busiest prompts get their own series; the rest add up to "other"


def usage_chart(tenant) -> dict:
    """Inputs per day of the busiest prompts, the rest summed as "other": three aggregate queries, so
    the rows read do not grow with the number of prompts."""
    since = timezone.now().date() - timedelta(days=USAGE_DAYS - 1)
    recent = Usage.objects.for_tenant(tenant).filter(day__gte=since)
    top = list(
        recent.values("prompt_name")
        .annotate(total=Sum("inputs"))
        .order_by("-total", "prompt_name")
        .values_list("prompt_name", flat=True)[:USAGE_PROMPTS]
    )
    series = {name: [0] * USAGE_DAYS for name in top}
    for name, day, inputs in recent.filter(prompt_name__in=top).values_list("prompt_name", "day", "inputs"):
        series[name][(day - since).days] += inputs
    other = [0] * USAGE_DAYS
    for day, inputs in (
        recent.exclude(prompt_name__in=top).values("day").annotate(n=Sum("inputs")).values_list("day", "n")
    ):
        other[(day - since).days] = inputs
    if any(other):
        series["other"] = other
    return {
        "type": "bar",
        "labels": [(since + timedelta(days=i)).isoformat() for i in range(USAGE_DAYS)],
        "datasets": [{"label": name, "data": data, "stack": "usage"} for name, data in series.items()],
        "x": "day",
        "y": "inputs predicted",
    }


def _render(request: HttpRequest, errors: dict | None = None, values: dict | None = None, created=None):
    tenant = request.actor.tenant
    members = Membership.objects.for_tenant(tenant).select_related("user").order_by("created_at")
    keys = ApiKey.objects.for_tenant(tenant).order_by("-created_at")
    may_keys = request.actor.may("manage_keys")
    context = {
        "members": page_of(request, members, SETTINGS_PAGE, "members_page"),
        "keys": page_of(request, keys, SETTINGS_PAGE, "keys_page") if may_keys else None,
        "roles": [r.value for r in Role],
        "scopes": SCOPES,
        "errors": errors or {},
        "values": values or {},
        "created": created,
        "may_members": request.actor.may("manage_members"),
        "invitations": (
            Invitation.objects.for_tenant(tenant)
            .filter(status=InvitationStatus.PENDING)
            .order_by("-created_at")[:SETTINGS_PAGE]
            if request.actor.may("manage_members")
            else None
        ),
        "usage": usage_chart(tenant),
    }
    return render(request, "webui/settings.html", context, status=422 if errors else 200)


@team_page()
def settings_page(request: HttpRequest) -> HttpResponse:
    return _render(request)


@require_POST
@team_page(post="manage_keys")
def key_create(request: HttpRequest) -> HttpResponse:
    values = {"name": request.POST.get("name", "").strip(), "scopes": request.POST.getlist("scopes")}
    if request.POST.get("role"):
        values["role"] = request.POST["role"]
    form = ApiKeyCreateSerializer(data=values)
    try:
        form.is_valid(raise_exception=True)
        data = form.validated_data
        key, plaintext = actions.create_key(
            request.actor, data["name"], data["scopes"], data.get("role"), None
        )
    except REFUSALS as exc:
        return _render(request, {f"key_{k}": v for k, v in errors_of(exc).items()}, values)
    # Shown once, in this response only; never stored or put in a message that survives a reload, and
    # never kept by a browser's or a proxy's cache either (no-store).
    response = _render(request, created={"key": key, "plaintext": plaintext})
    add_never_cache_headers(response)
    return response


@require_POST
@team_page(post="manage_keys")
def key_revoke(request: HttpRequest, pk) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.for_tenant(request.actor.tenant), pk=pk)
    actions.revoke_key(request.actor, key)
    flash.success(request, f"Key {key.name} ({key.prefix}) is revoked.")
    return redirect("webui:settings")


@require_POST
@team_page(post="manage_members")
def member_add(request: HttpRequest) -> HttpResponse:
    values = {k: request.POST.get(k, "").strip() for k in ("email", "role")}
    form = MembershipCreateSerializer(data={k: v for k, v in values.items() if v})
    try:
        form.is_valid(raise_exception=True)
        invitation = actions.invite(request.actor, form.validated_data["email"], form.validated_data["role"])
    except REFUSALS as exc:
        return _render(request, {f"member_{k}": v for k, v in errors_of(exc).items()}, values)
    # The same words whether or not the address has an account: an invite tells the inviter nothing.
    flash.success(
        request,
        f"{invitation.email} is invited as {invitation.role}: they join when they sign in with that "
        "address and accept.",
    )
    return redirect("webui:settings")


@require_POST
@team_page(post="manage_members")
def invitation_withdraw(request: HttpRequest, pk) -> HttpResponse:
    invitation = get_object_or_404(Invitation.objects.for_tenant(request.actor.tenant), pk=pk)
    try:
        actions.withdraw_invitation(request.actor, invitation)
    except REFUSALS as exc:
        for text in (m for ms in errors_of(exc).values() for m in ms):
            flash.error(request, text)
    else:
        flash.success(request, f"The invitation to {invitation.email} is withdrawn.")
    return redirect("webui:settings")


@require_POST
@team_page(post="manage_members")
def member_change(request: HttpRequest, pk) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.for_tenant(request.actor.tenant).select_related("user"), pk=pk
    )
    try:
        if request.POST.get("remove"):
            actions.remove_member(request.actor, membership)
            flash.success(request, f"{membership.user.email} was removed.")
        else:
            form = MembershipUpdateSerializer(data={"role": request.POST.get("role", "")})
            form.is_valid(raise_exception=True)
            actions.change_role(request.actor, membership, form.validated_data["role"])
            flash.success(request, f"{membership.user.email} is now {form.validated_data['role']}.")
    except REFUSALS as exc:
        for text in (m for ms in errors_of(exc).values() for m in ms):
            flash.error(request, text)
    return redirect("webui:settings")
