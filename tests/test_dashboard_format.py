"""The dashboard page writes costs and tokens as the CLI does: its format.js, run under node,
against redis_swarm._models' usd and usage_line on the same figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from redis_swarm._usage import usage_line, usd
from redis_swarm.dashboard.app import STATIC_DIR

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None and not os.environ.get("CI"),
    reason="needs node (scripts/system-deps.sh installs it)",
)

COSTS: list[float | None] = [
    None, 0.0, 0.0000123, 0.00005, 0.000049999, 2.5e-7, 0.03125, 0.0001, 1.58515, 0.36445,
    0.1 + 0.2, 0.123456789, 1234567.891, 0.99995, 9.99995, 1e-12,
]  # fmt: skip
TOKENS: list[tuple[int | None, int | None, int | None]] = [
    (None, None, None), (12345, 678, None), (None, 7, None), (2000, 100, 500), (0, 0, 0),
    (1_000_000_000_000, None, 999_999),
]  # fmt: skip


def run_node(cases: list[list[Any]]) -> list[list[str]]:
    script = (
        f"const f = require({json.dumps(str(STATIC_DIR / 'format.js'))});"
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(cases.map(([c, i, o, k]) => "
        "[f.usd(c), f.usd(c, 'cost unknown'), f.usageLine(c, i, o, k)])));"
    )
    out = subprocess.run(
        ["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    result: list[list[str]] = json.loads(out.stdout)
    return result


def test_the_page_writes_costs_and_tokens_as_the_cli_does() -> None:
    """Among them: $0.0000123 reads $0.000012 (not toFixed(4)'s $0.0000), an unknown
    tokens_in "-" (not "0 in"), a half-way cost rounded as Python rounds it."""
    cases = [(c, i, o, k) for c in COSTS for i, o, k in TOKENS]
    page = run_node([list(case) for case in cases])
    cli = [
        [usd(c), usd(c, "cost unknown"), usage_line(_figures(c, i, o, k))] for c, i, o, k in cases
    ]
    assert page == cli
    assert usd(0.0000123) == "$0.000012"
    assert usage_line(_figures(None, None, 7, None)) == "cost unknown · - in / 7 out"


def _figures(
    cost: float | None, tokens_in: int | None, tokens_out: int | None, cached_in: int | None
) -> dict[str, Any]:
    """The figures the page's ``usageLine`` takes one by one, as ``usage_line`` takes them."""
    return {
        "cost_usd": cost,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cached_in": cached_in,
    }


def test_the_page_loads_the_formats_before_its_script() -> None:
    page = (STATIC_DIR / "index.html").read_text()
    assert page.index('src="/static/format.js"') < page.index('src="/static/dashboard.js"')
    script = (STATIC_DIR / "dashboard.js").read_text()
    assert "toFixed(4)" not in script and "swarmFormat.usageLine" in script


def test_the_page_formats_take_only_what_the_cli_ones_take() -> None:
    """usd(cost, unknown) and usageLine(cost, in, out, cached): no ``places`` of their own,
    which no caller passed and the CLI's usd has not (its places are the one rule's)."""
    script = (
        f"const f = require({json.dumps(str(STATIC_DIR / 'format.js'))});"
        "console.log(JSON.stringify([f.usd.length, f.usageLine.length]));"
    )
    out = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(out.stdout) == [2, 4]
