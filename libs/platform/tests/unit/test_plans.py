"""sql.Plans: statements compiled once, found again without compiling, in bounded memory."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Select, Table, select
from sqlalchemy.dialects import postgresql
from tawasul_platform.sql import Plans

COLUMNS = 20
t = Table(
    "t",
    MetaData(),
    Column("id", Integer, primary_key=True),
    *(Column(f"c{i}", Integer) for i in range(COLUMNS)),
)


def shaped(n: int, value: int = 0) -> Select[Any]:
    """A statement built per call, of the n-th shape (as a search builds one for its filters)."""
    chosen = [t.c[f"c{i}"] for i in range(n % COLUMNS + 1)]
    ordered = [t.c[f"c{i}"] for i in range(n // COLUMNS)]
    return select(*chosen).where(t.c.id == value).order_by(*ordered)


def plans(keyed: int) -> Plans:
    return Plans(postgresql.asyncpg.dialect(), keyed=keyed)  # type: ignore[no-untyped-call]


def test_statements_built_per_call_are_let_go_and_only_the_latest_shapes_are_kept() -> None:
    cache = plans(keyed=20)
    gone: list[weakref.ref[Select[Any]]] = []
    for _ in range(3):
        for n in range(200):
            statement = shaped(n)
            cache.find(statement, {})
            gone.append(weakref.ref(statement))
    del statement
    gc.collect()
    assert [ref for ref in gone if ref() is not None] == []
    assert len(cache._keyed) == 20


def test_a_statement_built_once_is_found_by_identity_whatever_came_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = plans(keyed=5)
    built_once = select(t.c.c0).where(t.c.id == 7)
    plan, extracted = cache.find(built_once, {})
    assert extracted is None
    assert plan.arguments({}, extracted) == [7]
    for n in range(50):
        cache.find(shaped(n), {})

    def keyed_again() -> None:
        raise AssertionError("keyed again: the identity look-up missed")

    monkeypatch.setattr(built_once, "_generate_cache_key", keyed_again)
    assert cache.find(built_once, {}) == (plan, None)


def test_the_shapes_used_most_recently_stay_compiled() -> None:
    cache = plans(keyed=3)
    first = {n: cache.find(shaped(n, value=n), {})[0] for n in range(3)}
    # Shape 0 used again (another statement of its shape, its own values): the most recent now.
    again, values = cache.find(shaped(0, value=40), {})
    assert again is first[0]
    assert again.arguments({}, values) == [40]
    cache.find(shaped(3), {})  # one shape too many: the least recently used, 1, makes way
    assert cache.find(shaped(0), {})[0] is first[0]
    assert cache.find(shaped(2), {})[0] is first[2]
    assert cache.find(shaped(1), {})[0] is not first[1]
