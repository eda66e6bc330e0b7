"""From a scale walk of the CLI's listings: ``--all`` printed page by page as the pages come
(a rich table of 50,000 rows was built, measured and rendered before its first line: 50 s),
an empty ``task list`` and ``events --type`` saying that nothing matched, and an explicit
``--home`` winning over SWARM_URL from the environment for ``up`` and ``down``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm
from redis_swarm._embedded import EmbeddedServer
from redis_swarm.cli import _common

from ._cli import Cli


def _printed() -> str:
    """What the command run in process (CliRunner) has printed on stdout so far."""
    sys.stdout.flush()
    buffer: Any = sys.stdout.buffer
    return bytes(buffer.getvalue()).decode()


def _spy(monkeypatch: pytest.MonkeyPatch, name: str, seen: list[str]) -> Callable[..., Any]:
    """Record, at each call of ``Swarm.NAME``, what stdout held by then."""
    original = getattr(Swarm, name)

    def spied(self: Swarm, *args: Any, **kwargs: Any) -> Any:
        seen.append(_printed())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Swarm, name, spied)
    return spied


def _post(cli: Cli, count: int, queue: str = "big", pass_name: str = "P") -> list[str]:
    with Swarm(cli.url, swarm=cli.swarm) as swarm:
        tasks = swarm.post_tasks(
            [
                {"queue": queue, "description": f"task {n}", "pass_name": pass_name}
                for n in range(count)
            ]
        )
    return [t.id for t in tasks]


def test_task_list_all_prints_each_page_as_it_comes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`task list --all` printed nothing until it had every page (and rendered them in one
    rich table, about 1 ms a row): now each page is printed before the next is asked for,
    one header, the columns aligned across pages."""
    ids = _post(cli, 7)
    monkeypatch.setattr(_common, "ALL_PAGE", 3, raising=False)  # (3 pages of 3, 3 and 1)
    seen: list[str] = []
    _spy(monkeypatch, "list_tasks", seen)
    out = cli("task", "list", "--queue", "big", "--all")
    assert len(seen) >= 2, seen
    assert ids[0] in seen[1] and ids[3] not in seen[1], seen  # the first page, printed
    lines = out.stdout.splitlines()
    header = [line for line in lines if line.split()[:2] == ["id", "queue"]]
    assert len(header) == 1, out
    rows = [line for line in lines if line.lstrip().startswith("t-")]
    assert [row.split()[0] for row in rows] == ids, out
    # one width per column, whatever the page: the status column starts at one place
    assert len({row.index("pending") for row in rows}) == 1, rows
    assert header[0].index("status") == rows[0].index("pending")
    assert out.stderr == ""


