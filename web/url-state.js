// The view in the URL, so that a link reproduces it:
//   live    ?symbols=AAPL,MSFT&view=candles&interval=5s&window=5m[&transport=ws|sse|poll]
//   replay  ?replay=NAME&speed=10[&at=<ms>]&symbols=...&view=...
// Missing or unknown values fall back to the defaults; "symbols=" (empty) means no charts.

import { INTERVALS, WINDOWS } from "./figure.js";

export const DEFAULTS = Object.freeze({ view: "line", interval: "5s", window: "5m" });
export const VIEWS = Object.freeze(["line", "candles"]);
export const TRANSPORT_KINDS = Object.freeze(["ws", "sse", "poll"]);
const SYMBOL = /^[A-Z0-9][A-Z0-9.-]{0,15}$/;

export function readView(params) {
  const pick = (key, allowed) => {
    const value = params.get(key);
    return allowed.includes(value) ? value : DEFAULTS[key];
  };
  const settings = {
    view: pick("view", VIEWS),
    interval: pick("interval", Object.keys(INTERVALS)),
    window: pick("window", Object.keys(WINDOWS)),
  };
  // No "symbols" at all means the default selection.
  const raw = params.get("symbols");
  const symbols = raw === null ? null
    : [...new Set(raw.split(",").map((s) => s.trim().toUpperCase()).filter((s) => SYMBOL.test(s)))];
  return { settings, symbols };
}

// ?transport=sse forces one transport (to test a fallback, or to work around a proxy).
export function readTransport(params) {
  const kind = params.get("transport");
  return TRANSPORT_KINDS.includes(kind) ? kind : null;
}

// Built by hand: URLSearchParams would escape the commas (symbols=AAPL%2CMSFT).
export function viewQuery(symbols, settings) {
  return `symbols=${symbols.join(",")}&view=${settings.view}`
    + `&interval=${settings.interval}&window=${settings.window}`;
}

export function replaceQuery(query) {
  if (query !== location.search) history.replaceState(null, "", query + location.hash);
}
