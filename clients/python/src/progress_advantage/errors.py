"""The one exception the client raises for a failed request."""
from __future__ import annotations

from typing import Any, Optional


class ProgressAdvantageError(Exception):
    """A request the server answered with an error, or one that never got an answer.

    ``code`` is the server's machine-readable ``error.code`` (``empty_step``, ``overloaded``,
    ``unauthorized``, ...), or ``connection_error`` / ``timeout`` / ``invalid_response`` when
    there was no usable answer; ``status`` is the HTTP status (None without an answer).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: Optional[int] = None,
        *,
        item: Optional[int] = None,
        retry_after: Optional[float] = None,
        request_id: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        #: The index of the item at fault in a batch request, when the server names one.
        self.item = item
        #: Seconds the server asked to wait (its Retry-After header).
        self.retry_after = retry_after
        #: The server's x-request-id, to find the request in its log.
        self.request_id = request_id
        self.body = body
