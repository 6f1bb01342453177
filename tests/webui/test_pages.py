"""The team pages through Django's test client: scoping, bounded queries, escaping, forms, errors."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from common.defaults import PROMPT_LENGTH, STEPS
from softserve.datasets.models import DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts.models import PromptVersion, TaskPrompt
from tests.datasets.test_datasets_api import sst2_head
from tests.teams import make_prompt
from tests.webui.fill import fill_team

pytestmark = pytest.mark.django_db

HOSTILE = '<script>alert(1)</script>=HYPERLINK("http://evil.example","x")'


def chart_data(html: str, chart: str):
    """A chart's data as app.js reads it: the data-json attribute of the element `<chart>-data`."""
    import json
    from html import unescape

    return json.loads(unescape(html.split(f'id="{chart}-data" data-json="')[1].split('"')[0]))


def browser(team) -> Client:
    client = Client()
    client.force_login(team.owner)
    return client


def pages(prompt: str, job, dataset: DatasetVersion) -> list[str]:
    return [
        "/app/",
        "/app/datasets",
        f"/app/datasets/{dataset.dataset_id}/versions/{dataset.number}",
        "/app/prompts",
        f"/app/prompts/{prompt}",
        f"/app/prompts/{prompt}/versions/1/tokens",
        "/app/jobs",
        "/app/jobs/new",
        f"/app/jobs/{job.pk}",
        "/app/playground",
        "/app/settings",
    ]


def test_front_door_and_login_redirects(acme):
    anonymous = Client()
    assert anonymous.get("/")["Location"] == "/accounts/login/"
    assert anonymous.get("/app/jobs")["Location"].startswith("/accounts/login/?next=/app/jobs")
    assert browser(acme).get("/")["Location"] == "/app/"


