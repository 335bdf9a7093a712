"""Typed exceptions. Every API error answer is `{"error": {"code", "message"}}`; the code picks
the class, so `except hutch.NotFoundError` reads as the API's `not_found`."""

from __future__ import annotations

from typing import Optional


class HutchError(Exception):
    """An error the server answered (or the SDK met talking to it).

    `code` is the API's error code (`not_found`, `conflict`, …), `message` its message, `status`
    the HTTP status (0 when no answer came)."""

    code: str = "unknown"

    def __init__(self, message: str, *, code: Optional[str] = None, status: int = 0,
                 retry_after: Optional[float] = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.status else self.message


class InvalidArgumentError(HutchError):
    code = "invalid_argument"


class UnauthenticatedError(HutchError):
    code = "unauthenticated"


class PermissionDeniedError(HutchError):
    code = "permission_denied"


class NotFoundError(HutchError):
    code = "not_found"


class ConflictError(HutchError):
    code = "conflict"


class PayloadTooLargeError(HutchError):
    code = "payload_too_large"


class ResourceExhaustedError(HutchError):
    """A quota or the rate limit; `retry_after` is the server's `Retry-After` in seconds."""

    code = "resource_exhausted"


class InsufficientStorageError(HutchError):
    code = "insufficient_storage"


class UnavailableError(HutchError):
    code = "unavailable"


class InternalError(HutchError):
    code = "internal"


class ConnectionError(HutchError):  # noqa: A001 - the SDK's own, carries no HTTP status
    """No answer: the server could not be reached or the connection broke."""

    code = "connection"


class TimeoutError(HutchError):  # noqa: A001
    """The call took longer than its `timeout`."""

    code = "timeout"


class CommandExitError(HutchError):
    """`commands.run(..., check=True)` and the command did not exit 0; `result` has its output."""

    code = "command_exit"

    def __init__(self, result):
        super().__init__(
            f"command exited with {result.exit_code}"
            + (f" (signal {result.signal})" if result.signal else "")
            + (f": {result.stderr.strip()[-500:]}" if result.stderr.strip() else ""))
        self.result = result


_BY_CODE = {c.code: c for c in (
    InvalidArgumentError, UnauthenticatedError, PermissionDeniedError, NotFoundError,
    ConflictError, PayloadTooLargeError, ResourceExhaustedError, InsufficientStorageError,
    UnavailableError, InternalError)}


def error_from_answer(status: int, body: bytes, retry_after: Optional[str] = None) -> HutchError:
    """The exception for an error answer: its code's class, or HutchError for an unknown code
    (a 405, a proxy's 502 page) with `http_<status>`."""
    import json

    code, message = f"http_{status}", body.decode("utf-8", "replace")[:500] or f"HTTP {status}"
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    after = None
    if retry_after:
        try:
            after = float(retry_after)
        except ValueError:
            pass
    cls = _BY_CODE.get(code, HutchError)
    return cls(message, code=code, status=status, retry_after=after)
