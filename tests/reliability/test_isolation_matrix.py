"""The isolation matrix: every URL Django resolves × every method (HEAD and OPTIONS too) × 8 callers.

Endpoints come from `get_resolver().url_patterns`, so a new endpoint (an API view, a page under /app/
or /ops/) is in the matrix without editing this file; one the walk cannot classify or fill in fails the
test with a message saying what to add. Each answer must be the status documented in
docs/reliability.md ("## Isolation", the same table as `expected` below), must carry none of the victim
team's data, and must leave the victim's rows and stored objects as they were.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.conf import settings
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import URLPattern, get_resolver

from softserve.tenancy.permissions import action_for, scopes_for
from tests.reliability.figures import record_figures
from tests.reliability.matrix import body_for, url_of, victim_state, walk

pytestmark = pytest.mark.django_db

METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
SAFE = {"GET", "HEAD", "OPTIONS"}
SCENARIOS = (
    "other_team_session",
    "other_team_key",
    "revoked_key",
    "expired_key",
    "wrong_scope_key",
    "removed_member_key",
    "no_credentials",
    "session_without_csrf",
)
DEAD = {"revoked_key", "expired_key", "removed_member_key", "no_credentials"}
# Pages anyone may call, with or without credentials (the answer is the same for every team).
PUBLIC = {"healthz", "readyz", "login", "logout", "schema", "docs", "webui:front-door"}
# Only Prometheus' METRICS_TOKEN opens /metrics; no team credential does (401; 404 when no token is set).
METRICS = {"metrics"}


def kind_of(route: str, name: str | None) -> str:
    if name in PUBLIC:
        return "public"
    if name in METRICS:
        return "metrics"
    if route.startswith("api/v1/me/"):
        return "api_personal_object" if "<" in route else "api_personal"
    if route.startswith("api/v1/"):
        return "api_object" if ("<" in route or "(?P<" in route) else "api_tenant"
    if route.startswith("app/"):
        return "web"
    if route.startswith("ops/"):
        return "ops"
    if route.startswith("static/") or route.startswith("^static/"):
        return "public"
    pytest.fail(
        f"The isolation matrix cannot classify {route!r} (name {name!r}): add its name to PUBLIC, or a "
        "prefix rule to kind_of() in tests/reliability/test_isolation_matrix.py, and its statuses to the "
        "table under '## Isolation' in docs/reliability.md."
    )


def supported(pattern: URLPattern, method: str) -> bool | None:
    """Whether the view handles `method` (None: a function view, which decides for itself)."""
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if view is None:
        return None
    lower = "get" if method == "HEAD" else method.lower()
    return method.lower() in view.http_method_names and hasattr(view, lower)


def expected(kind: str, scenario: str, method: str, handles: bool | None) -> set[int]:
    """The documented answer (docs/reliability.md, "## Isolation")."""
    safe = method in SAFE
    if kind == "public":
        return {"any non-5xx"}  # type: ignore[return-value] - checked apart
    if kind == "metrics":
        return {401, 404} if method in ("GET", "HEAD") else {401, 403, 404, 405}
    if kind in ("api_personal", "api_personal_object"):
        # A signed-in person's own invitations: keys act for a team, never for a person (403); another
        # team's member finds nothing of the victim's (404 for an invitation not addressed to them).
        if scenario in DEAD:
            return {401}
        if scenario == "session_without_csrf":
            if not safe:
                return {403}
            return {200} if handles else {405}
        if scenario in ("other_team_key", "wrong_scope_key"):
            return {403}
        if handles is False:
            return {405}
        return {200} if method == "OPTIONS" or kind == "api_personal" else {404}
    if kind in ("api_object", "api_tenant"):
        if scenario in DEAD:
            return {401}
        if scenario == "session_without_csrf":
            if not safe:
                return {403}
            return {200} if handles else {405}
        if handles is False:
            return {405}
        if scenario == "wrong_scope_key":
            return {403}
        # Another team, acting in its own tenant:
        if kind == "api_object":
            return {200} if method == "OPTIONS" else {404}  # OPTIONS describes the endpoint only
        return {200, 201, 202, 400, 404, 405, 415}  # 202: an invitation sent (POST /members)
    if kind == "web":
        if not safe and scenario != "other_team_session":
            return {403}  # no CSRF token: refused before any view
        if scenario in ("other_team_session", "session_without_csrf"):
            # Its own team's page or form answer (422: a form with errors; 286: htmx's "stop polling" on a
            # finished job's live panel), or not found.
            return {200, 204, 286, 302, 400, 404, 405, 422}
        return {302, 405}  # keys are not sessions: off to the sign-in page (or a POST-only page's 405)
    # ops: staff only; no team member is staff.
    if not safe and scenario != "other_team_session":
        return {403}
    return {302, 403, 404, 405}


def wrong_scope_key(pattern: URLPattern, method: str, world) -> str | None:
    """A key whose scopes lack the one the endpoint's method needs, where the usual choice has it: the
    model list takes a read or a predict key, so only a write-only key is wrong there."""
    view = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    action = action_for(view, method) if view is not None else None
    if action and "predict" in scopes_for(action) and method in SAFE:
        return world["keys"]["write_only"]
    return None


def client_for(scenario: str, method: str, world) -> tuple[Client, dict]:
    """A client as that caller, and the extra headers of its request."""
    # As a browser meets it: CSRF is checked; a server error is an answer to count, not an exception.
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    headers: dict[str, str] = {}
    keys = world["keys"]
    if scenario == "other_team_session":
        client.force_login(world["attacker"].owner)
        token = _get_new_csrf_string()
        client.cookies[settings.CSRF_COOKIE_NAME] = token
        headers["HTTP_X_CSRFTOKEN"] = token
    elif scenario == "session_without_csrf":
        client.force_login(world["victim"].owner)  # the victim's own session, tricked by another site
    elif scenario == "other_team_key":
        headers["HTTP_AUTHORIZATION"] = f"Bearer {world['attacker'].key}"
    elif scenario == "wrong_scope_key":
        key = keys["predict_only"] if method in SAFE else keys["read_only"]
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    elif scenario in keys:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {keys[scenario]}"
    return client, headers


def test_isolation_matrix(world):
    endpoints = list(walk(get_resolver().url_patterns))
    assert len(endpoints) >= 20
    body = body_for(world)
    mismatches, leaks, server_errors = [], [], []
    counts: Counter[str] = Counter()
    clients: dict[tuple[str, bool], tuple[Client, dict]] = {}
    for scenario in SCENARIOS:
        before = victim_state(world)
        for route, name, pattern in endpoints:
            if name is None:
                pytest.fail(f"URL {route!r} has no name: name it so the isolation matrix can reverse it.")
            kind = kind_of(route, name)
            url = url_of(route, name, world)
            for method in METHODS:
                # A signed-in client is made once per caller (signing in writes a session row); logout
                # would end that session, so that endpoint gets a fresh client of its own each time.
                if name == "logout":
                    client, headers = client_for(scenario, method, world)
                else:
                    if (scenario, method in SAFE) not in clients:
                        clients[scenario, method in SAFE] = client_for(scenario, method, world)
                    client, headers = clients[scenario, method in SAFE]
                if scenario == "wrong_scope_key" and wrong_scope_key(pattern, method, world):
                    headers = {"HTTP_AUTHORIZATION": f"Bearer {wrong_scope_key(pattern, method, world)}"}
                response = client.generic(
                    method, url, body if method not in SAFE else "", "application/json", **headers
                )
                counts[scenario] += 1
                status = response.status_code
                text = b"".join(response) if response.streaming else response.content
                text = text.decode(errors="replace")
                where = f"{scenario} {method} {url} -> {status}"
                if status >= 500:
                    server_errors.append(where)
                if scenario != "session_without_csrf" or method not in SAFE:
                    leaked = [m for m in world["markers"] if m in text]
                    if leaked:
                        leaks.append(f"{where}: {leaked}")
                if kind != "public":
                    wanted = expected(kind, scenario, method, supported(pattern, method))
                    if status not in wanted:
                        mismatches.append(f"{where}, documented {sorted(wanted)}")
        after = victim_state(world)
        if after != before:
            leaks.append(f"{scenario}: the victim's rows or objects changed: {before} -> {after}")
    figures = {
        "endpoints": len(endpoints),
        "methods": len(METHODS),
        "callers": len(SCENARIOS),
        "requests": sum(counts.values()),
        "leaks": len(leaks),
        "undocumented_statuses": len(mismatches),
        "server_errors": len(server_errors),
    }
    record_figures("isolation", "Isolation matrix (every URL × method × caller)", figures)
    assert not server_errors, server_errors[:20]
    assert not leaks, leaks[:20]
    assert not mismatches, f"{len(mismatches)} answers differ from the table: {mismatches[:30]}"


@pytest.mark.parametrize("token", ["", "prometheus-only-token"])
def test_metrics_and_readyz_with_and_without_credentials(world, settings, token):
    """Issue 22, findings 3 and 4: /metrics answers only METRICS_TOKEN (no team's session or key, no
    address), and is 404 when none is configured; /readyz answers everyone the same, and nothing of a team.
    The caller's address does not matter: a request from inside the cluster is refused like any other."""
    settings.METRICS_TOKEN = token
    session = Client()
    session.force_login(world["victim"].owner)
    callers = {
        "no_credentials": (Client(), {}),
        "team_session": (session, {}),
        "team_key": (Client(), {"HTTP_AUTHORIZATION": f"Bearer {world['victim'].key}"}),
        "wrong_token": (Client(), {"HTTP_AUTHORIZATION": "Bearer not-the-token"}),
        "token_as_basic": (Client(), {"HTTP_AUTHORIZATION": f"Basic {token}"}),
    }
    refused = 401 if token else 404
    readyz_bodies = set()
    for caller, (client, headers) in callers.items():
        for address in ("127.0.0.1", "10.1.2.3", "203.0.113.9"):
            for method in ("GET", "HEAD"):
                answer = client.generic(method, "/metrics", REMOTE_ADDR=address, **headers)
                assert answer.status_code == refused, (caller, address, method, answer.status_code)
                assert b"softserve_" not in answer.content
                ready = client.generic(method, "/readyz", REMOTE_ADDR=address, **headers)
                assert ready.status_code == 200, (caller, ready.status_code, ready.content)
                if method == "GET":
                    readyz_bodies.add(ready.content)
                    assert not [m for m in world["markers"] if m in ready.content.decode()]
    assert len(readyz_bodies) == 1  # one answer for everyone
    scraped = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    if token:
        assert scraped.status_code == 200 and b"softserve_http_requests_total" in scraped.content
        assert "WWW-Authenticate" not in scraped
        assert Client().get("/metrics")["WWW-Authenticate"].startswith("Bearer")
    else:
        assert scraped.status_code == 404  # an empty bearer is no token
