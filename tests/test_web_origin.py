"""A face without a token refuses a request sent by a page of another site (its Origin):
any web page a browser opens could otherwise post to a face on the loopback (a form's
POST, a text/plain fetch, needs no permission of the browser's). The A2A server was kept
safe only by its SDK's demand for an A2A-Version header (a security review)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_swarm._web import AccessGuard


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _client(token: str | None, own_host: str | None = None) -> TestClient:
    app = Starlette(routes=[Route("/", _ok, methods=["GET", "POST"])])
    guarded = AccessGuard(app, token, "this face", own_host=own_host)
    return TestClient(guarded, base_url="http://127.0.0.1:8765")


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example:8765", "x"]
)
def test_a_page_of_another_site_is_refused_without_a_token(origin: str) -> None:
    answer = _client(None).post("/", headers={"Origin": origin}, content="hi")
    assert answer.status_code == 403
    said = answer.json()["message"]
    assert "takes no request from a page of another site" in said, said
    assert "start it with --token" in said


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:8765", "http://localhost:3000", "http://[::1]:8765"]
)
def test_its_own_pages_and_loopback_pages_are_served(origin: str) -> None:
    answer = _client(None).post("/", headers={"Origin": origin}, content="hi")
    assert answer.status_code == 200, answer.text


def test_no_origin_is_served_and_a_token_decides_when_set() -> None:
    assert _client(None).post("/", content="hi").status_code == 200  # (curl, a client)
    token = "t" * 32
    with_token = _client(token)
    auth = {"Authorization": f"Bearer {token}", "Origin": "https://evil.example"}
    # (a browser never sends another site's Authorization header without the server's
    # leave, which no face gives: the token decides)
    assert with_token.post("/", headers=auth, content="hi").status_code == 200
    assert with_token.post("/", headers={"Origin": "https://evil.example"}).status_code == 401
