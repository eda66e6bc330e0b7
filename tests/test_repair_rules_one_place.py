"""One rule per fact of the repair hints and of settings shown as given:

- ``Settings.with_timeouts`` takes any retry or timeout field (a hook's handle changes
  ``none_answered_retries`` too, and named its URL by string surgery); its ``repr`` shows the
  settings' own timeouts (it printed the URL they are shown as, hiding them).
- Who runs a repair command is decided once (``_durability.repair_cli``): the URL's own user
  where it may read INFO, else an admin or shard user, said so with the command.
- The ``--cluster add-node``, ``--cluster fix`` and ``CLUSTER FORGET`` commands carry the URL's
  TLS options on a rediss cluster (they had none: pasted, they could not connect).
- Behind Sentinel, the default-login check with the master down says it was not checked (it
  said none found).

No server: each is what a function says of settings."""

from __future__ import annotations

import pytest

from redis_swarm import Settings, _durability, _topology
from redis_swarm._errors import ConfigError
from redis_swarm._hooks.reach import hook_settings

TLS_CLUSTER = (
    "rediss+cluster://w:s3cret@10.0.0.1:7000,10.0.0.2:7000?ssl_ca_certs=/etc/ca.pem"
    "&ssl_cert_reqs=none"
)
TLS = "--tls --cacert /etc/ca.pem --insecure "


def test_with_timeouts_takes_any_retry_field_and_repr_shows_the_real_ones() -> None:
    given = Settings.from_url("redis://user:s3cret@127.0.0.1:7000/2?socket_timeout=5")
    quick = given.with_timeouts(retries=1, none_answered_retries=1)
    assert (quick.retries, quick.none_answered_retries) == (1, 1)
    assert quick.socket_timeout == 5.0  # (not given: kept)
    assert quick.url == given.url
    # repr: its own URL, masked, with the timeouts it runs with
    assert repr(quick) == (
        "Settings(url='redis://user:***@127.0.0.1:7000/2?retries=1&socket_timeout=5', "
        "swarm='default')"
    )
    assert "s3cret" not in repr(quick)


def test_a_hooks_settings_are_shown_as_the_url_given() -> None:
    given = Settings.from_url("redis+cluster://u:pw@127.0.0.1:7000?socket_timeout=5")
    fast = hook_settings(given, "SessionEnd")
    assert fast.retries == fast.none_answered_retries == 0
    assert fast.url == given.url == "redis+cluster://u:***@127.0.0.1:7000?socket_timeout=5"


def test_who_runs_a_repair_is_decided_in_one_place() -> None:
    settings = Settings.from_url("redis://me:pw@10.0.0.1:6379/0")
    own = _durability.repair_cli(settings, reads_info=True)
    assert own == _durability.Repair("redis-cli -u URL --user me --askpass ", "")
    for reads_info in (False, None):  # a worker, or a role not known
        other = _durability.repair_cli(settings, reads_info=reads_info)
        assert other.cli == "redis-cli -u URL --user ADMIN --askpass "
        assert other.by == "as an admin or shard user (its name for ADMIN)"
    behind = Settings.from_url("redis+sentinel://10.0.0.9:26379/svc")
    assert _durability.repair_cli(behind, reads_info=True, master="10.0.0.5:6380").cli == (
        "redis-cli -h 10.0.0.5 -p 6380 "
    )


def test_the_cluster_repairs_carry_the_urls_tls_options() -> None:
    settings = Settings.from_url(TLS_CLUSTER)
    assert _durability.redis_cli_cluster(settings) == f"redis-cli {TLS}--user w --askpass "
    forget = _topology._forget("10.0.0.3:7000", "abc", "10.0.0.1:7000", settings)
    assert f"redis-cli {TLS}--user w --askpass --cluster call 10.0.0.1:7000 CLUSTER FORGET abc" in (
        forget
    )
    with pytest.raises(ConfigError) as caught:
        _durability.cluster_plan({"10.0.0.1:7000": {"role": "master"}}, settings.url)
    assert f"(redis-cli {TLS}--user w --askpass --cluster add-node NEW EXISTING" in str(
        caught.value
    )
    # A plain cluster: none.
    plain = Settings.from_url("redis+cluster://10.0.0.1:7000")
    assert _durability.redis_cli_cluster(plain, may_run=False) == (
        "redis-cli --user ADMIN --askpass "
    )


def test_with_the_master_down_the_default_logins_are_not_checked() -> None:
    settings = Settings.from_url("redis+sentinel://127.0.0.1:1/svc")
    view = {"master": "127.0.0.1:1", "linked": [], "down": ["s_down"]}
    said, warnings = _topology._default_logins(settings, view)
    assert (
        said
        == _topology.MASTER_DOWN_NOT_CHECKED
        == ("not checked: the sentinels see the master as down")
    )
    assert warnings == []
