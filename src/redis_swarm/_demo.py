"""``swarm demo``: the seed's Pass 1, for real, on the configured server (embedded by default).

A memory shard publishes a real text of about 530 KB (a field guide to Python's standard
library, from CPython's docstrings), posts five research tasks, and five separate worker
processes each claim one, search the shard's context for their query, and report the lines they
found as a structured finding. The shard then collects the five findings and writes a synthesis
citing them. Every step is timed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ._client import Swarm
from ._codec import counted
from ._config import Settings, handed_url
from ._env import ENV_NAME, ENV_URL
from ._models import Finding
from ._printable import short_version
from .roles import MemoryShard, Worker

__all__ = ["CORPUS_NAME", "DemoResult", "corpus_text", "run_demo", "work_one_task"]

CORPUS_NAME = "stdlib-field-guide.md"

# A finding's summary as the account shows it: one line of a terminal.
FINDING_CHARS = 110

# Five research questions, each with the words a worker searches the context for.
QUERIES: list[tuple[str, list[str]]] = [
    ("How do child processes time out, and what happens then?", ["timeout", "subprocess"]),
    ("Which tools protect shared state between threads?", ["lock", "thread"]),
    ("How is data compressed, and how is it checked?", ["compress", "checksum", "crc"]),
    ("How are text encodings and decoding errors handled?", ["encoding", "decode", "errors"]),
    ("How can scheduled or running work be cancelled?", ["cancel", "schedul"]),
]


def corpus_text() -> str:
    return (resources.files(__package__) / "data" / CORPUS_NAME).read_text()


@dataclass
class DemoResult:
    """What the demo did, for tests and ``--json``."""

    url: str
    swarm: str
    shard: str
    context_version: str = ""
    context_bytes: int = 0
    tasks: list[str] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    synthesis_id: str = ""
    synthesis: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)


def _section_of(lines: list[str], index: int) -> str:
    """The nearest heading above line ``index`` (0-based): names what a match is about."""
    for i in range(index, -1, -1):
        if lines[i].startswith("#"):
            return lines[i].lstrip("#").strip()
    return "top"


def work_one_task(worker: Worker, queue: str) -> dict[str, Any] | None:
    """What one ephemeral worker process does: claim, read, search, report, forget."""
    started = time.perf_counter()
    task = worker.claim(queue)
    if task is None:
        return None
    claimed = time.perf_counter()
    text = worker.parent_context()
    fetched = time.perf_counter()
    words: list[str] = list(task.data["keywords"])
    pattern = "|".join(re.escape(w) for w in words)
    hits = worker.swarm.search_context(
        str(task.parent),  # parent_context() refused a task without one
        pattern,
        regex=True,
        max_hits=1000,
        around=0,
        version=worker.context_version,
    )
    lines = text.splitlines()
    # Rank lines by how many of the query's words their section and line share.
    scored = []
    for hit in hits:
        section = _section_of(lines, hit.line - 1)
        blob = (section + " " + hit.text).lower()
        score = sum(w in blob for w in words)
        scored.append((score, hit.line, section, hit.text.strip()))
    scored.sort(key=lambda item: (-item[0], item[1]))
    best = scored[:5]
    sections = sorted({s for _, _, s, _ in best})
    summary = (
        f"{len(hits)} lines of the context mention {' / '.join(words)}; the most relevant are in "
        + ", ".join(sections[:4])
        if best
        else f"The context says nothing about {' / '.join(words)}."
    )
    finding = {
        "summary": summary[:2000],
        "details": "\n".join(f"L{line} [{section}] {txt[:160]}" for _, line, section, txt in best),
        "sources": [f"{CORPUS_NAME}:{line}" for _, line, _, _ in best],
        "confidence": round(min(1.0, 0.4 + 0.12 * len(best)), 2),
        "query": task.description,
        "matches": len(hits),
    }
    reported = worker.report(finding)
    done = time.perf_counter()
    return {
        "worker": worker.worker_id,
        "pid": os.getpid(),
        "task": task.id,
        "finding": reported.id,
        "matches": len(hits),
        "claim_ms": round((claimed - started) * 1000, 2),
        "context_ms": round((fetched - claimed) * 1000, 2),
        "total_ms": round((done - started) * 1000, 2),
    }


def run_demo(
    settings: Settings,
    *,
    workers: int = 5,
    say: Callable[[str], None] = print,
    env: dict[str, str] | None = None,
) -> DemoResult:
    """Run Pass 1 end to end; ``say`` receives each line of the account."""
    t0 = time.perf_counter()
    swarm = Swarm(settings)
    swarm.ping()
    result = DemoResult(url=settings.url, swarm=settings.swarm, shard="")
    result.timings_ms["connect"] = _ms(t0)
    say(f"server     {settings.url} (swarm '{settings.swarm}') ready in {_ms(t0):.0f} ms")

    run = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    queue = f"demo.search_pass1.{run}"
    pass_name = f"Pass 1: Signal Capture ({run})"
    shard = MemoryShard("stdlib_research", model="demo-shard", swarm=swarm)
    result.shard = shard.agent_id
    say(f"shard      {shard.agent_id} registered")

    t = time.perf_counter()
    info = shard.publish(corpus_text(), CORPUS_NAME)
    result.context_version, result.context_bytes = info.version, info.size_bytes
    result.timings_ms["publish"] = _ms(t)
    say(
        f"context    {CORPUS_NAME}: {info.size_bytes:,} bytes, ~{info.tokens_est:,} tokens, "
        f"{counted(info.chunks, 'chunk')}, version {short_version(info.version)} published in "
        f"{_ms(t):.1f} ms"
    )

    t = time.perf_counter()
    for question, keywords in QUERIES:
        task = shard.post(queue, question, {"keywords": keywords}, pass_name=pass_name)
        result.tasks.append(task.id)
    result.timings_ms["post"] = _ms(t)
    say(f"tasks      posted {len(result.tasks)} research tasks to '{queue}' in {_ms(t):.1f} ms")

    t = time.perf_counter()
    result.workers = _run_workers(settings, queue, workers, env, say)
    result.timings_ms["workers"] = _ms(t)

    t = time.perf_counter()
    stats = swarm.wait(pass_name=pass_name, timeout_s=60)
    findings = shard.findings(pass_name=pass_name)
    result.findings = [f.to_dict() for f in findings]
    settled = ", ".join(f"{n} {status}" for status, n in stats.items() if n)
    say(f"collect    {len(findings)} findings for '{pass_name}' ({settled}) in {_ms(t):.1f} ms")
    for f in findings:
        say(f"  finding  {f.id}: {_cut_at_word(f.summary, FINDING_CHARS)}")

    t = time.perf_counter()
    text = _synthesis_text(pass_name, findings)
    synthesis = shard.synthesize(pass_name, text, [f.id for f in findings])
    result.synthesis_id, result.synthesis = synthesis.id, text
    result.timings_ms["synthesize"] = _ms(t)
    say(f"synthesis  {synthesis.id} cites {len(findings)} findings ({_ms(t):.1f} ms)")
    result.timings_ms["total"] = _ms(t0)
    say(f"done       Pass 1 in {_ms(t0) / 1000:.2f} s: workers forgot everything, Redis kept it")
    swarm.deregister(shard.agent_id)
    swarm.close()
    return result


def _run_workers(
    settings: Settings,
    queue: str,
    workers: int,
    env: dict[str, str] | None,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Start ``workers`` separate worker processes on ``queue`` and collect their reports."""
    child_env = {**os.environ, **(env or {})}
    child_env[ENV_URL] = handed_url(settings.render_url(mask=False))
    child_env[ENV_NAME] = settings.swarm
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "redis_swarm._demo", "--queue", queue],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env,
        )
        for _ in range(workers)
    ]
    say(f"workers    started {workers} separate worker processes")
    reports: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"a demo worker failed (exit {proc.returncode}): {err.strip()}")
        line = out.strip().splitlines()[-1] if out.strip() else "null"
        report = json.loads(line)
        if report is None:
            continue
        reports.append(report)
        say(
            f"  worker   pid {report['pid']} claimed {report['task']} in {report['claim_ms']} ms, "
            f"read the context in {report['context_ms']} ms, found {report['matches']} lines, "
            f"reported {report['finding']} and exited"
        )
    return reports


