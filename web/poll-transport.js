// Long polling (/poll?symbols=...&cursor=...&wait=25), the last resort: plain HTTP requests that
// every proxy passes. Each reply's cursor goes into the next request, so consecutive polls lose and
// repeat nothing; the cursor is kept across reconnects (same symbols), so a dropped link or a
// restarted server continues from it (or gets snapshots marked reset). The subscription is the URL
// (see url-subscription.js).
//
// A reply has no hello: the adapter writes the one a WebSocket would have sent, from the reply's
// epoch, /api/symbols (every symbol) and /readyz (the feed's kind).

import { HttpError, fetchReady, fetchSymbols } from "./api.js";
import { PROTOCOL_VERSION } from "./protocol.js";
import { withToken } from "./auth.js";
import { UrlSubscription } from "./url-subscription.js";

const WAIT_S = 25; // how long the server holds a poll that has nothing to say
// A busy market would have the page poll as fast as the round trip allows (hundreds of requests a
// second on a LAN); four a second still look live, and each reply then carries a batch.
const MIN_INTERVAL_MS = 250;
const RTT_WINDOW = 8; // the quickest of the last polls: one that did not wait for a trade

export class PollTransport {
  constructor({ subscription, memo }, events) {
    this.subscription = subscription;
    this.memo = memo; // outlives this transport: {poll: {query, cursor}}
    this.events = events; // {message, retrying, closed, rtt}, see connection.js
    this.greeted = false;
    this._sub = null;
    this._feed = "";
    this._universe = [];
    this._epoch = null;
    this._run = 0; // a new symbol set starts a new run; older loops stop
    this._abort = null;
    this._durations = [];
    this._closed = false;
  }

  async open() {
    let symbols;
    try {
      const [wanted, rows, ready] = await Promise.all([
        this.subscription(), fetchSymbols(), fetchReady().catch(() => ({ feed: "" })),
      ]);
      symbols = wanted;
      this._universe = rows.map((row) => row.symbol);
      this._feed = ready.feed ?? "";
    } catch (error) {
      this._fail(1006, `server unreachable (${error.message})`);
      return;
    }
    if (this._closed) return;
    this._sub = new UrlSubscription(symbols, {
      stop: () => this._stopRun(),
      start: () => this._loop(null),
      reply: (message) => !this._closed && this.events.message(message),
    });
    const kept = this.memo.poll;
    this._loop(kept && kept.query === this._sub.query ? kept.cursor : null);
  }

  send(command) {
    return !this._closed && this._sub !== null && this._sub.apply(command);
  }

  close() {
    this._closed = true;
    this._sub?.cancel();
    this._stopRun();
  }

  _stopRun() {
    this._run += 1;
    this._abort?.abort();
    this._abort = null;
  }

  async _loop(cursor) {
    const run = ++this._run;
    const query = this._sub.query;
    if (!query) return; // nothing wanted: nothing to ask
    const abort = new AbortController();
    this._abort = abort;
    let next = cursor;
    while (run === this._run) {
      const started = performance.now();
      let reply;
      try {
        reply = await this._poll(query, next, abort.signal);
      } catch (error) {
        if (run === this._run) this._failed(error, next !== null);
        return;
      }
      if (run !== this._run) return;
      const took = performance.now() - started;
      this._measure(took);
      this._deliver(reply);
      next = reply.cursor;
      this.memo.poll = { query, cursor: next };
      if (took < MIN_INTERVAL_MS) await sleep(MIN_INTERVAL_MS - took);
    }
  }

  async _poll(query, cursor, signal) {
    // A connection's first poll answers at once (with the snapshots, or whatever came after a
    // kept cursor): that is its hello. Later ones wait for trades.
    let url = `poll?symbols=${query}&wait=${this.greeted && cursor !== null ? WAIT_S : 0}`;
    if (cursor !== null) url += `&cursor=${encodeURIComponent(cursor)}`;
    const response = await fetch(withToken(url), { cache: "no-store", signal });
    const body = await response.json().catch(() => null);
    if (!response.ok || body === null) throw new PollError(response.status, body);
    return body;
  }

  _deliver(reply) {
    if (!this.greeted || reply.epoch !== this._epoch) {
      // First reply, or a new run of the feed (a restarted server answered the old cursor).
      this.greeted = true;
      this._epoch = reply.epoch;
      this.events.message({ type: "hello", version: PROTOCOL_VERSION, epoch: reply.epoch,
                            feed: this._feed, symbols: this._universe });
    }
    for (const snapshot of reply.snapshots ?? []) this.events.message(snapshot);
    if (reply.ticks.length) this.events.message({ type: "ticks", ticks: reply.ticks });
  }

  _measure(ms) {
    this._durations.push(ms);
    if (this._durations.length > RTT_WINDOW) this._durations.shift();
    this.events.rtt(Math.min(...this._durations));
  }

  _failed(error, hadCursor) {
    if (!(error instanceof PollError)) {
      this._fail(1006, "server unreachable");
      return;
    }
    if (error.status === 503) {
      this._fail(1001, "server restarting"); // the cursor stays: the next server continues it
      return;
    }
    if (error.status === 400 && hadCursor) {
      // A cursor this server cannot use: start over from snapshots.
      this.memo.poll = null;
      this._fail(1006, "cursor refused");
      return;
    }
    if (error.body?.code) {
      // The server refused this subscription (unknown symbol, too many): say why.
      const { code, message } = error.body;
      this.events.message({ type: "error", code, message });
    }
    this._fail(1006, `HTTP ${error.status}`);
  }

  _fail(code, reason) {
    this.close();
    this.events.closed(code, reason);
  }
}

class PollError extends HttpError {
  constructor(status, body) {
    super(status);
    this.body = body;
  }
}

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}
