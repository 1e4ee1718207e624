"""Fixtures shared by the agent's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redisserver import redis_server


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of the session's own, stopped at its end."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
