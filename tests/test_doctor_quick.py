"""``swarm doctor --quick``: every check but the read of every record (the one whose time
grows with the swarm's history), said so in ``corrupt_records``."""

from __future__ import annotations

from typing import Any

from redis_swarm._keys import Keys
from redis_swarm._models import RECORD_KINDS
from redis_swarm.cli._server import SKIPPED_BY_QUICK

from ._cli import Cli


def _hscans(raw: Any) -> int:
    return int(raw.info("commandstats").get("cmdstat_hscan", {}).get("calls", 0))


def test_quick_skips_the_records_and_says_so(cli: Cli, raw: Any) -> None:
    cli("task", "post", "q", "work")
    raw.hset(Keys("test").tasks, "t-broken", "not json")
    full = cli.json("doctor", expect=1)  # (records found damaged fail it)
    assert full["corrupt_records"]["task"] == ["t-broken"] and full["ok"] is False
    before = _hscans(raw)
    quick = cli.json("doctor", "--quick")
    assert _hscans(raw) == before  # no record read
    assert quick["ok"] is True and quick["ping_ms"] is not None
    assert quick["corrupt_records"] == {
        **{kind: [] for kind in RECORD_KINDS},
        "checked": False,
        "reason": SKIPPED_BY_QUICK,
    }
    assert f"not checked: {SKIPPED_BY_QUICK}" in " ".join(cli("doctor", "--quick").stdout.split())
