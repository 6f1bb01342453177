"""The serving scenarios use the serving tests' services: Redis (db 13) and a bucket on the S3 endpoint."""

from tests.serving.conftest import redis_db, s3_env, s3_store

__all__ = ["redis_db", "s3_env", "s3_store"]
