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
        return (
            error.connection_invalidated
            or isinstance(error, OperationalError | InterfaceError)
            or _sqlstate(error).startswith(_OUTAGE_SQLSTATES)
        )
    return isinstance(error, Unavailable | ConnectionError | TimeoutError | OSError)


# Connection exceptions (08…), a server shutting down or still starting (57P01–57P03), too
# many connections (53300): the server, not the statement, is at fault.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def _sqlstate(error: DBAPIError) -> str:
    """The SQLSTATE of the driver's error, wherever the adapter left it."""
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return ""
