// Server-Sent Events (/sse?symbols=...), the fallback for networks that block WebSockets. The
// events are the protocol v1 messages (hello, snapshot, ticks); the subscription is the URL (see
// url-subscription.js).
//
// Within one stream the browser's EventSource reconnects by itself, sending Last-Event-ID, and
// the server continues exactly after the last event received. Past a few failed tries in a row
// the server is down rather than blipping, and the Connection's backoff takes over. There is no
// round trip to measure: the status shows "—".

import { withToken } from "./auth.js";
import { UrlSubscription } from "./url-subscription.js";

const EVENTS = ["hello", "snapshot", "ticks"];
const SELF_RETRIES = 3; // about 3 s: the server asks for a retry after 1 s

export class SseTransport {
  constructor({ subscription }, events) {
    this.subscription = subscription;
    this.events = events; // {message, retrying, closed, rtt}, see connection.js
    this.greeted = false;
    this._sub = null;
    this._source = null;
    this._errors = 0; // errors since the last event
    this._closed = false;
  }

  async open() {
    let symbols;
    try {
      symbols = await this.subscription();
    } catch (error) {
      this._fail(`no symbol list: ${error.message}`);
      return;
    }
    if (this._closed) return;
    this._sub = new UrlSubscription(symbols, {
      stop: () => this._closeSource(),
      start: () => this._openSource(),
      reply: (message) => !this._closed && this.events.message(message),
    });
    this._openSource();
  }

  send(command) {
    return !this._closed && this._sub !== null && this._sub.apply(command);
  }

  close() {
    this._closed = true;
    this._sub?.cancel();
    this._closeSource();
  }

  _openSource() {
    if (this._closed || !this._sub.symbols.length) return; // nothing wanted: no stream
    const source = new EventSource(withToken(`sse?symbols=${this._sub.query}`));
    this._source = source;
    this._errors = 0;
    for (const type of EVENTS) source.addEventListener(type, (event) => this._event(source, event));
    source.onerror = () => this._error(source);
  }

  _closeSource() {
    this._source?.close();
    this._source = null;
  }

  _event(source, event) {
    if (source !== this._source) return;
    this._errors = 0;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "hello") this.greeted = true;
    this.events.message(message);
  }

  _error(source) {
    if (source !== this._source) return;
    // CLOSED: refused (an HTTP error, or not an event stream); the browser will not retry.
    const refused = source.readyState === EventSource.CLOSED;
    this._errors += 1;
    if (!this.greeted || refused || this._errors > SELF_RETRIES) {
      this._fail(refused ? "refused" : "stream lost");
      return;
    }
    this.events.retrying("stream lost: the browser is reconnecting");
  }

  _fail(reason) {
    this.close();
    this.events.closed(1006, reason);
  }
}
