// WebSocket (/ws, or /ws/replay?...): protocol v1 as it is, both ways. It pings every 5 s to
// measure the round trip and to notice a dead link that never closes (a laptop lid, a NAT that
// forgot us): two pings unanswered and it gives up on the link.

import { withToken } from "./auth.js";
import { ping } from "./protocol.js";

const PING_EVERY_MS = 5_000;
const PONG_TIMEOUT_MS = 12_000;

export class WsTransport {
  constructor({ wsPath }, events) {
    const url = new URL(withToken(wsPath()), location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = url.href;
    this.events = events; // {message, retrying, closed, rtt}, see connection.js
    this.greeted = false; // a hello came: the transport works here
    this._ws = null;
    this._pingTimer = 0;
    this._pings = new Map(); // ping id -> performance.now() when sent
    this._nextPingId = 1;
  }

  open() {
    const ws = new WebSocket(this.url);
    this._ws = ws;
    ws.onopen = () => {
      this._pingTimer = setInterval(() => this._ping(), PING_EVERY_MS);
    };
    // A property, not addEventListener: a test's tap on the socket wraps exactly this setter.
    ws.onmessage = (event) => this._receive(event.data);
    ws.onclose = (event) => this._end(event.code, event.reason);
    // onerror carries no detail; onclose always follows it.
  }

  send(command) {
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return false;
    this._ws.send(JSON.stringify(command));
    return true;
  }

  close() {
    const ws = this._ws;
    this._ws = null;
    clearInterval(this._pingTimer);
    if (ws) {
      ws.onclose = ws.onmessage = null;
      ws.close();
    }
  }

  _receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return; // the server only sends JSON; a broken frame is not worth dropping the link
    }
    if (message.type === "pong") this._pong(message);
    const first = message.type === "hello" && !this.greeted;
    if (first) this.greeted = true;
    this.events.message(message);
    if (first) this._ping(); // measure the round trip right away rather than in 5 s
  }

  _ping() {
    const now = performance.now();
    for (const sent of this._pings.values()) {
      if (now - sent > PONG_TIMEOUT_MS) {
        // Gone quiet: stop listening and report it now, without waiting for a close handshake
        // that may never come.
        this.close();
        this.events.closed(1006, "no answer to ping");
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
    this.events.rtt(performance.now() - sent, message.ts);
  }

  _end(code, reason) {
    this._ws = null;
    clearInterval(this._pingTimer);
    this.events.closed(code, reason);
  }
}
