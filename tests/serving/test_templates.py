"""Templates are tenant input that every serving worker renders: one safe parser (common/task.py)
accepts only `{identifier}` fields and `{{`/`}}`, bounded; the platform validates with it at creation, and
a template stored before (or around) that check still never crashes rendering."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from common.contracts import SERVING_ERRORS
from common.task import MAX_TEMPLATE_CHARS, MAX_TEMPLATE_FIELDS, TaskSpec, Template, TemplateError
from tests.conftest import ROOT
from tests.serving.helpers import SENTIMENT, make_artifact, stored
from workers.engine.artifacts.artifact import artifact_bytes
from workers.serving.batcher import Batcher
from workers.serving.cache import PromptCache
from workers.serving.config import ServingConfig
from workers.serving.queueing import Pending
from workers.storage import LocalStore

# What str.format would run or allocate on a tenant's behalf, and plain malformed templates.
HOSTILE = [
    "{text.__class__}",
    "{text.__class__.__mro__}",
    "{text[0]}",
    "{text!r}",
    "{text!s:>10}",
    "{text:>99999999}",
    "{text:{text}}",
    "{text:d}",
    "{}",
    "{0}",
    "{0.__class__}",
    "{ text }",
    "{te-xt}",
    "{tëxt}",
    "{text",
    "text}",
    "{{text}",
    "{a{b}}",
    "no fields at all",
    "{{escaped}} only",
    "x" * (MAX_TEMPLATE_CHARS + 1) + "{text}",
    "".join(f"{{f{i}}}" for i in range(MAX_TEMPLATE_FIELDS + 1)),
]


@pytest.mark.parametrize("template", HOSTILE)
def test_the_parser_refuses_everything_but_identifier_fields(template):
    with pytest.raises(TemplateError) as caught:
        Template.parse(template)
    assert isinstance(caught.value, ValueError)  # serializers that catch ValueError keep working
    assert len(str(caught.value)) < 400  # a readable sentence, not the template echoed back


def test_fields_escapes_and_verbatim_values():
    parsed = Template.parse("{{lit}} {a}: {b}\n{a} }}")
    assert parsed.fields == ["a", "b"]
    # A value is inserted as it is: braces and format syntax in inputs mean nothing.
    rendered = parsed.render({"a": "{b.__class__}", "b": "{0:>999999999}"})
    assert rendered == "{lit} {b.__class__}: {0:>999999999}\n{b.__class__} }"
    assert Template.parse("x" * (MAX_TEMPLATE_CHARS - 6) + "{text}").fields == ["text"]
    spec = TaskSpec("classification", "Review: {text}\nSentiment:", ["negative", "positive"])
    assert spec.render({"text": "{text}"}) == "Review: {text}\nSentiment:"


def test_the_parser_module_does_not_import_torch():
    # The platform imports it; Django never imports torch.
    code = "import sys, common.task; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.django_db
@pytest.mark.parametrize("template", ["{text!r}", "{text:>99999999}", "{text[0]}", "{text.upper}", "{}"])
def test_a_bad_template_is_a_400_at_creation(acme, template):
    body = {"name": "p", "task_type": "classification", "template": template, "labels": ["a", "b"]}
    response = acme.client.post("/api/v1/prompts", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert list(error["fields"]) == ["template"] and "field name" in error["fields"]["template"][0]


def _forged_artifact(fm, template: str) -> bytes:
    """An artifact whose stored template was never checked (written by hand, or by an older engine)."""
    good = artifact_bytes(make_artifact(fm, SENTIMENT))
    return good.replace(b"Review: {text}", template.encode().ljust(len(b"Review: {text}")))


def _request(model_dir, version: str, key: str, sha: str, tenant: str) -> Pending:
    now = time.time()
    return Pending(
        {
            "request_id": uuid.uuid4().hex,
            "tenant_id": tenant,
            "prompt": version,
            "version": 1,
            "version_id": version,
            "artifact_key": key,
            "artifact_sha256": sha,
            "base_model": str(model_dir),
            "inputs": [{"text": "a fine film"}],
            "enqueued_at": now,
            "deadline": now + 30,
        }
    )


def test_a_stored_bad_template_fails_its_request_only(tiny_models, tiny_model_dirs, tmp_path):
    fm, model_dir = tiny_models["gpt2"], tiny_model_dirs["gpt2"]
    store = LocalStore(tmp_path / "store")
    config = ServingConfig(base_model=str(model_dir), precision="fp32")
    batcher = Batcher(fm, PromptCache(fm, store, 4, 16), config)
    good_sha = stored(store, "p/good", make_artifact(fm, SENTIMENT))
    bad_key = "p/bad"
    # "{text:d}" made str.format raise ValueError in the batch loop; "{text!r}" leaked a repr.
    for template in ("{text:d}", "{text!r}"):
        data = _forged_artifact(fm, template)
        store.put_bytes(bad_key, data)
        replies = batcher.process(
            [
                _request(model_dir, "good", "p/good", good_sha, "a"),
                _request(model_dir, f"bad-{template}", bad_key, "", "b"),
                _request(model_dir, "good", "p/good", good_sha, "a"),
            ]
        )
        assert [r["status"] for r in replies] == ["ok", "error", "ok"], replies
        assert replies[1]["code"] == "prompt_unavailable"
        assert replies[1]["error"] == SERVING_ERRORS["prompt_unavailable"]
