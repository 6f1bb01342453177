"""Deliveries from the worker side on real PostgreSQL to a real HTTP receiver: signed, retried with
backoff, given up, a failing hook disabled, private addresses refused at delivery time too, and the
events the workers write themselves (version.ready, version.failed, job.failed)."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from django.apps import apps

from common.contracts import DeliveryStatus, JobStatus, VersionStatus, WebhookEvent
from softserve.jobs.models import Job
from softserve.webhooks.models import Webhook, WebhookDelivery
from tests.teams import make_dataset_version, make_prompt
from tests.webhooks.conftest import worker_config
from tests.workers import conftest as worker_fixtures
from workers import webhook_net, webhooks
from workers.jobdb import JobDB, database_url
from workers.webhook_signing import REPLAY_WINDOW_S, verify_signature

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def jobdb() -> JobDB:
    db = JobDB(database_url({"DATABASE_URL": worker_fixtures.test_database_url()}))
    yield db
    db.engine.dispose()


@pytest.fixture
def hookdb(jobdb) -> webhooks.WebhookDB:
    return jobdb.webhooks


def make_hook(team, url: str, events=("version.ready",)) -> tuple[Webhook, str]:
    secret = "whsec_test-secret"
    hook = Webhook.objects.create(tenant=team.tenant, url=url, events=list(events), secret=secret)
    return hook, secret


def queue(team, hook: Webhook, event: str = WebhookEvent.VERSION_READY) -> WebhookDelivery:
    from softserve.webhooks.events import emit

    with pytest.MonkeyPatch.context() as patch:  # the send after commit is not this test's subject
        patch.setattr("softserve.webhooks.events.producer.send", lambda *a, **k: None)
        (delivery,) = emit(team.tenant, WebhookEvent(event), {"prompt": "sentiment", "version": 3})
    return delivery


def make_due(delivery_id) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id).update(next_attempt_at=datetime.now(UTC))


def test_the_columns_workers_use_exist_in_django_models_and_in_the_database(hookdb):
    for table, columns in webhooks.COLUMNS.items():
        model = next(m for m in apps.get_models() if m._meta.db_table == table)
        assert set(columns) <= {f.column for f in model._meta.concrete_fields}, table
        reflected = {c["name"] for c in sa.inspect(hookdb.engine).get_columns(table)}
        assert set(columns) <= reflected, table


def test_a_delivery_is_signed_and_verifiable(acme, receiver, hookdb):
    hook, secret = make_hook(acme, receiver.url)
    delivery = queue(acme, hook)
    assert webhooks.deliver(hookdb, str(delivery.pk), worker_config()) == DeliveryStatus.DELIVERED
    (got,) = receiver.requests
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert got.path == "/hooks/softserve"
    assert headers["content-type"] == "application/json"
    assert headers["softserve-event"] == "version.ready"
    assert headers["softserve-delivery"] == str(delivery.pk)
    timestamp = headers["softserve-timestamp"]
    assert abs(int(timestamp) - time.time()) < 30
    signature = headers["softserve-signature"]
    assert signature.startswith("v1=")
    assert verify_signature(secret, timestamp, got.body, signature)
    body = json.loads(got.body)
    assert body["event"] == "version.ready" and body["tenant"] == str(acme.tenant.pk)
    assert body["data"] == {"prompt": "sentiment", "version": 3}
    # A tampered body, another secret, an old (replayed) or far-future timestamp: refused.
    assert not verify_signature(secret, timestamp, got.body.replace(b"3", b"4"), signature)
    assert not verify_signature("whsec_other", timestamp, got.body, signature)
    assert not verify_signature(
        secret, timestamp, got.body, signature, now=int(timestamp) + REPLAY_WINDOW_S + 1
    )
    assert not verify_signature(
        secret, timestamp, got.body, signature, now=int(timestamp) - REPLAY_WINDOW_S - 1
    )
    assert not verify_signature(secret, str(int(timestamp) + 1), got.body, signature)
    assert not verify_signature(secret, "soon", got.body, signature)
    assert verify_signature(secret, timestamp, got.body, f"v1=deadbeef, {signature}")  # rotation: any
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None and delivery.last_error == ""
    # Delivered once: a second message for it sends nothing.
    assert webhooks.deliver(hookdb, str(delivery.pk), worker_config()) == "not due"
    assert len(receiver.requests) == 1


def test_failures_retry_with_exponential_backoff_then_succeed(acme, receiver, hookdb):
    hook, _ = make_hook(acme, receiver.url)
    Webhook.objects.filter(pk=hook.pk).update(consecutive_failures=2)
    receiver.answer(500, 503)
    delivery = queue(acme, hook)
    config = worker_config(webhook_backoff_s=30.0)
    waits = []
    for expected in ("pending", "pending", "delivered"):
        before = datetime.now(UTC)
        assert webhooks.deliver(hookdb, str(delivery.pk), config) == expected
        delivery.refresh_from_db()
        if expected == "pending":
            waits.append((delivery.next_attempt_at - before).total_seconds())
            assert webhooks.deliver(hookdb, str(delivery.pk), config) == "not due"  # backing off
            assert delivery.last_status_code in (500, 503)
            assert delivery.last_error.startswith(f"HTTP {delivery.last_status_code}: xxx")
            assert len(delivery.last_error) <= 300  # an excerpt of the 10 kB answer only
            make_due(delivery.pk)
    assert 29 < waits[0] < 32 and 59 < waits[1] < 62  # 30 s, then 60 s
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert len(receiver.requests) == 3
    # Every attempt is signed afresh, with the delivery's id every time.
    assert len({r.headers["Softserve-Delivery"] for r in receiver.requests}) == 1
    hook.refresh_from_db()
    assert hook.consecutive_failures == 0  # a delivered one resets the count


def test_backoff_is_capped():
    config = worker_config(webhook_backoff_s=30.0, webhook_backoff_max_s=3600.0)
    assert [webhooks.backoff_s(n, config) for n in (1, 2, 3, 7, 8, 20)] == [30, 60, 120, 1920, 3600, 3600]


def test_gives_up_after_the_last_attempt_and_disables_a_hook_that_keeps_failing(acme, receiver, hookdb):
    hook, _ = make_hook(acme, receiver.url)
    config = worker_config(webhook_max_attempts=3, webhook_disable_after=2)
    receiver.answer(*[500] * 6)
    first = queue(acme, hook)
    for attempt in range(3):
        if attempt:
            make_due(first.pk)
        webhooks.deliver(hookdb, str(first.pk), config)
    first.refresh_from_db()
    assert (first.status, first.attempts, first.next_attempt_at) == ("failed", 3, None)
    hook.refresh_from_db()
    assert (hook.enabled, hook.consecutive_failures) == (True, 1)
    second, third = queue(acme, hook), queue(acme, hook)  # the third is queued before the hook goes off
    for attempt in range(3):
        if attempt:
            make_due(second.pk)
        webhooks.deliver(hookdb, str(second.pk), config)
    hook.refresh_from_db()
    assert (hook.enabled, hook.consecutive_failures) == (False, 2)
    assert (
        hook.disabled_reason.startswith("Disabled on ")
        and "2 deliveries in a row failed" in hook.disabled_reason
    )
    assert "HTTP 500" in hook.disabled_reason
    assert len(receiver.requests) == 6
    # A delivery of a hook disabled meanwhile is given up without being sent.
    assert webhooks.deliver(hookdb, str(third.pk), config) == DeliveryStatus.FAILED
    third.refresh_from_db()
    assert "disabled" in third.last_error and len(receiver.requests) == 6
    # The API shows why; enabling it again starts afresh.
    shown = acme.client.get(f"/api/v1/webhooks/{hook.pk}").json()
    assert shown["enabled"] is False and shown["disabled_reason"] == hook.disabled_reason


def test_a_test_ping_never_counts_towards_disabling(acme, receiver, hookdb):
    from softserve.webhooks.events import queue as queue_one

    hook, _ = make_hook(acme, receiver.url)
    receiver.answer(500)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("softserve.webhooks.events.producer.send", lambda *a, **k: None)
        ping = queue_one(acme.tenant, hook, "ping", {"message": "hi"})
    config = worker_config(webhook_max_attempts=1, webhook_disable_after=1)
    assert webhooks.deliver(hookdb, str(ping.pk), config) == DeliveryStatus.FAILED
    hook.refresh_from_db()
    assert (hook.enabled, hook.consecutive_failures) == (True, 0)


def test_two_workers_never_send_the_same_attempt(acme, receiver, hookdb):
    hook, _ = make_hook(acme, receiver.url)
    delivery = queue(acme, hook)
    first = hookdb.claim(str(delivery.pk))
    assert first is not None
    assert hookdb.claim(str(delivery.pk)) is None  # claimed: not due until the lease passes
    make_due(delivery.pk)  # the first worker died mid-send; its lease has passed
    second = hookdb.claim(str(delivery.pk))
    assert second is not None
    # The first worker wakes up: its outcome is not written over the second's attempt.
    assert hookdb.record(first, 200, "", worker_config()) is None
    assert hookdb.record(second, 200, "", worker_config()) == DeliveryStatus.DELIVERED


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1", "127.0.0.1"])
def test_private_addresses_are_refused_at_delivery_time(acme, receiver, hookdb, monkeypatch, address):
    """The hook was allowed when created; by delivery its name resolves to a private address (DNS
    rebinding), or the operator no longer allows it: nothing is sent."""
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    hook, _ = make_hook(acme, f"http://hooks.example:{port}/x")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, *a, **k: [(family, socket.SOCK_STREAM, 6, "", (address, port))]
    )
    delivery = queue(acme, hook)
    config = worker_config(webhook_allow_private_hosts="")
    assert webhooks.deliver(hookdb, str(delivery.pk), config) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    shown = str(webhook_net.unwrapped(ipaddress.ip_address(address)))  # ::ffff:127.0.0.1 as 127.0.0.1
    assert delivery.last_error.startswith("Refused: ") and shown in delivery.last_error
    assert delivery.last_status_code is None
    assert receiver.requests == []


def test_a_localhost_name_is_refused_at_delivery(acme, receiver, hookdb):
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    hook, _ = make_hook(acme, f"http://localhost:{port}/x")
    delivery = queue(acme, hook)
    webhooks.deliver(hookdb, str(delivery.pk), worker_config(webhook_allow_private_hosts="192.0.2.1"))
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Refused: ") and receiver.requests == []


def test_the_connection_goes_to_the_checked_address(acme, receiver, monkeypatch):
    """Resolution happens once: the request connects to the address that was checked, with the URL's
    host in the Host header, whatever a second lookup would say."""
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    answers = iter(["127.0.0.1", "10.9.9.9"])  # the name: first a checked address, then another
    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host != "hooks.example":
            return real(host, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    allowed = webhook_net.Allowed.parse("127.0.0.1", http=True)
    target = webhook_net.resolve(f"http://hooks.example:{port}/in?x=1", allowed)
    assert (target.address, target.host, target.path) == ("127.0.0.1", "hooks.example", "/in?x=1")
    status, _ = webhook_net.post(target, {"Content-Type": "application/json"}, b"{}")
    assert status == 200
    assert receiver.requests[0].headers["Host"] == f"hooks.example:{port}"
    assert next(answers) == "10.9.9.9"  # the name was looked up once only


def test_redirects_are_not_followed_and_slow_servers_time_out(acme, hookdb):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path == "/slow":
                # Trickles its headers a byte every 0.1 s: each read is quick, the whole answer is not.
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(40):
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.1)
                return
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        hook, _ = make_hook(acme, f"{base}/redirect")
        delivery = queue(acme, hook)
        webhooks.deliver(hookdb, str(delivery.pk), worker_config())
        delivery.refresh_from_db()
        assert delivery.last_status_code == 302 and "not followed" in delivery.last_error
        target = webhook_net.resolve(f"{base}/slow", webhook_net.Allowed.parse("127.0.0.1", http=True))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            webhook_net.post(target, {}, b"{}", connect_timeout_s=1, total_timeout_s=1.0)
        assert time.monotonic() - started < 3
    finally:
        server.shutdown()
        server.server_close()


def test_address_rules():
    public = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"]
    private = [
        *("10.0.0.1", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1"),
        *("240.0.0.1", "255.255.255.255", "100.64.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1"),
        *("::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1"),
    ]
    assert all(webhook_net.is_public(ipaddress.ip_address(a)) for a in public)
    assert not any(webhook_net.is_public(ipaddress.ip_address(a)) for a in private)
    allowed = webhook_net.Allowed.parse(" 127.0.0.1, 10.0.0.0/8 ,Hooks.Internal., [::1]")
    assert allowed.hosts == {"hooks.internal"}
    assert allowed.admits("x", ipaddress.ip_address("10.2.3.4"))
    assert allowed.admits("x", ipaddress.ip_address("::1"))
    assert not allowed.admits("x", ipaddress.ip_address("192.168.0.1"))


# --- the workers' own events -----------------------------------------------------------------------------
@pytest.fixture
def running_job(acme, jobdb) -> Job:
    make_prompt(acme)
    prompt = acme.tenant.taskprompt_set.get(name="sentiment")
    job = Job.objects.create(
        tenant=acme.tenant,
        kind="tune",
        spec={"method": "prompt"},
        prompt_version=prompt.versions.create(tenant=acme.tenant, number=4, method="prompt"),
        dataset_version=make_dataset_version(acme.tenant),
    )
    assert jobdb.claim(str(job.id), "worker-a", stale_after_s=60)
    return job


def test_a_version_made_ready_by_a_worker_is_announced(acme, receiver, jobdb, running_job, monkeypatch):
    hook, secret = make_hook(acme, receiver.url, ["version.ready", "job.failed"])
    make_hook(acme, receiver.url, ["alias.moved"])  # not subscribed: nothing for it
    sent = []
    monkeypatch.setattr(webhooks, "_sender", sent.append)
    metrics = {"accuracy": 0.91, "steps_run": 5}
    version = {"id": str(running_job.prompt_version_id), "status": VersionStatus.READY, "metrics": metrics}
    assert jobdb.finish(str(running_job.id), "worker-a", JobStatus.SUCCEEDED, metrics, version=version)
    (delivery,) = WebhookDelivery.objects.filter(tenant=acme.tenant)
    assert sent == [str(delivery.pk)]  # sent once the transaction committed
    assert (delivery.webhook_id, delivery.event, delivery.status) == (hook.pk, "version.ready", "pending")
    payload = delivery.payload
    assert set(payload) == {"event", "tenant", "created_at", "data"}
    assert payload["tenant"] == str(acme.tenant.pk)
    assert payload["data"] == {
        "prompt": "sentiment",
        "version": 4,
        "job_id": str(running_job.id),
        "metrics": metrics,
    }
    assert webhooks.deliver(jobdb.webhooks, str(delivery.pk), worker_config()) == DeliveryStatus.DELIVERED
    got = receiver.requests[0]
    assert verify_signature(
        secret, got.headers["Softserve-Timestamp"], got.body, got.headers["Softserve-Signature"]
    )


def test_a_failed_job_announces_its_version_and_itself(acme, receiver, jobdb, running_job):
    make_hook(acme, receiver.url, ["version.failed", "job.failed", "version.ready"])
    version = {"id": str(running_job.prompt_version_id), "status": VersionStatus.FAILED}
    jobdb.finish(str(running_job.id), "worker-a", JobStatus.FAILED, error="Bad data", version=version)
    rows = {d.event: d.payload["data"] for d in WebhookDelivery.objects.filter(tenant=acme.tenant)}
    assert set(rows) == {"version.failed", "job.failed"}
    assert rows["version.failed"]["error"] == "Bad data" and rows["job.failed"]["kind"] == "tune"
    assert rows["job.failed"]["version"] == 4


def test_a_cancelled_job_announces_nothing(acme, receiver, jobdb, running_job):
    make_hook(acme, receiver.url, list(WebhookEvent))
    Job.objects.filter(pk=running_job.pk).update(cancel_requested=True)
    version = {"id": str(running_job.prompt_version_id), "status": VersionStatus.READY}
    assert (
        jobdb.finish(str(running_job.id), "worker-a", JobStatus.SUCCEEDED, {}, version=version) == "cancelled"
    )
    assert not WebhookDelivery.objects.exists()


def test_a_job_failed_for_losing_its_worker_is_announced_and_swept(acme, receiver, jobdb, running_job):
    from common.contracts import JobPolicy

    make_hook(acme, receiver.url, ["job.failed"])
    Job.objects.filter(pk=running_job.pk).update(worker_losses=2)
    time.sleep(1.1)
    jobdb.requeue_stalled(stale_after_s=1, policy=JobPolicy(job_max_attempts=3))
    (delivery,) = WebhookDelivery.objects.filter(tenant=acme.tenant)
    assert delivery.event == "job.failed" and "stopped its worker" in delivery.payload["data"]["error"]
    sent: list[str] = []
    assert webhooks.sweep(jobdb.webhooks, sent.append) == [str(delivery.pk)] == sent


def test_an_endpoint_that_is_down_or_not_tls_is_a_failed_attempt_with_a_reason(acme, receiver, hookdb):
    from tests.net import free_port

    down, _ = make_hook(acme, f"http://127.0.0.1:{free_port()}/x")
    delivery = queue(acme, down)
    assert webhooks.deliver(hookdb, str(delivery.pk), worker_config()) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("Connection failed (ConnectionRefusedError")
    down.delete()
    not_tls, _ = make_hook(acme, receiver.url.replace("http://", "https://"))
    delivery = queue(acme, not_tls)
    webhooks.deliver(hookdb, str(delivery.pk), worker_config())
    delivery.refresh_from_db()
    assert delivery.last_error.startswith(("TLS failed", "Connection failed")), delivery.last_error
    assert delivery.attempts == 1 and delivery.status == "pending"
