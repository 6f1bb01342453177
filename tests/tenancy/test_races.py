"""Guards that must hold under concurrency: real concurrent transactions on PostgreSQL, from threads.

Each test holds the first transaction just after its guard has counted (a barrier both threads must
reach); without a row lock both count the same state and both write. With the lock the second thread
waits at the lock, the barrier times out, the first commits and the second sees its write.
"""

import contextlib
import threading

import pytest
from django.db import connection

from softserve.jobs import actions as job_actions
from softserve.jobs.models import Job
from softserve.prompts.models import TaskPrompt
from softserve.tenancy import actions as tenancy_actions
from softserve.tenancy.models import Membership, Quota, Role
from softserve.tenancy.permissions import Actor
from tests.jobs.test_jobs_api import broker  # noqa: F401 - the real Redis broker fixture
from tests.teams import Team, make_dataset_version, make_prompt

pytestmark = pytest.mark.django_db(transaction=True)


def _held_after(module, name: str, barrier: threading.Barrier, monkeypatch) -> None:
    """Wrap module.name so each call waits (a bounded time) for the other thread after it returns."""
    original = getattr(module, name)

    def held(*args, **kwargs):
        result = original(*args, **kwargs)
        # A broken barrier: the other thread is blocked on the lock, so go on and commit.
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return result

    monkeypatch.setattr(module, name, held)


def _run_together(*calls) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(i, call):
        from django.db import connections

        try:
            call()
        except BaseException as exc:
            outcomes[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_owners_demoting_each_other_at_once_leave_one_owner(monkeypatch):
    assert connection.vendor == "postgresql"
    team = Team("raceco")
    second = Membership.objects.create(
        tenant=team.tenant,
        user=type(team.owner).objects.create(username="two@raceco.example", email="two@raceco.example"),
        role=Role.OWNER,
    )
    first = Membership.objects.get(tenant=team.tenant, user=team.owner)
    _held_after(tenancy_actions, "_guard_last_owner", threading.Barrier(2, timeout=3), monkeypatch)
    as_first = Actor(tenant=team.tenant, role=Role.OWNER, user=team.owner)
    as_second = Actor(tenant=team.tenant, role=Role.OWNER, user=second.user)
    outcomes = _run_together(
        lambda: tenancy_actions.change_role(as_first, Membership.objects.get(pk=second.pk), Role.ADMIN),
        lambda: tenancy_actions.change_role(as_second, Membership.objects.get(pk=first.pk), Role.ADMIN),
    )
    owners = Membership.objects.filter(tenant=team.tenant, role=Role.OWNER).count()
    assert owners == 1, outcomes
    assert sum(o is None for o in outcomes) == 1 and "last owner" in str(next(o for o in outcomes if o))


def test_two_jobs_at_once_cannot_both_take_the_last_slot(monkeypatch, broker):  # noqa: F811
    team = Team("quotaco")
    Quota.objects.filter(tenant=team.tenant).update(queued_jobs=1)
    make_prompt(team)
    dataset = make_dataset_version(team.tenant)
    prompt = TaskPrompt.objects.get(tenant=team.tenant)
    _held_after(job_actions, "_check_quota", threading.Barrier(2, timeout=3), monkeypatch)
    actor = Actor(tenant=team.tenant, role=Role.OWNER, user=team.owner)
    spec = {"method": "prompt", "steps": 5, "dataset_version": str(dataset.id)}

    def create():
        job_actions.create_job(actor, "tune", TaskPrompt.objects.get(pk=prompt.pk), spec, dataset)

    outcomes = _run_together(create, create)
    assert Job.objects.filter(tenant=team.tenant).count() == 1, outcomes
    refused = [o for o in outcomes if o is not None]
    assert len(refused) == 1 and isinstance(refused[0], job_actions.QuotaExceeded)
    assert len(broker()) == 1  # only the job that was written was sent
