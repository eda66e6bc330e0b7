"""A client's bad request in the server's log: one line, not a traceback.

The SDK's JSON-RPC route logs a request it cannot read (not JSON-RPC, parameters of the
wrong type) with ``logger.exception``: a traceback of the parser on the operator's terminal
for each malformed request a client sends, which is the client's fault and already answered
with an error, and then logs the error it answered, one line at warning level that names the
parser's error. ``one_line_client_errors`` drops the first record, so each such request is
that one line; any other error the SDK logs keeps its traceback.

(A webhook's address is checked by ``_addresses``, which logs nothing: whoever asked says
so in its own line, the handler's refusal or the push dispatcher's "not posted".)
"""

from __future__ import annotations

import logging

__all__ = ["CLIENT_FAULTS", "SDK_ROUTES_LOGGER", "one_line_client_errors"]

# The logger of the SDK's JSON-RPC route, and what it says of a request it cannot read.
SDK_ROUTES_LOGGER = "a2a.server.routes.jsonrpc_dispatcher"
CLIENT_FAULTS = frozenset(
    {"Failed to validate base JSON-RPC request", "Failed to parse request params"}
)


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # The SDK follows each of these with its "Request Error (ID: ...)" line, which says
        # the code, the message and the parser's error (Data={'parseError': ...}): that one
        # line is kept, this one dropped.
        return not (record.exc_info and record.msg in CLIENT_FAULTS)


def one_line_client_errors() -> None:
    """Log the SDK's client errors as one line each (once per process)."""
    logger = logging.getLogger(SDK_ROUTES_LOGGER)
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
