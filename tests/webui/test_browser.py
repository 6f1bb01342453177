"""The team UI in Debian's Chromium: the flows of issue 12 against the live server, a real Celery worker
(tiny GPT-2), S3 over HTTP and embedded serving. Each page passes axe-core and leaves a screenshot."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from playwright.sync_api import expect

from softserve.datasets.models import DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts.models import TaskPrompt
from softserve.tenancy.actions import create_tenant
from tests.conftest import shared_dataset
from tests.datasets.test_datasets_api import sst2_head
from tests.webui.conftest import look, sign_in
from tests.webui.fill import fill_team

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery"
HOSTILE = '<script>alert(1)</script>=HYPERLINK("http://evil.example","x")'


def team(name: str):
    tenant, user, _ = create_tenant(name, f"owner@{name}.example", PASSWORD)
    return tenant, user.username


def csv_file(name: str, body: bytes) -> dict:
    return {"name": name, "mimeType": "text/csv", "buffer": body}


def good_rows(rows: int = 120) -> bytes:
    # The shared SST-2 rows plus one hostile row that must show as text.
    quoted = HOSTILE.replace('"', '""')
    return sst2_head(rows) + f'"{quoted}",positive\n'.encode()


def upload(page, name: str, body: bytes, filename: str = "reviews.csv", navigate: bool = True) -> None:
    if navigate:
        page.goto("/app/datasets")
    page.get_by_label(re.compile("Data file")).set_input_files(csv_file(filename, body))
    expect(page.locator("#columns-found")).to_contain_text("Columns found: text, label")
    page.get_by_label("Dataset name").fill(name)
    page.get_by_role("button", name="Upload and validate").click()


def step_of(page) -> int:
    return int(page.locator("#job-step").inner_text().split("/")[0].strip() or 0)


def test_upload_fix_report_and_label_chart(page, stack):
    _, email = team("acme")
    sign_in(page, email, PASSWORD)
    look(page, "home-empty")
    broken = b"text,label\na fine film,positive\n,negative\nawful,\ngood,positive\n"
    page.goto("/app/datasets")
    record = "e => window.sent.push(e.detail.loaded)"
    page.evaluate(f"window.sent = []; document.addEventListener('htmx:xhr:progress', {record})")
    upload(page, "reviews", broken, navigate=False)
    report = page.locator("#upload-report")
    expect(report).to_contain_text("problem")
    rows = report.locator("tbody tr")
    expect(rows.first).to_contain_text("3")
    expect(rows.first).to_contain_text("text")
    expect(page.get_by_label("Dataset name")).to_have_value("reviews")  # the form kept its fields
    assert page.evaluate("window.sent.length") > 0  # the progress bar was fed the bytes sent
    look(page, "datasets-upload-report")
    page.get_by_label(re.compile("Data file")).set_input_files(csv_file("reviews.csv", good_rows()))
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url(re.compile(r"/app/datasets/[0-9a-f-]+/versions/1$"))
    expect(page.locator("#upload-progress")).to_have_count(0)
    chart = page.locator("#label-chart")
    expect(chart).to_have_attribute("data-points", "2")
    expect(page.locator("#train-rows")).not_to_have_text("0")
    look(page, "dataset-version")
    page.goto(page.url + "?page=7")  # the hostile row is the last one
    cell = page.locator("#preview td", has_text="HYPERLINK")
    expect(cell).to_have_text(re.compile(re.escape(HOSTILE)))
    page.goto("/app/datasets")
    expect(page.locator("tbody tr")).to_have_count(1)
    look(page, "datasets")


def news_rows(rows: int = 400) -> bytes:
    """The shared AG News rows: four topics, one label of three tokens (sci_tech), and real text that
    opens like a formula (row 383 begins `-Posted by`; `=== Knicks-ed ... ===` is added)."""
    with shared_dataset("agnews", "train").open("rb") as handle:
        lines = handle.readlines()
    knicks = next(line for line in lines if line.startswith(b'"=== Knicks-ed'))
    return b"".join(lines[: rows + 1]) + knicks


def test_prompt_form_takes_labels_from_the_dataset_and_keeps_every_choice(page, stack):
    _, email = team("acme")
    sign_in(page, email, PASSWORD)
    # The upload form keeps the chosen file when another field is refused: fix the name, upload again.
    page.goto("/app/datasets")
    page.get_by_label(re.compile("Data file")).set_input_files(csv_file("news.csv", news_rows()))
    expect(page.locator("#columns-found")).to_contain_text("Columns found: text, label")
    page.get_by_label("Dataset name").fill("news!")
    page.get_by_role("button", name="Upload and validate").click()
    expect(page.locator("#id_name-error")).to_contain_text("letters, digits")
    expect(page.locator("#columns-found")).to_contain_text("news.csv is still chosen")
    page.get_by_label("Dataset name").fill("news")
    page.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url(re.compile(r"/app/datasets/[0-9a-f-]+/versions/1$"))
    version = DatasetVersion.objects.get(dataset__name="news")
    assert version.labels == ["business", "sci_tech", "sports", "world"] and version.row_count == 401

    page.goto("/app/prompts/new")
    page.get_by_label("Name", exact=True).fill("<script>x")
    page.get_by_label("Base model").select_option("smollm2-135m-instruct")
    page.get_by_label("Input template").fill("Article: {text}\nTopic:")
    dataset = page.get_by_label(re.compile("^Dataset it trains on"))
    dataset.select_option(str(version.pk))
    labels = page.get_by_label("Labels")
    expect(labels).to_have_value("business,sci_tech,sports,world")  # from the dataset, nothing typed
    expect(page.get_by_label("Name", exact=True)).to_have_value("<script>x")  # kept through the refresh
    expect(page.locator("#template-preview")).to_contain_text("each a column of news v1")
    expect(page.locator("#template-preview pre")).to_contain_text("Article: EU chief vows")
    look(page, "prompt-new-labels-from-dataset")

    page.get_by_label("Input template").fill("Title: {title}\nArticle: {text}\nTopic:")
    expect(page.locator("#template-check-error")).to_contain_text("{title} is not a column of news v1")
    labels.fill("business,sci_tech,sports,world,other")  # the prefill is editable
    page.get_by_role("button", name="Create prompt").click()
    expect(page.locator("#id_name-error")).to_contain_text("Use 1-100 letters")
    expect(page.locator("#id_template-error")).to_contain_text("{title} is not a column of news v1")
    expect(page.locator(".field-error", has_text="is not a column")).to_have_count(1)
    expect(page.locator("#template-preview")).not_to_contain_text("each a column")
    # Every choice survived the refusal, the chosen dataset included.
    expect(dataset).to_have_value(str(version.pk))
    expect(labels).to_have_value("business,sci_tech,sports,world,other")
    expect(page.get_by_label("Input template")).to_have_value("Title: {title}\nArticle: {text}\nTopic:")
    expect(page.get_by_label("Base model")).to_have_value("smollm2-135m-instruct")
    page.locator("#id_template-error").scroll_into_view_if_needed()
    look(page, "prompt-new-refused-kept")

    page.get_by_label("Name", exact=True).fill("topics")
    page.get_by_label("Input template").fill("Article: {text}\nTopic:")
    page.get_by_role("button", name="Create prompt").click()
    page.wait_for_url("**/app/prompts/topics")
    prompt = TaskPrompt.objects.get(name="topics")
    assert prompt.labels == ["business", "sci_tech", "sports", "world", "other"]
    assert prompt.task_type == "classification"


def test_train_watch_cancel_promote_rollback_and_playground(page, stack):
    tenant, email = team("acme")
    sign_in(page, email, PASSWORD)
    upload(page, "reviews", good_rows())
    page.wait_for_url(re.compile(r"/versions/1$"))

    page.goto("/app/prompts/new")
    page.get_by_label("Name", exact=True).fill("<script>x")
    page.get_by_label("Labels").fill("negative,positive")
    page.get_by_label("Base model").select_option(stack["tiny"])
    # The refused form comes back as a new page: wait for its load, or the dataset choice below can land
    # before htmx (a deferred script) has bound the select, and no refresh is sent.
    with page.expect_navigation():
        page.get_by_role("button", name="Create prompt").click()
    expect(page.locator(".field-error").first).to_contain_text("Use 1-100 letters")
    expect(page.get_by_label("Name", exact=True)).to_have_value("<script>x")
    page.get_by_label("Name", exact=True).fill("sentiment")
    page.get_by_label(re.compile("^Dataset it trains on")).select_option(index=1)
    expect(page.get_by_label("Labels")).to_have_value("negative,positive")
    preview = page.locator("#template-preview")
    expect(preview).to_contain_text("Fields found: text: each a column of reviews v1")
    expect(page.locator("#template-preview pre")).to_contain_text("Review: ")
    look(page, "prompt-new")
    page.get_by_role("button", name="Create prompt").click()
    page.wait_for_url("**/app/prompts/sentiment")
    expect(page.locator("pre.code")).to_have_text("Review: {text}\nSentiment:")

    def start(steps: int) -> None:
        page.goto("/app/jobs/new?prompt=sentiment")
        page.get_by_label("Steps").fill(str(steps))
        page.get_by_label("Prompt length").fill("4")
        page.get_by_label("Batch size").fill("4")
        page.get_by_role("button", name="Start job").click()
        page.wait_for_url(re.compile(r"/app/jobs/[0-9a-f-]+$"))

    page.goto("/app/jobs/new?prompt=sentiment")
    look(page, "job-new")
    start(400)  # long enough that the curve still grows after the counter has moved, on a fast CPU
    page.evaluate("window.notReloaded = true")
    seen, points = set(), None
    for _ in range(600):
        seen.add(step_of(page))
        if points is None and max(seen) > 0:
            # The chart's size when the job is first seen running: a flat tiny model early-stops at step
            # 300 and progress lands every few dozen steps, so by the counter's second move the job may
            # have written its last point already; the growth is measured from this first sight.
            points = int(page.locator("#curve-chart").get_attribute("data-points") or 0)
        if len([s for s in seen if s > 0]) >= 2:
            break
        page.wait_for_timeout(100)
    assert len([s for s in seen if s > 0]) >= 2, f"the step counter did not move: {seen}"
    # Predicates are functions, never strings: Playwright evals a string in the page, which the page's
    # Content-Security-Policy (no unsafe-eval) refuses.
    page.wait_for_function(
        f"() => Number(document.getElementById('curve-chart').getAttribute('data-points')) > {points}",
        timeout=60_000,
    )
    assert page.evaluate("window.notReloaded") is True  # moved by polling, never a reload
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120_000)
    page.reload()
    page.wait_for_function("window.softserveCharts && window.softserveCharts['curve-chart']")
    # The loss is drawn between dev evaluations (every 50 steps here), not only at them: points before
    # the first evaluation's step, and more loss points than evaluations.
    loss, dev = page.evaluate(
        "window.softserveCharts['curve-chart'].data.datasets.map(d => d.data.map(p => p.x))"
    )
    assert dev and len([x for x in loss if x < min(dev)]) >= 2, (loss, dev)
    assert len(loss) > 2 * len(dev), (loss, dev)
    look(page, "job-succeeded")

    start(100_000)  # v2: cancelled while it runs
    page.wait_for_function("() => Number(document.getElementById('job-step').innerText.split('/')[0]) > 0")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=60_000)
    look(page, "job-cancelled")

    start(10)  # v3
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=120_000)

    page.goto("/app/prompts/sentiment")
    page.get_by_role("button", name="Promote v1 to production").click()
    expect(page.locator("#alias-production")).to_have_text("production → v1")
    page.get_by_role("button", name="Promote v3 to production").click()
    expect(page.locator("#alias-production")).to_have_text("production → v3")
    page.get_by_role("button", name="Roll back production to v1").click()
    expect(page.locator("#alias-production")).to_have_text("production → v1")
    expect(page.locator("#alias-history tbody tr")).to_have_count(3)
    look(page, "prompt-detail")
    check_version_views(page)

    page.goto("/app/jobs")
    look(page, "jobs")
    page.goto("/app/prompts")
    look(page, "prompts")
    page.goto("/app/playground?prompt=sentiment")
    page.get_by_label("Compare with (optional)").fill("3")
    page.get_by_label("Inputs, one per line").fill("a gorgeous, funny film\nthe dullest hour of the year")
    page.get_by_role("button", name="Run prediction").click()
    results = page.locator("#results section")
    expect(results).to_have_count(2, timeout=60_000)
    expect(results.first.locator(".predicted-label")).to_have_count(2)
    expect(results.first.locator(".bar")).to_have_count(4)
    expect(page.locator("#curl")).to_contain_text("Bearer ss_…")
    look(page, "playground")
    page.goto("/app/")
    look(page, "home")
    assert Job.objects.for_tenant(tenant).filter(status="cancelled").count() == 1


def check_version_views(page) -> None:
    """v1 (trained, 4 prompt positions): its per-label scores and confusion matrix on the prompt page,
    the nearest-token panel swapped in without a reload, and both downloads as real files."""
    per_label = page.locator("#per-label-v1")
    expect(per_label.locator("tbody tr")).to_have_count(2)
    expect(per_label).to_contain_text("negative")
    matrix = page.locator("#confusion-v1")
    expect(matrix.locator("tbody tr")).to_have_count(2)
    expect(matrix.locator("thead th")).to_have_count(3)
    cells = [int(c) for c in matrix.locator("tbody td").all_inner_texts()]
    assert len(cells) == 4 and sum(cells) > 0  # every dev row of v1, gold by predicted
    page.evaluate("window.notReloaded = true")
    page.get_by_role("link", name="Nearest tokens of v1").click()
    tokens = page.locator("#tokens-v1")
    expect(tokens.locator("tbody tr")).to_have_count(4)  # prompt_length 4
    expect(tokens.locator("tbody tr").first.locator("code")).to_have_count(5)  # top 5 tokens
    assert page.evaluate("window.notReloaded") is True
    page.locator("#tokens-panel").scroll_into_view_if_needed()
    look(page, "prompt-detail-report-and-tokens")
    expect(page.locator("#confusion-v2")).to_have_count(0)  # v2 was cancelled: nothing to show
    expect(page.get_by_role("link", name=re.compile("^Download v2"))).to_have_count(0)
    with page.expect_download() as got:
        page.get_by_role("link", name="Download v1 Softserve (.safetensors)").click()
    softserve = got.value
    assert softserve.suggested_filename == "sentiment-v1.safetensors"
    with open(softserve.path(), "rb") as handle:  # safetensors: 8-byte length, then a JSON header
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    assert "prompt" in header  # a safetensors file: its JSON header names the prompt tensor
    with page.expect_download() as got:
        page.get_by_role("link", name="Download v1 PEFT adapter (.zip)").click()
    peft = got.value
    assert peft.suggested_filename == "sentiment-v1.peft.zip"
    with zipfile.ZipFile(peft.path()) as archive:
        assert sorted(archive.namelist()) == ["adapter_config.json", "adapter_model.safetensors"]
        assert json.loads(archive.read("adapter_config.json"))["num_virtual_tokens"] == 4


def test_keys_isolation_docs_and_small_screens(page, stack):
    _, email = team("acme")
    other, _ = team("globex")
    fill_team(other, 3)
    sign_in(page, email, PASSWORD)
    page.goto("/app/settings")
    page.get_by_label("Key name").fill("ci")
    page.get_by_role("button", name="Create API key").click()
    expect(page.locator("#new-key-value")).to_have_text(re.compile(r"^ss_[0-9a-f]+_"))
    look(page, "settings-key-created")
    page.get_by_role("button", name="Revoke ci").click()
    expect(page.locator("#keys")).to_contain_text("revoked")
    expect(page.locator("#new-key-value")).to_have_count(0)  # never shown again

    # Inviting a member again is refused: the message is beside the field, the form keeps what was typed.
    page.get_by_label("Invite by e-mail").fill(email)
    page.locator("#id_member_role").select_option("admin")
    page.get_by_role("button", name="Invite").click()
    error = page.locator("#id_member_email-error")
    expect(error).to_contain_text("is a member already")
    expect(page.get_by_label("Invite by e-mail")).to_have_value(email)
    expect(page.locator("#id_member_role")).to_have_value("admin")
    expect(page.get_by_label("read")).to_be_checked()  # the key form keeps its defaults meanwhile
    assert page.evaluate(
        "document.getElementById('id_member_email').parentElement.contains("
        "document.getElementById('id_member_email-error'))"
    )
    expect(page.locator("#members tbody tr")).to_have_count(1)
    error.scroll_into_view_if_needed()
    look(page, "settings-invite-a-member-again")
    # Any other address is invited, account or not: the same answer, and nobody joins until they accept.
    page.get_by_label("Invite by e-mail").fill("nobody@acme.example")
    page.get_by_role("button", name="Invite").click()
    expect(page.locator(".messages")).to_contain_text("nobody@acme.example is invited as admin")
    expect(page.locator("#invitations")).to_contain_text("nobody@acme.example")
    expect(page.locator("#members tbody tr")).to_have_count(1)
    look(page, "settings-invitation-pending")

    version = DatasetVersion.objects.for_tenant(other).first()
    job = Job.objects.for_tenant(other).first()
    prompt = job.prompt_version.prompt
    for url in (
        f"/app/datasets/{version.dataset_id}/versions/{version.number}",
        f"/app/prompts/{prompt.name}",
        f"/app/jobs/{job.pk}",
        f"/app/prompts/{prompt.name}/versions/1/tokens",
    ):
        assert page.goto(url).status == 404, url
    for fmt in ("softserve", "peft"):
        url = f"/app/prompts/{prompt.name}/versions/1/artifact/{fmt}"
        assert page.request.get(url).status == 404, url
    expect(page.locator("h1")).to_have_text("Not found")
    look(page, "not-found")

    page.goto("/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 10  # the API's operations, with no request leaving the host

    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/app/", "/app/datasets", "/app/settings"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} scrolls sideways at 390 px ({width})"
    look(page, "settings-390px")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
