"""Issue 11, the platform's part: keys bounded by their makers, fail-closed permissions, accounts and the
production settings."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from softserve.tenancy.models import ApiKey, AuditEvent, Membership
from softserve.tenancy.permissions import TenantPermission
from tests.conftest import ROOT
from tests.teams import bearer, join, make_user

pytestmark = pytest.mark.django_db


def _admin_with_key(team, email="admin@acme.example"):
    """A second person added as admin, and a key that person made (through the API, signed in)."""
    membership = join(team, email, "admin")
    browser = APIClient()
    browser.force_login(membership.user)
    made = browser.post(
        "/api/v1/keys", {"name": "admin-ci", "scopes": ["read", "write"], "role": "admin"}, format="json"
    )
    assert made.status_code == 201, made.content
    return membership, made.json()["key"]


def test_a_removed_members_key_stops_working(acme):
    membership, key = _admin_with_key(acme)
    assert bearer(key).get("/api/v1/keys").status_code == 200
    assert acme.client.delete(f"/api/v1/members/{membership.id}").status_code == 204
    response = bearer(key).get("/api/v1/members")
    assert response.status_code == 401 and response.json()["error"]["status"] == 401


def test_a_demoted_members_key_loses_the_power_at_once(acme):
    membership, key = _admin_with_key(acme)
    assert bearer(key).get("/api/v1/audit").status_code == 200  # admin: the audit log
    demoted = acme.client.patch(f"/api/v1/members/{membership.id}", {"role": "viewer"}, format="json")
    assert demoted.status_code == 200
    assert bearer(key).get("/api/v1/audit").status_code == 403  # the key's role is admin; its maker's viewer
    assert bearer(key).get("/api/v1/members").status_code == 200  # still reads, as a viewer may


def test_a_key_cannot_mint_broader_scopes_or_a_longer_life(acme):
    soon = timezone.now() + timedelta(hours=1)
    _, limited = ApiKey.mint(
        acme.tenant, "ci", ["read", "write"], role="owner", expires_at=soon, created_by=acme.owner
    )
    client = bearer(limited)
    broader = client.post("/api/v1/keys", {"name": "x", "scopes": ["read", "predict"]}, format="json")
    assert broader.status_code == 400 and "scopes" in broader.json()["error"]["fields"]
    forever = client.post("/api/v1/keys", {"name": "x", "scopes": ["read"]}, format="json")
    assert forever.status_code == 400 and "expires_at" in forever.json()["error"]["fields"]
    later = (soon + timedelta(days=1)).isoformat()
    body = {"name": "x", "scopes": ["read"], "expires_at": later}
    longer = client.post("/api/v1/keys", body, format="json")
    assert longer.status_code == 400 and "expires_at" in longer.json()["error"]["fields"]
    inside = (soon - timedelta(minutes=5)).isoformat()
    ok = client.post("/api/v1/keys", {"name": "x", "scopes": ["read"], "expires_at": inside}, format="json")
    assert ok.status_code == 201, ok.content
    assert bearer(ok.json()["key"]).get("/api/v1/members").status_code == 200  # answers to the same owner
    assert ApiKey.objects.for_tenant(acme.tenant).count() == 3


def test_an_admin_cannot_revoke_an_owners_key(acme):
    _, admin_key = _admin_with_key(acme)
    owners_key = ApiKey.objects.for_tenant(acme.tenant).get(name="bootstrap")
    refused = bearer(admin_key).delete(f"/api/v1/keys/{owners_key.id}")
    assert refused.status_code == 403, refused.content
    owners_key.refresh_from_db()
    assert owners_key.revoked_at is None
    assert acme.client.get("/api/v1/members").status_code == 200


def test_a_method_missing_from_the_permission_table_is_refused(acme, rf):
    """A view that handles PUT but forgot to name it in its table: refused, not treated as `read`."""

    class Forgetful:
        actions_by_method = {"GET": "read"}
        http_method_names = ["get", "put", "head", "options"]

        def get(self): ...

        def put(self): ...

    _, viewer = ApiKey.mint(acme.tenant, "v", ["read", "write"], role="owner", created_by=acme.owner)
    key = ApiKey.authenticate(viewer)
    for method, allowed in (("GET", True), ("HEAD", True), ("OPTIONS", True), ("PUT", False)):
        request = rf.generic(method, "/x")
        request.auth, request.user = key, None
        if allowed:
            assert TenantPermission().has_permission(request, Forgetful())
        else:
            with pytest.raises(Exception, match="not allowed"):
                TenantPermission().has_permission(request, Forgetful())


def test_inviting_an_email_without_an_account_creates_nothing_and_answers_as_for_one(acme):
    """Issue 22, finding 9: the inviter's answer is the same whether or not the address has an account
    (no account lookup to probe), and nobody joins without accepting."""
    users = get_user_model().objects.count()
    make_user("someone@elsewhere.example", password="their own password")
    answers = []
    for email in ("new@acme.example", "someone@elsewhere.example"):
        invited = acme.client.post("/api/v1/members", {"email": email, "role": "viewer"}, format="json")
        assert invited.status_code == 202, invited.content
        body = invited.json()
        answers.append((invited.status_code, sorted(body), body["status"], body["role"]))
        assert body["email"] == email
    assert answers[0] == answers[1]
    assert get_user_model().objects.count() == users + 1  # the one made above: inviting makes none
    assert Membership.objects.for_tenant(acme.tenant).count() == 1  # nobody joined without saying yes
    assert not AuditEvent.objects.for_tenant(acme.tenant).filter(action="member.add").exists()


def test_inviting_an_existing_account_by_email_in_any_case(acme):
    person = make_user("Someone@Elsewhere.example", password="their own password")
    invited = acme.client.post("/api/v1/members", {"email": "someone@ELSEWHERE.example"}, format="json")
    assert invited.status_code == 202, invited.content
    assert not Membership.objects.filter(user=person).exists()
    browser = APIClient()
    browser.force_login(person)
    pending = browser.get("/api/v1/me/invitations").json()["results"]
    assert [(i["team"], i["role"]) for i in pending] == [("acme", "member")]
    assert browser.post(f"/api/v1/me/invitations/{pending[0]['id']}/accept").status_code == 200
    assert Membership.objects.get(user=person, tenant=acme.tenant).role == "member"
    person.refresh_from_db()
    assert person.check_password("their own password")  # the invite changes nothing of the account
    again = acme.client.post("/api/v1/members", {"email": "someone@elsewhere.example"}, format="json")
    assert again.status_code == 400 and "member already" in again.json()["error"]["fields"]["email"][0]


def test_password_reset_is_not_mounted():
    with pytest.raises(NoReverseMatch):
        reverse("password_reset")
    assert Client().get("/accounts/password_reset/").status_code == 404
    assert reverse("login") == "/accounts/login/"


def test_weak_passwords_are_refused():
    with pytest.raises(CommandError, match=r"too short|too common"):
        call_command("createtenant", "weak", "--owner", "w@weak.example", "--password", "password")


def test_security_headers_on_every_answer(acme):
    response = acme.client.get("/api/v1/members")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def _manage_check(env_extra: dict, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, str(ROOT / "platform" / "manage.py"), "check", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_refuses_the_embedded_secret_and_passes_check_deploy():
    embedded = _manage_check({"DJANGO_SECURE": "1"})
    assert embedded.returncode != 0 and "softserve.E001" in embedded.stderr
    secret = "q7-" + "x9Lk2vB8nM4pR6tY1wE3" * 3
    deploy = _manage_check(
        {"DJANGO_SECURE": "1", "DJANGO_SECRET_KEY": secret}, "--deploy", "--fail-level", "WARNING"
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "no issues" in deploy.stdout
    # Issue 22, finding 10: the embedded key is refused whenever DEBUG is off, DJANGO_SECURE or not
    # (and an empty DJANGO_SECRET_KEY, as .env.example ships it, is no key at all).
    for plain_http in ({}, {"DJANGO_SECURE": "0"}, {"DJANGO_SECRET_KEY": ""}):
        refused = _manage_check(plain_http)
        assert refused.returncode != 0 and "softserve.E001" in refused.stderr, plain_http
    laptop = _manage_check({"DJANGO_SECRET_KEY": secret})  # `make run`: the key `make secrets` wrote
    assert laptop.returncode == 0, laptop.stderr
    debugging = _manage_check({"DJANGO_DEBUG": "1"})  # a developer's DEBUG server may use the embedded key
    assert debugging.returncode == 0, debugging.stderr
