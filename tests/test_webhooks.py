"""Webhooks of tasks (swarm a2a's push notifications): each event is claimed for delivery to
a webhook once, in order, whoever follows the stream; a replaced webhook keeps its cursor."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm
from redis_swarm._errors import NotFound, ValidationError


def test_each_event_is_claimed_once_and_never_an_older_one(swarm: Swarm) -> None:
    task = swarm.post_task("q", "work")
    hook = swarm.set_webhook(task.id, "https://example.com/hook", token="tok", since="5-0")
    assert swarm.webhooks(task.id) == [hook]
    assert hook.token == "tok" and hook.id.startswith("w-")
    assert not swarm.claim_webhook_event(task.id, hook.id, "5-0")  # not after its start
    assert swarm.claim_webhook_event(task.id, hook.id, "6-0")
    assert not swarm.claim_webhook_event(task.id, hook.id, "6-0")  # a second server: no
    assert swarm.claim_webhook_event(task.id, hook.id, "6-1")
    assert not swarm.claim_webhook_event(task.id, hook.id, "6-0")  # a replay: no
    # Replacing the webhook (same id) keeps its cursor: nothing goes out twice.
    again = swarm.set_webhook(task.id, "https://example.com/new", webhook_id=hook.id)
    assert [w.url for w in swarm.webhooks(task.id)] == [again.url]
    assert not swarm.claim_webhook_event(task.id, hook.id, "6-1")
    assert swarm.delete_webhook(task.id, hook.id)
    assert not swarm.claim_webhook_event(task.id, hook.id, "7-0")  # gone: nothing to send
    assert not swarm.delete_webhook(task.id, hook.id)


def test_a_new_webhook_starts_at_the_newest_event(swarm: Swarm) -> None:
    task = swarm.post_task("q", "work")
    newest = swarm.last_event_id()
    hook = swarm.set_webhook(task.id, "http://127.0.0.1:1/x")
    assert not swarm.claim_webhook_event(task.id, hook.id, newest)


def test_refusals(swarm: Swarm) -> None:
    with pytest.raises(NotFound):
        swarm.set_webhook("t-nope", "https://example.com/")
    task = swarm.post_task("q", "work")
    with pytest.raises(ValidationError, match="http"):
        swarm.set_webhook(task.id, "file:///etc/passwd")
    with pytest.raises(ValidationError, match="event id"):
        swarm.claim_webhook_event(task.id, "w-1", "yesterday")
