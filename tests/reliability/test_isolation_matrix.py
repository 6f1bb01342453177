"""The isolation matrix: every URL Django resolves × every method (HEAD and OPTIONS too) × 8 callers.

Endpoints come from `get_resolver().url_patterns`, so a new endpoint (an API view, a page under /app/
or /ops/) is in the matrix without editing this file; one the walk cannot classify or fill in fails the
test with a message saying what to add. Each answer must be the status documented in
docs/reliability.md ("## Isolation", the same table as `expected` below), must carry none of the victim
team's data, and must leave the victim's rows and stored objects as they were.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from softserve.datasets.models import Dataset, DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.tenancy.models import ApiKey, Invitation, Membership, Quota

from tests.reliability.figures import record_figures
from tests.s3 import object_keys
from tests.teams import join

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
SECRET = "zq7-victim-secret"  # in the victim's template, dataset name and rows: a leak if ever answered


def walk(patterns, prefix: str = "", namespace: str | None = None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), name, entry


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


@pytest.fixture
def world(acme, globex, s3):
    for team in (acme, globex):
        Quota.objects.filter(tenant=team.tenant).update(requests_per_minute=1_000_000)
    victim = acme
    rows = "".join(f"{SECRET} row {i},{'ab'[i % 2]}\n" for i in range(40))
    upload = io.BytesIO(f"text,label\n{rows}".encode())
    upload.name = "d.csv"
    made = victim.client.post("/api/v1/datasets", {"name": SECRET, "file": upload}, format="multipart")
    assert made.status_code == 201, made.content
    dataset_version = DatasetVersion.objects.get(pk=made.json()["id"])
    victim.client.post(
        "/api/v1/prompts",
        {
            "name": "sentiment",
            "task_type": "classification",
            "template": f"{SECRET} {{text}}",
            "labels": ["a", "b"],
        },
        format="json",
    )
    prompt = TaskPrompt.objects.get(tenant=victim.tenant)
    # The PEFT export is stored (holding the secret): the victim downloads it, nobody else does.
    peft_key = f"tenants/{victim.tenant.pk}/prompts/{prompt.pk}/1/peft.zip"
    s3.put_object(Bucket=s3.bucket, Key=peft_key, Body=f"{SECRET} adapter".encode())
    version = PromptVersion.objects.create(
        tenant=victim.tenant,
        prompt=prompt,
        number=1,
        method="prompt",
        status="ready",
        artifact_key="a/1",
        peft_key=peft_key,
    )
    Alias.objects.create(tenant=victim.tenant, prompt=prompt, name="production", version=version)
    job = Job.objects.create(
        tenant=victim.tenant,
        kind="tune",
        spec={},
        prompt_version=version,
        dataset_version=dataset_version,
        status="failed",
    )
    owner = Membership.objects.get(tenant=victim.tenant, user=victim.owner)
    # A member who made a key and then left; keys that are revoked, expired, or lack the scope.
    leaver = join(victim, "leaver@acme.example", "admin")
    # An invitation the victim sent and nobody answered: another team neither sees nor answers it.
    invited = victim.client.post("/api/v1/members", {"email": "invitee@acme.example", "role": "admin"})
    assert invited.status_code == 202, invited.content
    _, removed_key = ApiKey.mint(victim.tenant, "left", ["read", "write", "predict"], created_by=leaver.user)
    leaver.delete()
    revoked, revoked_key = ApiKey.mint(victim.tenant, "r", ["read", "write"], created_by=victim.owner)
    revoked.revoked_at = timezone.now()
    revoked.save()
    expired, expired_key = ApiKey.mint(
        victim.tenant, "e", ["read", "write"], created_by=victim.owner, expires_at=timezone.now()
    )
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    _, read_only = ApiKey.mint(victim.tenant, "ro", ["read"], role="owner", created_by=victim.owner)
    _, predict_only = ApiKey.mint(victim.tenant, "po", ["predict"], role="owner", created_by=victim.owner)
    bootstrap = ApiKey.objects.for_tenant(victim.tenant).get(name="bootstrap")
    return {
        "victim": victim,
        "attacker": globex,
        "ids": {
            "dataset": dataset_version.dataset_id,
            "job": job.id,
            "key": bootstrap.id,
            "member": owner.id,
            "invitation": invited.json()["id"],
        },
        "keys": {
            "revoked_key": revoked_key,
            "expired_key": expired_key,
            "removed_member_key": removed_key,
            "read_only": read_only,
            "predict_only": predict_only,
        },
        "markers": [
            SECRET,
            str(victim.tenant.id),
            victim.owner.email,
            bootstrap.prefix,
            "invitee@acme.example",
        ],
        "s3": s3,
    }


def fill(route: str, name: str, world) -> dict:
    """The URL's parameters, naming the victim's objects."""
    params = re.findall(r"<(?:\w+:)?(\w+)>", route) + re.findall(r"\(\?P<(\w+)>", route)
    ids = world["ids"]
    values = {}
    for param in params:
        if param == "pk":
            hint = next((k for k in ("invitation", "dataset", "job", "key", "member") if k in name), None)
            if hint is None:
                pytest.fail(f"{name}: which victim object does <pk> name? Add it to fill() in {__file__}.")
            values[param] = ids[hint]
        elif param == "number":
            values[param] = 1
        elif param == "name":
            values[param] = "sentiment"
        elif param == "alias":
            values[param] = "production"
        elif param == "action":  # an operator's action on a job (/ops/jobs/<pk>/<action>)
            values[param] = "cancel"
        elif param == "fmt":  # a version's download format: the PEFT zip, the newer of the two
            values[param] = "peft"
        else:
            pytest.fail(
                f"{name}: no victim value for URL parameter <{param}>; add one to fill() in {__file__}."
            )
    return values


def victim_state(world) -> tuple:
    tenant = world["victim"].tenant
    return (
        sorted(TaskPrompt.objects.for_tenant(tenant).values_list("name", "template")),
        sorted(PromptVersion.objects.for_tenant(tenant).values_list("number", "status")),
        sorted(Alias.objects.for_tenant(tenant).values_list("name", "version__number")),
        sorted(Dataset.objects.for_tenant(tenant).values_list("name", flat=True)),
        DatasetVersion.objects.for_tenant(tenant).count(),
        sorted(Job.objects.for_tenant(tenant).values_list("status", "cancel_requested")),
        sorted(
            (str(k), r is None) for k, r in ApiKey.objects.for_tenant(tenant).values_list("id", "revoked_at")
        ),
        sorted(Membership.objects.for_tenant(tenant).values_list("user__email", "role")),
        sorted(Invitation.objects.for_tenant(tenant).values_list("email", "role", "status")),
        sorted(object_keys(world["s3"])),
    )


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


def body_for(world) -> str:
    ids = world["ids"]
    return json.dumps(
        {
            "name": "intruder",
            "scopes": ["read"],
            "email": "intruder@evil.example",
            "role": "viewer",
            "version": 1,
            "inputs": ["x"],
            "model": "sentiment@1",
            "prompt": "x",
            "task_type": "classification",
            "template": "{text}",
            "labels": ["a", "b"],
            "kind": "tune",
            "dataset_version": str(ids["dataset"]),
        }
    )


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
            url = reverse(name, kwargs=fill(route, name, world))
            for method in METHODS:
                # A signed-in client is made once per caller (signing in writes a session row); logout
                # would end that session, so that endpoint gets a fresh client of its own each time.
                if name == "logout":
                    client, headers = client_for(scenario, method, world)
                else:
                    if (scenario, method in SAFE) not in clients:
                        clients[scenario, method in SAFE] = client_for(scenario, method, world)
                    client, headers = clients[scenario, method in SAFE]
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
