// For transports whose subscription is the request URL (SSE, long polling): the page's protocol
// v1 subscribe and unsubscribe commands become "the symbol set to request next", and are answered
// as the WebSocket server answers them, so the app and the store need not know the difference.
//
// A command that changes the set restarts the stream (or the poll) with the new set. The cursor of
// the old set is no use to the new one (the server refuses it), so the new stream starts without
// one: it begins with a snapshot of every symbol, and the store keeps only what it does not hold
// yet. Commands sent together (a resync's unsubscribe + subscribe) cause one restart.

export class UrlSubscription {
  // stop(): end the current stream; start(): open one for `symbols`; reply(message): to the app.
  constructor(symbols, { stop, start, reply }) {
    this.symbols = [...new Set(symbols)];
    this._stop = stop;
    this._start = start;
    this._reply = reply;
    this._replies = [];
    this._changed = false;
    this._scheduled = false;
  }

  // Symbols are [A-Z0-9.-] (protocol v1), so the list needs no escaping; URLSearchParams would
  // turn each comma into %2C.
  get query() {
    return this.symbols.join(",");
  }

  // Takes a v1 command; false for anything but (un)subscribe (ping: there is nothing to ping).
  apply(command) {
    if (command.op !== "subscribe" && command.op !== "unsubscribe") return false;
    const symbols = command.symbols.map((s) => s.toUpperCase());
    const reply = { type: `${command.op}d`, symbols };
    if (command.op === "subscribe") {
      const added = symbols.filter((s) => !this.symbols.includes(s));
      this.symbols.push(...added);
      this._changed ||= added.length > 0;
      reply.resumed = []; // a restarted stream sends snapshots; the store merges them
    } else {
      const before = this.symbols.length;
      this.symbols = this.symbols.filter((s) => !symbols.includes(s));
      this._changed ||= this.symbols.length !== before;
    }
    if (command.id !== undefined) reply.id = command.id;
    this._replies.push(reply);
    if (!this._scheduled) {
      this._scheduled = true;
      queueMicrotask(() => this._flush());
    }
    return true;
  }

  cancel() {
    this._replies = [];
    this._changed = false;
  }

  _flush() {
    this._scheduled = false;
    const replies = this._replies;
    const changed = this._changed;
    this._replies = [];
    this._changed = false;
    // The old stream ends before "unsubscribed" goes out: no tick of a dropped symbol follows it.
    if (changed) this._stop();
    for (const reply of replies) this._reply(reply);
    if (changed) this._start();
  }
}
