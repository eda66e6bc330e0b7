"""A scripted stand-in for ``claude -p --output-format json`` (no model is reachable here),
for the ``swarm serve`` tests and the cost figures of docs/ask.md.

It reads the prompt on stdin and prints Claude Code's result object. ``--resume ID`` continues
a conversation kept in ``$FAKE_STATE/sessions/ID`` (the tokens it holds come back as cache
reads, as Claude's prompt cache does); an unknown or ``$FAKE_STATE/broken`` session is an
error result. The answer names the ``Q<digits>`` tag of the question. Every call is logged
to ``$FAKE_STATE/calls.jsonl``. ``$FAKE_STATE/slow-once`` makes one call sleep 60 s first.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

SOURCE = __file__


def main() -> int:
    state = Path(os.environ["FAKE_STATE"])
    (state / "sessions").mkdir(parents=True, exist_ok=True)
    args = sys.argv[1:]
    resume = args[args.index("--resume") + 1] if "--resume" in args else None
    prompt = sys.stdin.read()
    with (state / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": args, "resume": resume, "pid": os.getpid(),
                              "prompt_chars": len(prompt)}) + "\n")  # fmt: skip
    slow = state / "slow-once"
    if slow.exists():
        slow.unlink()
        time.sleep(60)
    broken = (state / "broken").read_text().split() if (state / "broken").exists() else []
    held = 0
    if resume is not None:
        path = state / "sessions" / resume
        if resume in broken or not path.exists():
            why = f"No conversation found with session ID: {resume}"
            print(json.dumps({"type": "result", "subtype": "error_during_execution",
                              "is_error": True, "session_id": resume, "result": why}))  # fmt: skip
            return 1
        held = int(path.read_text())
    session = resume or str(uuid.uuid4())
    new_in = len(prompt) // 4
    tag = re.search(r"Q\d+", prompt)
    answer = f"A{tag.group(0)[1:]}: from the context." if tag else "no tag"
    out = len(answer) // 4
    (state / "sessions" / session).write_text(str(held + new_in + out))
    cost = (new_in * 3 + held * 0.3 + out * 15) / 1e6
    print(json.dumps({
        "type": "result", "subtype": "success", "is_error": False, "result": answer,
        "session_id": session, "total_cost_usd": cost,
        "usage": {"input_tokens": new_in, "cache_read_input_tokens": held,
                  "output_tokens": out},
        "modelUsage": {"claude-fake-1": {"inputTokens": new_in, "outputTokens": out,
                                         "cacheReadInputTokens": held, "costUSD": cost}},
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
