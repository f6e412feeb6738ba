"""Straight to the stack's databases and bucket, past the services: to make time pass for a
row (the services read the real clock) and to see what really is stored."""

from __future__ import annotations

from typing import Any

from minio import Minio
from sqlalchemy import text
from tawasul_devstack.stack import Stack
from tawasul_platform.testing import async_engine


async def sql(stack: Stack, service: str, statement: str, **values: object) -> None:
    engine = async_engine(stack.config.database_url(service), pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement), values)
    finally:
        await engine.dispose()


async def scalar(stack: Stack, service: str, query: str, **values: object) -> Any:
    engine = async_engine(stack.config.database_url(service), pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(query), values)
    finally:
        await engine.dispose()


def bucket_client(stack: Stack) -> Minio:
    """A blocking client of the stack's MinIO (call it in a thread)."""
    cfg = stack.config
    return Minio(
        cfg.minio_endpoint,
        access_key=cfg.minio_access_key,
        secret_key=cfg.minio_secret_key,
        secure=False,
    )


def object_keys(stack: Stack) -> set[str]:
    """Every object in the documents' bucket."""
    client = bucket_client(stack)
    return {
        o.object_name or "" for o in client.list_objects(stack.config.s3_bucket, recursive=True)
    }
