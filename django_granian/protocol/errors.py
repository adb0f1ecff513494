"""Protocol errors carry the status the transport answers with before closing the connection."""

from __future__ import annotations


class ProtocolError(Exception):
    """A malformed or unacceptable message from the peer.

    ``status`` is the HTTP status to answer with (400, 408, 413, 414, 431, 501, 505); the
    connection is always closed afterwards, so nothing after a bad message is ever parsed.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"ProtocolError({self.status}, {self.reason!r})"
