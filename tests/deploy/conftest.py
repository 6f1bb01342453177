"""The parsed compose file, shared by the compose and observability checks."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.tools import SECRETS, compose_config


@pytest.fixture(scope="session")
def config(tmp_path_factory) -> dict:
    """docker-compose.yml as `docker-compose config` parses it, with placeholder secrets."""
    result = compose_config(tmp_path_factory.mktemp("compose"), **SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)
