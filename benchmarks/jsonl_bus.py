"""A JSONL bus: the file-based coordination the seed replaced (one append-only file).

Writers append one JSON object per line. A reader that wants an owner's latest context scans
the whole file (it cannot know a later line does not replace the one it found), parsing each
line. Measured with the file in the page cache, which is its best case.
"""

from __future__ import annotations

import json
from pathlib import Path


class JsonlBus:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, message: dict[str, object]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(message) + "\n")

    def fill(self, messages: int, owner: str, context: str) -> None:
        """``messages`` lines: small chatter, with the owner's context in the middle."""
        body = "status update: " + "worker claimed a task and is reading the context " * 3
        with open(self.path, "w", encoding="utf-8") as f:
            for i in range(messages):
                if i == messages // 2:
                    msg: dict[str, object] = {"type": "context", "owner": owner, "content": context}
                else:
                    msg = {"type": "message", "from": f"worker-{i % 16}", "seq": i, "body": body}
                f.write(json.dumps(msg) + "\n")

    def latest_context(self, owner: str) -> str | None:
        latest: str | None = None
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                msg = json.loads(line)
                if msg.get("type") == "context" and msg.get("owner") == owner:
                    latest = msg["content"]
        return latest
