"""Input retention end to end: a real `celery worker -B` (the beat schedule of workers/celeryconf.py)
runs TASK_EXPIRE_PREDICTION_INPUTS on the test database, and the inputs past their prompt's retention
period are forgotten while the newer ones (and every output) stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from softserve.prompts.models import TaskPrompt
from softserve.serving.models import Prediction

from tests.prompts.test_registry_api import ready_version
from tests.teams import make_prompt
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_beat_forgets_inputs_past_retention(acme, workers):
    make_prompt(acme)
    version = ready_version(acme.tenant, "sentiment", 1)
    TaskPrompt.objects.filter(pk=version.prompt_id).update(keep_inputs=True, input_retention_days=3)
    now = timezone.now()
    rows = {}
    for name, age in (("old", 4), ("new", 2)):
        rows[name] = Prediction.objects.create(
            tenant=acme.tenant,
            prompt=version.prompt,
            version=version,
            rows=1,
            outputs=["positive"],
            inputs=[{"text": f"{name} input"}],
        )
        Prediction.objects.filter(pk=rows[name].pk).update(created_at=now - timedelta(days=age))
    workers.env["SOFTSERVE_EXPIRE_INPUTS_EVERY_S"] = "1"
    workers.start()
    wait_for(
        lambda: Prediction.objects.get(pk=rows["old"].pk).inputs is None,
        90,
        "the beat's task to forget the old inputs",
        workers,
    )
    kept = Prediction.objects.get(pk=rows["new"].pk)
    assert kept.inputs == [{"text": "new input"}]
    assert Prediction.objects.get(pk=rows["old"].pk).outputs == ["positive"]
