"""Issue 22, finding 9: an invitation is an offer the invited person accepts or declines after signing in;
the inviter learns nothing about whether the address has an account; every step is audited."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from softserve.tenancy.models import AuditEvent, Invitation, Membership
from tests.teams import bearer, make_user

pytestmark = pytest.mark.django_db


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def invite(team, email: str, role: str = "member") -> dict:
    sent = team.client.post("/api/v1/members", {"email": email, "role": role}, format="json")
    assert sent.status_code == 202, sent.content
    return sent.json()


def test_accepting_joins_with_the_offered_role_and_is_audited(acme):
    person = make_user("dev@elsewhere.example")
    sent = invite(acme, "Dev@Elsewhere.example", "admin")
    assert sent["status"] == "pending" and sent["email"] == "dev@elsewhere.example"
    assert not Membership.objects.filter(user=person).exists()
    listed = acme.client.get("/api/v1/invitations").json()["results"]
    assert [(i["email"], i["role"]) for i in listed] == [("dev@elsewhere.example", "admin")]
    me = signed_in(person)
    mine = me.get("/api/v1/me/invitations").json()["results"]
    assert [(i["team"], i["role"], i["status"]) for i in mine] == [("acme", "admin", "pending")]
    accepted = me.post(f"/api/v1/me/invitations/{sent['id']}/accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    assert Membership.objects.get(user=person, tenant=acme.tenant).role == "admin"
    assert me.get("/api/v1/me/invitations").json()["results"] == []
    assert me.post(f"/api/v1/me/invitations/{sent['id']}/accept").status_code == 404  # answered once
    events = AuditEvent.objects.for_tenant(acme.tenant).filter(target_id=sent["id"]).order_by("created_at")
    key = acme.key.split("_")[1]  # invited with the owner's key; accepted by the person, signed in
    assert [(e.action, e.actor_user_id, e.actor_key and e.actor_key.prefix) for e in events] == [
        ("member.invite", None, key),
        ("member.accept", person.pk, None),
    ]
    assert Invitation.objects.get(pk=sent["id"]).invited_by == acme.owner
    assert events[1].before["status"] == "pending" and events[1].after["status"] == "accepted"
    assert acme.client.get("/api/v1/audit").status_code == 200


def test_declining_leaves_the_team_as_it_was_and_is_audited(acme):
    person = make_user("dev@elsewhere.example")
    sent = invite(acme, "dev@elsewhere.example")
    declined = signed_in(person).post(f"/api/v1/me/invitations/{sent['id']}/decline")
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert not Membership.objects.filter(user=person).exists()
    assert acme.client.get("/api/v1/invitations").json()["results"] == []
    actions = AuditEvent.objects.for_tenant(acme.tenant).filter(target_id=sent["id"]).values_list("action")
    assert sorted(a for (a,) in actions) == ["member.decline", "member.invite"]
    assert invite(acme, "dev@elsewhere.example")["status"] == "pending"  # the team may ask again


def test_only_the_invited_address_sees_or_answers_an_invitation(acme, globex):
    make_user("dev@elsewhere.example")
    sent = invite(acme, "dev@elsewhere.example")
    stranger = signed_in(make_user("eve@elsewhere.example"))
    assert stranger.get("/api/v1/me/invitations").json()["results"] == []
    for answer in ("accept", "decline"):
        assert stranger.post(f"/api/v1/me/invitations/{sent['id']}/{answer}").status_code == 404
    other_owner = signed_in(globex.owner)
    assert other_owner.post(f"/api/v1/me/invitations/{sent['id']}/accept").status_code == 404
    assert globex.client.get(f"/api/v1/invitations/{sent['id']}").status_code == 404  # another team's
    assert globex.client.delete(f"/api/v1/invitations/{sent['id']}").status_code == 404
    # A key acts for a team, not for a person: it cannot answer its maker's invitations.
    invite(globex, "owner@acme.example")
    keyed = bearer(acme.key).get("/api/v1/me/invitations")
    assert keyed.status_code == 403
    assert APIClient().get("/api/v1/me/invitations").status_code == 401
    assert Invitation.objects.filter(status="pending").count() == 2


def test_the_inviters_answer_is_the_same_with_or_without_an_account(acme):
    make_user("has-account@elsewhere.example")
    replies = []
    for email in ("has-account@elsewhere.example", "no-account@elsewhere.example"):
        sent = acme.client.post("/api/v1/members", {"email": email, "role": "viewer"}, format="json")
        body = sent.json()
        replies.append((sent.status_code, sorted(body), body["status"], body["role"], body["answered_at"]))
    assert replies[0] == replies[1]


def test_a_pending_invitation_is_updated_not_doubled_and_can_be_withdrawn(acme):
    first = invite(acme, "dev@elsewhere.example", "viewer")
    again = invite(acme, "DEV@elsewhere.example", "member")
    assert again["id"] == first["id"] and again["role"] == "member"
    assert Invitation.objects.for_tenant(acme.tenant).count() == 1
    assert acme.client.delete(f"/api/v1/invitations/{first['id']}").status_code == 204
    assert Invitation.objects.get(pk=first["id"]).status == "withdrawn"
    person = make_user("dev@elsewhere.example")
    assert signed_in(person).post(f"/api/v1/me/invitations/{first['id']}/accept").status_code == 404
    assert not Membership.objects.filter(user=person).exists()
    actions = AuditEvent.objects.for_tenant(acme.tenant).filter(target_id=first["id"]).values_list("action")
    assert sorted(a for (a,) in actions) == ["member.invite", "member.invite", "member.uninvite"]


def test_an_invitation_never_grants_more_than_the_inviters_role(acme):
    from softserve.tenancy.models import ApiKey

    _, admin_key = ApiKey.mint(acme.tenant, "a", ["read", "write"], role="admin", created_by=acme.owner)
    refused = bearer(admin_key).post(
        "/api/v1/members", {"email": "x@y.example", "role": "owner"}, format="json"
    )
    assert refused.status_code == 400 and "role" in refused.json()["error"]["fields"]
    assert not Invitation.objects.exists()


def test_the_web_pages_list_invitations_and_accepting_switches_to_the_team(acme, globex):
    from django.test import Client

    person = make_user("dev@elsewhere.example")
    invite(acme, "dev@elsewhere.example", "viewer")
    browser = Client()
    browser.force_login(person)
    home = browser.get("/app/")
    assert home.status_code == 403  # no team yet: the invitations are on the page
    html = home.content.decode()
    assert "Join acme" in html and "Decline acme" in html
    invitation = Invitation.objects.get()
    assert browser.post(f"/app/invitations/{invitation.pk}/accept")["Location"] == "/app/"
    page = browser.get("/app/").content.decode()
    assert "You joined acme as viewer." in page and "<h1>acme</h1>" in page
    # Invited to a second team while in one: home says so; declining keeps things as they are.
    invite(globex, "dev@elsewhere.example", "member")
    assert 'id="invitations-waiting"' in browser.get("/app/").content.decode()
    second = Invitation.objects.get(tenant=globex.tenant)
    assert browser.post(f"/app/invitations/{second.pk}/decline").status_code == 302
    assert not Membership.objects.filter(user=person, tenant=globex.tenant).exists()
    stranger = Client()
    stranger.force_login(make_user("eve@elsewhere.example"))
    assert stranger.post(f"/app/invitations/{second.pk}/accept").status_code == 404
