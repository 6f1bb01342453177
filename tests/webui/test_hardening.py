"""Security round 2 (issue 22) in the team pages: the playground's copyable snippets, the key reply's
caching, alias history for viewers, Unicode digits in forms, the Content-Security-Policy, and the
operator's first sign-in."""

from __future__ import annotations

import shlex
from html import unescape

import pytest
from django.test import Client

from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.tenancy.models import Membership
from tests.teams import make_prompt, make_user

pytestmark = pytest.mark.django_db

HOSTILE_NAME = "x $(touch /tmp/p) #"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _snippet(html: str, element: str) -> str:
    return unescape(html.split(f'id="{element}">')[1].split("</pre>")[0])


def _words(curl: str) -> list[str]:
    return shlex.split(curl.replace("\\\n", " "))


def test_playground_snippets_never_carry_an_unknown_name_and_quote_every_part(acme):
    make_prompt(acme)
    client = browser(acme.owner)
    for query in (f"prompt={HOSTILE_NAME}", "prompt=x';touch /tmp/p;'", "prompt=a%0Atouch /tmp/p"):
        html = client.get("/app/playground", {"prompt": query.split("=", 1)[1]}).content.decode()
        curl, python = _snippet(html, "curl"), _snippet(html, "python")
        assert "touch" not in curl and "touch" not in python, (query, curl)
        assert "<prompt>:predict" in curl  # an unknown name: the placeholder, not the text
        words = _words(curl)
        assert words[0] == "curl" and words[-1].endswith("/api/v1/prompts/<prompt>:predict")
    # A known name goes in, and typed inputs with shell syntax stay one quoted argument.
    html = client.get(
        "/app/playground", {"prompt": "sentiment", "inputs": "it's $(rm -rf ~) `id`", "ref": "v'1"}
    ).content.decode()
    words = _words(_snippet(html, "curl"))
    assert words[-1] == "http://testserver/api/v1/prompts/sentiment:predict"
    assert words[words.index("-d") + 1] == '{"inputs": ["it\'s $(rm -rf ~) `id`"], "alias": "v\'1"}'
    assert words[1:5] == ["-H", "Authorization: Bearer ss_…", "-H", "Content-Type: application/json"]
    python = _snippet(html, "python")
    assert "'http://testserver/api/v1/prompts/sentiment:predict'" in python
    assert "json={'inputs': [\"it's $(rm -rf ~) `id`\"], 'alias': \"v'1\"}" in python


def test_a_prompt_name_with_shell_characters_is_quoted_in_the_url(acme):
    # Names are validated by the API, but the snippet must not depend on it: a stored name is escaped.
    make_prompt(acme)
    TaskPrompt.objects.for_tenant(acme.tenant).update(name="a b;c")
    html = browser(acme.owner).get("/app/playground", {"prompt": "a b;c"}).content.decode()
    assert _words(_snippet(html, "curl"))[-1] == "http://testserver/api/v1/prompts/a%20b%3Bc:predict"


def test_the_key_creation_reply_is_never_cached(acme):
    reply = browser(acme.owner).post("/app/settings/keys", {"name": "ci", "scopes": ["read"]})
    assert reply.status_code == 200 and "ss_" in reply.content.decode()
    assert "no-store" in reply["Cache-Control"]
    api = acme.client.post("/api/v1/keys", {"name": "ci2", "scopes": ["read"]}, format="json")
    assert api.status_code == 201 and "no-store" in api["Cache-Control"]


def test_viewers_see_alias_history_as_the_api_shows_it(acme):
    make_prompt(acme)
    prompt = TaskPrompt.objects.for_tenant(acme.tenant).get()
    for n in (1, 2):
        PromptVersion.objects.create(
            tenant=acme.tenant, prompt=prompt, number=n, method="prompt", status="ready"
        )
    owner = browser(acme.owner)
    owner.post("/app/prompts/sentiment/aliases", {"alias": "production", "version": 1})
    acme.client.put("/api/v1/prompts/sentiment/aliases/production", {"version": 2}, format="json")
    prefix = acme.key.split("_")[1]
    for role in ("viewer", "member"):
        user = make_user(f"{role}@acme.example")
        Membership.objects.create(tenant=acme.tenant, user=user, role=role)
        page = browser(user).get("/app/prompts/sentiment").content.decode()
        table = page.split('id="alias-history"')[1].split("</table>")[0]
        assert "owner@acme.example" not in table and prefix not in table, role
        assert table.count("<tr>") == 3 and "v1" in table and "v2" in table  # header + two moves
        api = acme.client.get("/api/v1/prompts/sentiment/aliases/production").json()["history"]
        # When, from, to, and the split and shadow it left; never who moved it.
        assert len(api) == 2 and set(api[0]) == {"at", "from", "to", "split", "shadow", "override_reason"}
    admin_table = owner.get("/app/prompts/sentiment").content.decode().split('id="alias-history"')[1]
    assert "owner@acme.example" in admin_table and f"key {prefix}" in admin_table


