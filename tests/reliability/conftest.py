"""The serving scenarios use the serving tests' services: Redis (db 13) and a bucket on the S3 endpoint;
the isolation and role matrices share the victim team of `matrix.world`."""

from tests.reliability.matrix import world
from tests.serving.conftest import redis_db, s3_env, s3_store

__all__ = ["redis_db", "s3_env", "s3_store", "world"]
