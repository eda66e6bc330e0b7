"""Questions and answers on ``swarm watch`` and the dashboard's /api/status."""

from __future__ import annotations

from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm.dashboard.app import create_app

from ._answers import answer_one
from ._cli import Cli


def _asked(swarm: Swarm) -> None:
    swarm.publish_context("lib", "a book\n", source="b.md")
    thread = answer_one(swarm, "ask.lib", "Chapter 9, the butler.", name="librarian")
    swarm.ask("lib", "Q1: who?", timeout_s=20)
    thread.join(5)
    swarm.post_task("assist", "Q2: which port?")  # open: nobody answers it


def test_watch_shows_questions_and_who_answered(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        _asked(swarm)
    out = Cli(redis_url)("watch", "--once", env={"COLUMNS": "120"})
    assert "Questions" in out.stdout and "ask.lib" in out.stdout and "assist" in out.stdout
    assert "Chapter 9, the butler." in out.stdout and "librarian" in out.stdout
    data = Cli(redis_url).json("watch", "--once")
    assert data["questions"]["ask.lib"]["completed"] == 1
    assert data["questions"]["assist"]["pending"] == 1
    assert [a["worker"] for a in data["answers"]] == ["librarian"]


def test_the_dashboard_api_has_them(redis_url: str) -> None:
    with Swarm(redis_url, swarm="test") as swarm:
        _asked(swarm)
    app = create_app(AsyncSwarm(redis_url, swarm="test"), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        status = client.get("/api/status").json()
        page = client.get("/").text
    assert set(status["questions"]) == {"ask.lib", "assist"}
    assert status["answers"][0]["summary"] == "Chapter 9, the butler."
    assert 'id="p-questions"' in page
