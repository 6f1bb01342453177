"""Keys, members and audit over REST: roles, scopes, audit, and tenants that never see each other."""

import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from softserve.tenancy.models import ApiKey, AuditEvent, Membership, TenantRequired
from tests.teams import bearer, join, make_user

pytestmark = pytest.mark.django_db


def test_tests_run_on_postgres():
    # Whatever CI or DATABASE_URL say: SQLite only when asked for (tests/conftest.py's django_db_setup).
    assert connection.vendor == "postgresql" or os.environ.get("SOFTSERVE_TESTS_ALLOW_SQLITE") == "1"


@pytest.mark.parametrize("allowed", [False, True])
def test_a_bare_pytest_on_sqlite_fails_unless_sqlite_is_asked_for(tmp_path, allowed):
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SOFTSERVE_TESTS_ALLOW_SQLITE")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'bare.sqlite3'}"
    env["SOFTSERVE_VAR_DIR"] = str(tmp_path)
    if allowed:
        env["SOFTSERVE_TESTS_ALLOW_SQLITE"] = "1"
    test = "tests/tenancy/test_api.py::test_tests_run_on_postgres"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if allowed:
        assert run.returncode == 0, run.stdout[-2000:]
    else:
        assert run.returncode != 0 and "the platform tests need PostgreSQL" in run.stdout, run.stdout[-2000:]


def test_createtenant_prints_a_working_key(capsys):
    call_command("createtenant", "initech", "--owner", "boss@initech.example")
    out = capsys.readouterr().out
    key = out.strip().splitlines()[-1].split(": ")[1]
    response = bearer(key).get("/api/v1/members")
    assert response.status_code == 200
    assert [m["email"] for m in response.json()["results"]] == ["boss@initech.example"]
    assert [m["role"] for m in response.json()["results"]] == ["owner"]


def test_key_lifecycle_secret_shown_once_and_hashed(acme):
    created = acme.client.post("/api/v1/keys", {"name": "ci", "scopes": ["read"]}, format="json")
    assert created.status_code == 201
    plaintext = created.json()["key"]
    stored = ApiKey.objects.get(pk=created.json()["id"])
    assert plaintext not in (stored.secret_hash, stored.prefix) and stored.secret_hash == ApiKey.hash_secret(
        plaintext.split("_", 2)[2]
    )
    listed = acme.client.get(f"/api/v1/keys/{stored.id}").json()
    assert "key" not in listed and listed["prefix"] == stored.prefix
    assert bearer(plaintext).get("/api/v1/members").status_code == 200
    assert bearer(plaintext).get("/api/v1/members").status_code == 200
    assert ApiKey.objects.get(pk=stored.pk).last_used_at is not None
    assert acme.client.delete(f"/api/v1/keys/{stored.id}").status_code == 204
    assert bearer(plaintext).get("/api/v1/members").status_code == 401
    events = AuditEvent.objects.for_tenant(acme.tenant).filter(target_id=str(stored.id))
    assert [e.action for e in events.order_by("created_at")] == ["key.create", "key.revoke"]
    revoke = events.get(action="key.revoke")
    assert revoke.before["revoked"] is False and revoke.after["revoked"] is True


