"""/ops/ and /ops/api/summary: staff only (anyone else 404), every state where it belongs, actions through
the jobs app's actions and audited as the operator."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from common.contracts import AuditAction
from softserve.jobs.models import Job
from softserve.tenancy.models import AuditEvent, Quota
from softserve.tenancy.permissions import Actor
from tests.ops.fleet import make_fleet

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_user("ops@softserve.example", password="pw", is_staff=True)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def fleet(acme, globex):
    return make_fleet(acme.tenant, globex.tenant)


@pytest.mark.parametrize("path", ["/ops/", "/ops/panel", "/ops/api/summary"])
def test_non_staff_and_anonymous_get_404(client, acme, path):
    assert client.get(path).status_code == 404
    client.force_login(acme.owner)
    assert client.get(path).status_code == 404


def test_summary_puts_each_job_and_worker_where_it_belongs(operator, fleet):
    body = operator.get("/ops/api/summary").json()
    ids = {name: {str(j.pk) for j in jobs} for name, jobs in fleet.jobs.items()}
    jobs = body["jobs"]
    assert jobs["counts"] == {"queued": 3, "running": 1, "stalled": 1, "failed_24h": 3}
    for name in ("running", "stalled", "queued", "failed"):
        assert {j["id"] for j in jobs[name]} == ids[name], name
    assert [j["team"] for j in jobs["queued"]] == ["acme", "acme", "globex"]  # oldest first
    assert jobs["failure_reasons"] == [
        {"reason": "out_of_memory", "jobs": 2, "example": "Out of memory at batch size 64"},
        {"reason": "data_missing", "jobs": 1, "example": "The dataset's stored rows are missing"},
    ]
    workers = {w["worker"]: w for w in body["workers"]}
    assert workers["gpu-a:101"]["state"] == "online" and workers["gpu-a:101"]["job"]["step"] == 120
    assert workers["gpu-b:202"]["state"] == "lost" and workers["gpu-b:202"]["job"]["id"] in ids["stalled"]
    assert body["queues"][0]["depth"] == 3 and 29 * 60 < body["queues"][0]["oldest_age_s"] < 31 * 60
    assert body["depth_24h"]["depth"][-1] == 3 and len(body["depth_24h"]["depth"]) == 25
    assert sum(body["per_hour"]["finished"]) == 4  # three failed, one succeeded
    assert body["wait_s"]["24h"]["jobs"] == 6
    teams = {t["team"]: t for t in body["teams"]}
    assert teams["acme"]["queued"] == 2 and teams["acme"]["queue_share"] == pytest.approx(0.667, abs=0.001)
    assert teams["globex"]["gpu_hours_7d"] >= 1.8  # the stalled job's 1 h 50 m and the finished one's


def test_page_and_panel_render_every_section(operator, fleet):
    page = operator.get("/ops/").content.decode()
    for section in ("ops-workers", "ops-stalled", "ops-running", "ops-queued", "ops-failed", "ops-teams"):
        assert f'id="{section}"' in page
    assert 'hx-trigger="every 5s"' in page
    for job in fleet.jobs["stalled"]:
        assert f'data-job="{job.pk}" data-list="stalled"' in page
    assert "Out of memory at batch size 64" in page
    assert operator.get("/ops/panel").status_code == 200


def test_operator_actions_go_through_the_job_actions_and_are_audited(operator, fleet):
    stalled, failed, queued = fleet.jobs["stalled"][0], fleet.jobs["failed"][0], fleet.jobs["queued"][0]
    # The team's quota holds for an operator's retry too: refused with the quota's message (acme has
    # two jobs queued, its queue quota here).
    Quota.objects.filter(tenant=failed.tenant).update(queued_jobs=2)
    panel = operator.post(f"/ops/jobs/{failed.pk}/retry", HTTP_HX_REQUEST="true").content.decode()
    assert "2 jobs queued" in panel and Job.objects.get(pk=failed.pk).status == "failed"
    Quota.objects.filter(tenant=failed.tenant).update(queued_jobs=10)
    assert operator.post(f"/ops/jobs/{stalled.pk}/requeue").status_code == 302
    assert operator.post(f"/ops/jobs/{failed.pk}/retry", HTTP_HX_REQUEST="true").status_code == 200
    assert operator.post(f"/ops/jobs/{queued.pk}/cancel").status_code == 302
    statuses = dict(Job.objects.filter(pk__in=[stalled.pk, failed.pk, queued.pk]).values_list("pk", "status"))
    assert statuses == {stalled.pk: "queued", failed.pk: "queued", queued.pk: "cancelled"}
    events = AuditEvent.objects.filter(actor_user=operator.user).order_by("created_at")
    assert [(e.action, e.tenant.name) for e in events] == [
        ("job.requeue", "globex"),
        ("job.retry", "acme"),
        ("job.cancel", "acme"),
    ]
    # A live job is not stalled: refused with a message, nothing written.
    running = fleet.jobs["running"][0]
    panel = operator.post(f"/ops/jobs/{running.pk}/requeue", HTTP_HX_REQUEST="true").content.decode()
    assert "only stalled jobs are re-queued" in panel
    assert Job.objects.get(pk=running.pk).status == "running"


def test_an_operator_is_audited_as_the_operator_not_as_a_borrowed_owner(operator, fleet, acme):
    queued = next(j for j in fleet.jobs["queued"] if j.tenant_id == acme.tenant.pk)
    assert operator.post(f"/ops/jobs/{queued.pk}/cancel").status_code == 302
    cancelled = AuditEvent.objects.filter(action=AuditAction.JOB_CANCEL, target_id=str(queued.pk))
    event = cancelled.get(tenant=acme.tenant)
    # The row keeps who it was (the staff account) and names them as an operator, not a team member.
    assert event.actor_user == operator.user and event.actor_key is None
    assert event.after == {"status": "cancelled", "by": "operator:ops@softserve.example"}
    audit = acme.client.get("/api/v1/audit").json()
    listed = {e["id"]: e for e in audit.get("results", audit)}
    assert listed[str(event.pk)]["actor"] == "operator:ops@softserve.example"
    # The team's own rows (creating it, with no actor) name no operator.
    others = [e["actor"] for k, e in listed.items() if k != str(event.pk)]
    assert others and not any((actor or "").startswith("operator:") for actor in others)


def test_operator_and_system_actors_name_themselves(acme):
    assert Actor.operator(acme.tenant, acme.owner).audit_by == f"operator:{acme.owner.email}"
    assert Actor.operator(acme.tenant, acme.owner).role == "owner"
    assert Actor.system(acme.tenant, "canary-watch").audit_by == "system:canary-watch"
    assert Actor(tenant=acme.tenant, role="owner", user=acme.owner).audit_by is None


def test_actions_need_staff(client, acme, fleet):
    client.force_login(acme.owner)
    job = fleet.jobs["queued"][0]
    assert client.post(f"/ops/jobs/{job.pk}/cancel").status_code == 404
    assert Job.objects.get(pk=job.pk).status == "queued"
