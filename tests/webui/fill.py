"""Many rows for one team, in bulk: the query-count tests and benchmarks/webui.py use it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from softserve.datasets.models import Dataset, DatasetVersion
from softserve.jobs.models import Job
from softserve.prompts.models import PromptVersion, TaskPrompt
from softserve.serving.models import Usage
from softserve.tenancy.models import ApiKey, Membership, Tenant

# What a trained version carries since issue 12: per-label figures, a confusion matrix, the PEFT export
# and the nearest-token view (20 positions of 5 tokens), so the pages are measured at their real size.
REPORT = {
    "per_label": {
        "negative": {"precision": 0.5, "recall": 0.4, "f1": 0.444, "support": 5},
        "positive": {"precision": 0.5, "recall": 0.6, "f1": 0.545, "support": 5},
    },
    "confusion": {"labels": ["negative", "positive"], "matrix": [[2, 3], [2, 3]], "folded": 0},
}
INSPECTION = {
    "applies": True,
    "member": 1,
    "members": 1,
    "top_k": 5,
    "norms": {"min": 0.5, "mean": 0.6, "max": 0.7, "vocab_mean": 0.6},
    "positions": [
        {
            "position": p,
            "norm": 0.6,
            "nearest": [{"token": f"tok{k}", "id": k, "cosine": 0.5 - k / 20} for k in range(5)],
        }
        for p in range(20)
    ],
}


def fill_team(tenant: Tenant, rows: int, versions: int | None = None) -> TaskPrompt:
    """`rows` datasets, prompts, jobs, keys, members and usage rows; `versions` versions of one prompt."""
    versions = rows if versions is None else versions
    datasets = Dataset.objects.bulk_create(
        [Dataset(tenant=tenant, name=f"data-{i:05d}-{uuid.uuid4().hex[:4]}") for i in range(rows)]
    )
    dvs = DatasetVersion.objects.bulk_create(
        [
            DatasetVersion(
                tenant=tenant,
                dataset=d,
                number=1,
                storage_key=f"k/{d.pk}",
                source_format="csv",
                source_filename="x.csv",
                task_type="classification",
                columns={"text": "text"},
                labels=["negative", "positive"],
                label_counts={"negative": 5, "positive": 5},
                split_counts={"train": 9, "dev": 1},
                row_count=10,
                size_bytes=100,
                checksum="0" * 64,
            )
            for d in datasets
        ]
    )
    prompts = TaskPrompt.objects.bulk_create(
        [
            TaskPrompt(
                tenant=tenant,
                name=f"p-{i:05d}-{uuid.uuid4().hex[:4]}",
                task_type="classification",
                template="Review: {text}\nSentiment:",
                labels=["negative", "positive"],
                base_model="smollm2-135m-instruct",
            )
            for i in range(rows)
        ]
    )
    main = prompts[0]
    pvs = PromptVersion.objects.bulk_create(
        [
            PromptVersion(
                tenant=tenant,
                prompt=main,
                number=i + 1,
                method="prompt",
                hyperparameters={"steps": 300, "prompt_length": 20},
                dataset_version=dvs[i % len(dvs)],
                status="ready",
                metrics={"dev": {"accuracy": 0.5 + i / (4 * max(versions, 1)), "macro_f1": 0.5, **REPORT}},
                artifact_key=f"a/{i}",
                peft_key=f"a/{i}.zip",
                inspection=INSPECTION,
            )
            for i in range(versions)
        ]
    )
    Job.objects.bulk_create(
        [
            Job(
                tenant=tenant,
                kind="tune",
                status="succeeded",
                spec={"steps": 300},
                prompt_version=pvs[i % len(pvs)],
                dataset_version=dvs[i % len(dvs)],
                progress={"step": 300, "total_steps": 300, "loss": 0.4, "elapsed_s": 30.0},
            )
            for i in range(rows)
        ]
    )
    ApiKey.objects.bulk_create(
        [
            ApiKey(tenant=tenant, name=f"k{i}", prefix=uuid.uuid4().hex[:12], secret_hash="0" * 64)
            for i in range(rows)
        ]
    )
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"u{i}-{uuid.uuid4().hex[:6]}@x.example") for i in range(rows)]
    )
    Membership.objects.bulk_create([Membership(tenant=tenant, user=u, role="member") for u in users])
    today = timezone.now().date()
    Usage.objects.bulk_create(
        [
            Usage(tenant=tenant, prompt_name=p.name, day=today - timedelta(days=i % 30), requests=1, inputs=i)
            for i, p in enumerate(prompts)
        ]
    )
    return main
