from __future__ import annotations

import pytest
from asyncpg.exceptions import CannotConnectNowError, UniqueViolationError
from sqlalchemy.exc import DBAPIError
from tawasul_platform.faults import is_transient


class AdaptedError(Exception):
    """The way SQLAlchemy's asyncpg adapter wraps the driver's error."""


def wrapped(cause: Exception) -> DBAPIError:
    adapted = AdaptedError(str(cause))
    adapted.__cause__ = cause
    return DBAPIError("SELECT 1", {}, adapted)


@pytest.mark.parametrize(
    ("cause", "transient"),
    [
        (CannotConnectNowError("the database system is starting up"), True),
        (UniqueViolationError("duplicate key"), False),
    ],
)
def test_a_server_starting_up_is_an_outage_a_bad_statement_is_not(
    cause: Exception, transient: bool
) -> None:
    assert is_transient(wrapped(cause)) is transient
