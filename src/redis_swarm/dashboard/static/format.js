// redis-swarm dashboard: figures written as the CLI writes them (redis_swarm._models: usd,
// usage_line), so that the page and `swarm` never say one cost two ways. A script of its
// own, loaded before dashboard.js, so that tests/test_dashboard_format.py can run it under
// node beside the Python originals.
"use strict";

(function (root) {
  const USD_PLACES = 4; // as _usage.USD_PLACES
  const MAX_PLACES = 12; // as _usage.USD_MAX_PLACES

  // |x| as Python's format(x, ".Nf") writes it: the double's exact value (toFixed(100) has
  // every digit of a cost's) rounded half to even, where toFixed and Intl round half up.
  function fixed(x, places) {
    const exact = Math.abs(x).toFixed(100);
    const [whole, frac] = exact.split(".");
    const kept = whole + frac.slice(0, places);
    const next = frac.charAt(places);
    const rest = frac.slice(places + 1);
    const last = Number(kept.charAt(kept.length - 1));
    const up = next > "5" || (next === "5" && (/[1-9]/.test(rest) || last % 2 === 1));
    let digits = up ? increment(kept) : kept;
    digits = digits.padStart(places + 1, "0");
    const int = digits.slice(0, digits.length - places);
    const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return places ? grouped + "." + digits.slice(digits.length - places) : grouped;
  }

  function increment(digits) {
    const out = digits.split("");
    let i = out.length - 1;
    while (i >= 0 && out[i] === "9") { out[i] = "0"; i -= 1; }
    if (i < 0) return "1" + out.join("");
    out[i] = String(Number(out[i]) + 1);
    return out.join("");
  }

  // As _usage.usd: four decimals, or as many more as a cost under half a hundredth of a
  // cent needs not to read as zero (up to MAX_PLACES; a cost too small for them in exponent
  // form, two digits: $1.0e-13); `unknown` when no agent said (never "$0.0000").
  function usd(cost, unknown) {
    if (typeof cost !== "number" || !Number.isFinite(cost)) return unknown === undefined ? "-" : unknown;
    let places = USD_PLACES;
    if (cost !== 0 && Math.abs(cost) < 0.00005)
      places = Math.max(places, Math.min(MAX_PLACES, 1 - Math.floor(Math.log10(Math.abs(cost)))));
    const shown = fixed(cost, places);
    if (cost !== 0 && !/[1-9]/.test(shown)) return "$" + cost.toExponential(1);
    return "$" + (cost < 0 ? "-" : "") + shown;
  }

  function count(n) {
    return typeof n === "number" ? fixed(n, 0) : "-";
  }

  // As _usage.usage_line: "$0.0123 · 12,345 in (12,000 cached) / 678 out"; "cost unknown"
  // when no cost was reported; no tokens when neither count was, a missing one "-".
  function usageLine(cost, tokensIn, tokensOut, cachedIn) {
    const line = usd(cost, "cost unknown");
    const known = (n) => typeof n === "number";
    if (!known(tokensIn) && !known(tokensOut)) return line;
    const cached = known(cachedIn) ? " (" + count(cachedIn) + " cached)" : "";
    return line + " · " + count(tokensIn) + " in" + cached + " / " + count(tokensOut) + " out";
  }

  // As _printable.printable: every C0 and C1 control character (but tab and newline), DEL,
  // the bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) and the line and
  // paragraph separators (U+2028, U+2029) shown as an escape (\x1b, \u202e): text agents
  // wrote, inserted as text, could still reorder what a cell shows (a description
  // "\u202egnp.exe" reads "exe.png"), break its line or hide part of it.
  const HIDDEN = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

  function printable(text) {
    return String(text).replace(HIDDEN, (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
        : "\\u" + code.toString(16).padStart(4, "0");
    });
  }

  const format = { usd, usageLine, printable };
  if (typeof module === "object" && module.exports) module.exports = format;
  else root.swarmFormat = format;
})(typeof globalThis === "object" ? globalThis : this);
