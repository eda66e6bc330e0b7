"""The page shows what agents wrote as the CLI does: with its control characters and the
bidirectional overrides that would reorder a cell (a description "\\u202egnp.exe" reads
"exe.png") escaped, in every cell and title. format.js's printable is checked against
_printable.printable under node; then the page's own script (dashboard.js) renders a real
/api/status under node, with a small stand-in for the DOM, and no text it put on the page
holds such a character."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest
from starlette.testclient import TestClient

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._printable import printable
from redis_swarm.dashboard.app import STATIC_DIR, create_app

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None and not os.environ.get("CI"),
    reason="needs node (scripts/system-deps.sh installs it)",
)

SWARM = "page-text"
# The characters printable escapes (control characters but tab and newline, DEL, the
# bidirectional overrides and isolates, the line and paragraph separators), and some around
# them it keeps.
HIDDEN = {*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F)}
HIDDEN |= set(range(0x2066, 0x206A))
HIDDEN -= {0x09, 0x0A}
AROUND = [*range(0xA1), *range(0x2028, 0x2030), *range(0x2060, 0x206B)]
RLO = "\u202e"


def test_format_js_escapes_as_the_cli_does() -> None:
    text = "".join(chr(c) for c in AROUND) + "ok\u00e9\u05d0"
    script = (
        f"const f = require({json.dumps(str(STATIC_DIR / 'format.js'))});"
        "const text = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(f.printable(text)));"
    )
    out = subprocess.run(
        ["node", "-e", script], input=json.dumps(text), capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout) == printable(text)
    assert "\\u202e" in printable(text) and RLO not in printable(text)


# A stand-in for the few DOM calls dashboard.js makes, enough to run it under node: it
# fetches the snapshot given on stdin, renders it, and prints every text and title it set.
_PAGE = r"""
const fs = require("fs");
const snap = JSON.parse(fs.readFileSync(0, "utf8"));
class Node {}
class Text extends Node { constructor(data) { super(); this.data = String(data); } }
class El extends Node {
  constructor(tag) { super(); this.tag = tag; this.children = []; this.attrs = {}; this.style = {};
    this.className = ""; this.hidden = false;
    this.classList = { add: () => {}, contains: () => false }; }
  set textContent(v) { this.children = [new Text(v)]; }
  get textContent() {
    return this.children.map((c) => c instanceof Text ? c.data : c.textContent).join("");
  }
  set title(v) { this.attrs.title = String(v); }
  get title() { return this.attrs.title || ""; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return this.attrs[k]; }
  append(...nodes) { this.children.push(...nodes); }
  prepend(...nodes) { this.children.unshift(...nodes); }
  replaceChildren(...nodes) { this.children = nodes; }
  addEventListener() {}
  querySelectorAll() { return []; }
  get firstElementChild() { return this.children.find((c) => c instanceof El) || null; }
}
const byId = {};
globalThis.Node = Node;
globalThis.window = globalThis;
globalThis.swarmFormat = require(process.argv[1]);
globalThis.document = {
  title: "", visibilityState: "visible",
  querySelector: () => ({ content: "task.posted" }),
  querySelectorAll: () => [],
  createElement: (tag) => new El(tag),
  createTextNode: (data) => new Text(data),
  getElementById: (id) => byId[id] || (byId[id] = new El("div")),
};
globalThis.location = { search: "", pathname: "/", hash: "" };
globalThis.sessionStorage = { getItem: () => null, setItem: () => {} };
globalThis.history = { replaceState: () => {} };
globalThis.EventSource = class { addEventListener() {} close() {} };
globalThis.EventSource.CLOSED = 2;
globalThis.fetch = async () => ({ status: 200, ok: true, json: async () => snap });
const later = setTimeout;
globalThis.setInterval = () => 0;
globalThis.setTimeout = () => 0;
require(process.argv[2]);
later(() => {
  const texts = [document.title];
  const walk = (node) => {
    if (node instanceof Text) { texts.push(node.data); return; }
    for (const [k, v] of Object.entries(node.attrs)) {
      if (k === "title" || k === "aria-label") texts.push(v);
    }
    node.children.forEach(walk);
  };
  Object.values(byId).forEach(walk);
  const dead = byId["dead"].textContent;
  console.log(JSON.stringify({ texts, dead }));
}, 200);
"""


def _render(snap: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        ["node", "-e", _PAGE, str(STATIC_DIR / "format.js"), str(STATIC_DIR / "dashboard.js")],
        input=json.dumps(snap), capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_every_text_the_page_shows_is_escaped(redis_url: str) -> None:
    """A dead letter, its error, a finding, its source, and a synthesis, each written
    with a right-to-left override (and an ESC): the page shows each escaped."""
    spoof = f"invoice{RLO}fdp.exe\x1b[2J"
    with Swarm(redis_url, swarm=SWARM) as swarm:
        swarm.register("shard", name="shard-1")  # (its labels refuse such characters)
        doomed = swarm.post_task("q.scan", spoof, pass_name="Pass 1", max_attempts=1)
        task = swarm.claim("q.scan", worker="w-1")
        assert task is not None and task.id == doomed.id
        swarm.fail(task.id, task.token, f"crashed on {spoof}", retry=False)
        other = swarm.post_task("q.scan", "fine")
        task = swarm.claim("q.scan", worker="w-1")
        assert task is not None and task.id == other.id
        finding = swarm.report(
            task.id, task.token, {"summary": spoof, "sources": [spoof]}, worker="w-1"
        )
        swarm.synthesize("shard-1", "Pass 1", spoof, [finding.id])
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), close_swarm=True)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        snap = client.get("/api/status").json()
    assert snap["dead"][0]["description"] == spoof  # the API keeps the data as it is

    page = _render(snap)
    shown = [t for t in page["texts"] if t]
    raw = [t for t in shown if any(ord(c) in HIDDEN for c in t)]
    assert not raw, raw
    assert "invoice\\u202efdp.exe\\x1b[2J" in page["dead"]
    assert sum("\\u202e" in t for t in shown) >= 8  # every panel's text, and the titles
