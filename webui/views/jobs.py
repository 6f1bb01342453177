"""Job pages: list with filters, the new-job form (the API's serializer and action), a live job page."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from rest_framework.fields import empty

from common.contracts import JOB_KINDS, JOB_STATUSES, METHODS, Init, JobKind, JobStatus, TaskType, inits_for
from common.defaults import GENERATION, GENERATION_INIT, JOB_DEFAULTS, OPTIMIZERS, defaults_rows
from softserve.datasets.models import DatasetVersion
from softserve.jobs import actions
from softserve.jobs.models import Job
from softserve.jobs.serializers import JobCreateSerializer
from softserve.numbers import whole_number
from softserve.prompts.models import TaskPrompt
from softserve.tenancy.models import Quota
from webui.forms import REFUSALS, dataset_options, errors_of, name_options, page_of, submitted
from webui.insights import thin
from webui.team import team_page

# A list shows status and step only: a long metric history (or result) is never decoded for it.
LIST_DEFERRED = (
    "metric_history",
    "result",
    "spec",
    "prompt_version__hyperparameters",
    "prompt_version__metrics",
    "prompt_version__inspection",
)
CHOICES = 200  # prompts and dataset versions offered in the form's menus
# One line per setting, shown beside it in the form.
EXPLAINED = {
    "kind": "tune trains one prompt; ensemble trains several (different seeds) that vote; "
    "evaluate scores a ready version on a dataset.",
    "method": "prompt: vectors before the input (Lester et al.); prefix: key/value prefixes at every layer; "
    "ptuning: virtual tokens from a small encoder.",
    "prompt_length": "How many soft-prompt vectors (1-150); 20 is the paper's default.",
    "init": "Where the vectors start: labels = the label words, vocab = words sampled from the whole "
    "vocabulary, random, or text = your own words. Empty: the method's default (table below; "
    f"{GENERATION_INIT} for a {GENERATION} prompt, which has no label words).",
    "init_text": "For the text init only: the words the prompt starts from.",
    "steps": "Optimiser steps; training stops early when the dev metric stops improving.",
    "optimizer": "Empty: the method's default (table below).",
    "learning_rate": "Empty: the method's default (table below).",
    "batch_size": "Rows per step; smaller uses less GPU memory.",
    "members": f"Ensemble only: how many prompts vote (2-{JOB_DEFAULTS.max_members}).",
    "max_minutes": "Time budget: the job stops (keeping its best checkpoint) after this long. "
    "Empty: the method's default (table below).",
    "seed": "Same seed, same data, same settings: the same prompt.",
    "version": "Evaluate only: the ready version to score.",
    "allow_eval_overlap": "The evaluation set is held out: a training job whose rows are also in it is "
    "refused (its scores there would be inflated) unless this is ticked.",
}


@team_page()
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = (
        Job.objects.for_tenant(request.actor.tenant)
        .select_related("prompt_version__prompt")
        .defer(*LIST_DEFERRED)
    )
    status, kind = request.GET.get("status", ""), request.GET.get("kind", "")
    if status in JOB_STATUSES:
        jobs = jobs.filter(status=status)
    if kind in JOB_KINDS:
        jobs = jobs.filter(kind=kind)
    page = page_of(request, jobs.order_by("-created_at"))
    query = "&".join(f"{k}={v}" for k, v in (("status", status), ("kind", kind)) if v)
    context = {
        "page": page,
        "jobs": page.object_list,
        "status": status,
        "kind": kind,
        "statuses": JOB_STATUSES,
        "kinds": JOB_KINDS,
        "query": query,
    }
    return render(request, "webui/jobs.html", context)


def _defaults() -> dict[str, str]:
    fields = JobCreateSerializer().fields
    out = {"kind": JobKind.TUNE, "members": str(JOB_DEFAULTS.members)}
    for name, field in fields.items():
        if field.default is not empty and not callable(field.default):
            out.setdefault(name, str(field.default))
    return out


def _estimate(tenant) -> float | None:
    """Seconds per step from the team's latest finished training job, for the duration estimate."""
    last = (
        Job.objects.for_tenant(tenant)
        .filter(status=JobStatus.SUCCEEDED, kind__in=(JobKind.TUNE, JobKind.ENSEMBLE))
        .order_by("-created_at")  # the (tenant, -created_at) index: no sort of all the team's jobs
        .values_list("progress", flat=True)
        .first()
    )
    if not last or not last.get("step") or not last.get("elapsed_s"):
        return None
    return last["elapsed_s"] / last["step"]


def _task_type(prompts: list[dict], types: dict[str, str], chosen: str) -> str:
    """The task type of the prompt the form shows as chosen (a menu with none marked shows its first)."""
    name = chosen if chosen in types else (prompts[0]["value"] if prompts else "")
    return types.get(name, TaskType.CLASSIFICATION)


