"""The role matrix: every POST endpoint under /app/ and /ops/ × every kind of caller inside one team.

Endpoints come from the URL resolver (`matrix.walk`), as in the isolation matrix, so a new page is in the
matrix without editing this file. What each caller should get is derived from the page's own declaration
(`webui.team.PageAccess`, set by `team_page(post=…)`, `person_page` and `staff_only`) and the role table
(`PERMISSIONS`, `ROLE_RANK`); a page under /app/ or /ops/ that declares nothing fails the test. Callers: the
team's viewer, member, admin and owner, an operator (staff) in no team, an operator who is also the team's
viewer (being staff grants nothing inside a team), and nobody signed in.

Expected, per POST:
- a team page: a role at least `PageAccess.write` (`read` for a form's re-render) gets the page's own
  answer (a redirect, the page, a form error: anything but 403, 404 and 5xx); a lower role gets
  the not-allowed page (403) naming the role the declaration needs, and the team's rows and stored
  objects stay as they were; staff in no team get the no-team page (403; the home page sends them to
  /ops/); nobody signed in is sent to sign in;
- a person's page (their own invitations): anyone signed in gets the page's answer (404 for an
  invitation not addressed to them), nobody signed in is sent to sign in;
- an operator page: staff get the page's answer; anyone else 404, as if it did not exist;
- a POST that needs no more than `read` (or is refused) never changes the team's rows or objects: a page
  that writes must declare the action its write needs.
CSRF is the isolation matrix's dimension; here the client does not enforce it.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import get_resolver, reverse

from softserve.tenancy.models import ROLE_RANK, ApiKey
from softserve.tenancy.permissions import PERMISSIONS
from tests.reliability.figures import record_figures
from tests.reliability.matrix import fill, form_values, victim_state, walk
from tests.teams import join, make_user
from webui.team import ACCESS_ATTR, PageAccess

pytestmark = pytest.mark.django_db

PREFIXES = ("app/", "ops/")
MEMBER_ROLES = ("viewer", "member", "admin", "owner")
# Lowest first: refusals come before the writes that could change what later callers find.
CALLERS = ("anonymous", "staff_no_team", "viewer", "staff_viewer", "member", "admin", "owner")


def access_of(route: str, name: str, pattern) -> PageAccess:
    access = getattr(pattern.callback, ACCESS_ATTR, None)
    if not isinstance(access, PageAccess):
        pytest.fail(
            f"The role matrix cannot classify {route!r} (name {name!r}): decorate its view with "
            "webui.team.team_page(post=…), person_page or webui.views.ops.staff_only, which declare "
            "who may call it."
        )
    return access


def role_of(caller: str) -> str | None:
    """The caller's role in the team (None: not a member)."""
    if caller == "staff_viewer":
        return "viewer"
    return caller if caller in MEMBER_ROLES else None


def expected(access: PageAccess, caller: str, name: str, rerender: bool) -> tuple[str, str | None]:
    """(outcome, the action a member needed): what the declaration and the role table say."""
    if access.kind == "staff":
        return ("allowed" if caller.startswith("staff") else "hidden"), None
    if caller == "anonymous":
        return "sign_in", None
    if access.kind == "person":
        return "allowed", None
    if access.kind != "team":
        pytest.fail(f"{name}: unknown page kind {access.kind!r}")
    needed = access.read if rerender else access.write
    role = role_of(caller)
    if role is None:
        return ("ops_home" if name == "webui:home" else "no_team"), needed
    return ("allowed" if ROLE_RANK[role] >= ROLE_RANK[PERMISSIONS[needed]] else "refused"), needed


def outcome_of(response) -> str:
    status = response.status_code
    location = response.get("Location", "")
    templates = {t.name for t in response.templates}
    if status >= 500:
        return "server_error"
    if status in (301, 302, 303) and location.startswith(settings.LOGIN_URL):
        return "sign_in"
    if status in (302, 303) and location == reverse("webui:ops"):
        return "ops_home"
    if status == 403 and "webui/forbidden.html" in templates:
        return "refused"
    if status == 403 and "webui/no_team.html" in templates:
        return "no_team"
    if status == 404:
        return "not_found"  # a page's own answer for a team page; how /ops/ hides itself from others
    if status == 403:
        return "refused_unexplained"  # a 403 that is neither page: never expected
    return "allowed"


