"""The platform's side of Celery: it only sends tasks, by name, as JSON. No result backend."""

from __future__ import annotations

from functools import cache

from celery import Celery
from django.conf import settings

from common.contracts import QUEUE_DEFAULT, QUEUE_GPU, TASK_FOR_KIND, job_payload


@cache
def celery_app() -> Celery:
    app = Celery("softserve-platform", broker=settings.CELERY_BROKER_URL)
    # A broker that is down or never answers fails a send within seconds instead of holding a web thread:
    # the job row is committed already and the reconciler re-sends it (see jobs/actions.py).
    transport = (
        {
            "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT_S,
            "socket_timeout": settings.REDIS_SOCKET_TIMEOUT_S,
        }
        if settings.CELERY_BROKER_URL.startswith(("redis", "rediss"))
        else {}
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.REDIS_CONNECT_TIMEOUT_S,
        broker_transport_options=transport,
        # One quick retry (a connection the broker closed on restart), not a loop the client waits on.
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
    )
    return app


def send_job(job_id: str, kind: str) -> None:
    celery_app().send_task(TASK_FOR_KIND[kind], kwargs=job_payload(job_id), queue=QUEUE_GPU)


def send(task_name: str, queue: str = QUEUE_DEFAULT, **kwargs: str) -> None:
    """Any other task by its contracts name: ids in, the database holds the rest."""
    celery_app().send_task(task_name, kwargs=kwargs, queue=queue)
