"""A second bad-input round of the CLI: the commands the first (test_bad_input_tour) did not
reach. Each refusal is found before anything is stored (the keyspace is compared whole,
each key's type and DUMP), with a usage error (exit 2) where the input alone refutes it."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_swarm import Swarm, TaskStatus
from redis_swarm._net import shown_host
from redis_swarm._validate import MAX_NAME, MAX_TASK_DATA_BYTES
from redis_swarm.cli._common import MAX_DATA_FILE_BYTES, MAX_INPUT_BYTES

from ._cli import Cli
from ._servers import RedisServer

Keyspace = dict[str, tuple[str, str]]


def keyspace(raw: Any) -> Keyspace:
    """Every key of the server, with its type and a digest of its DUMP."""
    return {
        key: (raw.type(key), hashlib.sha1(raw.dump(key) or b"").hexdigest())
        for key in raw.scan_iter(count=1000)
    }


def refused_unchanged(raw: Any, call: Callable[[], Any]) -> Any:
    """Run ``call`` (a refused CLI call); the keyspace must be as it was."""
    before = keyspace(raw)
    out = call()
    assert keyspace(raw) == before, out
    return out


@pytest.fixture
def raw(redis_url: str, redis_server: RedisServer) -> Iterator[Any]:
    """The test's server, its replies left as bytes (a DUMP is binary)."""
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def swarm(redis_url: str) -> Iterator[Swarm]:
    """The swarm the ``cli`` fixture reaches (the CLI's faces are what is tested here: one
    shell, one server, not the core fixture's four)."""
    with Swarm(redis_url, swarm="test") as handle:
        yield handle


@pytest.fixture
def held(swarm: Swarm) -> tuple[str, str]:
    """A claimed task of queue q1: its id and token."""
    swarm.post_task("q1", "do it", pass_name="p1")
    task = swarm.claim("q1", worker="w1")
    assert task is not None and not isinstance(task, list) and task.token
    return task.id, task.token


# --- task fail: a blank reason is a usage error, found before the call


@pytest.mark.parametrize("error", ["", "   ", "\t\n"])
def test_a_blank_failure_reason_is_a_usage_error(
    cli: Cli, swarm: Swarm, raw: Any, held: tuple[str, str], error: str
) -> None:
    task_id, token = held
    out = refused_unchanged(
        raw, lambda: cli("task", "fail", task_id, "--token", token, "--error", error, expect=2)
    )
    assert "error is empty: say why the task failed" in out.stderr, out
    assert swarm.get_task(task_id).status is TaskStatus.CLAIMED


def test_a_blank_failure_reason_from_a_file_is_a_usage_error(
    cli: Cli, raw: Any, held: tuple[str, str], tmp_path: Path
) -> None:
    blank = tmp_path / "why.txt"
    blank.write_text("  \n")
    task_id, token = held
    args = ("task", "fail", task_id, "--token", token, "--error", f"@{blank}")
    out = refused_unchanged(raw, lambda: cli(*args, expect=2))
    assert "say why the task failed" in out.stderr, out


# --- --data is read to the data limit, not to the 64 MiB input cap


DATA_COMMANDS = [
    ("task", "post", "q1", "do it", "--data"),
    ("ask", "--timeout", "1", "s1", "what?", "--data"),
]


@pytest.mark.parametrize("args", DATA_COMMANDS, ids=lambda a: a[0])
def test_a_data_file_over_the_data_limit_is_refused_unread(
    cli: Cli, raw: Any, tmp_path: Path, args: tuple[str, ...]
) -> None:
    assert MAX_DATA_FILE_BYTES < MAX_INPUT_BYTES
    big = tmp_path / "big.json"
    with big.open("wb") as f:  # sparse: refused by its size, before any read
        f.truncate(MAX_DATA_FILE_BYTES + 1)
    out = refused_unchanged(raw, lambda: cli(*args, f"@{big}", expect=2))
    assert f"is larger than {MAX_DATA_FILE_BYTES:,} bytes, the most --data reads" in out.stderr


@pytest.mark.timeout(60)
def test_endless_data_stops_at_the_data_limit(cli: Cli, raw: Any) -> None:
    out = refused_unchanged(raw, lambda: cli("task", "post", "q1", "d", "--data", "@/dev/zero",
                                             expect=2))  # fmt: skip
    assert f"/dev/zero is larger than {MAX_DATA_FILE_BYTES:,} bytes" in out.stderr, out


def test_an_indented_data_file_over_the_limit_whose_json_fits_is_stored(
    cli: Cli, tmp_path: Path
) -> None:
    """The data limit is on the compact JSON the core stores: a file written with
    indentation may hold more bytes than that (the file's bound is MAX_DATA_FILE_BYTES)."""
    rows = [{"n": i, "text": "x" * 40} for i in range(12_000)]
    doc = tmp_path / "data.json"
    doc.write_text(json.dumps(rows, indent=8))
    assert doc.stat().st_size > MAX_TASK_DATA_BYTES > len(json.dumps(rows))
    posted = cli.json("task", "post", "q1", "d", "--data", f"@{doc}")
    assert posted["data"] == rows


