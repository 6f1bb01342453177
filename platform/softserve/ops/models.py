"""The tuning fleet as operators see it: one row per worker process, written by the worker itself.

Workers write these rows through SQLAlchemy Core (`workers/fleet.py`); Django owns the table and reads it
for `/ops/`. Not tenant data: a worker serves every tenant.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils import timezone


class WorkerQuerySet(models.QuerySet):
    def online(self, timeout_s: float) -> WorkerQuerySet:
        since = timezone.now() - timedelta(seconds=timeout_s)
        return self.filter(stopped_at__isnull=True, seen_at__gte=since)

    def lost(self, timeout_s: float) -> WorkerQuerySet:
        """Stopped beating without saying goodbye (killed, machine gone, hung)."""
        return self.filter(stopped_at__isnull=True, seen_at__lt=timezone.now() - timedelta(seconds=timeout_s))


class WorkerHeartbeat(models.Model):
    # "host:pid", the same id a job row's `worker` column holds while the worker runs it.
    worker = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    queues = models.CharField(max_length=200, blank=True)
    # "cpu" or the GPU's name; memory in bytes (GPU memory on a GPU, the process's RSS on a CPU).
    device = models.CharField(max_length=200)
    memory_used = models.BigIntegerField(default=0)
    memory_total = models.BigIntegerField(default=0)
    # 0..1: GPU utilisation from NVML, or the process's CPU share of the machine.
    utilization = models.FloatField(default=0)
    rss = models.BigIntegerField(default=0)
    job_id = models.UUIDField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["host", "pid"]

    def __str__(self) -> str:
        return self.worker
