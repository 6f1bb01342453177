"""The webhooks API: owners and admins manage a team's hooks; the secret is shown once; URLs that could
reach private addresses are refused; another team's hook is a 404 everywhere."""

from __future__ import annotations

import pytest

from common.contracts import WEBHOOK_TEST_EVENT, DeliveryStatus
from softserve.tenancy.models import AuditEvent
from softserve.webhooks.models import Webhook, WebhookDelivery
from tests.teams import bearer, join

pytestmark = pytest.mark.django_db

HOOKS = "/api/v1/webhooks"


def create(team, url, events=("version.ready",), **extra):
    return team.client.post(HOOKS, {"url": url, "events": list(events), **extra}, format="json")


@pytest.fixture
def sent(monkeypatch):
    """Deliveries handed to Celery after commit (the broker itself is not needed here)."""
    calls = []
    monkeypatch.setattr(
        "softserve.webhooks.events.producer.send", lambda task, **kw: calls.append((task, kw))
    )
    return calls


def test_create_shows_the_secret_once_then_a_prefix(acme, allow_local, receiver):
    made = create(acme, receiver.url, ["version.ready", "job.failed", "version.ready"], description="CI")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert body["events"] == ["job.failed", "version.ready"]
    assert "no-store" in made["Cache-Control"]
    listed = acme.client.get(HOOKS).json()
    assert listed["count"] == 1
    assert body["secret"] not in str(listed) and listed["results"][0]["secret_prefix"].endswith("…")
    one = acme.client.get(f"{HOOKS}/{body['id']}").json()
    assert "secret" not in one and one["secret_prefix"] == body["secret"][:10] + "…"
    audit = AuditEvent.objects.get(tenant=acme.tenant, action="webhook.create")
    assert body["secret"] not in str(audit.after) and audit.after["url"] == receiver.url


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://hooks.example/x", "events": ["version.exploded"]}, "events"),
        ({"url": "https://hooks.example/x", "events": []}, "events"),
        ({"url": "https://hooks.example/x"}, "events"),
        ({"url": "ftp://hooks.example/x", "events": ["job.failed"]}, "url"),
        ({"url": "https://" + "a" * 2000 + ".example/", "events": ["job.failed"]}, "url"),
        ({"url": "https://user:pw@hooks.example/", "events": ["job.failed"]}, "url"),
        ({"url": "not a url", "events": ["job.failed"]}, "url"),
        (
            {"url": "https://hooks.example/x", "events": ["job.failed"], "description": "d" * 201},
            "description",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(acme, body, field):
    answer = acme.client.post(HOOKS, body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"], answer.json()


def test_plain_http_only_where_the_operator_allows_it(acme, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    answer = create(acme, "http://93.184.215.14/hook")
    assert answer.status_code == 400
    assert "https" in answer.json()["error"]["fields"]["url"][0]


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:a9fe:a9fe]/hook",  # 169.254.169.254, IPv4-mapped in hex
        "https://127.0.0.1:8000/hook",
        "https://0.0.0.0/hook",
        "https://[fe80::1]/hook",
        "https://224.0.0.1/hook",
        "https://localhost/hook",
        "https://100.64.0.1/hook",  # carrier-grade NAT: not global
    ],
)
def test_private_addresses_are_refused_at_creation(acme, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = "192.0.2.10"  # some other exception: not these
    answer = create(acme, url)
    assert answer.status_code == 400, answer.content
    message = answer.json()["error"]["fields"]["url"][0]
    assert "WEBHOOK_ALLOW_PRIVATE_HOSTS" in message or "resolve" in message, message
    assert not Webhook.objects.filter(tenant=acme.tenant).exists()


def test_a_name_resolving_to_a_private_address_is_refused(acme, monkeypatch):
    import socket

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))],
    )
    answer = create(acme, "https://hooks.example/x")
    assert answer.status_code == 400
    assert "10.1.2.3" in answer.json()["error"]["fields"]["url"][0]


def test_a_name_that_never_resolves_is_refused_in_bounded_time(acme, monkeypatch):
    """A tenant's host whose name server never answers: the system resolver has no timeout of its own,
    so without one the request (a web server thread) would wait as long as the resolver retries."""
    import socket
    import threading
    import time

    from workers import webhook_net

    released = threading.Event()

    def hung(host, *args, **kwargs):
        released.wait(30)
        raise socket.gaierror("gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    monkeypatch.setattr(webhook_net, "RESOLVE_TIMEOUT_S", 0.3)
    try:
        answers = []
        started = time.monotonic()
        for n in range(6):  # more hung lookups than the resolver has threads: each still answers in time
            answers.append(create(acme, f"https://slow-{n}.example/x"))
        took = time.monotonic() - started
    finally:
        released.set()
    assert [a.status_code for a in answers] == [400] * 6
    assert "did not resolve within 0.3 s" in answers[0].json()["error"]["fields"]["url"][0]
    assert took < 6 * (0.3 + 1.0), took  # a request's own work under load, but never the lookup's 30 s


def test_the_operator_may_allow_a_private_network(acme, settings, monkeypatch):
    import socket

    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = "10.20.0.0/16, hooks.internal"
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.30.0.5", 443))],
    )
    assert create(acme, "https://10.20.1.2/hook").status_code == 201
    assert create(acme, "https://hooks.internal/hook").status_code == 201  # allowed by name
    assert create(acme, "https://other.internal/hook").status_code == 400