def test_bad_key_input_gets_field_errors(acme):
    response = acme.client.post(
        "/api/v1/keys", {"name": "", "scopes": ["root"], "expires_at": "2000-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and set(error["fields"]) == {"name", "scopes", "expires_at"}
    assert ApiKey.objects.for_tenant(acme.tenant).count() == 1  # nothing half-written


def test_roles_and_scopes(acme):
    join(acme, "dev@acme.example", "member")
    ApiKey.mint(acme.tenant, "viewer", ["read"], role="viewer", created_by=acme.owner)
    _, viewer_plain = ApiKey.mint(acme.tenant, "v2", ["read", "write"], role="viewer", created_by=acme.owner)
    forbidden = bearer(viewer_plain).post("/api/v1/keys", {"name": "x", "scopes": ["read"]}, format="json")
    assert forbidden.status_code == 403 and "admin" in forbidden.json()["error"]["message"]
    _, read_only_owner = ApiKey.mint(acme.tenant, "ro", ["read"], role="owner", created_by=acme.owner)
    assert (
        bearer(read_only_owner).post("/api/v1/members", {"email": "x@y.example"}, format="json").status_code
        == 403
    )
    _, admin_plain = ApiKey.mint(acme.tenant, "admin", ["read", "write"], role="admin", created_by=acme.owner)
    escalate = bearer(admin_plain).post(
        "/api/v1/keys", {"name": "x", "scopes": ["read"], "role": "owner"}, format="json"
    )
    assert escalate.status_code == 400 and "role" in escalate.json()["error"]["fields"]
    owner_membership = Membership.objects.for_tenant(acme.tenant).get(role="owner")
    demote = acme.client.patch(f"/api/v1/members/{owner_membership.id}", {"role": "admin"}, format="json")
    assert demote.status_code == 400 and "last owner" in demote.json()["error"]["fields"]["role"][0]


def test_session_login_picks_the_tenant(acme, globex):
    Membership.objects.create(tenant=globex.tenant, user=acme.owner, role="viewer")
    client = APIClient()
    client.force_login(acme.owner)
    assert client.get("/api/v1/members").status_code == 404  # two tenants, none chosen
    mine = client.get("/api/v1/members", HTTP_X_TENANT=str(globex.tenant.id))
    assert mine.status_code == 200 and {m["email"] for m in mine.json()["results"]} == {
        "owner@globex.example",
        "owner@acme.example",
    }
    assert client.get("/api/v1/members", HTTP_X_TENANT="not-a-uuid").status_code == 404


def test_scoping_fails_closed():
    with pytest.raises(TenantRequired):
        ApiKey.objects.for_tenant(None)


def test_schema_and_docs_are_served(acme):
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/keys" in schema.json()["paths"]


# Every endpoint, called with another tenant's credentials, a revoked key, an expired key, or none.
def _endpoints(team):
    key = ApiKey.objects.for_tenant(team.tenant).first()
    membership = Membership.objects.for_tenant(team.tenant).first()
    return [
        ("get", "/api/v1/keys", None),
        ("post", "/api/v1/keys", {"name": "k", "scopes": ["read"]}),
        ("get", f"/api/v1/keys/{key.id}", None),
        ("delete", f"/api/v1/keys/{key.id}", None),
        ("get", "/api/v1/members", None),
        ("post", "/api/v1/members", {"email": "z@z.example"}),
        ("get", f"/api/v1/members/{membership.id}", None),
        ("patch", f"/api/v1/members/{membership.id}", {"role": "viewer"}),
        ("delete", f"/api/v1/members/{membership.id}", None),
        ("get", "/api/v1/audit", None),
    ]


def test_another_tenant_sees_nothing(acme, globex):
    make_user("z@z.example")  # the invited account exists: globex may invite it to its own team
    before = {m: m.objects.for_tenant(acme.tenant).count() for m in (ApiKey, Membership)}
    for method, path, body in _endpoints(acme):
        response = getattr(globex.client, method)(path, body, format="json")
        if "/keys/" in path or "/members/" in path:
            assert response.status_code == 404, (method, path, response.status_code)
        else:
            assert response.status_code in (200, 201, 202), (method, path, response.status_code)
            text = response.content.decode()
            assert "acme" not in text and str(acme.tenant.id) not in text, (method, path)
    after = {m: m.objects.for_tenant(acme.tenant).count() for m in (ApiKey, Membership)}
    assert before == after


@pytest.mark.parametrize("credential", ["revoked", "expired", "none", "garbage"])
def test_dead_credentials_get_401(acme, credential):
    key, plaintext = ApiKey.mint(
        acme.tenant, "doomed", ["read", "write", "predict"], role="owner", created_by=acme.owner
    )
    client = bearer(plaintext)
    if credential == "revoked":
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    elif credential == "expired":
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif credential == "none":
        client = APIClient()
    else:
        client = bearer(plaintext[:-4] + "abcd")
    for method, path, body in _endpoints(acme):
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 401, (credential, method, path, response.status_code)
        assert response.json()["error"]["status"] == 401


def test_requests_per_minute_quota_is_429(acme, globex):
    from django.core.cache import cache

    from softserve.tenancy.models import Quota

    cache.clear()
    Quota.objects.filter(tenant=acme.tenant).update(requests_per_minute=3)
    codes = [acme.client.get("/api/v1/members").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = acme.client.get("/api/v1/members")
    assert refused.json()["error"]["status"] == 429 and int(refused["Retry-After"]) > 0
    assert globex.client.get("/api/v1/members").status_code == 200  # another tenant's budget is its own


def test_web_login_with_the_printed_password(capsys):
    from django.test import Client

    call_command("createtenant", "hooli", "--owner", "gavin@hooli.example")
    lines = capsys.readouterr().out.strip().splitlines()
    password = lines[1].split(" / ")[1].split()[0]
    browser = Client()
    assert "Sign in" in browser.get("/accounts/login/").content.decode()
    wrong = browser.post("/accounts/login/", {"username": "gavin@hooli.example", "password": "nope"})
    assert wrong.status_code == 200 and "did not match" in wrong.content.decode()
    right = browser.post("/accounts/login/", {"username": "gavin@hooli.example", "password": password})
    assert right.status_code == 302
    members = browser.get("/api/v1/members")
    assert members.status_code == 200 and members.json()["results"][0]["email"] == "gavin@hooli.example"


def test_ensuredemo_creates_once(capsys):
    call_command("ensuredemo")
    first = capsys.readouterr().out
    assert "created demo tenant" in first and "API key (shown once): ss_" in first
    call_command("ensuredemo")
    second = capsys.readouterr().out
    assert "created" not in second and "ss_" not in second
    assert Membership.objects.filter(tenant__name="demo").count() == 1
