"""Alias writes at once, in real concurrent PostgreSQL transactions from threads (as tests/tenancy/
test_races.py): each thread holds its transaction after routing the move, so without the locks both
would decide on the same state."""

from __future__ import annotations

import threading

import pytest

from softserve.prompts import actions
from softserve.prompts.models import Alias, TaskPrompt
from softserve.tenancy.models import AuditEvent, Role
from softserve.tenancy.permissions import Actor
from tests.prompts.evaluated import evaluated_version
from tests.teams import Team, make_prompt
from tests.tenancy.test_races import _held_after, _run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_creators_of_one_alias_both_succeed_in_turn(monkeypatch):
    team = Team("aliasrace")
    make_prompt(team)
    prompt = TaskPrompt.objects.get(tenant=team.tenant)
    v1 = evaluated_version(team.tenant, prompt, 1)
    actor = Actor(tenant=team.tenant, role=Role.OWNER, user=team.owner)
    _held_after(actions, "_route", threading.Barrier(2, timeout=3), monkeypatch)

    def create():
        actions.move_alias(actor, TaskPrompt.objects.get(pk=prompt.pk), "staging", v1)

    outcomes = _run_together(create, create)
    # Without the prompt's row lock both would insert `staging`: one unique violation, a 500.
    assert outcomes == [None, None]
    assert Alias.objects.filter(tenant=team.tenant, name="staging").count() == 1
    actions_taken = sorted(AuditEvent.objects.filter(tenant=team.tenant).values_list("action", flat=True))
    assert [a for a in actions_taken if a.startswith("alias.")] == ["alias.move", "alias.update"]
