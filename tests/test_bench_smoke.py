"""The benchmark harness runs (tiny sizes, a handful of samples). Figures are not checked:
benchmarks are never timed tests; they run from benchmarks/run_all.py (make bench)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from benchmarks import contexts, lifecycle, roundtrips, run_all, scale, server_cost, slow_links
from benchmarks._common import Config, RedisProcess, Stats, context_text, percentile
from benchmarks.jsonl_bus import JsonlBus
from benchmarks.seed import SeedSwarm
from click.testing import CliRunner

from redis_swarm.cli import main

if TYPE_CHECKING:
    from benchmarks._callgrind import CallgrindServer

TINY = Config(tiny=True, workers=(1,))


@pytest.fixture(scope="module")
def server() -> Iterator[RedisProcess]:
    with RedisProcess() as proc:
        yield proc


@pytest.fixture(scope="module")
def callgrind() -> Iterator[CallgrindServer]:
    """One server under callgrind for the module's callgrind tests (skipped where valgrind is
    missing): valgrind takes seconds to start one, and each measure zeroes the counters first,
    so what ran on it before is never counted."""
    from benchmarks import _callgrind

    if reason := _callgrind.missing():
        pytest.skip(reason)
    with _callgrind.CallgrindServer() as cg:
        yield cg


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3
    stats = Stats.of([0.001, 0.002, 0.003])
    assert stats.p50 == pytest.approx(2.0)
    assert stats.n == 3


def test_context_text_is_exact_and_deterministic() -> None:
    assert len(context_text(12_345).encode()) == 12_345
    assert context_text(5000) == context_text(5000)


def test_jsonl_bus_finds_the_latest_context(tmp_path: Path) -> None:
    bus = JsonlBus(tmp_path / "bus.jsonl")
    bus.fill(11, "shard", "first")
    bus.append({"type": "context", "owner": "shard", "content": "second"})
    bus.append({"type": "context", "owner": "other", "content": "no"})
    assert bus.latest_context("shard") == "second"
    assert bus.latest_context("nobody") is None


def test_seed_layout_round_trips_big_contexts(server: RedisProcess) -> None:
    server.flush()
    seed = SeedSwarm(server.client(decode_responses=True))
    text = context_text(2_500_000)  # three 1 MB chunks
    seed.load_context("s", text)
    assert seed.get_parent_context("s") == text
    seed.load_context("small", "tiny")
    assert seed.get_parent_context("small") == "tiny"
    task_id = seed.spawn_worker_task("s", "q", "d", {"n": 1})
    claimed = seed.claim_task("q", "w")
    assert claimed is not None and claimed["task_id"] == task_id
    seed.report_finding(claimed, "w", {"summary": "ok"})
    assert seed.swarm_status(["s"]) == {"s": 0}
    seed.redis.close()


def test_contexts_benchmark_runs(server: RedisProcess) -> None:
    rows = contexts.run(server, TINY)
    methods = {r.method for r in rows}
    assert contexts.FLOOR in methods
    assert "redis-swarm warm (unchanged), str" in methods
    assert any(m.startswith("JSONL bus") for m in methods)
    publish = contexts.publish_rows(server, TINY)
    assert "redis-swarm" in contexts.report(rows, publish)


def test_roundtrips_are_counted(server: RedisProcess) -> None:
    steps = roundtrips.run(server, TINY)
    by = {(s.system, s.step): s for s in steps}
    assert by[("seed", "claim")].round_trips == 3  # LPOP, HGETALL, HSET
    warm = by[("redis-swarm", "= next cycle (context unchanged)")]
    cold = by[("redis-swarm", "= first cycle (cold cache)")]
    assert 0 < warm.round_trips <= cold.round_trips
    assert "round trips" in roundtrips.report(steps)


def test_server_cost_counts_the_commands_of_each_operation(server: RedisProcess) -> None:
    result = server_cost.child(server.url, 5)
    assert set(result) == set(server_cost.PHASES)
    for phase in server_cost.PHASES:
        assert result[phase]["scripts"] == 1  # one script call per operation
        assert result[phase]["commands"] > 5  # those it runs, counted
    table = server_cost.report([Path("tree")], [{Path("tree"): result}], detail=True)
    assert "report_next | commands" in table and "fcall 1" in table


def test_server_cost_counts_instructions_under_callgrind(callgrind: CallgrindServer) -> None:
    from benchmarks import _callgrind

    cg = callgrind
    result = server_cost.child(cg.url, 3, cg.target)
    with cg.client() as client:
        ping = cg.measure(lambda: [client.ping() for _ in range(10)]).per(10)
    post = result["post"]["instructions"]
    assert set(post) == {"total", *_callgrind.PARTS}
    # A script is many PINGs' work, and the commands it runs are inside it.
    assert post["total"] > 10 * ping["total"] > 0
    assert post["scripts"] > post["commands run by scripts"] > 0
    assert result["report"]["instructions"]["numbers formatted (cjson)"] > 0  # the record
    table = server_cost.report([Path("tree")], [{Path("tree"): result}], detail=False)
    assert "report_next | kIr scripts" in table


def _callgrind_tool(
    name: str,
    n: int,
    callgrind: CallgrindServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """What ``python -m benchmarks.NAME -n N`` prints, run on the module's callgrind server
    (the tool's ``with CallgrindServer() as server`` gets that one, left running)."""
    tool = importlib.import_module(f"benchmarks.{name}")
    monkeypatch.setattr(tool, "CallgrindServer", lambda: contextlib.nullcontext(callgrind))
    monkeypatch.setattr(sys, "argv", [name, "-n", str(n)])
    tool.main()
    return capsys.readouterr().out


def test_record_layout_counts_three_layouts(
    callgrind: CallgrindServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _callgrind_tool("record_layout", 5, callgrind, monkeypatch, capsys)
    names = r"JSON blob|JSON edited as text|hash per task"
    counts = re.findall(rf"^({names}): ([\d.]+) thousand", out, re.MULTILINE)
    assert [name for name, _ in counts] == ["JSON blob", "JSON edited as text", "hash per task"]
    assert all(float(n) > 0 for _, n in counts)
    assert "memory per record" in out


# Each price is a measure under callgrind (two callgrind_control calls, a callgrind_annotate
# and the calls, some 50 times slower than without: about half a second), the same code for
# every Lua operation: the smoke test prices every FCALL shape and these operations (its
# assertions name the cjson ones), one FCALL each (-n 1: the counts are exact, and what the
# assertions compare differs two- to eightfold), and runs every operation of the tool's
# library once on a plain server.
PRICED = (
    "redis.call('HGET') of a missing field",
    "cjson.decode of the record",
    "cjson.decode and cjson.encode of the record",
)


def test_lua_costs_runs_every_operation_and_prices_every_call_shape(
    server: RedisProcess,
    callgrind: CallgrindServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import lua_costs

    every = dict(lua_costs.OPERATIONS)
    with server.client() as client:
        client.function_load(lua_costs.library(), replace=True)
        for function, keys, args in lua_costs.CALLS.values():
            assert client.fcall(function, keys, *args)
        for i, name in enumerate(every):
            assert client.fcall(f"op{i}", 1, lua_costs.KEY) == 1, name
        client.function_delete("lua_costs")
    monkeypatch.setattr(lua_costs, "OPERATIONS", {name: every[name] for name in PRICED})
    out = _callgrind_tool("lua_costs", 1, callgrind, monkeypatch, capsys)
    priced = {
        name: int(n.replace(",", ""))
        for n, name in re.findall(r"^\s*(-?[\d,]+)  (.+)$", out, re.MULTILINE)
    }
    assert set(priced) == set(lua_costs.CALLS) | set(lua_costs.OPERATIONS), out
    # (orders the counts, exact, cannot invert: more bytes, more work)
    long, short = (f"the same with 26 arguments of {n} bytes" for n in (480, 8))
    assert priced[long] > priced[short]
    decoded = priced["cjson.decode of the record"]
    assert priced["cjson.decode and cjson.encode of the record"] > decoded > 0


def test_slow_links_benchmark_runs(server: RedisProcess) -> None:
    result = slow_links.run(server, TINY)
    ops = {row.op: row for row in result.ops}
    assert ops["claim (tasks pending)"].big_round_trips == 1
    assert ops["get_context, cold"].big_round_trips == 1  # the pointer and the copy together
    links = {row.link for row in result.fetch}
    assert "loopback, no proxy" in links and len(links) == 3
    raw, packed = (r.bytes_down for r in result.fetch[:2])
    assert raw is not None and packed is not None and 0 < packed < raw  # zstd pays on text
    assert "bytes zstd / raw" in slow_links.report(result)


def test_scale_benchmark_runs(server: RedisProcess) -> None:
    result = scale.run(server, TINY)
    assert [lv.tasks for lv in result.levels] == [100, 1000]
    assert result.levels[0].seed_status is not None
    assert result.bytes_per_finding > 0
    assert result.heartbeat is not None
    assert "queue_stats" in scale.report(result)


@pytest.mark.parametrize("peer", ["redis-swarm", "huey"])
def test_lifecycle_runs_real_workers(
    server: RedisProcess, peer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if peer != "redis-swarm":
        pytest.importorskip(peer)
    # Before each phase the tool waits, up to 2 to 2.4 s, for the machine to go quiet, for
    # the figures' sake (a worker's imports are waited for by its warm-up tasks): a busy test
    # machine never does, and the figures are not checked here. Half a second each.
    wait_idle = lifecycle.wait_idle

    def shorter(timeout_s: float = 30.0, **kwargs: float) -> None:
        wait_idle(timeout_s=min(timeout_s, 0.5), **kwargs)

    monkeypatch.setattr(lifecycle, "wait_idle", shorter)
    result = lifecycle.run_one(peer, 1, server, TINY)
    assert result.error is None, result.error
    assert result.tasks == 20
    assert result.throughput > 0
    assert result.latency is not None and result.latency.n >= 3
    assert peer in lifecycle.report([result])
    ranged = dataclasses.replace(result, throughput=2000.0, rounds=[1500.0, 2000.0, 2600.0])
    assert "| 2,000 (1,500-2,600) |" in lifecycle.report([ranged])


def test_run_all_keeps_other_sections(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Work queue\n\nkept by hand.\n")
    run_all.update_doc(doc, {"about": "## About\nfirst"})
    run_all.update_doc(doc, {"about": "## About\nsecond", "targets": "## Targets\nt"})
    text = doc.read_text()
    assert "kept by hand." in text
    assert "second" in text and "first" not in text
    assert text.count("<!-- BEGIN bench:about") == 1
    assert text.count("## About") == 1
    assert text.index("## Work queue") < text.index("bench:targets")


def test_a_heading_rewriter_stops_before_generated_blocks(tmp_path: Path) -> None:
    # bench_contexts.py --write rewrites "## Contexts" up to the next heading.
    from benchmarks import bench_contexts

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Contexts\n\nold\n")
    run_all.update_doc(doc, {"about": "## About\nfigures"})
    bench_contexts.write_section(doc, "## Contexts\n\nnew\n")
    run_all.update_doc(doc, {"about": "## About\nfigures again"})
    text = doc.read_text()
    assert "new" in text and "old" not in text
    assert text.count("<!-- BEGIN bench:about") == 1
    assert "figures again" in text


def test_swarm_bench_quick_json(redis_url: str) -> None:
    result = CliRunner().invoke(main, ["--url", redis_url, "bench", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [r["name"] for r in data["results"]]
    assert "ping" in names
    assert "fetch 800K tokens warm" in names
    assert "claim + report" in names
    floor = next(r for r in data["results"] if r["name"] == "raw GET 800K tokens (floor)")
    assert floor["vs_floor"] == 1.0


def test_swarm_bench_prints_a_table_and_cleans_up(redis_url: str) -> None:
    import redis

    result = CliRunner().invoke(main, ["--url", redis_url, "bench", "--quick"])
    assert result.exit_code == 0, result.output
    assert "claim + report" in result.output
    assert "vs raw GET" in result.output
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0  # the scratch swarm is gone, chunks included
    finally:
        client.close()


def test_async_stall_runs(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import async_stall

    assert async_stall.main(["--url", redis_url, "--quick", "--size", "50000"]) == 0
    out = capsys.readouterr().out
    assert "| publish, zstd |" in out and "| cold get_context, none |" in out