def _synthesis_text(pass_name: str, findings: list[Finding]) -> str:
    """The shard's synthesis: one line per finding, citing it."""
    return "\n".join(
        [f"Synthesis of {pass_name}: {len(findings)} workers searched {CORPUS_NAME}."]
        + [
            f"- {(f.extra or {}).get('query', f.task_id)} -> {f.summary[:160]} "
            f"(see {', '.join(f.sources[:2])}) [{f.id}]"
            for f in findings
        ]
    )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _cut_at_word(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut after its last whole word that fits, with
    ``…`` saying it goes on (a word longer than the limit is cut inside)."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    if not text[limit - 1].isspace() and " " in kept:
        kept = kept.rsplit(" ", 1)[0]
    return kept.rstrip(" ,;:") + "…"


def _worker_main(argv: list[str]) -> int:
    """Entry point of one demo worker process (``python -m redis_swarm._demo``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="redis_swarm._demo")
    parser.add_argument("--queue", required=True)
    args = parser.parse_args(argv)
    # Leaving the block deregisters the worker (``Worker.close``): once it has exited,
    # ``swarm status`` no longer counts it alive; its finding still names it.
    with Worker(swarm=Swarm.from_env(), model="demo-worker") as worker:
        report = work_one_task(worker, args.queue)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
