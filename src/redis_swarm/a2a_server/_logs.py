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

An HTTP+JSON stream that fails once begun (a subscription when Redis goes away) was logged
by the SDK's REST route as "Error during REST SSE stream" with the error's traceback, some
15 lines, however plain the error: such a line whose error the handler logged is dropped,
and one of another A2A error (a task not found...) is one line, without the traceback. An
error that is no A2A error (a fault of this server) keeps its traceback.

(A webhook's address is checked by ``_addresses``, which logs nothing: whoever asked says
so in its own line, the handler's refusal or the push dispatcher's "not posted".)

A line quotes what a client sent (its A2A-Version header, its JSON-RPC request id, a role),
and the log goes to the operator's terminal, which obeys the control characters in it: an
ESC sequence can rewrite the clipboard (OSC 52), clear the screen or retitle the window.
Every line of the SDK's loggers and of this server's own (``ESCAPED_LOGGERS``, and those
under them) is written with each control character shown as an escape
(``_printable.printable``, the CLI's rule for stored text): its message, and its traceback.
"""

from __future__ import annotations

import logging

from a2a.utils.errors import A2AError

from .._printable import printable

__all__ = [
    "CLIENT_FAULTS",
    "ESCAPED_LOGGERS",
    "LOGGED_FOR_OPERATOR",
    "REST_STREAM_FAILED",
    "SDK_ERRORS_LOGGER",
    "SDK_REST_LOGGER",
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
# The logger of the SDK's HTTP+JSON routes themselves, and what it says of a stream that
# failed once begun.
SDK_REST_LOGGER = "a2a.server.routes.rest_dispatcher"
REST_STREAM_FAILED = "Error during REST SSE stream"
# What the message of an error ends with whose cause the handler logged (see the module).
LOGGED_FOR_OPERATOR = "(its operator's log says why)"
# The loggers whose lines are escaped (``_Escaped``), and every logger under them: the SDK's,
# and this server's own.
ESCAPED_LOGGERS = ("a2a", __name__.rpartition(".")[0])


class _OneLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == REST_STREAM_FAILED and record.exc_info:
            return _stream_failed(record)
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


class _Escaped(logging.Filter):
    """A line with every control character in its message and traceback shown as an escape
    (``printable``): the message made whole, with its arguments; the traceback formatted as
    a handler formats it. A line with none is left as it is. (Added last, after ``_OneLine``
    where there is one: that one reads the message and its arguments apart.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # (its arguments do not fit: the handler says so)
            return True
        shown = printable(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for field in ("exc_text", "stack_info"):
            value = getattr(record, field)
            if value:
                setattr(record, field, printable(value))
        return True


def _stream_failed(record: logging.LogRecord) -> bool:
    """The SDK's line of a stream that failed once begun (``REST_STREAM_FAILED``): dropped
    when the handler logged its cause, one line for another A2A error (``record`` changed),
    kept with its traceback for any other error (see the module)."""
    error = record.exc_info[1] if record.exc_info else None
    if not isinstance(error, A2AError):
        return True
    said = str(getattr(error, "message", error))
    if said.endswith(LOGGED_FOR_OPERATOR):
        return False
    record.msg = "%s: %s: %s"
    record.args = (REST_STREAM_FAILED, type(error).__name__, said)
    record.exc_info = record.exc_text = None
    return True


def one_line_client_errors() -> None:
    """Log each failed request as one line, and every line of the SDK and of this server
    with its control characters escaped (``_Escaped``) (once per process)."""
    for name in (SDK_ROUTES_LOGGER, SDK_ERRORS_LOGGER, SDK_REST_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OneLine) for f in logger.filters):
            logger.addFilter(_OneLine())
    # (a logger's filter sees only the lines logged to it, not those of the loggers under it:
    # each is given its own, every one made so far: the SDK's and this server's modules,
    # imported with the app, make theirs as they load)
    under = tuple(f"{name}." for name in ESCAPED_LOGGERS)
    for name in [*ESCAPED_LOGGERS, *logging.root.manager.loggerDict]:
        if name not in ESCAPED_LOGGERS and not name.startswith(under):
            continue
        logger = logging.getLogger(name)
        # (after _OneLine, added above: it reads the message and its arguments apart)
        if not any(isinstance(f, _Escaped) for f in logger.filters):
            logger.addFilter(_Escaped())