def test_every_page_renders_in_the_same_number_of_queries_with_50_and_500_rows(acme, s3, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    client = browser(acme)
    counts = {}
    for rows in (50, 500):
        TaskPrompt.objects.for_tenant(acme.tenant).delete()
        main = fill_team(acme.tenant, rows)
        dataset = DatasetVersion.objects.for_tenant(acme.tenant).first()
        s3.put_object(
            Bucket=s3.bucket, Key=dataset.storage_key, Body=b'{"text": "a", "label": "x", "split": "dev"}\n'
        )
        job = Job.objects.for_tenant(acme.tenant).first()
        for index, url in enumerate(pages(main.name, job, dataset)):
            client.get(url)  # warm: session, caches
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            assert response.status_code == 200, (url, response.content[:500])
            counts.setdefault(index, []).append((url, len(queries)))
    assert all(a[1] == b[1] for a, b in counts.values()), counts


def test_another_teams_objects_answer_404(acme, globex, s3):
    main = fill_team(globex.tenant, 2)
    dataset = DatasetVersion.objects.for_tenant(globex.tenant).first()
    job = Job.objects.for_tenant(globex.tenant).first()
    client = browser(acme)
    for url in pages(main.name, job, dataset)[2:]:
        if url.startswith(("/app/datasets/", "/app/prompts/", "/app/jobs/")) and not url.endswith("new"):
            assert client.get(url).status_code == 404, url
    assert client.get(f"/app/jobs/{job.pk}/live").status_code == 404
    assert client.get(f"/app/playground?rows_from={dataset.pk}").status_code == 404
    body = {"template": "{text}", "dataset_version": dataset.pk}
    preview = client.post("/app/prompts/template-preview", body)
    assert "No such dataset version." in preview.content.decode()
    assert client.post(f"/app/jobs/{job.pk}/cancel").status_code == 404
    assert client.get(f"/app/datasets/{dataset.dataset_id}/versions/1/download").status_code == 404
    assert client.post(f"/app/prompts/{main.name}/aliases", {"version": 1}).status_code == 404
    for fmt in ("softserve", "peft"):
        assert client.get(f"/app/prompts/{main.name}/versions/1/artifact/{fmt}").status_code == 404
    assert (
        client.get(f"/app/prompts/{main.name}/versions/1/tokens", HTTP_HX_REQUEST="true").status_code == 404
    )
    switched = client.post("/app/team", {"tenant": str(globex.tenant.pk)})
    assert switched.status_code == 404  # not a member: the session keeps its team


def test_team_switcher_writes_the_session(acme, globex):
    from softserve.tenancy.models import Membership

    Membership.objects.create(tenant=globex.tenant, user=acme.owner, role="viewer")
    client = browser(acme)
    assert client.post("/app/team", {"tenant": str(globex.tenant.pk)}).status_code == 302
    home = client.get("/app/").content.decode()
    assert "<h1>globex</h1>" in home
    assert client.get("/api/v1/members").json()["results"][0]["email"] == "owner@globex.example"


def test_upload_with_problems_shows_the_report_and_keeps_the_form(acme, s3):
    client = browser(acme)
    bad = b"text,label\n,positive\nfine,\ngood,positive\n"
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        "/app/datasets/upload",
        {"name": "broken", "label_column": "label", "file": SimpleUploadedFile("b.csv", bad)},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert '<td class="num">2</td><td>text</td>' in html and "empty label" in html
    assert 'value="broken"' in html  # the form keeps what was typed
    good = SimpleUploadedFile("g.csv", sst2_head(60))
    done = client.post("/app/datasets/upload", {"name": "broken", "file": good}, HTTP_HX_REQUEST="true")
    version = DatasetVersion.objects.for_tenant(acme.tenant).get()
    assert done["HX-Redirect"] == f"/app/datasets/{version.dataset_id}/versions/1"
    page = client.get(done["HX-Redirect"]).content.decode()
    assert 'id="label-chart"' in page and "label-chart-data" in page
    download = client.get(done["HX-Redirect"] + "/download")
    assert download["Content-Disposition"] == 'attachment; filename="broken-v1.jsonl"'
    assert len(b"".join(download.streaming_content).splitlines()) == version.row_count


def test_hostile_text_shows_as_text(acme, s3):
    client = browser(acme)
    from django.core.files.uploadedfile import SimpleUploadedFile

    rows = "text,label\n" + "\n".join(
        f'"{HOSTILE.replace(chr(34), chr(34) * 2)} {i}",{"ab"[i % 2]}' for i in range(30)
    )
    done = client.post(
        "/app/datasets/upload",
        {"name": "evil", "file": SimpleUploadedFile("e.csv", rows.encode())},
        HTTP_HX_REQUEST="true",
    )
    assert done.status_code == 200, done.content
    page = client.get(done["HX-Redirect"]).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;=HYPERLINK(" in page
    created = client.post(
        "/app/prompts/new",
        {"name": "<script>x", "task_type": "classification", "template": "{text}", "labels": "a,b"},
    )
    assert created.status_code == 422 and "&lt;script&gt;x" in created.content.decode()


def test_prompt_create_alias_promote_and_rollback(acme):
    client = browser(acme)
    bad = client.post(
        "/app/prompts/new", {"name": "s", "task_type": "classification", "template": "{}", "labels": "a"}
    )
    assert bad.status_code == 422 and "field-error" in bad.content.decode()
    made = client.post(
        "/app/prompts/new",
        {
            "name": "sentiment",
            "task_type": "classification",
            "template": "Review: {text}\nSentiment:",
            "labels": "negative, positive",
            "verbalizer": "negative: bad\npositive: good",
        },
    )
    assert made["Location"] == "/app/prompts/sentiment"
    prompt = TaskPrompt.objects.for_tenant(acme.tenant).get()
    assert prompt.verbalizer == {"negative": "bad", "positive": "good"}
    for n in (1, 2):
        PromptVersion.objects.create(
            tenant=acme.tenant, prompt=prompt, number=n, method="prompt", status="ready"
        )
    client.post("/app/prompts/sentiment/aliases", {"alias": "production", "version": 1})
    client.post("/app/prompts/sentiment/aliases", {"alias": "production", "version": 2})
    page = client.get("/app/prompts/sentiment").content.decode()
    assert "production → v2" in page and "Roll back production to v1" in page
    client.post("/app/prompts/sentiment/aliases", {"alias": "production", "rollback": "1"})
    assert acme.client.get("/api/v1/prompts/sentiment").json()["aliases"] == {"production": 1}
    history = client.get("/app/prompts/sentiment").content.decode()
    assert history.count("owner@acme.example") >= 3
    members = {"members": [{"accuracy": 0.6}, {"accuracy": 0.8}], "member_best_accuracy": 0.8}
    PromptVersion.objects.create(
        tenant=acme.tenant,
        prompt=prompt,
        number=3,
        method="prompt",
        status="ready",
        ensemble_size=2,
        metrics={"dev": {"accuracy": 0.75, "member_avg_accuracy": 0.7, **members}},
    )
    ensemble = client.get("/app/prompts/sentiment").content.decode()
    assert re.search(r"accuracy 0\.600\s*<br>accuracy 0\.800", ensemble)
    assert "average 0.700, best 0.800" in ensemble


def test_job_form_validates_with_the_apis_serializer(acme):
    make_prompt(acme)
    client = browser(acme)
    form = client.get("/app/jobs/new").content.decode()
    assert f'value="{STEPS}"' in form and f'value="{PROMPT_LENGTH}"' in form  # the serializer's defaults
    refused = client.post("/app/jobs/new", {"kind": "tune", "prompt": "sentiment", "dataset_version": "nope"})
    assert refused.status_code == 422 and "Must be a valid UUID." in refused.content.decode()


def test_job_form_shows_each_methods_defaults_with_its_reason(acme):
    from html import unescape

    from common.defaults import DEFAULTS, rate_text

    make_prompt(acme)
    form = unescape(browser(acme).get("/app/jobs/new").content.decode())
    table = form.split('id="method-defaults"')[1].split("</table>")[0]
    for method, d in DEFAULTS.items():
        row = table.split(f'<th scope="row">{method}</th>')[1].split("</tr>")[0]
        assert f"{d.optimizer} {rate_text(d.learning_rate)}" in row and f"{d.max_minutes:g} min" in row
        assert d.init in row and d.reason in row
    # Init, optimizer, learning rate and budget start empty: the chosen method's default applies.
    init = form.split('id="id_init"')[1].split("</select>")[0]
    assert '<option value="">method\'s default</option>' in init and "selected" not in init
    assert 'id="id_optimizer"' in form
    budget = form.split('id="id_max_minutes"')[1].split(">")[0]
    assert 'value=""' in budget and 'placeholder="method\'s default"' in budget


def test_a_job_started_from_the_form_with_empty_settings_gets_its_methods_defaults(acme):
    from tests.teams import make_dataset_version

    make_prompt(acme)
    dataset = make_dataset_version(acme.tenant)
    empty = {"init": "", "optimizer": "", "learning_rate": "", "max_minutes": "", "version": ""}
    body = {"kind": "tune", "method": "prefix", "prompt": "sentiment", "dataset_version": str(dataset.pk)}
    started = browser(acme).post("/app/jobs/new", {**body, **empty})
    assert started.status_code == 302, started.content.decode()[-2000:]
    spec = Job.objects.for_tenant(acme.tenant).get().spec
    assert (spec["optimizer"], spec["learning_rate"], spec["init"], spec["max_minutes"]) == (
        "adamw",
        5e-4,
        "vocab",
        15,
    )


def test_keys_are_shown_once_and_revoke(acme):
    client = browser(acme)
    created = client.post("/app/settings/keys", {"name": "ci", "scopes": ["read", "predict"]})
    html = created.content.decode()
    plaintext = html.split('id="new-key-value">')[1].split("<")[0]
    assert plaintext.startswith("ss_")
    assert plaintext not in client.get("/app/settings").content.decode()
    from softserve.tenancy.models import ApiKey

    key = ApiKey.objects.for_tenant(acme.tenant).get(name="ci")
    client.post(f"/app/settings/keys/{key.pk}/revoke")
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_last_owner_cannot_leave_and_roles_are_capped(acme):
    from softserve.tenancy.models import Membership

    client = browser(acme)
    me = Membership.objects.for_tenant(acme.tenant).get()
    response = client.post(f"/app/settings/members/{me.pk}", {"remove": "1"}, follow=True)
    assert "last owner" in response.content.decode()
    assert Membership.objects.for_tenant(acme.tenant).count() == 1


def test_server_error_page_shows_the_request_id(acme, monkeypatch):
    import webui.views.pages as pages_module

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pages_module, "render", broken)
    client = browser(acme)
    client.raise_request_exception = False
    response = client.get("/app/", HTTP_X_REQUEST_ID="req-12345678")
    assert response.status_code == 500
    html = response.content.decode()
    assert "req-12345678" in html and "Traceback" not in html and "boom" not in html


def test_api_docs_serve_swagger_ui_locally(acme):
    html = browser(acme).get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()


def test_playground_fills_inputs_from_a_dataset(acme, s3):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = browser(acme)
    make_prompt(acme)
    upload = SimpleUploadedFile("r.csv", sst2_head(40))
    client.post("/app/datasets/upload", {"name": "reviews", "file": upload}, HTTP_HX_REQUEST="true")
    version = DatasetVersion.objects.for_tenant(acme.tenant).get()
    page = client.get(f"/app/playground?prompt=sentiment&rows_from={version.pk}").content.decode()
    box = page.split('id="id_inputs"')[1].split(">", 1)[1].split("</textarea>")[0]
    assert len([line for line in box.splitlines() if line.strip()]) == 3


def test_usage_chart_keeps_the_busiest_prompts_and_sums_the_rest(acme):

    from django.utils import timezone

    from softserve.serving.models import Usage

    today = timezone.now().date()
    for i in range(10):
        Usage.objects.create(tenant=acme.tenant, prompt_name=f"p{i}", day=today, requests=1, inputs=10 + i)
    html = browser(acme).get("/app/settings").content.decode()
    chart = chart_data(html, "usage-chart")
    names = [d["label"] for d in chart["datasets"]]
    assert names == [f"p{i}" for i in range(9, 1, -1)] + ["other"]
    assert chart["datasets"][-1]["data"][-1] == 10 + 11  # p0 and p1, today


def test_start_cancel_and_retry_a_job_from_the_pages(acme):
    from tests.teams import make_dataset_version

    make_prompt(acme)
    dataset = make_dataset_version(acme.tenant)
    client = browser(acme)
    body = {"kind": "tune", "prompt": "sentiment", "dataset_version": str(dataset.pk), "steps": "40"}
    started = client.post("/app/jobs/new", {**body, "members": "5", "version": ""})
    job = Job.objects.for_tenant(acme.tenant).get()
    assert started["Location"] == f"/app/jobs/{job.pk}" and job.spec["steps"] == 40
    assert "members" not in job.spec  # the ensemble-only field is dropped for a tune job
    page = client.get(started["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page and "Cancel job" in page
    client.post(f"/app/jobs/{job.pk}/cancel")
    job.refresh_from_db()
    assert job.status == "cancelled"
    live = client.get(f"/app/jobs/{job.pk}/live")
    assert live.status_code == 286 and "hx-trigger" not in live.content.decode()  # polling stops
    assert "Retry job" in live.content.decode()
    client.post(f"/app/jobs/{job.pk}/retry")
    job.refresh_from_db()
    assert job.status == "queued"
    again = client.post(f"/app/jobs/{job.pk}/retry", follow=True).content.decode()
    assert "only failed or cancelled jobs retry" in again  # the action's refusal, shown as a message


def test_long_histories_are_thinned_on_the_server(acme):

    fill_team(acme.tenant, 1)
    job = Job.objects.for_tenant(acme.tenant).get()
    job.metric_history = [{"step": s, "loss": 1 / (s + 1), "accuracy": s / 5000} for s in range(1, 5001)]
    job.progress = {"step": 5000, "total_steps": 5000, "loss": 0.1}
    job.save()
    html = browser(acme).get(f"/app/jobs/{job.pk}/live").content.decode()
    chart = chart_data(html, "curve-chart")
    loss, metric = chart["datasets"]
    assert len(loss["data"]) == 300 and len(metric["data"]) == 300
    assert loss["data"][0]["x"] == 1 and loss["data"][-1]["x"] == 5000 and metric["label"] == "dev accuracy"


def _version(team, number: int, **fields) -> PromptVersion:
    prompt = TaskPrompt.objects.for_tenant(team.tenant).get(name="sentiment")
    values = {"method": "prompt", "status": "ready", "artifact_key": f"a/{number}", **fields}
    return PromptVersion.objects.create(tenant=team.tenant, prompt=prompt, number=number, **values)


def test_prompt_page_shows_per_label_scores_confusion_and_downloads(acme, s3):
    from tests.webui.fill import INSPECTION, REPORT

    make_prompt(acme)
    _version(acme, 1, metrics={"dev": {"accuracy": 0.6}})  # from before per-label figures
    _version(acme, 2, metrics={"dev": {"accuracy": 0.5, **REPORT}}, peft_key="p/2.zip", inspection=INSPECTION)
    _version(acme, 3, method="prefix", metrics={"dev": {"accuracy": 0.5, **REPORT}})
    client = browser(acme)
    page = client.get("/app/prompts/sentiment").content.decode()
    per_label = page.split('id="per-label-v2"')[1].split("</table>")[0]
    assert re.search(r"negative</th><td>0\.500</td><td>0\.400</td><td>0\.444</td><td>5</td>", per_label)
    confusion = page.split('id="confusion-v2"')[1].split("</table>")[0]
    assert re.search(r'negative</th><td class="diag"[^>]*>2</td><td class=""[^>]*>3</td>', confusion)
    assert 'id="per-label-v1"' not in page and page.count("not computed") == 2  # v1: both rows
    assert "/app/prompts/sentiment/versions/2/artifact/softserve" in page
    assert "/app/prompts/sentiment/versions/2/artifact/peft" in page
    assert "/app/prompts/sentiment/versions/3/artifact/peft" not in page  # prefix: the reason instead
    assert "Prefix-tuning versions have no PEFT download" in page
    assert "made before PEFT export" in page  # v1
    assert "Nearest tokens of v2" in page and "Nearest tokens of v3" not in page
    assert "do not apply to prefix tuning" in page
    fragment = client.get("/app/prompts/sentiment/versions/2/tokens", HTTP_HX_REQUEST="true")
    assert "HX-Request" in fragment["Vary"]  # the same URL answers a page without htmx
    panel = fragment.content.decode()
    assert "<html" not in panel and 'id="tokens-v2"' in panel and panel.count("<tr>") == 21
    assert "<code>tok0</code>" in panel
    full = client.get("/app/prompts/sentiment/versions/1/tokens").content.decode()
    assert "<html" in full and "Not computed" in full


def test_prompt_page_says_which_step_each_version_keeps(acme):
    make_prompt(acme)
    _version(acme, 1, metrics={"dev": {"accuracy": 0.8}, "best_step": 200, "steps_run": 300})
    ensemble = {"best_step": [300, 200], "steps_run": 300, "stop_reason": "steps"}
    _version(acme, 2, ensemble_size=2, metrics={"dev": {"accuracy": 0.9}, **ensemble})
    _version(acme, 3, metrics={"dev": {"accuracy": 0.7}})  # from before best_step was shown
    page = browser(acme).get("/app/prompts/sentiment").content.decode()
    row = page.split('<th scope="row">Best checkpoint</th>')[1].split("</tr>")[0]
    cells = re.findall(r'<td class="best-step">(.*?)</td>', row)
    assert cells == ["–", "steps 300, 200 of 300 run, stopped by steps", "step 200 of 300 run"]  # v3, v2, v1
    api = acme.client.get("/api/v1/prompts/sentiment/versions").json()["results"]
    assert {v["number"]: v["best_step"] for v in api} == {1: 200, 2: [300, 200], 3: None}


def test_generation_prompts_show_their_metric_instead(acme):
    make_prompt(acme, task_type="generation", labels=[], verbalizer={}, template="Q: {text}\nA:")
    _version(acme, 1, metrics={"dev": {"exact_match": 0.25, "n": 4}})
    page = browser(acme).get("/app/prompts/sentiment").content.decode()
    assert "exact match 0.250" in page and "does not apply to generation" in page


def test_an_invitation_answers_the_same_with_or_without_an_account_and_keeps_a_bad_form(acme):
    """Issue 22, finding 9: inviting never reveals whether an address has an account; a refused form
    keeps what was typed, the message beside the field."""
    from django.contrib.auth import get_user_model

    from softserve.tenancy.models import Membership
    from tests.teams import make_user

    client = browser(acme)
    users = get_user_model().objects.count()
    refused = client.post("/app/settings/members", {"email": "owner@acme.example", "role": "admin"})
    html = refused.content.decode()
    assert refused.status_code == 422
    field = html.split('id="id_member_email"')[1].split('id="id_member_role"')[0]
    assert "member already" in field and 'value="owner@acme.example"' in field  # beside it, form kept
    role = html.split('id="id_member_role"')[1].split("</select>")[0]
    assert '<option value="admin" selected>' in role  # the chosen role is kept too
    make_user("dev@acme.example")
    answers = []
    for email in ("nobody@acme.example", "dev@acme.example"):
        sent = client.post("/app/settings/members", {"email": email, "role": "member"}, follow=True)
        text = sent.content.decode().replace(email, "EMAIL")
        answers.append((sent.status_code, text.split('role="status"')[1].split("</ul>")[0]))
    assert answers[0] == answers[1] and "is invited as member" in answers[0][1]
    assert get_user_model().objects.count() == users + 1
    assert Membership.objects.for_tenant(acme.tenant).count() == 1  # nobody joined yet
    settings_page = client.get("/app/settings").content.decode()
    table = settings_page.split('id="invitations"')[1].split("</table>")[0]
    assert "nobody@acme.example" in table and "dev@acme.example" in table


NEWS_LABELS = ("business", "sci_tech", "sports", "world")


def _select(html: str, id_: str) -> str:
    return html.split(f'id="{id_}"')[1].split("</select>")[0]


def test_the_prompt_form_follows_the_chosen_dataset_and_keeps_what_was_typed(acme):
    from html import unescape

    from tests.teams import make_dataset_version

    news = make_dataset_version(acme.tenant, name="news", labels=NEWS_LABELS)
    numbers = make_dataset_version(acme.tenant, name="numbers", task_type="generation", labels=())
    client = browser(acme)
    # Named in the link: the labels and the task type come from it, the menu shows it chosen.
    page = client.get(f"/app/prompts/new?dataset_version={news.pk}").content.decode()
    assert 'id="id_labels" name="labels" value="business,sci_tech,sports,world"' in page
    assert f'<option value="{news.pk}" selected>' in _select(page, "id_dataset_version")
    # Chosen in the form (the htmx refresh): what was typed stays, the labels are filled.
    typed = {
        "name": "topics",
        "task_type": "classification",
        "template": "Article: {text}\nTopic:",
        "verbalizer": "sci_tech: science",
        "refresh": "dataset",
    }
    refreshed = client.post("/app/prompts/new", {**typed, "dataset_version": news.pk}, HTTP_HX_REQUEST="true")
    html = unescape(refreshed.content.decode())
    assert refreshed.status_code == 200 and 'value="business,sci_tech,sports,world"' in html
    assert 'value="topics"' in html and "Article: {text}\nTopic:</textarea>" in html
    assert "sci_tech: science</textarea>" in html
    assert 'name="labels_prefill" value="business,sci_tech,sports,world"' in html
    assert not TaskPrompt.objects.for_tenant(acme.tenant).exists()  # a refresh never creates
    # Another dataset replaces the previous prefill (and sets its task type) ...
    prefilled = {**typed, "labels": ",".join(NEWS_LABELS), "labels_prefill": ",".join(NEWS_LABELS)}
    switched = client.post("/app/prompts/new", {**prefilled, "dataset_version": numbers.pk})
    html = switched.content.decode()
    assert 'id="id_labels" name="labels" value=""' in html
    assert '<option value="generation" selected>' in _select(html, "id_task_type")
    # ... but labels typed by hand stay.
    handmade = client.post("/app/prompts/new", {**prefilled, "labels": "a,b", "dataset_version": news.pk})
    assert 'id="id_labels" name="labels" value="a,b"' in handmade.content.decode()


def test_a_prompt_that_does_not_fit_its_dataset_is_refused_beside_each_field_with_the_form_kept(acme):
    from html import unescape

    from tests.teams import make_dataset_version

    news = make_dataset_version(acme.tenant, name="news", labels=NEWS_LABELS)
    client = browser(acme)
    body = {
        "name": "topics",
        "task_type": "classification",
        "template": "Title: {title}\nArticle: {text}\nTopic:",
        "labels": "business,world",
        "verbalizer": "world: world news",
        "dataset_version": str(news.pk),
    }
    refused = client.post("/app/prompts/new", body)
    html = unescape(refused.content.decode())
    assert refused.status_code == 422
    template_error = html.split('id="id_template-error">')[1].split("</p>")[0]
    assert "{title} is not a column of news v1, whose columns are text" in template_error
    assert html.count("is not a column") == 1  # said once, beside the field (not again by the preview)
    assert "each a column" not in html
    labels_error = html.split('id="id_labels-error">')[1].split("</p>")[0]
    assert "['sci_tech', 'sports']" in labels_error and "lacks" in labels_error
    # Every choice is kept: the dataset, the name, the template, the labels, the verbalizer.
    assert f'<option value="{news.pk}" selected>' in _select(html, "id_dataset_version")
    assert 'value="topics"' in html and "Title: {title}\nArticle: {text}\nTopic:</textarea>" in html
    assert 'name="labels" value="business,world"' in html and "world: world news</textarea>" in html
    assert not TaskPrompt.objects.for_tenant(acme.tenant).exists()
    fixed = {**body, "template": "Article: {text}\nTopic:", "labels": ",".join(NEWS_LABELS)}
    assert client.post("/app/prompts/new", fixed)["Location"] == "/app/prompts/topics"
    assert TaskPrompt.objects.for_tenant(acme.tenant).get().labels == list(NEWS_LABELS)
    # No dataset chosen: nothing to fit.
    free = {**body, "name": "free", "dataset_version": ""}
    assert client.post("/app/prompts/new", free)["Location"] == "/app/prompts/free"


def test_the_template_preview_says_which_fields_are_not_columns(acme, s3):
    from html import unescape

    from django.core.files.uploadedfile import SimpleUploadedFile

    client = browser(acme)
    done = client.post(
        "/app/datasets/upload",
        {"name": "sst2", "file": SimpleUploadedFile("s.csv", sst2_head(60))},
        HTTP_HX_REQUEST="true",
    )
    version = DatasetVersion.objects.for_tenant(acme.tenant).get()
    assert done.status_code == 200, done.content
    body = {"template": "Title: {title}\n{text}", "dataset_version": str(version.pk)}
    html = unescape(client.post("/app/prompts/template-preview", body).content.decode())
    assert "id=\"template-check-error\">The template needs fields ['title']: {title} is not a column" in html
    assert "<pre" not in html
    body["template"] = "Review: {text}\nSentiment:"
    html = unescape(client.post("/app/prompts/template-preview", body).content.decode())
    assert "each a column of sst2 v1" in html and "field-error" not in html
    assert '<pre class="code">Review: ' in html


def _inits(html: str) -> list[str]:
    return re.findall(r'<option value="(\w*)"', _select(html, "id_init"))


def test_the_job_form_offers_a_generation_prompt_only_the_inits_it_can_take(acme):
    from tests.teams import make_dataset_version

    make_prompt(acme)
    make_prompt(
        acme,
        name="numbers",
        task_type="generation",
        labels=[],
        verbalizer={},
        template="Number: {text}\nWords:",
    )
    client = browser(acme)
    assert _inits(client.get("/app/jobs/new?prompt=sentiment").content.decode()) == [
        "",
        "random",
        "vocab",
        "labels",
        "text",
    ]
    assert _inits(client.get("/app/jobs/new?prompt=numbers").content.decode()) == [
        "",
        "random",
        "vocab",
        "text",
    ]
    assert "labels" not in _inits(client.get("/app/jobs/new").content.decode())  # the first prompt: numbers
    # Switching to the generation prompt with labels chosen: the form comes back without it, all else kept.
    refreshed = client.post(
        "/app/jobs/new",
        {"kind": "tune", "prompt": "numbers", "init": "labels", "steps": "7", "refresh": "prompt"},
        HTTP_HX_REQUEST="true",
    )
    html = refreshed.content.decode()
    assert refreshed.status_code == 200 and "selected" not in _select(html, "id_init")
    assert _inits(html) == ["", "random", "vocab", "text"] and 'id="id_steps" name="steps" value="7"' in html
    assert not Job.objects.for_tenant(acme.tenant).exists()
    # Its defaults fit it: started with every setting empty, it trains from vocab.
    dataset = make_dataset_version(acme.tenant, name="numbers", task_type="generation", labels=())
    empty = {"init": "", "optimizer": "", "learning_rate": "", "max_minutes": "", "version": ""}
    body = {"kind": "tune", "prompt": "numbers", "dataset_version": str(dataset.pk), **empty}
    assert client.post("/app/jobs/new", body).status_code == 302
    assert Job.objects.for_tenant(acme.tenant).get().spec["init"] == "vocab"
