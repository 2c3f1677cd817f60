"""Fixtures of the fault suite: the PostgreSQL and Redis it may use (skipped when not given)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("SIYU_TEST_DATABASE_URL", "")
    if not url:
        pytest.skip("PostgreSQL fault tests need SIYU_TEST_DATABASE_URL")
    return url


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("SIYU_TEST_REDIS_URL", "")
    if not url:
        pytest.skip("the Redis fault test needs SIYU_TEST_REDIS_URL (a database of its own: it is flushed)")
    return url
