"""The benchmark harness runs (tiny sizes, a handful of samples). Figures are not checked:
benchmarks are never timed tests; they run from benchmarks/run_all.py (make bench)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks import contexts, lifecycle, roundtrips, run_all, scale, server_cost, slow_links
from benchmarks._common import Config, RedisProcess, Stats, context_text, percentile
from benchmarks.jsonl_bus import JsonlBus
from benchmarks.seed import SeedSwarm
from click.testing import CliRunner

from redis_swarm.cli import main

TINY = Config(tiny=True, workers=(1,))


@pytest.fixture(scope="module")
def server() -> Iterator[RedisProcess]:
    with RedisProcess() as proc:
        yield proc


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


def test_server_cost_counts_instructions_under_callgrind() -> None:
    from benchmarks import _callgrind

    if reason := _callgrind.missing():
        pytest.skip(reason)
    with _callgrind.CallgrindServer() as cg:
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
    name: str, n: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """What ``python -m benchmarks.NAME -n N`` prints (skipped where valgrind is missing)."""
    from benchmarks import _callgrind

    if reason := _callgrind.missing():
        pytest.skip(reason)
    monkeypatch.setattr(sys, "argv", [name, "-n", str(n)])
    importlib.import_module(f"benchmarks.{name}").main()
    return capsys.readouterr().out


def test_record_layout_counts_three_layouts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _callgrind_tool("record_layout", 5, monkeypatch, capsys)
    names = r"JSON blob|JSON edited as text|hash per task"
    counts = re.findall(rf"^({names}): ([\d.]+) thousand", out, re.MULTILINE)
    assert [name for name, _ in counts] == ["JSON blob", "JSON edited as text", "hash per task"]
    assert all(float(n) > 0 for _, n in counts)
    assert "memory per record" in out


def test_lua_costs_prices_every_call_and_operation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import lua_costs

    out = _callgrind_tool("lua_costs", 3, monkeypatch, capsys)
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
def test_lifecycle_runs_real_workers(server: RedisProcess, peer: str) -> None:
    if peer != "redis-swarm":
        pytest.importorskip(peer)
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
