"""Writes straight to a service's database: how the tests make time pass for a row, since the
services themselves read the real clock."""

from __future__ import annotations

from sqlalchemy import text
from tawasul_devstack.stack import Stack
from tawasul_platform.db import make_engine


async def sql(stack: Stack, service: str, statement: str, **values: object) -> None:
    engine = make_engine(stack.config.database_url(service), pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement), values)
    finally:
        await engine.dispose()
