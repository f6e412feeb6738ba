"""Telling an outage of a dependency apart from a bad request or a bad event."""

from __future__ import annotations

from aiokafka.errors import KafkaError, KafkaTimeoutError
from asyncpg.exceptions import InterfaceError as DriverInterfaceError
from asyncpg.exceptions import InternalClientError, PostgresError
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tawasul_platform.errors import Conflict, Unavailable


def is_transient(error: BaseException) -> bool:
    """True when a dependency (database, broker, gateway, object store) cannot answer now.

    Such a failure is nobody's input's fault: a caller gets UNAVAILABLE and may retry, and a
    consumer waits it out instead of dead-lettering the event.
    """
    if isinstance(error, DBAPIError):
        return (
            error.connection_invalidated
            or isinstance(error, OperationalError | InterfaceError)
            or _sqlstate(error).startswith(_OUTAGE_SQLSTATES)
        )
    if isinstance(error, KafkaError):
        # Kafka marks what a later try may cure (broker unreachable, leader moving); a timeout
        # waiting for the cluster's metadata is the broker being away too.
        return bool(error.retriable) or isinstance(error, KafkaTimeoutError)
    if isinstance(error, PostgresError):
        # asyncpg's own error, unwrapped: units of work and the relay run statements on asyncpg.
        return _sqlstate(error).startswith(_OUTAGE_SQLSTATES)
    # A full pool (every connection busy past the pool timeout) and a connection the server
    # closed (asyncpg's InterfaceError: "connection is closed", ConnectionDoesNotExistError;
    # its InternalClientError when the server's goodbye came while the connection idled) are
    # the database's state, not the statement's.
    return isinstance(
        error,
        PoolTimeout
        | DisconnectionError
        | DriverInterfaceError
        | InternalClientError
        | Unavailable
        | ConnectionError
        | TimeoutError
        | OSError,
    )


def is_conflict(error: BaseException) -> bool:
    """True when PostgreSQL ended the transaction for a concurrent one's sake (a deadlock, a
    serialization failure), here or in a service this one called (errors.Conflict): the same
    call tried again goes through."""
    if isinstance(error, DBAPIError | PostgresError):
        return _sqlstate(error) in _CONFLICT_SQLSTATES
    return isinstance(error, Conflict)


_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
# Connection exceptions (08…), a server shutting down or still starting (57P01–57P03), too
# many connections (53300): the server, not the statement, is at fault.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def _sqlstate(error: BaseException) -> str:
    """The SQLSTATE of the driver's error, wherever the adapter left it."""
    orig = error.orig if isinstance(error, DBAPIError) else error
    for candidate in (orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return ""
