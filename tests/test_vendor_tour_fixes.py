"""Defects a tour with the real Claude Code 2.1, Codex 0.171 and Gemini CLI 0.61 found in how
the swarm reads their output and edits their files:

- Gemini CLI 0.61's JSON output adds ``warnings`` (a loop, the turn limit, a tool a policy
  blocked): the run was read as text, its tokens lost (``swarm serve`` answered with the
  whole JSON);
- Codex's config.toml was edited by regex: a malformed file got our table appended, an
  inline ``swarm = {...}`` a second definition, comments before the next table were lost, the
  table moved to the end;
- a corrupt ~/.claude.json was handed to `claude mcp`, which resets it (every other server
  gone), and what `claude` said on stderr was hidden;
- Gemini's settings.json with comments (which Gemini reads) was refused as no JSON;
- `claude mcp remove --scope project` left ``{"mcpServers": {}}``, then counted as removed;
- Codex's project-scope warning ignored whether Codex trusts the project;
- a hooks.json event holding an object, not a list, was silently rewritten to a list.

Every client's folder is under a temporary HOME: no real configuration is touched.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from redis_swarm import ConfigError
from redis_swarm._client_files import strip_comments
from redis_swarm._runner.output import read_output
from redis_swarm.cli import main
from redis_swarm.mcp_server._codex_toml import merge_toml
from redis_swarm.mcp_server._install import merge_json

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (a git checkout) to run in; HOME and CODEX_HOME beside it."""
    folder = tmp_path / "work"
    (folder / ".git").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    for name in ("CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME"):
        monkeypatch.delenv(name, raising=False)
    return folder


def _swarm(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={"SWARM_URL": "embedded"})
    return result.exit_code, result.stdout, result.stderr


# -- 1. Gemini CLI's JSON with warnings --------------------------------------------------------

_STATS = {"models": {"gemini-2.5-pro": {"tokens": {"prompt": 1200, "candidates": 80,
          "cached": 200, "thoughts": 20, "total": 1300, "tool": 0}}}, "tools": {}}  # fmt: skip


def test_gemini_json_with_warnings_is_read_with_its_usage() -> None:
    printed = json.dumps(
        {"session_id": "s-1", "response": "the answer", "stats": _STATS,
         "warnings": ["Tool run_shell_command was blocked by policy", "Loop detected"]},
        indent=2,
    )  # fmt: skip
    output = read_output(printed, command="gemini --policy p.toml -o json -p go")
    assert output.answer == "the answer"
    assert output.usage is not None and output.usage.source == "gemini-json"
    assert (output.usage.tokens_in, output.usage.tokens_out) == (1200, 100)
    assert output.model == "gemini-2.5-pro"
    assert output.warning == (
        "Gemini CLI warned: Tool run_shell_command was blocked by policy | Loop detected"
    )


def test_a_key_gemini_may_add_is_tolerated_beside_its_stats_only() -> None:
    later = {"session_id": "s", "response": "ok", "stats": _STATS, "timings": {"ms": 3}}
    assert read_output(json.dumps(later)).usage is not None
    # an answer printed as JSON, with other keys and no stats.models: text, as before
    finding = {"response": "x", "stats": {"files": 3}, "summary": "found it"}
    output = read_output(json.dumps(finding))
    assert output.usage is None and json.loads(output.answer) == finding


# -- 2. Codex's config.toml, parsed before and after --------------------------------------------

BLOCK = '[mcp_servers.swarm]\ncommand = "/new/swarm"\n'


