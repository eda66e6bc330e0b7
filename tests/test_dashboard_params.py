"""The dashboard API's parameters after a user tour: a parameter given twice, a count in
other than ASCII digits and a parameter a route does not take are each 400 naming what is
wrong (one value was picked, '１' read as 1, an unknown one ignored); /api/tasks gives the
tasks' data with ?data=1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.dashboard.app import create_app

SWARM = "test"


def _client(redis_url: str, token: str | None = None) -> TestClient:
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), token=token, close_swarm=True)
    return TestClient(app, base_url="http://127.0.0.1:8765")


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    with _client(redis_url) as client:
        yield client


@pytest.fixture
def sync_swarm(redis_url: str) -> Iterator[Swarm]:
    with Swarm(redis_url, swarm=SWARM) as swarm:
        yield swarm


def _refused(client: TestClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 400, (url, response.text)
    body = response.json()
    assert body["error"] == "BadRequest", body
    message: str = body["message"]
    return message


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("/api/tasks?status=pending&status=dead", "'status' is given twice ('pending' and 'dead')"),
        ("/api/tasks?limit=10&limit=20", "'limit' is given twice ('10' and '20')"),
        ("/api/findings?queue=a&queue=b", "'queue' is given twice"),
        ("/api/status?dead=1&dead=2", "'dead' is given twice"),
        ("/api/events?types=task.posted&types=task.claimed", "'types' is given twice"),
    ],
)
def test_a_parameter_given_twice_is_400(client: TestClient, url: str, said: str) -> None:
    message = _refused(client, url)
    assert said in message and "give it once" in message


@pytest.mark.parametrize("raw", ["%EF%BC%91", "%EF%BC%95%EF%BC%90", "+5", "%205", "1_0", "-1"])
def test_a_count_in_other_than_ascii_digits_is_400(client: TestClient, raw: str) -> None:
    """'１' (full width) was read as 1 by int(); so were ' 5', '+5' and '1_0'."""
    for url in (f"/api/tasks?limit={raw}", f"/api/findings?limit={raw}",
                f"/api/status?findings={raw}"):  # fmt: skip
        message = _refused(client, url)
        assert "is not a number: use 1 to 500, in ASCII digits" in message, message


def test_a_huge_count_is_out_of_range(client: TestClient) -> None:
    message = _refused(client, "/api/tasks?limit=" + "9" * 5000)
    assert "is out of range: use 1 to 500" in message


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("/api/status?bogus=1", "unknown parameter 'bogus': /api/status takes findings, "
                                "syntheses, dead, all (and token)"),
        ("/api/tasks?state=dead", "unknown parameter 'state': /api/tasks takes queue, status, "
                                  "pass, cursor, limit, data (and token)"),
        ("/api/findings?status=dead", "unknown parameter 'status': /api/findings takes shard, "
                                      "queue, pass, cursor, limit (and token)"),
        ("/api/events?from=0", "unknown parameter 'from': /api/events takes since, types "
                               "(and token)"),
    ],
)  # fmt: skip
def test_a_parameter_the_route_does_not_take_is_400(
    client: TestClient, url: str, said: str
) -> None:
    assert said in _refused(client, url)


def test_the_token_parameter_is_taken_by_every_route(redis_url: str) -> None:
    with _client(redis_url, token="s3cret") as client:
        for url in ("/api/status", "/api/tasks?limit=5", "/api/findings"):
            assert client.get(url, params={"token": "s3cret"}).status_code == 200, url
        message = _refused(client, "/api/status?token=s3cret&token=s3cret")
        assert "'token' is given twice" in message


def test_tasks_come_with_their_data_when_asked(client: TestClient, sync_swarm: Swarm) -> None:
    sync_swarm.post_task("q.scan", "with data", data={"term": "backoff"})
    sync_swarm.post_task("q.scan", "without data")
    plain = client.get("/api/tasks").json()["items"]
    assert [t["data"] for t in plain] == [None, None]
    for flag in ("1", "true"):
        items = client.get("/api/tasks", params={"data": flag}).json()["items"]
        assert [t["data"] for t in items] == [{"term": "backoff"}, None], flag
    for flag in ("0", "false", ""):
        items = client.get("/api/tasks", params={"data": flag}).json()["items"]
        assert [t["data"] for t in items] == [None, None], flag
    message = _refused(client, "/api/tasks?data=yes")
    assert "data 'yes' is not a flag: use data=1 (or true), or 0" in message
