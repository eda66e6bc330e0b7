"""A scripted worker: searches the shard's context for its task's term with the swarm CLI and
prints a JSON finding (what a `claude -p` worker would do with a model)."""

import json
import os
import subprocess
import sys

sys.stdin.read()  # the prompt: this worker knows its job
task = json.loads(
    subprocess.run(
        ["swarm", "--json", "task", "show", os.environ["SWARM_TASK_ID"]],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
)
data = task.get("data") or {}
data = data.get("data") or data  # the pipeline wraps it with the question and syntheses
term, near = data.get("term", "timeout"), data.get("near")
search = ["swarm", "--json", "context", "search", os.environ["SWARM_CONTEXT_OWNER"]]
search += [f"{term}.*{near}|{near}.*{term}", "--regex"] if near else [term]
hits = json.loads(
    subprocess.run(
        [*search, "--max-hits", "1000", "--around", "0"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
)["items"]
what = f"{term!r} with {near!r}" if near else repr(term)
print(
    json.dumps(
        {
            "summary": f"{len(hits)} lines of the guide mention {what}",
            "sources": [f"line {h['line']}" for h in hits[:5]],
            "confidence": 1.0,
        }
    )
)
