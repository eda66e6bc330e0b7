"""Walk 58 of the web faces, the A2A server: an integer member (``pageSize``,
``historyLength``) that is no whole number is refused naming it and saying what to give,
on both bindings (protobuf's "invalid literal for int() with base 10" before), and a body
holding a number of thousands of digits is a parse error in words (Python's "Exceeds the
limit (4300 digits)", an internal error, -32603, with a traceback in the log)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ._a2a import A2AServer

_LONG = "9" * 5000
_RAW_WORDS = ("invalid literal", "Couldn't parse", "Exceeds the limit", "Failed to parse")


def _headers(a2a: A2AServer) -> dict[str, str]:
    return {**a2a.headers, "A2A-Version": "1.0"}


def _rpc(a2a: A2AServer, body: bytes) -> Any:
    headers = {**_headers(a2a), "content-type": "application/json"}
    answer = httpx.post(f"{a2a.url}/", headers=headers, content=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/tasks?pageSize=abc", "pageSize"),
        ("/tasks?pageSize=1.5", "pageSize"),
        (f"/tasks?pageSize={_LONG}", "pageSize"),
        ("/tasks?historyLength=abc", "historyLength"),
        (f"/tasks/t-nonesuch?historyLength={_LONG}", "historyLength"),
    ],
    ids=["word", "fraction", "long", "history", "get-long"],
)
def test_a_query_integer_that_is_none_is_refused_in_words(
    a2a: A2AServer, path: str, name: str
) -> None:
    answer = httpx.get(f"{a2a.url}{path}", headers=_headers(a2a), timeout=10)
    assert answer.status_code == 400, answer.text
    said = answer.json()["error"]["message"]
    assert not any(words in said for words in _RAW_WORDS), said
    assert said.startswith(f"query parameter {name} is "), said
    assert "give a whole number in ASCII digits: " in said, said


@pytest.mark.parametrize(
    ("method", "params", "named"),
    [
        ("ListTasks", {"pageSize": "abc"}, "params.pageSize is 'abc'"),
        ("ListTasks", {"pageSize": 1.5}, "params.pageSize is 1.5, not a whole number"),
        ("ListTasks", {"historyLength": _LONG}, "params.historyLength is '999"),
        ("GetTask", {"id": "t-nonesuch", "historyLength": True}, "historyLength is a boolean"),
        (
            "SendMessage",
            {
                "message": {"messageId": "m-58", "role": "ROLE_USER", "parts": [{"text": "x"}]},
                "configuration": {"historyLength": "all"},
            },
            "params.configuration.historyLength is 'all'",
        ),
    ],
    ids=["word", "fraction", "long", "flag", "nested"],
)
def test_a_json_rpc_integer_that_is_none_is_refused_in_words(
    a2a: A2AServer, method: str, params: dict[str, Any], named: str
) -> None:
    body = {"jsonrpc": "2.0", "id": 58, "method": method, "params": params}
    answer = _rpc(a2a, json.dumps(body).encode())
    assert answer["id"] == 58, answer
    error = answer["error"]
    assert error["code"] == -32602, error
    assert named in error["message"], error
    assert not any(words in str(error) for words in _RAW_WORDS), error


def test_a_number_of_thousands_of_digits_is_a_parse_error_in_words(a2a: A2AServer) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {"pageSize": '
    answer = _rpc(a2a, body + _LONG.encode() + b"}}")
    error = answer["error"]
    assert error["code"] == -32700 and answer["id"] is None, answer
    assert "a number of 5,000 digits, over the 4,300" in error["message"], error
    rest = httpx.post(
        f"{a2a.url}/message:send",
        headers=_headers(a2a),
        content=b'{"configuration": {"historyLength": ' + _LONG.encode() + b"}}",
        timeout=10,
    )
    assert rest.status_code == 400, rest.text
    said = rest.json()["error"]["message"]
    assert "a number of 5,000 digits" in said and "Exceeds" not in said, said


def test_a_whole_number_in_range_is_still_taken(a2a: A2AServer) -> None:
    answer = httpx.get(
        f"{a2a.url}/tasks?pageSize=2&historyLength=0", headers=_headers(a2a), timeout=10
    )
    assert answer.status_code == 200, answer.text
    body = b'{"jsonrpc": "2.0", "id": 2, "method": "ListTasks", "params": {"pageSize": "3"}}'
    assert "result" in _rpc(a2a, body)
