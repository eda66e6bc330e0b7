"""A cursor a listing did not give (a crafted one, a huge one, a score that is no number) is
refused at the edge with a bounded message, the same whichever way the page would be made
(the scan or a live state's sets): it never reaches a script or a parser as it is."""

from __future__ import annotations

import pytest

from redis_swarm import Swarm, ValidationError

BAD = ["t-nope@" + "9" * 5000, "x" * 1_000_000, "t-abc@abc", "@", "~@", "t-abc@1@2", "a b"]


@pytest.mark.parametrize("cursor", BAD, ids=range(len(BAD)))
def test_a_cursor_no_listing_gave_is_refused_briefly(swarm: Swarm, cursor: str) -> None:
    posted = swarm.post_task("q", "work")
    for listing in (
        lambda: swarm.list_tasks(cursor=cursor),
        lambda: swarm.list_tasks(status="pending", cursor=cursor),
        lambda: swarm.list_tasks(queue="q", status="pending", cursor=cursor),
        lambda: swarm.findings(cursor=cursor),
    ):
        with pytest.raises(ValidationError, match="does not belong to this listing") as raised:
            listing()
        assert len(str(raised.value)) < 300
    page = swarm.list_tasks(status="pending")
    assert [t.id for t in page.items] == [posted.id]
