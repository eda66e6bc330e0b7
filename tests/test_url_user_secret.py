"""A password written where a URL's user name goes (redis://SECRET@HOST, its ':' forgotten)
or run together with the user (redis://USER%3ASECRET@HOST) is a secret as a password is
(docs/security.md: shown as ``***``), yet the files and commands written for another process
held it in clear: ``swarm hooks install`` put ``--url redis://SECRET@...`` in the client's
settings (0644) and every hook's command line, ``swarm mcp install`` wrote
``SWARM_URL=redis://SECRET@...``, ``swarm prompt`` printed it. One rule now says which URL
holds a secret (``Settings.holds_secret``), and every writer leaves such a URL out."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_swarm import Settings
from redis_swarm._executable import reach_options

from ._cli import Cli

SECRET = "SOMESECRETTOKEN"
URLS = (
    f"redis://{SECRET}@127.0.0.1:6390/0",
    f"redis://ops%3A{SECRET}@127.0.0.1:6390/0",
)


@pytest.mark.parametrize("url", URLS)
def test_the_options_that_reach_the_swarm_leave_such_a_url_out(url: str, tmp_path: Path) -> None:
    settings = Settings.from_url(url, swarm="team", home=tmp_path)
    assert settings.holds_secret
    options = reach_options(settings)
    assert "--url" not in options and SECRET not in " ".join(options), options
    shown = reach_options(settings, password="show")  # (asked for: the URL in clear)
    assert SECRET in " ".join(shown)
    plain = Settings.from_url("redis://ops:pw@127.0.0.1:6390/0", swarm="team", home=tmp_path)
    assert plain.holds_secret
    named = Settings.from_url("redis://127.0.0.1:6390/0", swarm="team", home=tmp_path)
    assert not named.holds_secret and "--url" in reach_options(named)


@pytest.mark.parametrize("url", URLS)
def test_hooks_install_writes_no_such_url(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = Cli(url, swarm="team", env={"HOME": str(tmp_path / "home")})
    out = cli("hooks", "install", "--client", "claude", "--write")
    written = (tmp_path / ".claude" / "settings.json").read_text()
    assert " hook " in written  # (the entries were written)
    assert SECRET not in written and SECRET not in out.stdout + out.stderr, written


@pytest.mark.parametrize("client", ["claude", "json", "codex", "gemini"])
@pytest.mark.parametrize("url", URLS)
def test_mcp_install_writes_no_such_url(
    url: str, client: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = Cli(url, swarm="team", env={"HOME": str(tmp_path / "home")})
    out = cli("mcp", "install", "--client", client)
    assert "SWARM_URL" in out.stdout, out
    assert SECRET not in out.stdout + out.stderr, out


@pytest.mark.parametrize("url", URLS)
def test_a_prompt_prints_no_such_url(url: str, tmp_path: Path) -> None:
    cli = Cli(url, swarm="team", env={"SWARM_HOME": str(tmp_path / "h")})
    out = cli("prompt", "worker")
    assert "swarm" in out.stdout and SECRET not in out.stdout + out.stderr, out
