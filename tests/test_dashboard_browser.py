"""The dashboard in a real browser: Debian's headless chromium, driven by Playwright, watching
a swarm change through the event stream, and coming back after the server went away.

SWARM_UPDATE_SCREENSHOTS=1 also writes the screenshots that docs/dashboard.md shows
(docs/img/); otherwise they go to the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from redis_swarm import AsyncSwarm, Swarm
from redis_swarm._usage import Usage
from redis_swarm.dashboard.app import create_app

from ._servers import free_port

playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
SWARM = "browser"
SOON_MS = 1000  # every change must be on the page within a second

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing: scripts/system-deps.sh installs it")
    pytest.skip("chromium is not installed (scripts/system-deps.sh)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium, started once for the module's tests (each opens a page of its own)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def dashboard_page(redis_url: str) -> Iterator[tuple[Page, str, list[str]]]:
    """A page of a headless chromium of its own, the dashboard served on a free port, and
    the page's errors (a test asserts there are none): for a test of another module."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            with serve(redis_url, free_port()) as url:
                yield page, url, errors
        finally:
            browser.close()


@contextmanager
def serve(redis_url: str, port: int) -> Iterator[str]:
    """The dashboard under uvicorn, in a thread, on 127.0.0.1:port."""
    app = create_app(AsyncSwarm(redis_url, swarm=SWARM), close_swarm=True)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="none",
        lifespan="on",
        # The page's event stream never ends by itself: stopping cancels it at once rather
        # than after waiting for it (what ends short requests is uvicorn's 0.1 s before).
        timeout_graceful_shutdown=0,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def shows(locator: Locator, text: str, *, partly: bool = False) -> None:
    """The page shows ``text`` in ``locator`` within a second (``partly``: among other text)."""
    start = time.monotonic()
    check = expect(locator).to_contain_text if partly else expect(locator).to_have_text
    check(text, timeout=SOON_MS)
    elapsed = time.monotonic() - start
    assert elapsed < SOON_MS / 1000 + 0.2, f"the page took {elapsed:.2f}s to show {text!r}"


def _console_error(errors: list[str], kind: str, text: str) -> None:
    # The stream cut by the deliberate restart, and the reconnects while the server is down,
    # are the browser's network errors, not the page's.
    expected = ("ERR_INCOMPLETE_CHUNKED_ENCODING", "ERR_CONNECTION_REFUSED")
    if kind == "error" and not any(name in text for name in expected):
        errors.append(text)


def cell(page: Page, table: str, row: str, column: str) -> Locator:
    return page.locator(f'#{table} tr[data-id="{row}"] td[data-label="{column}"]')


SUMMARIES = [
    "Section 4.2 contradicts the retention policy in appendix B",
    "The API rate limit is documented as 100/s but enforced at 60/s",
    "Latency numbers in the deck exclude the TLS handshake",
    "Two owners are listed for the billing service; neither is on call",
    "The migration plan assumes zero downtime; the runbook does not",
    "License of the vendored parser is GPL-3.0, not MIT as stated",
]


def test_the_page_follows_the_swarm_live(redis_url: str, tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    errors: list[str] = []
    with Swarm(redis_url, swarm=SWARM) as swarm:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: _console_error(errors, msg.type, msg.text))
        with serve(redis_url, port) as url:
            page.goto(url)
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            expect(page.locator("#swarm-name")).to_have_text(SWARM)

            # Agents and a context.
            shard = swarm.register(
                "shard",
                name="shard-research",
                model="claude-opus-4",
                specialization="contract review, 800K-token corpus",
            )
            shows(cell(page, "agents", shard.id, "heartbeat"), "alive", partly=True)
            swarm.register("coordinator", name="coordinator", model="claude-sonnet-4")
            info = swarm.publish_context(
                "shard-research", "clause text\n" * 4000, source="corpus/contracts.md"
            )
            row = f"shard-research@{info.version}"
            shows(cell(page, "contexts", row, "size"), "48 KB")  # 48,000 bytes, as byte_size

            # Post: the queue and the pass appear.
            pass1, pass2 = "Pass 1: Signal Capture", "Pass 2: Verification"
            for i in range(8):
                swarm.post_task("if.search_pass1", f"Read part {i} of the corpus", pass_name=pass1)
            shows(cell(page, "queues", "if.search_pass1", "pending"), "8")
            pass_pct = page.locator(f'#passes [data-pass="{pass1}"] .pct')
            shows(pass_pct, "0 / 8 · 0%")

            # Claim: the queue counts it, the worker shows up with its task.
            workers = ["w-amber", "w-birch", "w-cedar", "w-delta"]
            models = ["claude-haiku-4.5", "claude-sonnet-4", "gemini-2.5-pro", "gpt-5-codex"]
            for worker, model in zip(workers, models, strict=True):
                swarm.register("worker", name=worker, model=model, parent=shard.id)
            claimed = swarm.claim("if.search_pass1", worker="w-amber")
            assert claimed is not None
            swarm.heartbeat("w-amber", current_task=claimed.id)
            shows(cell(page, "queues", "if.search_pass1", "claimed"), "1")
            shows(cell(page, "agents", "w-amber", "task"), claimed.id)

            # Complete: the finding is in the feed, the pass moves.
            finding = swarm.report(
                claimed.id,
                claimed.token,
                {
                    "summary": SUMMARIES[0],
                    "sources": ["corpus/contracts.md#L120-164", "appendix-b.pdf#p3"],
                    "confidence": 0.9,
                },
                worker="w-amber",
                model="claude-haiku-4.5",
                context_version=info.version,
            )
            item = page.locator(f'#findings li[data-id="{finding.id}"]')
            shows(item.locator(".summary"), SUMMARIES[0])
            expect(item).to_contain_text("w-amber")
            expect(item.locator(".chip").first).to_have_text("corpus/contracts.md#L120-164")
            shows(pass_pct, "1 / 8 · 13%")
            shows(cell(page, "queues", "if.search_pass1", "done"), "1")

            # A dead letter, with its reason.
            doomed = swarm.post_task("if.verify", "Check clause 9", pass_name=pass2, max_attempts=1)
            task = swarm.claim("if.verify", worker="w-delta")
            assert task is not None and task.id == doomed.id
            swarm.fail(task.id, task.token, "parser crashed on page 12", retry=False)
            shows(cell(page, "dead", doomed.id, "reason"), "parser crashed", partly=True)

            # The server goes away; the swarm moves on; the server comes back: the page
            # resumes from the last event it saw (Last-Event-ID), without a reload.
            before = page.evaluate("performance.getEntriesByType('navigation').length")
            page.evaluate("window.__marker = 1")

        missed = swarm.post_task(
            "if.verify", "Posted while the dashboard was down", pass_name=pass2
        )
        with serve(redis_url, port):
            soon_after_reconnect = 5000  # the browser retries after 1 s, then re-reads
            expect(cell(page, "queues", "if.verify", "pending")).to_have_text(
                "1", timeout=soon_after_reconnect
            )
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            missed_event = next(e for e in swarm.events() if e.fields.get("task") == missed.id)
            expect(page.locator(f'#activity li[data-id="{missed_event.id}"]')).to_have_count(1)
            ids = page.locator("#activity li[data-id]").evaluate_all(
                "els => els.map(e => e.dataset.id)"
            )
            assert len(ids) == len(set(ids)), "an event was replayed twice"
            assert page.evaluate("window.__marker") == 1, "the page was reloaded"
            assert page.evaluate("performance.getEntriesByType('navigation').length") == before

            # Fill the rest of the picture, then take it.
            _more_work(swarm, workers, models, info.version, pass1)
            expect(page.locator("#syntheses li")).to_have_count(1, timeout=SOON_MS)
            expect(pass_pct).to_have_text("6 / 8 · 75%")
            _screenshots(page, tmp_path)
        page.close()
    assert errors == []