def test_at_most_the_teams_limit(acme, settings, allow_local, receiver):
    settings.WEBHOOKS_MAX_PER_TEAM = 2
    assert create(acme, receiver.url).status_code == 201
    assert create(acme, receiver.url).status_code == 201
    third = create(acme, receiver.url)
    assert third.status_code == 400 and "at most 2" in third.json()["error"]["fields"]["url"][0]


def test_patch_and_enabling_again_resets_the_failures(acme, allow_local, receiver):
    hook_id = create(acme, receiver.url).json()["id"]
    Webhook.objects.filter(pk=hook_id).update(
        enabled=False, consecutive_failures=5, disabled_reason="Disabled on 2026-01-01 00:00 UTC: …"
    )
    changed = acme.client.patch(
        f"{HOOKS}/{hook_id}", {"events": ["alias.moved"], "description": "prod"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["events"] == ["alias.moved"] and changed.json()["enabled"] is False
    assert changed.json()["consecutive_failures"] == 5
    enabled = acme.client.patch(f"{HOOKS}/{hook_id}", {"enabled": True}, format="json").json()
    assert (enabled["enabled"], enabled["consecutive_failures"], enabled["disabled_reason"]) == (True, 0, "")
    assert acme.client.patch(f"{HOOKS}/{hook_id}", {}, format="json").status_code == 400
    assert acme.client.patch(f"{HOOKS}/{hook_id}", {"events": ["nope"]}, format="json").status_code == 400
    assert (
        acme.client.patch(f"{HOOKS}/{hook_id}", {"url": "https://x.example"}, format="json").status_code
        == 400
    )
    actions = set(AuditEvent.objects.filter(tenant=acme.tenant).values_list("action", flat=True))
    assert {"webhook.create", "webhook.update"} <= actions
    assert acme.client.delete(f"{HOOKS}/{hook_id}").status_code == 204
    assert not Webhook.objects.filter(pk=hook_id).exists()
    assert AuditEvent.objects.filter(tenant=acme.tenant, action="webhook.delete").exists()


def test_test_delivery_is_queued_for_a_worker_and_logged(
    acme, allow_local, receiver, sent, django_capture_on_commit_callbacks
):
    hook_id = create(acme, receiver.url, ["job.failed"]).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        queued = acme.client.post(f"{HOOKS}/{hook_id}/test")
    assert queued.status_code == 202, queued.content
    delivery = WebhookDelivery.objects.get(pk=queued.json()["id"])
    assert (delivery.event, delivery.status) == (WEBHOOK_TEST_EVENT, DeliveryStatus.PENDING)
    assert delivery.payload["event"] == "ping" and delivery.payload["data"]["webhook"] == hook_id
    assert sent == [("softserve.webhooks.deliver", {"delivery_id": str(delivery.pk)})]
    assert receiver.requests == []  # never sent from the web request
    log = acme.client.get(f"{HOOKS}/{hook_id}/deliveries?limit=1").json()
    assert log["count"] == 1
    row = log["results"][0]
    assert {row[k] for k in ("event", "status", "attempts")} == {"ping", "pending", 0}
    assert {"last_status_code", "last_error", "created_at", "delivered_at"} <= set(row)


def test_emit_queues_only_for_enabled_subscribed_hooks(
    acme, allow_local, receiver, sent, django_capture_on_commit_callbacks
):
    from common.contracts import WebhookEvent
    from softserve.webhooks.events import emit

    subscribed = create(acme, receiver.url, ["alias.moved"]).json()["id"]
    create(acme, receiver.url, ["job.failed"])
    off = create(acme, receiver.url, ["alias.moved"]).json()["id"]
    Webhook.objects.filter(pk=off).update(enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        deliveries = emit(acme.tenant, WebhookEvent.ALIAS_MOVED, {"prompt": "p", "alias": "production"})
    assert [str(d.webhook_id) for d in deliveries] == [subscribed]
    assert deliveries[0].payload["tenant"] == str(acme.tenant.pk)
    assert len(sent) == 1


def test_owners_and_admins_only(acme, allow_local, receiver):
    hook_id = create(acme, receiver.url).json()["id"]
    for role, allowed in (("viewer", False), ("member", False), ("admin", True)):
        membership = join(acme, f"{role}@acme.example", role)
        from softserve.tenancy.models import ApiKey

        _, key = ApiKey.mint(acme.tenant, role, ["read", "write"], role=role, created_by=membership.user)
        client = bearer(key)
        for method, url in (
            ("get", HOOKS),
            ("get", f"{HOOKS}/{hook_id}"),
            ("post", f"{HOOKS}/{hook_id}/test"),
        ):
            status = getattr(client, method)(url).status_code
            assert (status < 400) == allowed, (role, method, url, status)


def test_another_teams_hook_is_a_404_everywhere(acme, globex, allow_local, receiver):
    hook_id = create(acme, receiver.url).json()["id"]
    other = globex.client
    assert other.get(f"{HOOKS}/{hook_id}").status_code == 404
    assert other.patch(f"{HOOKS}/{hook_id}", {"enabled": False}, format="json").status_code == 404
    assert other.delete(f"{HOOKS}/{hook_id}").status_code == 404
    assert other.get(f"{HOOKS}/{hook_id}/deliveries").status_code == 404
    assert other.post(f"{HOOKS}/{hook_id}/test").status_code == 404
    assert other.get(HOOKS).json()["count"] == 0
    assert Webhook.objects.get(pk=hook_id).enabled
    assert not WebhookDelivery.objects.exists()
