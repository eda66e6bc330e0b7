"""Ask and answer, measured: what asking a shard saves, and how soon an answer arrives.

1. Tokens and cost of N workers that each need one fact from a shard's context, with the
   scripted ``claude -p --output-format json`` of the tests (tests/_fake_claude.py: it counts
   4 characters a token, keeps a ``--resume`` conversation whose tokens come back as cache
   reads, and prices them like a Sonnet-class model: $3 per million fresh input tokens,
   $0.30 cached, $15 output):
   - *read*: each worker puts the whole context in its own prompt;
   - *ask*: each worker asks; ``swarm serve --session`` answers every question in one
     conversation, which read the context once (the question prompt carries it inline the
     first time);
   - *ask, no session*: the same, a new conversation (the context inline again) per question.
   The asker's own prompt is the same in every case and left out.
2. Latency from the moment an answer is reported (``answer`` returned) to the moment
   ``ask`` returns in another thread: the completion event wakes the asker's XREAD, then
   one round trip reads the finding. Figures, not a timed test.

Run::

    python benchmarks/ask.py              # 400 KB context (~100K tokens), 10 questions
    python benchmarks/ask.py --quick      # 100 KB, 5 questions, fewer latency rounds
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import RedisProcess, context_text, ensure_paths, md_table

ensure_paths()

from redis_swarm import Swarm, Usage  # noqa: E402
from redis_swarm._runner import ServeOptions, Server  # noqa: E402
from redis_swarm._runner.output import read_output  # noqa: E402

FAKE = Path(__file__).resolve().parent.parent / "tests" / "_fake_claude.py"
CLAUDE = f"{sys.executable} {FAKE} -p --output-format json"


def _fake(prompt: str) -> Usage:
    """One scripted agent run with ``prompt``: what it reports it cost."""
    import subprocess

    out = subprocess.run(
        CLAUDE.split(), input=prompt, capture_output=True, text=True, check=True
    ).stdout
    usage = read_output(out).usage
    assert usage is not None
    return usage


def _row(name: str, usages: list[Usage]) -> list[object]:
    fresh = sum((u.tokens_in or 0) - (u.cached_in or 0) for u in usages)
    cached = sum(u.cached_in or 0 for u in usages)
    cost = sum(u.cost_usd or 0 for u in usages)
    return [name, f"{fresh:,}", f"{cached:,}", f"{cost:.4f}"]


def _asked(swarm: Swarm, questions: int, session: bool) -> list[Usage]:
    command = CLAUDE + (" --resume {session}" if session else "")
    server = Server(
        swarm,
        ServeOptions(
            owner="book", command=command, session=session, inline_max_tokens=10**7, poll_s=0.2
        ),
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        usages = []
        for i in range(questions):
            answer = swarm.ask("book", f"Q{i}: what does part {i} say?", timeout_s=120)
            assert answer.usage is not None
            usages.append(answer.usage)
        return usages
    finally:
        server.drain()
        thread.join(30)


def cost(url: str, size: int, questions: int) -> str:
    text = context_text(size)
    with Swarm(url, swarm="ask-cost") as swarm, tempfile.TemporaryDirectory() as state:
        os.environ["FAKE_STATE"] = state
        swarm.publish_context("book", text, source="book.md")
        read = [_fake(f"{text}\n\nQ{i}: what does part {i} say?") for i in range(questions)]
        rows = [
            _row(f"read: {questions} workers read the context", read),
            _row(f"ask, no session: {questions} questions", _asked(swarm, questions, False)),
            _row(f"ask, --session: {questions} questions", _asked(swarm, questions, True)),
        ]
    head = ["", "fresh input tokens", "cached input tokens", "cost (USD)"]
    return f"context {size:,} bytes (~{size // 4:,} tokens)\n\n" + md_table(head, rows)


def _answer_one(swarm: Swarm, stamp: list[float]) -> None:
    """Answer one question and note when the answer was stored."""
    task = swarm.claim("ask.book", worker="librarian", wait_s=10)
    assert task is not None
    swarm.answer(task.id, task.token, "yes", worker="librarian")
    stamp.append(time.perf_counter())


def latency(url: str, rounds: int) -> str:
    with Swarm(url, swarm="ask-latency") as swarm:
        swarm.publish_context("book", "tiny\n", source="t.md")
        gaps: list[float] = []
        for i in range(rounds):
            stamp: list[float] = []
            thread = threading.Thread(target=_answer_one, args=(swarm, stamp))
            thread.start()
            swarm.ask("book", f"Q{i}?", timeout_s=10)
            returned = time.perf_counter()
            thread.join()
            gaps.append((returned - stamp[0]) * 1000)
        ping: list[float] = []
        for _ in range(rounds):
            start = time.perf_counter()
            swarm.ping()
            ping.append((time.perf_counter() - start) * 1000)
    gaps.sort()
    rows = [
        ["answer reported -> ask returns", f"{statistics.median(gaps):.2f}",
         f"{gaps[int(len(gaps) * 0.9)]:.2f}"],
        ["one PING round trip", f"{statistics.median(ping):.2f}",
         f"{sorted(ping)[int(len(ping) * 0.9)]:.2f}"],
    ]  # fmt: skip
    return f"{rounds} rounds\n\n" + md_table(["", "median ms", "p90 ms"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing server (default: a private one)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size, questions, rounds = (100_000, 5, 50) if args.quick else (400_000, 10, 200)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(RedisProcess()).url
        print(cost(url, size, questions))
        print()
        print(latency(url, rounds))


if __name__ == "__main__":
    main()
