"""The ops tests reuse the workers' fixtures: a Redis broker and real `celery worker -B` processes."""

from tests.workers.conftest import broker, workers  # noqa: F401  (fixtures, registered by import)
