// One WebSocket to /ws that keeps itself alive: reconnects with exponential backoff and jitter,
// pings to measure the round trip (and to notice a dead link that never closes), and stops for
// good on a terminal close code. What to subscribe to, and from which seq, is the app's business:
// this module only reports "open", each message, and state changes.

import { PROTOCOL_VERSION, isTerminalClose, ping } from "./protocol.js";

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 20_000;
const PING_EVERY_MS = 5_000;
const PONG_TIMEOUT_MS = 12_000; // two pings unanswered: the link is dead, whatever TCP says
const STABLE_AFTER_MS = 5_000; // a connection that lasts this long resets the backoff

// Delay before reconnect attempt `attempt` (0-based): doubling from 0.5 s to 20 s, each scaled by
// a random 0.75-1.25 so that many tabs dropped by one server restart do not return in lock-step.
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return Math.min(BACKOFF_MAX_MS, base * (0.75 + 0.5 * random()));
}

export class Connection {
  // state: "connecting" (first attempt) | "connected" (hello received) | "reconnecting" (waiting
  // for the next attempt, see retryAt) | "offline" (terminal close: no automatic retry).
  constructor(url, { onOpen, onMessage, onState }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = "connecting";
    this.reason = "";
    this.attempt = 0;
    this.retryAt = 0; // performance.now() of the next attempt while reconnecting
    this.rttMs = null;
    this.clockOffsetMs = 0; // server clock minus ours, from the best (lowest RTT) recent pong
    this.reconnects = 0;
    this._ws = null;
    this._retryTimer = 0;
    this._pingTimer = 0;
    this._stableTimer = 0;
    this._pings = new Map(); // ping id -> performance.now() when sent
    this._nextPingId = 1;
    this._offsets = []; // [rtt, offset] of the last few pongs
    this._everConnected = false;
    addEventListener("online", () => this.state === "reconnecting" && this.reconnectNow());
  }

  start() {
    this._connect();
  }

  send(message) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
    this._ws.send(JSON.stringify(message));
    return true;
  }

  get connected() {
    return this.state === "connected";
  }

  // The "retry now" button, the browser coming back online, or a manual reconnect after a
  // terminal close.
  reconnectNow() {
    clearTimeout(this._retryTimer);
    if (this._ws) return;
    this._connect();
  }

  _connect() {
    this._setState(this._everConnected ? "reconnecting" : "connecting", this.reason);
    this.retryAt = 0;
    const ws = new WebSocket(this.url);
    this._ws = ws;
    ws.onopen = () => {
      this._pings.clear();
      this._pingTimer = setInterval(() => this._ping(), PING_EVERY_MS);
      this._stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_AFTER_MS);
    };
    ws.onmessage = (event) => this._receive(event.data);
    ws.onclose = (event) => this._closed(ws, event.code, event.reason);
    // onerror carries no detail; onclose always follows it.
  }

  _receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // the server only sends JSON; a broken frame is not worth dropping the link
    }
    if (message.type === "hello" && this.state !== "connected") {
      if (message.version !== PROTOCOL_VERSION) {
        this._stop(`server speaks protocol v${message.version}, this page v${PROTOCOL_VERSION}`);
        return;
      }
      if (this._everConnected) this.reconnects += 1;
      this._everConnected = true;
      this.reason = "";
      this._setState("connected");
      this.onOpen(message);
      this._ping(); // measure the round trip right away rather than in 5 s
    }
    if (message.type === "pong") this._pong(message);
    this.onMessage(message);
  }

  _ping() {
    const now = performance.now();
    for (const sent of this._pings.values()) {
      if (now - sent > PONG_TIMEOUT_MS) {
        this._drop(this._ws, "no answer to ping");
        return;
      }
    }
    const id = this._nextPingId++;
    if (this.send(ping(id))) this._pings.set(id, now);
  }

  _pong(message) {
    const sent = this._pings.get(message.id);
    if (sent === undefined) return;
    this._pings.delete(message.id);
    const now = performance.now();
    this.rttMs = now - sent;
    // The server stamped the pong about half a round trip ago.
    const offset = message.ts - (Date.now() - this.rttMs / 2);
    this._offsets.push([this.rttMs, offset]);
    if (this._offsets.length > 8) this._offsets.shift();
    this.clockOffsetMs = this._offsets.reduce((best, s) => (s[0] < best[0] ? s : best))[1];
  }

  // A link that went quiet: stop listening to it and reconnect now, without waiting for a close
  // handshake that may never come.
  _drop(ws, reason) {
    if (ws !== this._ws) return;
    ws.onclose = ws.onmessage = null;
    ws.close();
    this._closed(ws, 1006, reason);
  }

  _closed(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    clearInterval(this._pingTimer);
    clearTimeout(this._stableTimer);
    this._pings.clear();
    this.lastClose = { code, reason };
    if (isTerminalClose(code)) {
      this._stop(`closed by the server (${code}${reason ? `: ${reason}` : ""})`);
      return;
    }
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = performance.now() + delay;
    this._retryTimer = setTimeout(() => this._connect(), delay);
    this._setState("reconnecting", reason || (code === 1001 ? "server restarting" : ""));
  }

  _stop(reason) {
    if (this._ws) {
      this._ws.onclose = this._ws.onmessage = null;
      this._ws.close();
      this._ws = null;
    }
    clearInterval(this._pingTimer);
    this.retryAt = 0;
    this._setState("offline", reason);
  }

  _setState(state, reason = "") {
    this.state = state;
    this.reason = reason;
    this.onState(state);
  }
}
