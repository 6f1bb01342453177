"""The platform's side of Celery: it only sends tasks, by name, as JSON. No result backend."""

from __future__ import annotations

from functools import cache

from celery import Celery
from django.conf import settings

from workers.contracts import QUEUE_GPU, TASK_FOR_KIND, job_payload


@cache
def celery_app() -> Celery:
    app = Celery("softserve-platform", broker=settings.CELERY_BROKER_URL)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
    )
    return app


def send_job(job_id: str, kind: str) -> None:
    celery_app().send_task(TASK_FOR_KIND[kind], kwargs=job_payload(job_id), queue=QUEUE_GPU)
