"""Fixtures the WeChat-facing tests share."""

from __future__ import annotations

import pytest

from tests.conftest import PostgresDatabases, new_database_url
from tests.lbs.wechat_support import Town, build_town


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def town(
    backend: str, tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases
) -> Town:
    """A few stores around Tianfu Square, on a fresh database of each backend per module."""
    return build_town(new_database_url(backend, tmp_path_factory.mktemp("wx"), postgres_databases))
