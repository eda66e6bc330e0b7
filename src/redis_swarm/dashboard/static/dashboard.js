// redis-swarm dashboard: reads /api/status, then follows /api/events (Server-Sent Events) and
// re-reads the status when something changed. Vanilla JS, no build step, no framework.
// Everything shown comes from agents: it is always inserted as text, never as HTML, and
// through `shown` (format.js's printable), which escapes the control and bidirectional
// characters that would reorder or hide it: the DOM helpers below apply it to every text
// and title they set, so no panel can forget it.
"use strict";

(function () {
  // The event types to listen for: the server writes its list (EventType) into the page.
  const EVENT_TYPES = (document.querySelector('meta[name="swarm-event-types"]')?.content || "")
    .split(",").filter(Boolean);
  const STATUSES = ["completed", "dead", "cancelled", "claimed", "delayed", "pending"];
  const REFRESH_GAP_MS = 150;     // coalesce bursts of events into one status read
  const PERIODIC_MS = 15000;      // agents go stale with time, not with an event
  const ACTIVITY_MAX = 60;
  const AGAIN_MS = 3000;          // the server or its Redis out of reach: looked at again soon
  // What the server says no retry fixes (a ConnectionFailed with retryable false: a TLS
  // certificate refused, say): said so, and looked at again this seldom (fixed where the
  // dashboard runs, it comes back by itself).
  const STUCK_MS = 30000;
  const STUCK_NOTE = " This will not pass by itself: it must be fixed where the dashboard " +
    "runs (its Redis URL, certificates or keys); this page looks again every " +
    (STUCK_MS / 1000) + " s.";

  // --- the token: from ?token= once, then kept for this tab only, and out of the address bar
  const params = new URLSearchParams(location.search);
  let token = params.get("token") || sessionStorage.getItem("swarm-token") || "";
  if (params.has("token")) {
    sessionStorage.setItem("swarm-token", token);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  }
  // ?all=1: every settled queue and pass, not only the last ones (the server decides which
  // it sends; the page asks for all of them, and keeps asking after a reload).
  const ALL = "all";

  const state = {
    lastEventId: null,  // the newest event reflected on screen
    skew: 0,            // server clock minus this clock, ms
    seenFindings: null, // ids already shown (null before the first render: nothing flashes)
    seenSyntheses: null,
    source: null,
    inFlight: false,
    dirty: false,
    timer: null,
    snap: null,
    stuck: false,       // the last failure will not pass by itself (retryable false)
    all: params.get(ALL) === "1",
  };

  // --- tiny DOM helpers (every text and title they set goes through `shown`)

  const shown = (value) => window.swarmFormat.printable(value);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = shown(value);
      else if (key === "title" || key === "aria-label") el.setAttribute(key, shown(value));
      else el.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(shown(child)));
    }
    return el;
  }

  const $ = (id) => document.getElementById(id);

  function setText(id, value) { $(id).textContent = shown(value); }

  function empty(text) { return h("div", { class: "empty", text }); }

  // On a phone, a table with `cards` turns each row into a stacked card (see the CSS).
  function table(columns, rows, key, cards = true) {
    if (!rows.length) return null;
    const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, text: c.label })));
    const body = rows.map((row) => h("tr", { "data-id": key ? key(row) : null },
      columns.map((c) => {
        const value = c.cell(row);
        const td = h("td", { class: [c.num ? "num" : "", c.cls || ""].join(" ").trim() || null, "data-label": c.label });
        if (value instanceof Node) td.append(value); else td.textContent = value === null || value === undefined ? "–" : shown(value);
        if (c.title) td.title = shown(c.title(row) || "");
        return td;
      })));
    return h("table", { class: cards ? "cards" : null }, h("thead", {}, head), h("tbody", {}, body));
  }

  function fill(id, node, emptyText) {
    $(id).replaceChildren(node || empty(emptyText));
  }

  // --- formatting

  function now() { return Date.now() + state.skew; }

  function ago(ms) {
    if (!ms) return "–";
    const s = Math.max(0, Math.round((now() - ms) / 1000));
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    if (s < 86400) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  }

  // As _codec.byte_size: decimal units (1 KB = 1,000 bytes), one decimal when not whole.
  function bytes(n) {
    if (n < 1000) return n + " B";
    const units = ["KB", "MB", "GB", "TB"];
    let v = n / 1000;
    let i = 0;
    while (Math.round(v * 10) / 10 >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
    return (Math.round(v * 10) / 10).toLocaleString("en", { maximumFractionDigits: 1 }) + " " + units[i];
  }

  function count(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(0) + "K";
    return String(n);
  }

  function short(text, max) {
    text = String(text || "");
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  // What agent runs cost (a finding's or synthesis's usage, a task's failed runs), on one
  // line as the CLI says it (format.js); null when nothing was recorded.
  function usageText(u) {
    if (!u) return null;
    const line = window.swarmFormat.usageLine(u.cost_usd, u.tokens_in, u.tokens_out, u.cached_in);
    return h("span", { class: "cost", text: line });
  }

  function stamp(ms) { return h("span", { class: "when", "data-at": String(ms), title: new Date(ms).toISOString(), text: ago(ms) }); }

  function bar(counts, total) {
    const el = h("div", { class: "bar", role: "img" });
    const label = [];
    for (const status of STATUSES) {
      const n = counts[status] || 0;
      if (!n) continue;
      label.push(n + " " + status);
      const part = h("span", { class: status });
      part.style.width = (100 * n / total).toFixed(2) + "%";  // CSSOM: allowed by the CSP
      el.append(part);
    }
    el.setAttribute("aria-label", label.join(", ") || "empty");
    el.title = label.join(" · ");  // (counts and status names: nothing an agent wrote)
    return el;
  }

  // --- rendering, one function per panel

  function render(snap) {
    state.snap = snap;
    setText("swarm-name", snap.swarm);
    document.title = "redis-swarm · " + shown(snap.swarm);
    const t = snap.totals || {};
    setText("t-agents", (t.alive || 0) + " / " + (t.agents || 0));
    for (const s of ["pending", "claimed", "completed", "dead", "cancelled"]) setText("t-" + s, count(t[s] || 0));
    // Every pass, shown or not: the server counts them (the lists below may leave some out).
    setText("t-passes", (t.passes_settled || 0) + " / " + (t.passes || 0));
    const hidden = snap.not_shown || {};
    renderQueues(snap.queues, hidden.queues || 0);
    renderPasses(snap.passes, hidden.passes || 0);
    renderAgents(snap.agents, hidden.agents || 0, t.agents || 0, t.alive || 0);
    renderFindings(snap.findings);
    renderSyntheses(snap.syntheses);
    renderContexts(snap.contexts, hidden.contexts || 0);
    renderDead(snap.dead);
    renderQuestions(snap.questions || {}, snap.answers || [], hidden.questions || 0);
    setText("updated", "updated " + clock(snap.at));
  }

  // The line under a list the server bounded (those with open work and the last settled
  // ones): how many settled ones it left out, and a link that asks for every one (?all=1,
  // kept in the address so a reload keeps it); once every one is shown, a link back.
  function notShown(hidden, one, many, shownAny, kind = "settled") {
    if (state.all) {
      return shownAny ? h("div", { class: "more" }, "every " + kind + " " + one + " shown · ",
        showAll(false, "show only the last " + kind + " ones")) : null;
    }
    if (!hidden) return null;
    return h("div", { class: "more" },
      "not shown: " + hidden.toLocaleString("en") + " " + kind + " " + (hidden === 1 ? one : many) + " · ",
      showAll(true, "show all"));
  }

  function showAll(on, text) {
    const query = new URLSearchParams(location.search);
    if (on) query.set(ALL, "1"); else query.delete(ALL);
    const href = location.pathname + (query.toString() ? "?" + query.toString() : "") + location.hash;
    const link = h("a", { href, class: "show-all", text });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      state.all = on;
      history.replaceState(null, "", href);
      refresh();
    });
    return link;
  }

  // The panel's list (or the empty text) and the line under it, if any.
  function place(id, node, emptyText, line) {
    $(id).replaceChildren(node || empty(emptyText), ...(line ? [line] : []));
  }

  function renderQueues(queues, hidden) {
    const rows = Object.entries(queues).map(([name, c]) => ({ name, c }));
    const total = (c) => Object.values(c).reduce((a, b) => a + b, 0);
    place("queues", table([
      { label: "queue", cls: "qname", cell: (r) => h("div", { class: "q" },
        h("span", { class: "mono", text: r.name }), bar(r.c, Math.max(1, total(r.c)))) },
      { label: "pending", num: true, cell: (r) => (r.c.pending || 0) + (r.c.delayed ? " +" + r.c.delayed : ""),
        title: (r) => r.c.delayed ? r.c.delayed + " delayed" : "" },
      { label: "claimed", num: true, cell: (r) => r.c.claimed || 0 },
      { label: "done", num: true, cell: (r) => r.c.completed || 0 },
      { label: "dead", num: true, cell: (r) => r.c.dead || 0 },
      { label: "cancelled", num: true, cell: (r) => r.c.cancelled || 0 },
    ], rows, (r) => r.name, false), "no queue with tasks: post a task with swarm task post",
    notShown(hidden, "queue", "queues", rows.length > 0));
  }

  // Questions asked with swarm ask (queues ask.OWNER and assist), and who answered the newest.
  function renderQuestions(questions, answers, hidden) {
    const rows = Object.entries(questions).map(([name, c]) => ({ name, c }));
    const open = (c) => (c.pending || 0) + (c.delayed || 0) + (c.claimed || 0);
    setText("c-questions", rows.length ? rows.reduce((n, r) => n + open(r.c), 0) + " open" : "");
    const asked = table([
      { label: "asked of", cls: "mono", cell: (r) => r.name },
      { label: "open", num: true, cell: (r) => open(r.c) },
      { label: "answered", num: true, cell: (r) => r.c.completed || 0 },
      { label: "dead", num: true, cell: (r) => r.c.dead || 0 },
    ], rows, (r) => r.name, false);
    const answered = table([
      { label: "answer", cls: "clip", cell: (f) => short(f.summary, 120), title: (f) => f.summary },
      { label: "by", cls: "mono", cell: (f) => f.worker },
      { label: "when", cell: (f) => stamp(f.created_at) },
    ], answers.slice(0, 5), (f) => f.id);
    if (!asked) { fill("questions", null, "no question yet: swarm ask OWNER \"...\""); return; }
    const line = notShown(hidden, "question queue", "question queues", true);
    $("questions").replaceChildren(...[asked, line, answered].filter(Boolean));
  }

  function renderPasses(passes, hidden) {
    const line = notShown(hidden, "pass", "passes", passes.length > 0);
    if (!passes.length) { place("passes", null, "no pass yet: post tasks with --pass", line); return; }
    const list = passes.map((p) => {
      const pct = Math.round(100 * (p.fraction || 0));
      const legend = STATUSES.filter((s) => p.counts[s]).map((s) =>
        h("span", {}, h("i", { class: s }), p.counts[s] + " " + s));
      return h("div", { class: "pass", "data-pass": p.name },
        h("div", { class: "head" },
          h("span", { class: "name", text: p.name }),
          h("span", { class: "pct", text: p.settled + " / " + p.total + " · " + pct + "%" })),
        bar(p.counts, Math.max(1, p.total)),
        h("div", { class: "legend" }, legend));
    });
    $("passes").replaceChildren(...list, ...(line ? [line] : []));
  }

  // The line under the agents (the live and the stale ones seen last): how many the server
  // left out (not_shown.agents, live and stale alike; the live ones among them are those of
  // totals.alive it did not send), and a link that asks for every one, as notShown's.
  function agentsNotShown(agents, hidden, alive) {
    if (state.all) {
      return agents.length ? h("div", { class: "more" }, "every agent shown · ",
        showAll(false, "show only the last ones")) : null;
    }
    if (!hidden) return null;
    const live = Math.max(0, Math.min(hidden, alive - agents.filter((a) => a.alive).length));
    const parts = [[live, "live"], [hidden - live, "stale"]].filter(([n]) => n > 0).map(([n, kind]) =>
      n.toLocaleString("en") + " " + kind + " " + (n === 1 ? "agent" : "agents"));
    return h("div", { class: "more" },
      "not shown: " + parts.join(" and ") + " seen longer ago · ", showAll(true, "show all"));
  }

  function renderAgents(agents, hidden, total, alive) {
    setText("c-agents", total ? String(total) : "");
    place("agents", table([
      { label: "agent", cell: (r) => h("span", { class: "mono", text: r.id }), cls: "clip", title: (r) => r.id },
      { label: "role", cell: (r) => h("span", { class: "pill role", text: r.role }) },
      { label: "specialization", cell: (r) => r.specialization, cls: "clip", title: (r) => r.specialization },
      { label: "model", cell: (r) => r.model, cls: "clip" },
      { label: "heartbeat", cls: "nowrap", cell: (r) => h("span", {},
        h("span", { class: "pill " + (r.alive ? "alive" : "stale"), text: r.alive ? "alive" : "stale" }),
        " ", h("span", { class: "muted" }, stamp(r.last_seen))) },
      { label: "task", cell: (r) => r.current_task ? h("span", { class: "mono", text: r.current_task }) : null, cls: "nowrap" },
    ], agents, (r) => r.id), "no agent yet: agents appear when they register or claim",
    agentsNotShown(agents, hidden, alive));
  }

  function renderFindings(findings) {
    setText("c-findings", findings.length ? "newest " + findings.length : "");
    const seen = state.seenFindings;
    const items = findings.map((f) => {
      const sources = (f.sources || []).slice(0, 8).map((s) => h("span", { class: "chip", title: s, text: short(s, 48) }));
      if ((f.sources || []).length > 8) sources.push(h("span", { class: "chip", text: "+" + (f.sources.length - 8) }));
      return h("li", { class: seen && !seen.has(f.id) ? "new" : null, "data-id": f.id },
        h("div", { class: "summary", text: f.summary }),
        h("div", { class: "meta" },
          h("span", { class: "mono", text: f.worker || "unknown worker" }),
          f.model ? h("span", { text: f.model }) : null,
          usageText(f.usage),
          h("span", { class: "mono", text: f.queue }),
          f.pass_name ? h("span", { text: f.pass_name }) : null,
          f.confidence !== null && f.confidence !== undefined ? h("span", { text: "confidence " + f.confidence }) : null,
          stamp(f.created_at)),
        sources.length ? h("div", { class: "sources" }, sources) : null);
    });
    state.seenFindings = new Set(findings.map((f) => f.id));
    if (!items.length) fill("findings", null, "no finding yet: workers report them with swarm report");
    else $("findings").replaceChildren(...items);
  }

  function renderSyntheses(syntheses) {
    setText("c-syntheses", syntheses.length ? String(syntheses.length) : "");
    const seen = state.seenSyntheses;
    const items = syntheses.map((s) => h("li", { class: seen && !seen.has(s.id) ? "new" : null, "data-id": s.id },
      h("div", { class: "summary", text: s.pass_name }),
      h("div", { class: "text", text: short(s.text, 600) }),
      h("div", { class: "meta" },
        h("span", { class: "mono", text: s.shard }),
        h("span", { text: (s.sources || []).length + " findings cited" }),
        usageText(s.usage),
        stamp(s.created_at))));
    state.seenSyntheses = new Set(syntheses.map((s) => s.id));
    if (!items.length) fill("syntheses", null, "no synthesis yet");
    else $("syntheses").replaceChildren(...items);
  }

  // The line under the contexts (those of the owners that published last): how many owners
  // the server left out (not_shown.contexts), and a link that asks for every one, as notShown's.
  function ownersNotShown(hidden, shownAny) {
    if (state.all) {
      return shownAny ? h("div", { class: "more" }, "every context owner shown · ",
        showAll(false, "show only those that published last")) : null;
    }
    if (!hidden) return null;
    return h("div", { class: "more" },
      "not shown: " + hidden.toLocaleString("en") + " context " + (hidden === 1 ? "owner" : "owners") +
      " that published longer ago · ", showAll(true, "show all"));
  }

  function renderContexts(contexts, hidden) {
    // Versions come newest first per owner: the first of each owner is its current one,
    // the older ones kept are shown muted.
    const owners = new Set();
    const rows = contexts.map((c) => {
      const current = !owners.has(c.owner);
      owners.add(c.owner);
      return Object.assign({ current }, c);
    });
    const node = table([
      { label: "owner", cell: (r) => h("span", { class: "mono", text: r.owner }), cls: "clip" },
      { label: "version", cell: (r) => h("span", { class: "mono", text: r.version.slice(0, 8) }),
        title: (r) => r.version + (r.current ? " (current)" : " (kept)") },
      { label: "size", num: true, cell: (r) => bytes(r.size_bytes) },
      { label: "tokens", num: true, cell: (r) => "~" + count(r.tokens_est) },
      { label: "published", cell: (r) => stamp(r.created_at), cls: "nowrap" },
    ], rows, (r) => r.owner + "@" + r.version);
    if (node) {
      node.querySelectorAll("tbody tr").forEach((tr, i) => { if (!rows[i].current) tr.classList.add("old"); });
    }
    place("contexts", node, "no context yet: a shard publishes one with swarm context publish",
      ownersNotShown(hidden, rows.length > 0));
  }

  function renderDead(dead) {
    setText("c-dead", dead.length ? String(dead.length) : "");
    fill("dead", table([
      { label: "task", cell: (r) => h("span", { class: "mono", text: r.id }), title: (r) => r.id },
      { label: "queue", cell: (r) => h("span", { class: "mono", text: r.queue }) },
      { label: "description", cell: (r) => short(r.description, 80), cls: "clip", title: (r) => r.description },
      { label: "failed", num: true, cell: (r) => (r.failures || 0) + "/" + r.max_attempts },
      { label: "abandoned", num: true, cell: (r) => (r.abandons || 0) + "/" + (r.max_abandons || 10) },
      { label: "failed runs cost", cell: (r) => usageText(r.failed_usage), cls: "nowrap" },
      { label: "reason", cell: (r) => r.dead_reason || r.last_error, cls: "clip", title: (r) => r.dead_reason || r.last_error },
    ], dead, (r) => r.id), "no dead letter");
  }

  function describe(event) {
    const f = event.fields || {};
    const parts = [];
    for (const key of ["task", "queue", "agent", "worker", "owner", "version", "finding", "synthesis", "pass", "reason", "to"]) {
      if (f[key]) parts.push(key === "pass" || key === "reason" ? f[key] : f[key]);
    }
    return parts.join(" · ");
  }

  function addActivity(event) {
    const type = event.type;
    const cls = /dead|failed|expired|stale|left/.test(type) ? "bad" : /completed|reported|created/.test(type) ? "good" : "";
    const li = h("li", { "data-id": event.id },
      h("span", { class: "when", text: clock(event.at) }),
      h("span", { class: "type " + cls, text: type }),
      h("span", { class: "what", text: describe(event), title: describe(event) }));
    const list = $("activity");
    if (list.firstElementChild && list.firstElementChild.classList.contains("empty")) list.replaceChildren();
    list.prepend(li);
    while (list.children.length > ACTIVITY_MAX) list.lastElementChild.remove();
  }

  function tick() {
    for (const el of document.querySelectorAll("[data-at]")) el.textContent = ago(Number(el.getAttribute("data-at")));
  }

  // --- the API

  function api(path) {
    return fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
  }

  function banner(text) {
    const el = $("banner");
    el.hidden = !text;
    el.textContent = shown(text || "");
  }

  function live(stateName, text) {
    $("live").setAttribute("data-state", stateName);
    setText("live-text", text);
  }

  // An error the server answered (a body, or a stream.error's data): said; whether it will
  // pass by itself is remembered (state.stuck) for how soon to look again.
  function failed(body, fallback) {
    state.stuck = body.retryable === false;
    if (state.stuck) {
      banner((body.message || fallback) + STUCK_NOTE);
      live("offline", "needs a fix");
    } else {
      banner(body.message || fallback);
    }
  }

  async function refresh() {
    if (state.inFlight) { state.dirty = true; return; }
    state.inFlight = true;
    const all = state.all;
    try {
      const response = await api("/api/status" + (all ? "?" + ALL + "=1" : ""));
      if (response.status === 401) {
        banner("This dashboard needs its token: open it as /?token=YOUR_TOKEN.");
        live("offline", "unauthorized");
        return false;
      }
      const body = await response.json();
      if (!response.ok) { failed(body, "the swarm could not be read"); return false; }
      state.stuck = false;
      banner("");
      state.skew = body.at - Date.now();
      if (state.lastEventId === null) state.lastEventId = body.last_event_id;
      // Asked for the other list meanwhile (show all, or back): draw the answer to that.
      if (all !== state.all) state.dirty = true;
      else render(body);
      return true;
    } catch (err) {
      banner("The dashboard server cannot be reached; retrying.");
      return false;
    } finally {
      state.inFlight = false;
      if (state.dirty) { state.dirty = false; schedule(); }
    }
  }

  function schedule() {
    if (state.timer !== null) return;
    state.timer = setTimeout(() => { state.timer = null; refresh(); }, REFRESH_GAP_MS);
  }

  function connect() {
    if (state.source) state.source.close();
    const query = new URLSearchParams();
    if (state.lastEventId) query.set("since", state.lastEventId);
    if (token) query.set("token", token);
    const source = new EventSource("/api/events?" + query.toString());
    state.source = source;
    source.onopen = () => { live("live", "live"); banner(""); schedule(); };
    const onEvent = (message) => {
      if (message.lastEventId) state.lastEventId = message.lastEventId;
      try { addActivity(JSON.parse(message.data)); } catch (err) { /* a malformed event: show the rest */ }
      schedule();
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
    source.addEventListener("stream.error", (message) => {
      let body = {};
      try { body = JSON.parse(message.data); } catch (err) { /* said as a failure below */ }
      failed(body, "the event stream failed");
      if (state.stuck) {  // no reconnection every second: looked at again seldom
        source.close();
        setTimeout(start, STUCK_MS);
      }
    });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (or is gone): the browser will not retry by itself.
        live("offline", "offline");
        source.close();
        setTimeout(start, AGAIN_MS);
      } else {
        live("reconnecting", "reconnecting");
      }
    };
  }

  async function start() {
    const ok = await refresh();
    if (ok !== false) connect();
    else setTimeout(start, state.stuck ? STUCK_MS : AGAIN_MS);
  }

  $("activity").replaceChildren(empty("waiting for events…"));
  if (token) $("api-link").href = "/api/status?token=" + encodeURIComponent(token);
  setInterval(tick, 1000);
  setInterval(() => {
    // Stuck (retryable false): start() looks again every STUCK_MS, and nothing more often.
    if (!state.stuck && document.visibilityState === "visible") schedule();
  }, PERIODIC_MS);
  start();
})();
