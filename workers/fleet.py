"""Each tuning worker process's own row in `ops_workerheartbeat` (the table Django's ops app owns):
host, pid, device, memory and utilisation, the job in hand, last seen. `/ops/` reads it; a row whose
`seen_at` went stale is a lost worker. SQLAlchemy Core on the reflected table, like `workers/jobdb.py`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger(__name__)

TABLE = "ops_workerheartbeat"
COLUMNS = (
    *("id", "worker", "host", "pid", "queues", "device", "memory_used", "memory_total", "utilization"),
    *("rss", "job_id", "started_at", "seen_at", "stopped_at"),
)


@dataclass(frozen=True)
class DeviceSample:
    """One reading of the device a worker trains on: a GPU through NVML, else this process on the CPU."""

    device: str
    memory_used: int
    memory_total: int
    utilization: float  # 0..1
    rss: int


class DeviceProbe:
    """GPU 0 of this process (CUDA_VISIBLE_DEVICES picks it) via NVML when there is one; CPU and RSS
    otherwise. NVML is optional at run time: a machine without the driver simply has no GPU."""

    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first call only starts the clock
        self.cpus = psutil.cpu_count() or 1
        self._known: dict[int, Any] = {}
        self.gpu: Any = None
        self.gpu_name = ""
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() > 0:
                self.gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
                name = pynvml.nvmlDeviceGetName(self.gpu)
                self.gpu_name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception as exc:  # no driver, no library: a CPU worker, said once
            logger.info("no GPU through NVML (%s); reporting CPU and RSS", type(exc).__name__)

    def _tree(self) -> list[Any]:
        """This process and its children: a Celery parent's figures include its pool's processes."""
        import psutil

        try:
            children = self.process.children(recursive=True)
        except psutil.Error:
            children = []
        # The same Process objects from one sample to the next: cpu_percent measures since the last call.
        self._known = {c.pid: self._known.get(c.pid, c) for c in children}
        return [self.process, *self._known.values()]

    def sample(self) -> DeviceSample:
        import psutil

        tree = self._tree()
        rss = 0
        for process in tree:
            with contextlib.suppress(psutil.Error):  # a child that just exited has nothing to add
                rss += process.memory_info().rss
        if self.gpu is not None:
            import pynvml

            memory = pynvml.nvmlDeviceGetMemoryInfo(self.gpu)
            rates = pynvml.nvmlDeviceGetUtilizationRates(self.gpu)
            return DeviceSample(self.gpu_name, int(memory.used), int(memory.total), rates.gpu / 100, rss)
        percent = 0.0
        for process in tree:
            with contextlib.suppress(psutil.Error):
                percent += process.cpu_percent(None)
        share = percent / (100 * self.cpus)
        return DeviceSample("cpu", rss, int(psutil.virtual_memory().total), round(min(share, 1.0), 4), rss)


def worker_identity() -> tuple[str, str, int]:
    """(id, host, pid): the id is the one `workers.runner.worker_id()` writes on the job rows."""
    host, pid = socket.gethostname(), os.getpid()
    return f"{host}:{pid}", host, pid


class Fleet:
    """Writes this process's heartbeat row: an upsert on the worker id, every `every_s` from a thread."""

    def __init__(self, engine: Callable[[], sa.Engine], queues: str = "", every_s: float = 5.0):
        """`engine` is called in the heartbeat thread: a pool process must report ready to Celery within
        seconds, so nothing here touches the database or the device."""
        self._engine_factory, self.queues, self.every_s = engine, queues, every_s
        self.engine: sa.Engine | None = None
        self.table: sa.Table | None = None
        self.probe: DeviceProbe | None = None
        self.sqlite = False
        self.job_id: str | None = None
        self.failures = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def _setup(self) -> None:
        if self.table is not None:
            return
        engine = self._engine_factory()
        metadata = sa.MetaData()
        metadata.reflect(bind=engine, only=[TABLE])
        self.probe = self.probe or DeviceProbe()
        self.engine, self.sqlite, self.table = engine, engine.dialect.name == "sqlite", metadata.tables[TABLE]

    def _now(self) -> datetime:
        now = datetime.now(UTC)
        return now.replace(tzinfo=None) if self.sqlite else now

    def _job(self) -> Any:
        if not self.job_id:
            return None
        return uuid.UUID(self.job_id).hex if self.sqlite else uuid.UUID(self.job_id)

    def beat(self, stopped: bool = False) -> DeviceSample:
        """One heartbeat; raises when the database does not take it (the loop logs and counts that)."""
        self._setup()
        assert self.engine is not None and self.table is not None and self.probe is not None
        worker, host, pid = worker_identity()
        sample = self.probe.sample()
        now = self._now()
        values = {
            "host": host[:200],
            "pid": pid,
            "queues": self.queues[:200],
            "device": sample.device[:200],
            "memory_used": sample.memory_used,
            "memory_total": sample.memory_total,
            "utilization": sample.utilization,
            "rss": sample.rss,
            "job_id": self._job(),
            "seen_at": now,
            "stopped_at": now if stopped else None,
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                self.table.update().where(self.table.c.worker == worker).values(**values)
            ).rowcount
            if not updated:
                conn.execute(self.table.insert().values(worker=worker, started_at=now, **values))
        return sample

    def start(self) -> Fleet:
        self._thread = threading.Thread(target=self._loop, name="fleet-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        if self._thread:
            self._thread.join(timeout=self.every_s + 5)
        try:
            self.beat(stopped=True)
        except Exception:
            logger.warning("could not record this worker as stopped", exc_info=True)

    def _loop(self) -> None:
        while True:
            try:
                self.beat()
            except Exception:
                # Never silent: logged with the traceback and counted; the next beat tries again.
                self.failures += 1
                from workers import metrics

                metrics.HEARTBEAT_FAILURES.labels(kind="worker").inc()
                logger.warning("worker heartbeat failed (%d so far)", self.failures, exc_info=True)
            if self._done.wait(self.every_s):
                return


# The pool process's own Fleet (started by workers.celeryconf in each pool process); the runner tells it
# which job it holds so the row shows it.
_current: Fleet | None = None


def install(fleet: Fleet | None) -> None:
    global _current
    _current = fleet


def set_job(job_id: str | None) -> None:
    if _current is not None:
        _current.job_id = job_id
