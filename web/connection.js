// The page's link to the server, whatever carries it. Transports are tried in order (WebSocket,
// then SSE, then long polling) until one says hello; the one that worked is tried first from then
// on. A link that worked and dropped is retried with exponential backoff and jitter; a round in
// which every transport failed backs off too. The transports themselves (ws-transport.js,
// sse-transport.js, poll-transport.js) are thin adapters: each turns its wire into the protocol
// v1 messages the app already handles, and takes the app's v1 commands.

import { PROTOCOL_VERSION, isTerminalClose } from "./protocol.js";
import { PollTransport } from "./poll-transport.js";
import { SseTransport } from "./sse-transport.js";
import { WsTransport } from "./ws-transport.js";

export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 20_000;
const STABLE_AFTER_MS = 5_000; // a connection that lasts this long resets the backoff
const RTT_SAMPLES = 8;

export const TRANSPORTS = Object.freeze({ ws: WsTransport, sse: SseTransport, poll: PollTransport });
export const TRANSPORT_NAMES = Object.freeze({ ws: "WS", sse: "SSE", poll: "polling" });

// Delay before reconnect attempt `attempt` (0-based): doubling from 0.5 s to 20 s, each scaled by
// a random 0.75-1.25 so that many tabs dropped by one server restart do not return in lock-step.
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return Math.min(BACKOFF_MAX_MS, base * (0.75 + 0.5 * random()));
}

export class Connection {
  // state: "connecting" (first attempt) | "connected" (hello received) | "reconnecting" (waiting
  // for the next attempt, see retryAt; 0 while a transport retries by itself) | "offline"
  // (terminal close: no automatic retry).
  // options: transports (kinds in order of preference), wsPath () => path of the WebSocket,
  // subscription async () => symbols, for transports whose subscription is in the URL.
  constructor({ transports, wsPath, subscription, onOpen, onMessage, onState }) {
    this.order = transports;
    this.options = { wsPath, subscription, memo: {} };
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = "connecting";
    this.reason = "";
    this.kind = transports[0]; // the transport in use, or being tried
    this.attempt = 0;
    this.retryAt = 0; // performance.now() of the next attempt while reconnecting
    this.rttMs = null; // null: not measured on this transport (SSE)
    this.clockOffsetMs = 0; // server clock minus ours, from the best (lowest RTT) recent pong
    this.reconnects = 0;
    this._transport = null;
    this._index = 0; // position in `order` of the transport being tried
    this._preferred = 0; // the last transport that said hello
    this._tried = 0; // transports that failed before their hello in this round
    this._retryTimer = 0;
    this._stableTimer = 0;
    this._rtts = []; // [rtt, offset or null] of the last few samples
    this._everConnected = false;
    addEventListener("online", () => this.state === "reconnecting" && this.reconnectNow());
  }

  start() {
    this._connect();
  }

  // A protocol v1 command; false when it could not be sent (no link, or not for this transport).
  send(command) {
    return this._transport ? this._transport.send(command) : false;
  }

  get connected() {
    return this.state === "connected";
  }

  // The "retry now" button, the browser coming back online, or a manual reconnect after a
  // terminal close.
  reconnectNow() {
    clearTimeout(this._retryTimer);
    if (this._transport) return;
    this._connect();
  }

  _connect() {
    this.retryAt = 0;
    this._setState(this._everConnected ? "reconnecting" : "connecting", this.reason);
    this.kind = this.order[this._index];
    this.rttMs = null;
    this._rtts = [];
    // Callbacks bound to this one transport: whatever an abandoned one still reports is ignored.
    let transport = null;
    const current = () => transport !== null && transport === this._transport;
    const events = {
      message: (message) => current() && this._receive(message),
      // An EventSource retrying by itself: say so, without a countdown (the browser picks it).
      retrying: (reason) => current() && this.state === "connected"
        && this._setState("reconnecting", reason),
      closed: (code, reason) => current() && this._closed(transport, code, reason),
      rtt: (ms, serverTs) => current() && this._rtt(ms, serverTs),
    };
    transport = new TRANSPORTS[this.kind](this.options, events);
    this._transport = transport;
    transport.open();
  }

  _receive(message) {
    if (message.type === "hello" && this.state !== "connected") {
      if (message.version !== PROTOCOL_VERSION) {
        this._stop(`server speaks protocol v${message.version}, this page v${PROTOCOL_VERSION}`);
        return;
      }
      if (this._everConnected) this.reconnects += 1;
      this._everConnected = true;
      this._preferred = this._index;
      this._tried = 0;
      this.reason = "";
      clearTimeout(this._stableTimer);
      this._stableTimer = setTimeout(() => { this.attempt = 0; }, STABLE_AFTER_MS);
      this._setState("connected");
      this.onOpen(message);
    }
    this.onMessage(message);
  }

  _rtt(ms, serverTs) {
    this.rttMs = ms;
    this._rtts.push([ms, serverTs === undefined ? null : serverTs - (Date.now() - ms / 2)]);
    if (this._rtts.length > RTT_SAMPLES) this._rtts.shift();
    // The server stamped its answer about half a round trip ago; trust the quickest sample.
    const timed = this._rtts.filter((s) => s[1] !== null);
    if (timed.length) this.clockOffsetMs = timed.reduce((a, b) => (b[0] < a[0] ? b : a))[1];
  }

  _closed(transport, code, reason) {
    this._transport = null;
    clearTimeout(this._stableTimer);
    this.lastClose = { code, reason };
    if (isTerminalClose(code)) {
      this._stop(`closed by the server (${code}${reason ? `: ${reason}` : ""})`);
      return;
    }
    const name = TRANSPORT_NAMES[this.kind];
    if (!transport.greeted && ++this._tried < this.order.length) {
      // Refused before its hello (blocked by a proxy, or not served): the next transport, now.
      this._index = (this._index + 1) % this.order.length;
      this.reason = `${name} failed${reason ? ` (${reason})` : ""}; trying `
        + `${TRANSPORT_NAMES[this.order[this._index]]}`;
      this._connect();
      return;
    }
    this._tried = 0;
    this._index = this._preferred;
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryAt = performance.now() + delay;
    this._retryTimer = setTimeout(() => this._connect(), delay);
    this._setState("reconnecting", reason || (code === 1001 ? "server restarting" : ""));
  }

  // Stop for good (until reconnectNow): the page learned that retrying cannot succeed.
  halt(reason) {
    clearTimeout(this._retryTimer);
    this._stop(reason);
  }

  _stop(reason) {
    if (this._transport) {
      const transport = this._transport;
      this._transport = null;
      transport.close();
    }
    clearTimeout(this._stableTimer);
    this.retryAt = 0;
    this._setState("offline", reason);
  }

  _setState(state, reason = "") {
    this.state = state;
    this.reason = reason;
    this.onState(state);
  }
}