# --- swarm mcp --transport http: --host checked and shown safely


@pytest.mark.timeout(60)
@pytest.mark.parametrize("host", ["", "   "])
def test_mcp_http_refuses_an_empty_host(cli: Cli, host: str) -> None:
    out = cli("mcp", "--transport", "http", "--host", host, "--port", "0", expect=2)
    assert "--host is empty" in out.stderr and "127.0.0.1" in out.stderr, out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("host", ["evil\nhost", "evil\x1b[2Jhost\u202e", "h" * 10_000])
def test_mcp_http_shows_a_bad_host_escaped_and_cut(cli: Cli, host: str) -> None:
    out = cli("mcp", "--transport", "http", "--host", host, "--port", "0", expect=None)
    assert out.code != 0, out
    line = next(x for x in out.stderr.splitlines() if "is reachable" in x)
    assert line.startswith(f"--host {shown_host(host)} is reachable"), line
    assert "\x1b" not in line and "\u202e" not in line, line
    assert len(line) < 400, line


# --- swarm pipeline: the plan file is read to a bound, as text; --worker checked first


def _plan(tmp_path: Path) -> Path:
    (tmp_path / "ctx.md").write_text("hello world\n")
    plan = tmp_path / "plan.toml"
    python = sys.executable
    plan.write_text(
        f'name = "p2"\n[workers]\nexec = "{python} -c pass"\n'
        f'[planner]\nexec = "{python} -c pass"\n[synthesizer]\nexec = "{python} -c pass"\n'
        '[[contexts]]\nowner = "guide"\npaths = ["ctx.md"]\n'
        '[[passes]]\nname = "P1"\ncontext = "guide"\ntasks = ["find hello"]\n'
    )
    return plan


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["check", "run"])
def test_an_endless_plan_file_is_refused_at_the_bound(cli: Cli, raw: Any, command: str) -> None:
    out = refused_unchanged(raw, lambda: cli("pipeline", command, "/dev/zero", expect=2))
    assert f"/dev/zero is larger than {MAX_INPUT_BYTES:,} bytes" in out.stderr, out


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_plan_that_is_not_utf8_is_a_usage_error(
    cli: Cli, raw: Any, tmp_path: Path, command: str
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_bytes(b'name = "\xff"\n')
    out = refused_unchanged(raw, lambda: cli("pipeline", command, str(plan), expect=2))
    assert "plan.toml is not UTF-8 text (byte 8 is not): save it as UTF-8" in out.stderr, out


@pytest.mark.parametrize("worker", ["a b", "x" * (MAX_NAME - 5), "é"])
def test_pipeline_run_refuses_a_bad_worker_prefix_before_anything(
    cli: Cli, raw: Any, tmp_path: Path, worker: str
) -> None:
    plan = _plan(tmp_path)
    out = refused_unchanged(
        raw, lambda: cli("pipeline", "run", str(plan), "--worker", worker, expect=2)
    )
    assert "worker" in out.stderr and ("use only" in out.stderr or "shorter" in out.stderr), out
    assert "pass 1/1" not in out.stderr, out  # refused, not a run that began and stopped


# --- swarm run: the model and the worker prefix are checked before any claim


@pytest.mark.parametrize("model", ["", "  ", "m" * 129])
def test_run_refuses_a_bad_model_before_claiming(
    cli: Cli, swarm: Swarm, raw: Any, model: str
) -> None:
    t = swarm.post_task("q1", "do it")
    args = ("run", "--queue", "q1", "--exec", "cat >/dev/null", "--max-tasks", "1",
            "--idle-exit", "1", "--model", model)  # fmt: skip
    out = refused_unchanged(raw, lambda: cli(*args, expect=2))
    assert "model" in out.stderr and ("non-blank" in out.stderr or "shorten" in out.stderr), out
    assert swarm.get_task(t.id).status is TaskStatus.PENDING


def test_run_refuses_a_worker_prefix_its_slots_would_overflow(
    cli: Cli, swarm: Swarm, raw: Any
) -> None:
    t = swarm.post_task("q1", "do it")
    prefix = "w" * (MAX_NAME - 2)  # PREFIX-1 is 128 characters; PREFIX-10 is one too many
    args = ("run", "--queue", "q1", "--exec", "cat >/dev/null", "--max-tasks", "1",
            "--idle-exit", "1", "-c", "10", "--worker", prefix)  # fmt: skip
    out = refused_unchanged(raw, lambda: cli(*args, expect=2))
    assert f"the limit is {MAX_NAME - 3}" in out.stderr, out
    assert swarm.get_task(t.id).status is TaskStatus.PENDING


# --- the keyspace check the first round left unfinished: every refused call of the
# commands it did not reach leaves what is stored as it was.

BADS = ["", "   ", "a b", "\x1b[2J", "x" * 5000, "nan", "-1", "inf"]
TEMPLATES = [
    ("msg", "broadcast", "--from", "{}", "hi"),
    ("msg", "inbox", "{}"),
    ("msg", "inbox", "alice", "--limit", "{}"),
    ("msg", "inbox", "alice", "--wait", "{}"),
    ("msg", "mark-read", "--agent", "alice", "{}"),
    ("msg", "show", "--agent", "alice", "{}"),
    ("msg", "status", "{}"),
    ("pipeline", "retire", "{}", "--dry-run"),
    ("pipeline", "status", "{}"),
    ("prompt", "worker", "--queue", "{}"),
    ("retire", "{}"),
    ("retire", "--questions", "{}"),
    ("status", "--stale-after", "{}"),
    ("synth", "create", "--shard", "s1", "--pass", "p1", "--text", "{}", "--all-findings"),
    ("synth", "request", "{}", "--pass", "p1", "--instructions", "do"),
    ("synth", "show", "{}"),
    ("task", "cancel", "{}"),
    ("task", "claim", "{}"),
    ("task", "configure", "q1", "--retry-backoff", "{}"),
    ("task", "list", "--cursor", "{}"),
    ("task", "post", "q1", "d", "--delay", "{}"),
    ("task", "renew", "{task}", "--token", "{}"),
    ("task", "release", "{task}", "--token", "{}"),
    ("task", "report", "{task}", "--token", "{token}", "--summary", "s", "--confidence", "{}"),
    ("task", "requeue", "{}"),
    ("task", "wait", "--queue", "q1", "--timeout", "{}"),
    ("watch", "--once", "--interval", "{}"),
]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: " ".join(t[:2]))
def test_refused_calls_store_nothing(
    cli: Cli, swarm: Swarm, raw: Any, held: tuple[str, str], template: tuple[str, ...]
) -> None:
    swarm.register("worker", name="alice")
    swarm.send("alice", "hello", sender="bob")
    task_id, token = held
    refused = 0
    for bad in BADS:
        args = [a.replace("{task}", task_id).replace("{token}", token) for a in template]
        args = [bad if a == "{}" else a for a in args]
        before = keyspace(raw)
        out = cli(*args, env={"SWARM_AGENT": "bob"}, expect=None)
        if out.code in (0, 3):  # (some values are fine where others are not: -1 as a name)
            continue
        refused += 1
        assert out.code in (1, 2), out
        assert "Traceback" not in out.stderr, out
        assert keyspace(raw) == before, (args[:6], out)
    assert refused >= len(BADS) // 2, template


