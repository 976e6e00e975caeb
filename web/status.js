// The connection indicator and the live numbers beside it, redrawn four times a second (they are
// read by eye; per-frame updates would only cost CPU): state with the reconnect countdown and the
// transport in use, the round trip, the age of the newest tick (corrected for the server's clock)
// and ticks/s. In replay mode the indicator says playing / paused / ended instead of live: the
// newest tick is hours old by design, so neither "stale" nor its age mean anything there.

import { TRANSPORT_NAMES } from "./connection.js";
import { arrow, fmtPct, fmtPrice, sessionChange } from "./format.js";

const TRANSPORT_TITLES = {
  ws: "WebSocket", sse: "Server-Sent Events (WebSocket unavailable)",
  poll: "long polling (WebSocket and SSE unavailable)",
};
const RTT_TITLES = {
  ws: "Round trip to the server (ping every 5 s)",
  sse: "Not measured over SSE (no way to ping)",
  poll: "Round trip of the quickest recent poll",
};

const STALE_AFTER_MS = 5_000; // connected but nothing for this long: say so

export class StatusBar {
  constructor(root, { connection, store, replay, onRetry, titleSymbol }) {
    this.connection = connection;
    this.store = store;
    this.replay = replay; // the replay controls, or null when live
    this.titleSymbol = titleSymbol; // () => the symbol whose price the tab title shows
    this.pill = root.querySelector(".conn");
    this.label = root.querySelector(".conn-label");
    this.via = root.querySelector(".conn-via");
    this.rttMetric = root.querySelector(".rtt-metric");
    this.retry = root.querySelector(".retry");
    this.rtt = root.querySelector(".rtt");
    this.age = root.querySelector(".age");
    this.rate = root.querySelector(".rate");
    this.feed = document.querySelector(".feed");
    this.retry.addEventListener("click", onRetry);
    this._samples = []; // [performance.now(), ticks received] over the last few seconds
    setInterval(() => this.render(), 250);
  }

  ticksPerSecond() {
    const now = performance.now();
    const samples = this._samples;
    samples.push([now, this.store.counts.received]);
    while (samples.length > 2 && now - samples[0][0] > 2_000) samples.shift();
    const [t0, n0] = samples[0];
    return now - t0 > 200 ? ((this.store.counts.received - n0) * 1000) / (now - t0) : 0;
  }

  render() {
    const conn = this.connection;
    let state = conn.state;
    let text;
    const newest = this.store.newestTs;
    const ageMs = newest ? Date.now() + conn.clockOffsetMs - newest : null;
    if (state === "connected" && this.replay) {
      state = "replay";
      text = this.replay.label();
    } else if (state === "connected") {
      text = "live";
      if (ageMs !== null && ageMs > STALE_AFTER_MS) {
        state = "stale";
        text = "stale";
      }
    } else if (state === "connecting") {
      text = "connecting\u2026";
    } else if (state === "reconnecting") {
      const left = conn.retryAt ? Math.max(0, conn.retryAt - performance.now()) : 0;
      text = left > 0 ? `reconnecting in ${(left / 1000).toFixed(1)} s` : "reconnecting\u2026";
      if (!navigator.onLine) text += " \u00B7 no network";
    } else {
      text = "offline";
    }
    this.pill.dataset.state = state;
    this.pill.dataset.transport = conn.kind;
    this.label.textContent = text;
    const up = state === "connected" || state === "stale";
    this.via.textContent = up ? TRANSPORT_NAMES[conn.kind] : "";
    const over = `${text} over ${TRANSPORT_TITLES[conn.kind]}`;
    this.pill.title = conn.reason ? `${over}: ${conn.reason}` : over;
    this.rttMetric.title = RTT_TITLES[conn.kind];
    const waiting = conn.state === "reconnecting" && conn.retryAt > 0;
    this.retry.hidden = !(conn.state === "offline" || waiting);
    this.rtt.textContent = conn.rttMs === null || !(up || state === "replay")
      ? "\u2014" : `${conn.rttMs < 10 ? conn.rttMs.toFixed(1) : Math.round(conn.rttMs)} ms`;
    this.age.textContent = ageMs === null ? "\u2014" : formatAge(ageMs);
    this.age.classList.toggle("warn", ageMs !== null && ageMs > STALE_AFTER_MS);
    this.rate.textContent = String(Math.round(this.ticksPerSecond()));
    if (this.store.feed) {
      const label = feedLabel(this.store.feed);
      this.feed.textContent = label.text;
      this.feed.title = label.title;
      this.feed.dataset.kind = label.kind;
    }
    this.renderTitle(state);
  }

  // The tab title carries the first chart's price, so it can be watched from another tab.
  renderTitle(state) {
    const held = this.store.get(this.titleSymbol() ?? "");
    let title = "ticker";
    if (held?.last) {
      const { pct, dir } = sessionChange(held.last.price, held.open);
      const change = pct === null ? "" : ` ${arrow(dir)}${fmtPct(pct)}`;
      title = `${held.symbol} ${fmtPrice(held.last.price)}${change} \u00B7 ticker`;
    }
    if (this.replay) title = `REPLAY \u00B7 ${title}`;
    else if (state !== "connected") title = `(${state}) ${title}`;
    if (document.title !== title) document.title = title;
  }
}

function formatAge(ms) {
  if (ms < 0) return "0 ms"; // clock estimate a hair off; the tick is fresh
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min`;
  return `${Math.floor(ms / 3_600_000)} h`;
}

// hello's "feed" as the badge says it: SIMULATED, REPLAY, COINBASE, ALPACA IEX, RELAY. A live
// upstream is a real market: the badge then reads as live data, not a warning.
const FEED_TITLES = {
  simulated: "Simulated market: not real prices",
  replay: "A recording played back",
  coinbase: "Real trades from Coinbase Exchange",
  "alpaca-iex": "Real trades from Alpaca (IEX)",
  "alpaca-sip": "Real trades from Alpaca (SIP, all US exchanges)",
  relay: "Relayed from another ticker server",
};

export function feedLabel(feed) {
  const kind = feed in FEED_TITLES ? (feed === "simulated" || feed === "replay" ? feed : "live") : "other";
  return { text: feed.replace(/-/g, " "), title: FEED_TITLES[feed] ?? `Feed: ${feed}`, kind };
}