@pytest.mark.parametrize(
    "held",
    [
        'model = "o3"\n[mcp_servers.other\ncommand = "x"\n',  # malformed
        '[mcp_servers]\nswarm = { command = "/old" }\n',  # inline under its parent
        'mcp_servers.swarm = { command = "/old" }\n',  # a dotted key
        '[mcp_servers]\nswarm.command = "/old"\n',  # dotted keys under its parent
    ],
    ids=["malformed", "inline", "dotted", "dotted-under-parent"],
)
def test_a_codex_file_that_cannot_be_merged_is_refused_unchanged(tmp_path: Path, held: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(held)
    for block in (BLOCK, ""):  # an install, and a removal
        with pytest.raises(ConfigError) as caught:
            merge_toml(path, "mcp_servers.swarm", block)
        assert path.read_text() == held
    said = str(caught.value)
    if "[mcp_servers.other\n" in held:
        assert "is not valid TOML" in said and "fix or move it first" in said
    else:
        assert "otherwise than as a [mcp_servers.swarm] table" in said, said
        assert "by hand" in said


@pytest.mark.parametrize(
    "held",
    [
        'notes.text = """\n[mcp_servers.swarm]\n"""\n',  # a header-like line in a string
        'm = [\n["mcp_servers.swarm"]\n]\n',  # and in an array
    ],
    ids=["string", "array"],
)
def test_a_valid_codex_file_whose_lines_look_like_our_header_is_left_to_the_hand(
    tmp_path: Path, held: str
) -> None:
    """A valid file is never called invalid (a review's catch: the rest, cut by lines, was
    parsed as the file, and 'is not valid TOML: fix or move it first' blamed a sound file)."""
    path = tmp_path / "config.toml"
    path.write_text(held)
    with pytest.raises(ConfigError) as caught:
        merge_toml(path, "mcp_servers.swarm", BLOCK)
    assert path.read_text() == held
    said = str(caught.value)
    assert "is not valid TOML" not in said and "edit the [mcp_servers.swarm] table by hand" in said


def test_codex_install_refuses_a_malformed_file(work: Path) -> None:
    codex = work.parent / "codex" / "config.toml"
    codex.parent.mkdir()
    codex.write_text('model = "o3"\n[mcp_servers.other\n')
    code, _, err = _swarm("mcp", "install", "--client", "codex", "--write")
    assert code == 1 and "is not valid TOML" in err and "fix or move it first" in err
    assert "written to" not in err
    assert codex.read_text() == 'model = "o3"\n[mcp_servers.other\n'


def test_codex_table_is_replaced_in_place_keeping_comments(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    held = (
        '# my settings\nmodel = "o3"\n\n[mcp_servers.swarm]\ncommand = "/old"\n\n'
        '[mcp_servers.swarm.env]\nX = "1"\n\n# the docs server, keep it\n'
        '[mcp_servers.docs]\ncommand = "docs"\n\n# the end\n[tui]\ntheme = "dark"\n'
    )
    path.write_text(held)
    merged = merge_toml(path, "mcp_servers.swarm", BLOCK)
    assert merged.changed and merged.previous == {"command": "/old", "env": {"X": "1"}}
    text = path.read_text()
    assert text == (
        '# my settings\nmodel = "o3"\n\n[mcp_servers.swarm]\ncommand = "/new/swarm"\n\n'
        '# the docs server, keep it\n[mcp_servers.docs]\ncommand = "docs"\n\n# the end\n'
        '[tui]\ntheme = "dark"\n'
    )
    assert not merge_toml(path, "mcp_servers.swarm", BLOCK).changed  # a second time: the same
    assert merge_toml(path, "mcp_servers.swarm", "").changed  # taken out, the rest kept
    assert tomllib.loads(path.read_text()) == {
        "model": "o3", "mcp_servers": {"docs": {"command": "docs"}}, "tui": {"theme": "dark"}
    }  # fmt: skip
    assert "# the docs server, keep it" in path.read_text()


# -- 3. Claude Code's ~/.claude.json ------------------------------------------------------------


def _fake_claude(work: Path, monkeypatch: pytest.MonkeyPatch, script: str = "") -> Path:
    """A `claude` on PATH that logs its arguments (the file returned), then runs ``script``."""
    bin_dir = work.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = work.parent / "calls.log"
    fake = bin_dir / "claude"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n{script}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_a_corrupt_claude_json_is_refused_before_claude_runs(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _fake_claude(work, monkeypatch)
    state = work.parent / "home" / ".claude.json"
    state.write_text('{"mcpServers": {"mine": {"command": "x"}}, oops')
    for args in (["--write"], ["--remove"], ["--scope", "project", "--write"]):
        code, _, err = _swarm("mcp", "install", "--client", "claude", *args)
        assert code == 1, err
        assert f"{state} is not valid JSON" in err and "fix or move it first" in err
        assert "would reset it" in err
    assert not log.exists()  # claude never ran
    assert state.read_text() == '{"mcpServers": {"mine": {"command": "x"}}, oops'


def test_an_unreadable_claude_json_is_said_when_looking_for_other_entries(work: Path) -> None:
    state = work.parent / "home" / ".claude.json"
    state.write_text("{broken")
    code, _, err = _swarm("mcp", "install", "--client", "claude", "--scope", "project")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err  # (the local and user scopes: one file, said once)
    assert "whether swarm is also at Claude Code's" in warnings[0]
    assert f"{state} is not valid JSON" in warnings[0]


def test_what_claude_says_on_stderr_is_passed_on(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_claude(work, monkeypatch, 'echo "Warning: something to know" >&2')
    code, _, err = _swarm("mcp", "install", "--client", "claude", "--write")
    assert code == 0, err
    assert "claude: Warning: something to know" in err.splitlines()


# -- 4. Gemini's settings.json with comments ----------------------------------------------------

COMMENTED = """{
  // my theme
  "theme": "dark", /* a "quoted" word */
  "url": "http://example.com/a//b",
  "mcpServers": {"swarm": {"command": "node", "args": ["x.js"]}}
}
"""


def test_comments_are_stripped_outside_strings() -> None:
    data = json.loads(strip_comments(COMMENTED))
    assert data["url"] == "http://example.com/a//b" and data["theme"] == "dark"
    assert json.loads(strip_comments('{"a": "\\"//x"} // c')) == {"a": '"//x'}


def test_gemini_settings_with_comments_are_read_and_never_rewritten(work: Path) -> None:
    project = work / ".gemini" / "settings.json"
    project.parent.mkdir()
    project.write_text(COMMENTED)
    for args in (["mcp", "install"], ["hooks", "install"]):
        code, _, err = _swarm(*args, "--client", "gemini", "--write")
        assert code == 1, err
        assert "holds comments" in err and "without --write to print" in err
        assert project.read_text() == COMMENTED
        code, out, err = _swarm(*args, "--client", "gemini")  # printed: read, comments or not
        assert code == 0 and out, err
    code, _, err = _swarm("mcp", "install", "--client", "gemini", "--remove")
    assert code == 1 and "take the entry out by hand" in err
    assert project.read_text() == COMMENTED
    # the user scope's install sees the project's entry, comments and all
    code, _, err = _swarm("mcp", "install", "--client", "gemini", "--scope", "user", "--write")
    assert code == 0 and f"swarm is also in {project}" in err, err


# -- 5. Claude Code's project scope, removed ----------------------------------------------------


def test_claude_project_removal_deletes_the_emptied_mcp_json(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as Claude Code 2.1's `claude mcp remove --scope project` leaves it
    _fake_claude(work, monkeypatch, """printf '{\\n  "mcpServers": {}\\n}' > .mcp.json""")
    (work / ".mcp.json").write_text('{"mcpServers": {"swarm": {"command": "x"}}}')
    code, _, err = _swarm("mcp", "install", "--client", "claude", "--scope", "project", "--remove")
    assert code == 0 and "removed swarm from Claude Code's project scope" in err, err
    assert not (work / ".mcp.json").exists()


def test_an_empty_mcp_servers_is_nothing_to_remove(work: Path) -> None:
    held = work / ".mcp.json"
    held.write_text('{"mcpServers": {}}')
    assert not merge_json(held, {"mcpServers": {"swarm": {}}}, remove=True).changed
    code, _, err = _swarm("mcp", "install", "--client", "json", "--remove")
    assert code == 0 and err.endswith("nothing to change\n"), err
    assert "removed" not in err


# -- 6. Codex's trust -------------------------------------------------------------------------


def test_codex_project_table_in_an_untrusted_project_is_said_unused(work: Path) -> None:
    project = work / ".codex" / "config.toml"
    project.parent.mkdir()
    project.write_text('[mcp_servers.swarm]\ncommand = "node"\n')
    code, out, err = _swarm("--json", "mcp", "install", "--client", "codex", "--write")
    assert code == 0, err
    warning = next(line for line in err.splitlines() if line.startswith("warning:"))
    assert "Codex starts that one" not in warning
    assert "only in a project it trusts, and this one is not" in warning
    assert "Codex starts the one installed here" in warning
    assert json.loads(out)["elsewhere"][0]["used"] is False
    own = work.parent / "codex" / "config.toml"
    own.write_text(own.read_text() + f'\n[projects."{work.resolve()}"]\ntrust_level = "trusted"\n')
    code, out, err = _swarm("--json", "mcp", "install", "--client", "codex", "--write")
    assert code == 0 and "and Codex starts that one in this project" in err, err
    assert json.loads(out)["elsewhere"][0]["used"] is True


# -- 7. Codex's hooks.json with an object where a list belongs ---------------------------------


def test_a_hooks_event_that_is_no_list_is_refused(work: Path) -> None:
    path = work / ".codex" / "hooks.json"
    path.parent.mkdir()
    path.write_text('{"hooks": {"Stop": {"x": 1}}}')
    code, _, err = _swarm("hooks", "install", "--client", "codex", "--write")
    assert code != 0
    assert "'hooks.Stop'" in err and "is not a list" in err and "fix or move it first" in err
    assert path.read_text() == '{"hooks": {"Stop": {"x": 1}}}'


def test_real_claude_project_removal_leaves_no_mcp_json(work: Path) -> None:
    """The same with Claude Code itself (tests/mcp_server/test_clients.py installs it)."""
    from .mcp_server.test_clients import BIN, CLAUDE

    if not CLAUDE.exists():
        pytest.skip("Claude Code is not installed: run `make system-deps` (it needs npm)")
    env = {"SWARM_URL": "embedded", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}  # fmt: skip
    args = ["mcp", "install", "--client", "claude", "--scope", "project"]
    result = CliRunner().invoke(main, [*args, "--write"], env=env)
    assert result.exit_code == 0 and (work / ".mcp.json").exists(), result.stderr
    result = CliRunner().invoke(main, [*args, "--remove"], env=env)
    assert result.exit_code == 0 and "removed swarm" in result.stderr, result.stderr
    assert not (work / ".mcp.json").exists()