# --- an input path the system cannot open for another reason is a usage error, said safely


def test_a_path_too_long_to_open_is_a_usage_error(cli: Cli, raw: Any) -> None:
    path = "x" * 5000
    out = refused_unchanged(raw, lambda: cli("task", "post", "q1", "--jsonl", path, expect=2))
    assert "cannot read xxx" in out.stderr and "give the path of a readable file" in out.stderr
    assert len(out.stderr) < 1000, out


# --- a URL's timeout that is no finite number is refused, not a traceback at connect


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("option", ["socket_timeout", "connect_timeout"])
def test_a_url_timeout_that_is_not_finite_is_refused(
    redis_url: str, raw: Any, option: str, value: str
) -> None:
    cli = Cli(f"{redis_url}?{option}={value}")
    out = refused_unchanged(raw, lambda: cli("status", expect=2))  # (a bad --url: usage)
    assert f"option {option}='{value}'" in out.stderr and "not a finite number" in out.stderr


# --- text given on the command line in bytes that are not UTF-8 (a surrogateescape'd
# argument) is a usage error, not a JSON encoding error of the core


NOT_UTF8 = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "args",
    [
        ("task", "report", "{task}", "--token", "{token}", "--summary", NOT_UTF8),
        ("task", "fail", "{task}", "--token", "{token}", "--error", NOT_UTF8),
        (
            "synth",
            "create",
            "--shard",
            "s1",
            "--pass",
            "p1",
            "--finding",
            "f-x",
            "--text",
            NOT_UTF8,
        ),
        ("task", "post", "q1", NOT_UTF8),
        ("msg", "send", "alice", NOT_UTF8),
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_inline_text_that_is_not_utf8_is_a_usage_error(
    cli: Cli, raw: Any, held: tuple[str, str], args: tuple[str, ...]
) -> None:
    task_id, token = held
    argv = [a.replace("{task}", task_id).replace("{token}", token) for a in args]
    out = refused_unchanged(raw, lambda: cli(*argv, env={"SWARM_AGENT": "bob"}, expect=2))
    assert "is not UTF-8 text: give it as UTF-8" in out.stderr, out


def test_a_host_nothing_resolves_is_shown_escaped_by_listen() -> None:
    """``_net.listen``'s own refusal (every web face's) showed --host raw: a newline in it
    split the error line."""
    from redis_swarm import ConfigError
    from redis_swarm._net import listen

    with pytest.raises(ConfigError) as refused:
        listen("no-such-host\n.invalid", 0)
    said = str(refused.value)
    assert "\n" not in said and shown_host("no-such-host\n.invalid") in said, said
