"""The platform's engine on a real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tawasul_platform.testing import async_engine


async def test_a_failed_statement_does_not_quote_its_parameters(database_url: str) -> None:
    engine = async_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(
                    text("SELECT mobile FROM no_such_table WHERE mobile = :mobile"),
                    {"mobile": "0551234567"},
                )
    finally:
        await engine.dispose()
    assert "no_such_table" in str(caught.value)
    assert "0551234567" not in str(caught.value)
    assert "parameters hidden" in str(caught.value)