def test_unicode_digits_are_field_errors_not_500s(acme):
    from tests.teams import make_dataset_version

    make_prompt(acme)
    dataset = make_dataset_version(acme.tenant)
    client = browser(acme.owner)
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(dataset.pk), "steps": "²"}
    refused = client.post("/app/jobs/new", body)
    assert refused.status_code == 422
    field = refused.content.decode().split('id="id_steps"')[1][:2000]
    assert "A valid integer is required." in field
    for query in ("limit=²", "offset=①"):
        listed = acme.client.get(f"/api/v1/jobs?{query}")
        assert listed.status_code == 400 and listed.json()["error"]["fields"], query
    played = client.post("/app/playground", {"prompt": "sentiment", "ref": "²", "inputs": "good"})
    assert played.status_code == 422  # an alias named "²" that does not exist, beside the field


def test_an_operator_without_a_team_lands_on_ops_after_signing_in(db):
    operator = make_user("ops@softserve.example", "an-operator's-Passphrase-3")
    operator.is_staff = True
    operator.save(update_fields=["is_staff"])
    client = Client()
    signed_in = client.post(
        "/accounts/login/",
        {"username": "ops@softserve.example", "password": "an-operator's-Passphrase-3"},
        follow=True,
    )
    assert signed_in.redirect_chain[-1][0] == "/ops/" and signed_in.status_code == 200
    # Other team pages say what an operator can do instead of only refusing.
    page = client.get("/app/datasets")
    assert page.status_code == 403
    html = page.content.decode()
    assert 'href="/ops/"' in html and "You are an operator" in html


def test_staff_with_a_team_see_operations_and_a_refusal_says_what_to_do(acme):
    staff = make_user("staff@acme.example")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    Membership.objects.create(tenant=acme.tenant, user=staff, role="viewer")
    client = browser(staff)
    home = client.get("/app/")
    assert home.status_code == 200 and '<a href="/ops/">Operations</a>' in home.content.decode()
    refused = client.post("/app/settings/keys", {"name": "x", "scopes": ["read"]})
    assert refused.status_code == 403
    html = refused.content.decode()
    assert "needs the <strong>admin</strong> role" in html and "ask an admin or owner of acme" in html
    assert 'href="/ops/"' in html  # an operator can still act from Operations
    viewer = make_user("viewer@acme.example")
    Membership.objects.create(tenant=acme.tenant, user=viewer, role="viewer")
    plain = browser(viewer).post("/app/settings/keys", {"name": "x", "scopes": ["read"]}).content.decode()
    assert "ask an admin or owner of acme" in plain and 'href="/ops/"' not in plain


def test_every_answer_carries_a_content_security_policy_the_pages_keep_to(acme, s3):
    import re

    from softserve.datasets.models import DatasetVersion
    from softserve.jobs.models import Job
    from tests.webui.fill import fill_team
    from tests.webui.test_pages import pages

    main = fill_team(acme.tenant, 3)
    dataset = DatasetVersion.objects.for_tenant(acme.tenant).first()
    s3.put_object(
        Bucket=s3.bucket, Key=dataset.storage_key, Body=b'{"text": "a", "label": "x", "split": "dev"}\n'
    )
    job = Job.objects.for_tenant(acme.tenant).first()
    client = browser(acme.owner)
    urls = [*pages(main.name, job, dataset), "/accounts/login/", "/api/docs/", "/app/invitations"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert (
            "script-src 'self';" in policy and "'unsafe-inline'" not in policy and "unsafe-eval" not in policy
        )
        html = response.content.decode()
        assert not re.search(r"\sstyle=", html), f"{url}: an inline style attribute the policy refuses"
        assert not re.search(r"\son[a-z]+=", html), f"{url}: an inline event handler"
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, f"{url}: inline script {tag}"
        if "<style>" in html:
            assert url == "/api/docs/", f"{url}: a <style> block"  # Swagger's, allowed by its hash
    assert acme.client.get("/api/v1/members")["Content-Security-Policy"] == policy
    config = client.get("/app/").content.decode().split('name="htmx-config" content=\'')[1].split("'")[0]
    import json

    assert json.loads(config)["allowEval"] is False and json.loads(config)["allowScriptTags"] is False
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
