"""hutch: Python SDK for the hutch session server.

    from hutch import Session
    with Session.create() as s:            # HUTCH_URL, HUTCH_TOKEN
        print(s.commands.run("echo hi").stdout)

`AsyncSession`/`AsyncClient` are the same calls for asyncio. See docs/sdk.md."""

from . import errors
from ._api import CommandHandle, CommandResult
from ._async import AsyncClient, AsyncEventStream, AsyncSession
from ._pty import AsyncPtyHandle, PtyResult
from ._sync import Client, EventStream, PtyHandle, Session
from ._transport import Record
from .errors import (CommandExitError, ConflictError, HutchError, InsufficientStorageError,
                     InternalError, InvalidArgumentError, NotFoundError, PayloadTooLargeError,
                     PermissionDeniedError, ResourceExhaustedError, UnauthenticatedError,
                     UnavailableError)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncEventStream", "AsyncPtyHandle", "AsyncSession", "Client",
    "CommandExitError", "CommandHandle", "CommandResult", "ConflictError", "EventStream",
    "HutchError", "InsufficientStorageError", "InternalError", "InvalidArgumentError",
    "NotFoundError", "PayloadTooLargeError", "PermissionDeniedError", "PtyHandle", "PtyResult",
    "Record", "ResourceExhaustedError", "Session", "UnauthenticatedError", "UnavailableError",
    "errors",
]
