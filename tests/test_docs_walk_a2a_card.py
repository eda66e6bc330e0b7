"""The replica server of docs/a2a.md builds a spec-compliant agent card: the a2a SDK warns
of none (its AgentInterface names its protocol_version)."""

from __future__ import annotations

import logging

import pytest

from .test_a2a_replicas import server_source


def test_the_replica_servers_card_is_spec_compliant(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_URL", "redis://127.0.0.1:1")  # (never reached: nothing is sent)
    namespace: dict[str, object] = {"__name__": "docs_a2a_server"}
    with caplog.at_level(logging.WARNING):
        exec(compile(server_source(), "docs/a2a.md", "exec"), namespace)
    assert namespace["card"].supported_interfaces  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "spec-compliant" in r.getMessage()], caplog.text