@team_page(post="train", rerender=("refresh", "prompt"))
def job_new(request: HttpRequest) -> HttpResponse:
    """The new-job form; choosing a prompt (htmx: `refresh=prompt`) re-renders it with what is set so
    far and only the inits that prompt's task type can take."""
    tenant = request.actor.tenant
    errors: dict[str, list[str]] = {}
    if request.rerender:
        values = submitted(request)
    elif request.method == "POST":
        values = submitted(request)
        body = {k: v for k, v in values.items() if k in JobCreateSerializer().fields}
        if body.get("kind") != JobKind.ENSEMBLE:
            body.pop("members", None)
        if body.get("kind") != JobKind.EVALUATE:
            body.pop("version", None)
        if body.get("init") != Init.TEXT:
            body.pop("init_text", None)
        form = JobCreateSerializer(data=body, context={"tenant": tenant})
        try:
            form.is_valid(raise_exception=True)
            data = form.validated_data
            job = actions.create_job(
                request.actor,
                data["kind"],
                data["prompt_obj"],
                form.spec(),
                data["dataset_obj"],
                data["target"],
            )
        except REFUSALS as exc:
            errors = errors_of(exc)
        else:
            return redirect("webui:job", job.pk)
    else:
        values = {
            **_defaults(),
            **{k: v for k, v in request.GET.items() if k in ("prompt", "dataset_version")},
        }
    quota = Quota.objects.filter(tenant=tenant).first()
    per_step = _estimate(tenant)
    steps = whole_number(str(values.get("steps", "")))  # "²" passes isdigit() but not int()
    types = dict(
        TaskPrompt.objects.for_tenant(tenant).order_by("name").values_list("name", "task_type")[:CHOICES]
    )
    prompts = name_options(list(types), values.get("prompt", ""))
    inits = inits_for(_task_type(prompts, types, values.get("prompt", "")))
    if values.get("init") and values["init"] not in inits and not errors:
        values.pop("init")  # another prompt's choice: this one takes its method's default instead
    context = {
        "values": values,
        "errors": errors,
        "explained": EXPLAINED,
        "prompts": prompts,
        "datasets": dataset_options(
            DatasetVersion.objects.for_tenant(tenant)
            .select_related("dataset")
            .order_by("-created_at")[:CHOICES],
            values.get("dataset_version", ""),
        ),
        "kinds": JOB_KINDS,
        "methods": METHODS,
        "inits": inits,
        "optimizers": OPTIMIZERS,
        "method_defaults": defaults_rows(),
        "quota": quota,
        "running": Job.objects.for_tenant(tenant).filter(status=JobStatus.RUNNING).count(),
        "queued": Job.objects.for_tenant(tenant).filter(status=JobStatus.QUEUED).count(),
        "seconds_per_step": per_step,
        "estimate_s": per_step * steps if per_step and steps is not None else None,
    }
    return render(request, "webui/job_new.html", context, status=422 if errors else 200)


def _job(request: HttpRequest, pk) -> Job:
    return get_object_or_404(
        Job.objects.for_tenant(request.actor.tenant)
        .select_related("prompt_version__prompt", "dataset_version__dataset")
        .defer("prompt_version__inspection"),  # the live fragment polls this every second
        pk=pk,
    )


def curves(job: Job) -> dict:
    """Loss and dev-metric points (step on x) for the chart, thinned on the server for long runs."""
    evals = [p for p in job.metric_history if "event" not in p and "step" in p]
    metric = next((m for m in ("accuracy", "exact_match") if any(m in p for p in evals)), None)
    loss = [{"x": p["step"], "y": p["loss"]} for p in evals if p.get("loss") is not None]
    live = job.progress or {}
    if (
        live.get("step") is not None
        and live.get("loss") is not None
        and (not loss or live["step"] > loss[-1]["x"])
    ):
        loss.append({"x": live["step"], "y": live["loss"]})  # the latest step, between evaluations
    datasets = [{"label": "training loss", "data": thin(loss), "yAxisID": "y"}]
    if metric:
        points = [{"x": p["step"], "y": p[metric]} for p in evals if metric in p]
        datasets.append({"label": f"dev {metric}", "data": thin(points), "yAxisID": "y2"})
    return {
        "type": "line",
        "linear": True,
        "labels": [],
        "datasets": datasets,
        "x": "step",
        "y": "loss",
        "y2": metric or "dev",
    }


def _live_context(job: Job) -> dict:
    resumes = [p for p in job.metric_history if p.get("event") == "resumed"]
    return {"job": job, "p": job.progress or {}, "chart": curves(job), "resumes": resumes}


@team_page()
def job_detail(request: HttpRequest, pk) -> HttpResponse:
    job = _job(request, pk)
    return render(request, "webui/job_detail.html", _live_context(job))


@team_page()
def job_live(request: HttpRequest, pk) -> HttpResponse:
    """The live part of the job page, polled by htmx every second while the job is queued or running."""
    job = _job(request, pk)
    response = render(request, "webui/_job_live.html", _live_context(job))
    if not job.is_active:
        response.status_code = 286  # htmx: stop polling
    return response


@require_POST
@team_page(post="train")
def job_transition(request: HttpRequest, pk, transition: str) -> HttpResponse:
    job = _job(request, pk)
    act = {"cancel": actions.cancel_job, "retry": actions.retry_job}[transition]
    try:
        act(request.actor, job)
    except REFUSALS as exc:
        for text in (m for ms in errors_of(exc).values() for m in ms):
            flash.error(request, text)
    else:
        flash.success(request, "Cancel requested." if transition == "cancel" else "The job is queued again.")
    return redirect("webui:job", job.pk)
