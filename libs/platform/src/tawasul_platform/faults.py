"""Telling an outage of a dependency apart from a bad request or a bad event."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from tawasul_platform.errors import Unavailable


def is_transient(error: BaseException) -> bool:
    """True when a dependency (database, broker, gateway, object store) cannot answer now.

    Such a failure is nobody's input's fault: a caller gets UNAVAILABLE and may retry, and a
    consumer waits it out instead of dead-lettering the event.
    """
    if isinstance(error, DBAPIError):
        return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)
    return isinstance(error, Unavailable | ConnectionError | TimeoutError | OSError)
