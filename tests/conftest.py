"""Session fixtures: the real components every integration and e2e test runs against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import stack


@pytest.fixture(scope="session")
def cluster() -> Iterator[stack.Cluster]:
    with stack.cluster() as running:
        yield running


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with stack.kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with stack.postgres() as url:
        yield url
