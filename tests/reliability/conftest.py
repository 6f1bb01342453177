"""The serving scenarios use the serving tests' services: Redis (db 13) and a bucket on the S3 endpoint;
the isolation and role matrices share the victim team of `matrix.world`; the promotion scenario runs
real Celery workers (tests/workers) and a webhook receiver (tests/webhooks)."""

from tests.reliability.matrix import world
from tests.serving.conftest import redis_db, s3_env, s3_store
from tests.webhooks.conftest import receiver
from tests.workers.conftest import broker, workers

__all__ = ["broker", "receiver", "redis_db", "s3_env", "s3_store", "workers", "world"]
