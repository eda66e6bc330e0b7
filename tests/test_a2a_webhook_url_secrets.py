"""A webhook's URL may carry secrets of its own (a user and password, ``?api_key=``,
``?token=``): every answer about a config (Create, List, Get; JSON-RPC and REST) gave the URL
whole, to every client holding the server's token, as no answer gives its ``token`` or
``credentials``. They are shown as ``***`` now, kept whole in the swarm. Real servers: Redis,
``swarm a2a`` as a process, a webhook receiver on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from redis_swarm import Swarm

from ._a2a import A2AServer, Receiver, receiver
from .test_a2a_leftovers import HEADERS, _message, _rpc

PASSWORD = "pw-" + "in-the-url"
API_KEY = "key-" + "in-the-query"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    yield from receiver()


def test_the_secrets_a_webhook_url_carries_are_not_answered(
    a2a: A2AServer, a2a_worker: Swarm, hook: Receiver
) -> None:
    sent = _rpc(a2a, "SendMessage", {"message": _message(),
                                     "configuration": {"returnImmediately": True}})  # fmt: skip
    task_id = sent["result"]["task"]["id"]
    parts = urlsplit(hook.url)
    url = f"{parts.scheme}://hooker:{PASSWORD}@{parts.netloc}/h?api_key={API_KEY}&page=2"
    made = _rpc(a2a, "CreateTaskPushNotificationConfig", {"taskId": task_id, "id": "u", "url": url})
    configs = f"{a2a.url}/tasks/{task_id}/pushNotificationConfigs"
    headers = {**a2a.headers, **HEADERS}
    answers = [
        made["result"],
        _rpc(a2a, "GetTaskPushNotificationConfig", {"taskId": task_id, "id": "u"})["result"],
        *_rpc(a2a, "ListTaskPushNotificationConfigs", {"taskId": task_id})["result"]["configs"],
        httpx.get(f"{configs}/u", headers=headers, timeout=20).json(),
        *httpx.get(configs, headers=headers, timeout=20).json()["configs"],
    ]
    for config in answers:
        shown = config["url"]
        assert PASSWORD not in shown and API_KEY not in shown, config
        assert shown == f"{parts.scheme}://***@{parts.netloc}/h?api_key=***&page=2", config
    (stored,) = a2a_worker.webhooks(task_id)
    assert stored.url == url  # kept whole: the posts go to it
