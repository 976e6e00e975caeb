// What the page holds per symbol, and the rules that keep it exact: seqs rise by one, a tick at or
// below the last seq held is a duplicate (ignored and counted), a jump is a gap (resubscribe with
// resume), a snapshot replaces everything held for its symbol, a new epoch drops everything.
// A snapshot that overlaps what is held (a stream reopened for another symbol set, over SSE or
// long polling) only adds its newer ticks.
// Pure bookkeeping: no DOM, no socket. The app turns the callbacks into requests and redraws.

const RING = 300; // recent ticks kept per symbol: a new chart starts from them (snapshot + live)

class SymbolState {
  constructor(symbol, firstIsOpen) {
    this.symbol = symbol;
    this.firstIsOpen = firstIsOpen; // replay: change since the first trade played
    this.name = "";
    this.lastSeq = 0;
    this.last = null; // newest tick
    this.open = null; // first trade of the feed run, from /api/symbols or seq 1
    this.ring = [];
    this.draining = false; // after a gap or a fresh resync: drop ticks until "unsubscribed"
    this.wantFresh = false; // next subscribe must not resume: a fresh snapshot is wanted
    this.ready = false; // a snapshot of the current run came: what we hold is the real history
  }

  clear(keepOpen = false) {
    this.ready = false;
    this.lastSeq = 0;
    this.last = null;
    if (!keepOpen) this.open = null;
    this.ring = [];
  }

  take(tick) {
    this.lastSeq = tick.seq;
    this.last = tick;
    if (this.open === null && (tick.seq === 1 || this.firstIsOpen)) this.open = tick.price;
    this.ring.push(tick);
    if (this.ring.length > RING * 2) this.ring = this.ring.slice(-RING); // amortised trim
  }
}

export class Store {
  // replay: a seek starts a new run of the same recording, which keeps its "open" (the first
  // price played), and a recording that starts mid-session has no seq 1 to take it from.
  constructor({ onTick, onReset, onGap, replay = false }) {
    this.replay = replay;
    this.onTick = onTick; // (tick) for every tick taken
    this.onReset = onReset; // (symbol) its held data was replaced: redraw from scratch
    this.onGap = onGap; // (symbol) resubscribe it with resume from lastSeq
    this.epoch = "";
    this.feed = "";
    this.symbols = new Map();
    this.counts = { received: 0, taken: 0, duplicates: 0, gaps: 0, resets: 0, snapshots: 0,
                    resumed: 0, drained: 0, continued: 0 };
    this.newestTs = 0; // feed time of the newest tick
  }

  get(symbol) {
    return this.symbols.get(symbol);
  }

  // Returns true when the feed run changed under data we held: everything was dropped.
  hello(message) {
    this.feed = message.feed;
    for (const symbol of message.symbols) {
      if (!this.symbols.has(symbol)) this.symbols.set(symbol, new SymbolState(symbol, this.replay));
    }
    if (message.epoch === this.epoch) return false;
    const hadData = this.epoch !== "";
    this.epoch = message.epoch;
    if (hadData) {
      // Each subscribed symbol then gets a snapshot (reset) that redraws it.
      this.newestTs = 0; // a replay's new run may be earlier in time (a seek back)
      for (const state of this.symbols.values()) {
        state.clear(this.replay);
        state.draining = false;
        state.wantFresh = false;
      }
    }
    return hadData;
  }

  // The subscribe to send on a new connection: every symbol, with a resume for those we hold.
  resume() {
    const seqs = {};
    for (const state of this.symbols.values()) {
      state.draining = false; // a new connection has no tail of an old subscription
      if (state.lastSeq > 0 && !state.wantFresh) seqs[state.symbol] = state.lastSeq;
    }
    return Object.keys(seqs).length ? { epoch: this.epoch, seqs } : null;
  }

  // Start dropping a symbol's ticks until the server confirms the unsubscribe that the caller sends
  // next; `fresh` asks for a snapshot rather than a resume afterwards.
  beginResync(symbol, fresh) {
    const state = this.symbols.get(symbol);
    if (!state) return;
    state.draining = true;
    state.wantFresh = fresh;
  }

  subscribed(message) {
    this.counts.resumed += (message.resumed || []).length;
  }

  unsubscribed(message) {
    for (const symbol of message.symbols) {
      const state = this.symbols.get(symbol);
      if (state) state.draining = false;
    }
  }

  snapshot(message) {
    const state = this.symbols.get(message.symbol);
    if (!state || message.epoch !== this.epoch) return;
    this.counts.snapshots += 1;
    if (message.reset) this.counts.resets += 1;
    if (this._continues(state, message)) {
      this.counts.continued += 1;
      for (const tick of message.ticks) {
        if (tick.seq > state.lastSeq) this._take(state, tick);
      }
      return;
    }
    const open = state.open; // same run, same open; a new run cleared it in hello()
    state.clear();
    state.open = open;
    state.draining = false;
    state.wantFresh = false;
    state.ready = true;
    for (const tick of message.ticks) state.take(tick);
    const newest = state.last;
    if (newest && newest.ts > this.newestTs) this.newestTs = newest.ts;
    this.onReset(state.symbol);
  }

  ticks(message) {
    for (const tick of message.ticks) {
      this.counts.received += 1;
      const state = this.symbols.get(tick.symbol);
      if (!state) continue;
      if (state.draining) {
        this.counts.drained += 1;
        continue;
      }
      if (tick.seq <= state.lastSeq) {
        this.counts.duplicates += 1;
        continue;
      }
      // A replay's run after a seek starts at the recorded seqs, not at 1, and its snapshot is
      // often empty: then the first tick is where the symbol starts.
      const starts = this.replay && state.lastSeq === 0 && state.ready;
      if (tick.seq > state.lastSeq + 1 && !starts) {
        this.counts.gaps += 1;
        this.onGap(state.symbol);
        continue;
      }
      this._take(state, tick);
    }
  }

  _take(state, tick) {
    state.take(tick);
    this.counts.taken += 1;
    if (tick.ts > this.newestTs) this.newestTs = tick.ts;
    this.onTick(tick);
  }

  // A snapshot (not a reset, not asked for fresh) whose ticks reach from at most the seq after the
  // last one held to at least that one: what it adds continues what is held exactly.
  _continues(state, message) {
    const ticks = message.ticks;
    return !message.reset && !state.wantFresh && state.ready && state.lastSeq > 0
      && ticks.length > 0 && ticks[0].seq <= state.lastSeq + 1
      && ticks[ticks.length - 1].seq >= state.lastSeq;
  }

  // Ticks of `symbol` with seq > `afterSeq`, oldest first (what a chart adds after its history).
  since(symbol, afterSeq = 0) {
    const ring = this.symbols.get(symbol)?.ring ?? [];
    let start = ring.length;
    while (start > 0 && ring[start - 1].seq > afterSeq) start -= 1;
    return ring.slice(start);
  }

  lastSeqs() {
    const out = {};
    for (const state of this.symbols.values()) out[state.symbol] = state.lastSeq;
    return out;
  }
}
