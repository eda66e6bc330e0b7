"""Walk 58 of the web faces, the dashboard's API: a count given empty (``?limit=``,
``?findings=``) is refused saying what it takes, as ``?types=`` given empty is (it was read
as left out), and so is ``?since=`` given empty; a ``?since=`` of thousands of digits is
refused in words (a 500: Python reads no integer of over 4,300 digits)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm
from redis_swarm.dashboard.app import create_app


@pytest.fixture
def client(redis_url: str) -> Iterator[TestClient]:
    app = create_app(AsyncSwarm(redis_url, swarm="walk58"), token=None, close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        yield client


def _refused(client: TestClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 400, (url, response.text)
    assert response.json()["error"] == "BadRequest"
    message: str = response.json()["message"]
    return message


@pytest.mark.parametrize(
    ("url", "default"),
    [
        ("/api/status?findings=", 50),
        ("/api/status?syntheses=", 20),
        ("/api/status?dead=", 50),
        ("/api/tasks?limit=", 100),
        ("/api/findings?limit=", 100),
    ],
)
def test_a_count_given_empty_is_refused_saying_what_it_takes(
    client: TestClient, url: str, default: int
) -> None:
    name = url.rpartition("?")[2].rstrip("=")
    said = _refused(client, url)
    assert said == (
        f"{name} is empty: give a count, 1 to 500 in ASCII digits, or leave {name} out "
        f"for {default}"
    ), said


def test_types_and_since_given_empty_are_refused_alike(client: TestClient) -> None:
    said = _refused(client, "/api/events?types=")
    assert said.startswith("types names no event type: give one or more"), said
    assert said.endswith(", or leave types out for every type"), said
    said = _refused(client, "/api/events?since=")
    assert said.startswith("since is empty: give an event id"), said
    assert said.endswith(", or leave since out for the events from now on"), said


@pytest.mark.parametrize("digits", [21, 4301, 5000])
def test_a_since_of_too_many_digits_is_refused_in_words(client: TestClient, digits: int) -> None:
    said = _refused(client, f"/api/events?since={'9' * digits}")
    assert "Exceeds" not in said and "4300" not in said, said
    assert f"({digits:,} digits) is no time: a time in epoch ms has 13 digits" in said, said


def test_a_since_of_twenty_digits_is_the_cores_time_in_the_future(client: TestClient) -> None:
    said = _refused(client, f"/api/events?since={'9' * 20}")
    assert "is in the future" in said, said