def test_task_list_all_json_keeps_its_shape(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _post(cli, 5)
    monkeypatch.setattr(_common, "ALL_PAGE", 2, raising=False)
    data = cli.json("task", "list", "--queue", "big", "--all")
    assert sorted(data) == ["corrupt", "cursor", "items"]
    assert [t["id"] for t in data["items"]] == ids and data["cursor"] is None


def test_findings_all_prints_each_page_as_it_comes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _post(cli, 5, queue="fq")
    with Swarm(cli.url, swarm=cli.swarm) as swarm:
        claimed = swarm.claim("fq", worker="w1", n=5)
        assert isinstance(claimed, list)
        found = [
            swarm.report(t.id, t.token, {"summary": f"found {t.description}"}, worker="w1").id
            for t in claimed
        ]
    monkeypatch.setattr(_common, "ALL_PAGE", 2, raising=False)
    seen: list[str] = []
    _spy(monkeypatch, "findings", seen)
    out = cli("findings", "--pass", "P", "--all")
    assert len(seen) >= 2 and found[0] in seen[1] and found[2] not in seen[1], seen
    rows = [line.split()[0] for line in out.stdout.splitlines() if "f-" in line]
    assert rows == found, out
    assert len(cli.json("findings", "--pass", "P", "--all")["items"]) == 5
    # none matched: said so, as the one-page listing's notes say it
    none = cli("findings", "--pass", "P", "--shard", "nobody", "--all")
    assert none.stdout == "" and none.stderr == "no finding matched --shard nobody --pass P\n"


def test_synth_list_all_prints_each_page_as_it_comes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`synth list --all` built one rich table of every synthesis, as `findings --all` did."""
    with Swarm(cli.url, swarm=cli.swarm) as swarm:
        made = [
            swarm.synthesize("shard-1", f"S{n}", f"synthesis {n}", [], cites_none=True).id
            for n in range(5)
        ]
    monkeypatch.setattr(_common, "ALL_PAGE", 2, raising=False)
    seen: list[str] = []
    _spy(monkeypatch, "syntheses", seen)
    out = cli("synth", "list", "--all")
    assert len(seen) >= 2 and made[0] in seen[1] and made[2] not in seen[1], seen
    assert [line.split()[0] for line in out.stdout.splitlines() if "s-" in line] == made, out
    none = cli("synth", "list", "--shard", "nobody", "--all")
    assert none.stdout == "" and none.stderr == "no synthesis matched --shard nobody\n"


def test_task_list_matching_nothing_says_so(cli: Cli) -> None:
    """`task list --pass Psmall --queue big` printed an empty table's header and nothing
    else: now stderr says no task matched the filters (exit 0), with or without --all."""
    _post(cli, 3, queue="big", pass_name="Pbig")
    _post(cli, 1, queue="small", pass_name="Psmall")
    for more in ((), ("--all",)):
        out = cli("task", "list", "--pass", "Psmall", "--queue", "big", *more)
        assert out.stdout == "", out
        assert out.stderr == "no task matched --queue big --pass Psmall\n", out
    assert cli.json("task", "list", "--pass", "Psmall", "--queue", "big")["items"] == []
    # a queue never posted to keeps its note alone (it says why)
    out = cli("task", "list", "--queue", "bigg")
    assert out.stderr.startswith("note: no task was ever posted to queue"), out


def test_events_of_a_type_the_log_lacks_say_so(cli: Cli) -> None:
    """`events --type context` scanned the log and printed nothing: now stderr says no such
    event is in the log and how far back it goes."""
    _post(cli, 2)
    oldest = cli.json("events", "--limit", "1")["items"][0]
    out = cli("events", "--type", "context")
    assert out.stdout == ""
    said = out.stderr
    assert said.startswith("no context event is in the event log: it goes back to "), said
    assert oldest["id"] in said and "keeping the newest 100,000 events" in said, said
    assert cli.json("events", "--type", "context") == {"items": []}
    empty = Cli(cli.url, swarm="other")("events", "--type", "task")
    assert empty.stderr.startswith("no task event: the event log is empty"), empty


def test_an_explicit_home_wins_over_swarm_url_for_down(swarm_home: Path) -> None:
    """`swarm --home H down` with SWARM_URL set to H's own socket failed "unix://.../redis.sock
    is not one": the explicit --home (and a URL naming the home's own socket) means H's
    embedded server. A --url given beside it on the command line is a conflict, named."""
    cli = Cli("embedded", env={"SWARM_HOME": str(swarm_home)})
    home = ["--home", str(swarm_home)]
    cli(*home, "up")
    server = EmbeddedServer(swarm_home)
    assert server.is_running()
    socket = {"SWARM_URL": server.url}
    out = cli(*home, "down", env=socket, expect=None)
    assert out.code == 0 and out.stdout.startswith("stopped"), out
    assert not server.is_running()
    cli(*home, "up", env=socket)
    doctor = cli.json(*home, "doctor", "--quick", env=socket)
    assert doctor["kind"] == "unix" and doctor["ok"], doctor  # (the URL's server, as given)
    cli(*home, "down", env=socket)
    # a stopped embedded server checked by its socket's URL is said to be down, not started
    down = cli(*home, "doctor", "--quick", "--json", env=socket, expect=1).json()
    assert down["reached"][str(server.socket_path)].startswith("no such socket file"), down
    assert not server.is_running()
    # another server in SWARM_URL: the explicit --home wins all the same (never reached)
    cli(*home, "up", env={"SWARM_URL": "redis://127.0.0.1:9/"})
    assert server.is_running()
    conflict = cli("--url", "redis://127.0.0.1:9/", *home, "down", expect=2)
    assert "drop --url to stop the embedded server there" in conflict.stderr, conflict
    assert server.is_running()
    cli(*home, "down", env={"SWARM_URL": "redis://127.0.0.1:9/"})
    assert not server.is_running()


def test_streamed_rows_fold_their_last_column_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a terminal the last column folds between words onto lines of its own, as the rich
    table's does, each line within the screen; into a pipe every row is one line."""
    from rich.console import Console

    from redis_swarm.cli._app import App

    app = App()
    app.out = Console(force_terminal=True, width=40)
    table = _common.StreamedTable(app, "id", "summary")
    table.page([("f-1", "one two three four five six seven eight nine ten eleven")])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 3 and all(len(line) <= 40 for line in lines[1:]), lines
    words = " ".join(" ".join(line.split()) for line in lines[2:]).replace("f-1 ", "")
    assert words == "one two three four five six seven eight nine ten eleven", lines
    app.out = Console(force_terminal=False, width=40)
    piped = _common.StreamedTable(app, "id", "summary")
    piped.page([("f-1", "x " * 40)])
    assert len(capsys.readouterr().out.splitlines()) == 3
