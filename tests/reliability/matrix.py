"""What the reliability matrices share: the URL walk, a victim team with one of every object, the values
that fill each URL's parameters with the victim's objects, a body every write can read, and the victim's
state (rows and stored objects) to compare before and after.

Used by test_isolation_matrix.py (other teams and dead credentials) and test_role_matrix.py (each role
inside the team); the `world` fixture reaches both through tests/reliability/conftest.py.
"""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone

from softserve.datasets.models import Dataset, DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
from softserve.serving.models import Feedback, Prediction
from softserve.tenancy.models import ApiKey, Invitation, Membership, Quota
from softserve.webhooks.models import Webhook, WebhookDelivery
from tests.s3 import object_keys
from tests.teams import join

SECRET = "zq7-victim-secret"  # in the victim's template, dataset name and rows: a leak if ever answered


def walk(patterns, prefix: str = "", namespace: str | None = None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), name, entry


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
    # A logged prediction that kept its input and whose label is the secret, with feedback on it: the
    # prompt's live traffic figures (labels) and the kept inputs show it to the victim only.
    TaskPrompt.objects.filter(pk=prompt.pk).update(keep_inputs=True)
    prediction = Prediction.objects.create(
        tenant=victim.tenant,
        prompt=prompt,
        version=version,
        alias="production",
        rows=1,
        outputs=[SECRET],
        inputs=[{"text": f"{SECRET} input"}],
    )
    Feedback.objects.create(tenant=victim.tenant, prediction=prediction, label="b", correct=False)
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
    _, write_only = ApiKey.mint(victim.tenant, "wo", ["write"], role="owner", created_by=victim.owner)
    bootstrap = ApiKey.objects.for_tenant(victim.tenant).get(name="bootstrap")
    # A webhook (its URL and secret name the victim) with a delivery in its log.
    hook = Webhook.objects.create(
        tenant=victim.tenant,
        url=f"https://hooks.acme.example/{SECRET}",
        events=["version.ready"],
        secret=f"whsec_{SECRET}-signing",
    )
    WebhookDelivery.objects.create(
        tenant=victim.tenant, webhook=hook, event="version.ready", payload={"data": SECRET}
    )
    return {
        "victim": victim,
        "attacker": globex,
        "ids": {
            "dataset": dataset_version.dataset_id,
            "dataset_version": dataset_version.id,
            "job": job.id,
            "key": bootstrap.id,
            "member": owner.id,
            "invitation": invited.json()["id"],
            "webhook": hook.id,
            "prediction": prediction.id,
        },
        "keys": {
            "revoked_key": revoked_key,
            "expired_key": expired_key,
            "removed_member_key": removed_key,
            "read_only": read_only,
            "predict_only": predict_only,
            "write_only": write_only,
        },
        "markers": [
            SECRET,
            str(victim.tenant.id),
            victim.owner.email,
            bootstrap.prefix,
            "invitee@acme.example",
            hook.secret,
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
            hint = next(
                (k for k in ("webhook", "invitation", "dataset", "job", "key", "member") if k in name), None
            )
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
        elif param == "prediction_id":
            values[param] = ids["prediction"]
        elif param == "model_id":  # an OpenAI-style model name: prompt@alias
            values[param] = "sentiment@production"
        else:
            pytest.fail(
                f"{name}: no victim value for URL parameter <{param}>; add one to fill() in {__file__}."
            )
    return values


# Query strings of endpoints that need one to answer (without, the team's own caller gets a 400).
QUERIES = {"prompt-alias-gate": "?version=1", "prompt-compare": "?a=1&b=1"}


def url_of(route: str, name: str, world) -> str:
    """The endpoint's URL naming the victim's objects, with the query string it needs."""
    return reverse(name, kwargs=fill(route, name, world)) + QUERIES.get(name, "")


def victim_state(world) -> tuple:
    tenant = world["victim"].tenant
    return (
        sorted(
            (name, template, str(pinned), keep, days)
            for name, template, pinned, keep, days in TaskPrompt.objects.for_tenant(tenant).values_list(
                "name", "template", "eval_dataset_version_id", "keep_inputs", "input_retention_days"
            )
        ),
        sorted(PromptVersion.objects.for_tenant(tenant).values_list("number", "status", "parity")),
        sorted(map(str, Prediction.objects.for_tenant(tenant).values_list("outputs", "inputs"))),
        sorted(Feedback.objects.for_tenant(tenant).values_list("index", "label", "target", "correct")),
        sorted(Alias.objects.for_tenant(tenant).values_list("name", "version__number")),
        sorted(Dataset.objects.for_tenant(tenant).values_list("name", flat=True)),
        DatasetVersion.objects.for_tenant(tenant).count(),
        sorted(Job.objects.for_tenant(tenant).values_list("status", "cancel_requested")),
        sorted(
            (str(k), r is None) for k, r in ApiKey.objects.for_tenant(tenant).values_list("id", "revoked_at")
        ),
        sorted(Membership.objects.for_tenant(tenant).values_list("user__email", "role")),
        sorted(Invitation.objects.for_tenant(tenant).values_list("email", "role", "status")),
        sorted(Webhook.objects.for_tenant(tenant).values_list("url", "enabled", "events")),
        WebhookDelivery.objects.for_tenant(tenant).count(),
        sorted(object_keys(world["s3"])),
    )


def form_values(world) -> dict[str, object]:
    """One body that every write endpoint can read something from (API JSON and page forms alike)."""
    ids = world["ids"]
    return {
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
        # The victim's own dataset version: pinning it on the victim's prompt must still be refused.
        "eval_dataset_version": str(ids["dataset_version"]),
        "label": "a",
        "keep_inputs": False,
        "input_retention_days": 1,
        "dataset": "intruder",
    }


def body_for(world) -> str:
    return json.dumps(form_values(world))