@pytest.fixture
def callers(world) -> dict[str, Client]:
    team = world["victim"]
    users = {"owner": team.owner}
    for role in ("viewer", "member", "admin"):
        users[role] = join(team, f"{role}@acme.example", role).user
    users["staff_no_team"] = make_user("operator@softserve.example")
    users["staff_viewer"] = join(team, "operator-viewer@acme.example", "viewer").user
    get_user_model().objects.filter(pk__in=[users["staff_no_team"].pk, users["staff_viewer"].pk]).update(
        is_staff=True
    )
    clients = {}
    for caller in CALLERS:
        client = Client(raise_request_exception=False)  # a 500 is an answer to count
        if caller != "anonymous":
            client.force_login(users[caller])
        clients[caller] = client
    return clients


def test_every_app_and_ops_post_answers_each_role_as_its_page_declares(world, callers):
    team = world["victim"]
    # Writes that succeed act on objects of their own, so the owner and the callers stay who they are.
    target = join(team, "target@acme.example", "member")
    target_key, _ = ApiKey.mint(team.tenant, "target", ["read"], created_by=team.owner)
    scoped = {**world, "ids": {**world["ids"], "member": target.id, "key": target_key.id}}
    values = {
        **{k: v for k, v in form_values(world).items() if not isinstance(v, list)},
        "labels": "a,b",
        "inputs": "x",
        "scopes": "read",
        "tenant": str(team.tenant.id),
    }
    endpoints = [
        (route, name, pattern)
        for route, name, pattern in walk(get_resolver().url_patterns)
        if route.startswith(PREFIXES)
    ]
    assert len(endpoints) >= 30  # every /app/ and /ops/ page of today, and more as they come
    mismatches, server_errors, unexpected_writes = [], [], []
    outcomes: Counter[str] = Counter()
    pairs = set()
    requests = 0
    for route, name, pattern in endpoints:
        if name is None:
            pytest.fail(f"URL {route!r} has no name: name it so the role matrix can reverse it.")
        access = access_of(route, name, pattern)
        url = reverse(name, kwargs=fill(route, name, scoped))
        bodies = [(False, values)]
        if access.rerender:
            field, value = access.rerender
            bodies.append((True, {**values, field: value}))
        for caller in CALLERS:
            pairs.add((name, caller))
            for rerender, body in bodies:
                wanted, needed = expected(access, caller, name, rerender)
                before = victim_state(world)
                response = callers[caller].post(url, body)
                after = victim_state(world)
                requests += 1
                got = outcome_of(response)
                if access.kind == "staff" and got == "ops_home":
                    got = "allowed"  # an operator's action answers with the dashboard
                outcomes[got] += 1
                where = f"{caller} POST {url}{' (re-render)' if rerender else ''} -> {response.status_code}"
                if got == "server_error":
                    server_errors.append(where)
                    continue
                # A team page's URL names the team's own objects, so its answer is never a 404; a person
                # page's invitation is addressed to nobody here (404); /ops/ hides itself with 404.
                ok = got == wanted or (wanted == "allowed" and got == "not_found" and access.kind == "person")
                if wanted == "hidden":
                    ok = got == "not_found"
                if not ok:
                    mismatches.append(f"{where} ({got}), declared {wanted}")
                elif got == "refused" and response.context["needed"] != PERMISSIONS[needed]:
                    mismatches.append(f"{where}: the page names {response.context['needed']}, not {needed}")
                writes_allowed = got == "allowed" and (access.kind != "team" or needed != "read")
                if after != before and not writes_allowed:
                    unexpected_writes.append(f"{where} ({got}, needs {needed}): {before} -> {after}")
    figures = {
        "endpoints": len(endpoints),
        "callers": len(CALLERS),
        "endpoint_callers": len(pairs),
        "requests": requests,
        "outcomes": dict(sorted(outcomes.items())),
        "mismatches": len(mismatches),
        "unexpected_writes": len(unexpected_writes),
        "server_errors": len(server_errors),
    }
    record_figures("roles", "Role matrix (every /app/ and /ops/ POST × role in one team)", figures)
    assert not server_errors, server_errors[:20]
    assert not mismatches, f"{len(mismatches)} answers differ from the declarations: {mismatches[:30]}"
    assert not unexpected_writes, unexpected_writes[:10]