def test_the_page_says_costs_as_the_cli_does(redis_url: str, browser: Browser) -> None:
    """A finding that cost $0.0000123 reads $0.000012 (the CLI's usd), its unknown input
    tokens "-" (not "0 in"); a dead letter shows what its failed runs cost."""
    port = free_port()
    with Swarm(redis_url, swarm=SWARM) as swarm:
        page = browser.new_page()
        with serve(redis_url, port) as url:
            page.goto(url)
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            swarm.post_task("q", "cheap")
            task = swarm.claim("q", worker="w")
            assert task is not None and task.token is not None
            tiny = Usage("reported", cost_usd=0.0000123, tokens_out=7)
            finding = swarm.report(task.id, task.token, {"summary": "cheap"}, usage=tiny)
            item = page.locator(f'#findings li[data-id="{finding.id}"] .cost')
            shows(item, "$0.000012 · - in / 7 out")
            doomed = swarm.post_task("q", "doomed", max_attempts=1)
            held = swarm.claim("q", worker="w")
            assert held is not None and held.id == doomed.id and held.token is not None
            spent = Usage("claude-json", cost_usd=0.02, tokens_in=1500, cached_in=1000,
                          tokens_out=40)  # fmt: skip
            swarm.fail(held.id, held.token, "crashed", usage=spent)
            cost = cell(page, "dead", doomed.id, "failed runs cost")
            shows(cost, "$0.0200 · 1,500 in (1,000 cached) / 40 out")
        page.close()


def _more_work(
    swarm: Swarm, workers: list[str], models: list[str], version: str, pass1: str
) -> None:
    finding_ids = []
    for i, (worker, model) in enumerate(zip(workers * 2, models * 2, strict=True)):
        task = swarm.claim("if.search_pass1", worker=worker)
        if task is None:
            break
        if i >= 5:  # some work stays in flight
            swarm.heartbeat(worker, current_task=task.id)
            continue
        finding = swarm.report(
            task.id,
            task.token,
            {
                "summary": SUMMARIES[(i + 1) % len(SUMMARIES)],
                "sources": [f"corpus/contracts.md#L{300 + 90 * i}-{340 + 90 * i}"],
                "confidence": round(0.6 + 0.07 * i, 2),
            },
            worker=worker,
            model=model,
            context_version=version,
        )
        finding_ids.append(finding.id)
        swarm.heartbeat(worker)
    swarm.synthesize(
        "shard-research",
        pass1,
        "Workers converge on two systemic issues: documented limits that differ from the "
        "enforced ones (rate limits, licensing), and plans that assume away operational "
        "cost (downtime, TLS). The rate-limit evidence is the strongest.",
        finding_ids,
    )


def _screenshots(page: Page, tmp_path: Path) -> None:
    target = DOCS_IMG if os.environ.get("SWARM_UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    if target == DOCS_IMG:  # the pictures the docs show: with the "new" highlight faded
        page.wait_for_timeout(1700)
    page.screenshot(path=str(target / "dashboard.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(100)
    page.screenshot(path=str(target / "dashboard-phone.png"))
    assert (target / "dashboard.png").stat().st_size > 10_000
