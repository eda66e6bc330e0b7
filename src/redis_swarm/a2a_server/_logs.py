"""A failed request in the server's log: one line, not a traceback, nor two lines.

The SDK's JSON-RPC route logs a request it cannot read (not JSON-RPC, parameters of the
wrong type) with ``logger.exception``: a traceback of the parser on the operator's terminal
for each malformed request a client sends, which is the client's fault and already answered
with an error, and then logs the error it answered, one line at warning level that names the
parser's error. ``one_line_client_errors`` drops the first record, so each such request is
that one line; any other error the SDK logs keeps its traceback.

A request that fails for a cause only the operator can fix (the swarm's Redis out of reach,
its user lacking a right) is logged by the handler (``_handler.swarm_errors``: the cause,
and what to do), and the client is told that the log says why (``LOGGED_FOR_OPERATOR``).
The SDK then logged the error it answered too, on HTTP+JSON and JSON-RPC streams: two lines
a request, the second saying less. ``one_line_client_errors`` drops that second one: an
internal error's line (ERROR level) whose message, an argument of the record, ends with the
marker, as the handler writes it. Only those: a client's text quoted in another error's
line (a role, a contextId) may hold the marker too, and its line must stay.

(A webhook's address is checked by ``_addresses``, which logs nothing: whoever asked says
so in its own line, the handler's refusal or the push dispatcher's "not posted".)
"""

from __future__ import annotations

import logging

__all__ = [
    "CLIENT_FAULTS",
    "LOGGED_FOR_OPERATOR",
    "SDK_ERRORS_LOGGER",
    "SDK_ROUTES_LOGGER",
    "one_line_client_errors",
]

# The logger of the SDK's JSON-RPC route, and what it says of a request it cannot read.
SDK_ROUTES_LOGGER = "a2a.server.routes.jsonrpc_dispatcher"
CLIENT_FAULTS = frozenset(
    {"Failed to validate base JSON-RPC request", "Failed to parse request params"}
)
# The logger of the SDK's HTTP+JSON routes' errors.
SDK_ERRORS_LOGGER = "a2a.utils.error_handlers"
# What the message of an error ends with whose cause the handler logged (see the module).
LOGGED_FOR_OPERATOR = "(its operator's log says why)"


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # The SDK follows each of these with its "Request Error (ID: ...)" line, which says
        # the code, the message and the parser's error (Data={'parseError': ...}): that one
        # line is kept, this one dropped.
        if record.exc_info and record.msg in CLIENT_FAULTS:
            return False
        # The SDK's line for an error the handler logged already: the handler's says more.
        # (Its message is one of the record's arguments, as the handler ended it.)
        return not (
            record.levelno >= logging.ERROR
            and isinstance(record.args, tuple)
            and any(isinstance(a, str) and a.endswith(LOGGED_FOR_OPERATOR) for a in record.args)
        )


def one_line_client_errors() -> None:
    """Log each failed request as one line (once per process)."""
    for name in (SDK_ROUTES_LOGGER, SDK_ERRORS_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLine) for f in logger.filters):
            logger.addFilter(_OneLine())
