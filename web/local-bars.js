// OHLCV bars built in the page from the ticks it takes: the chart history of a replay. The live
// server's /api/bars describes the live market, not the recording, so in replay mode the charts
// ask this instead; it answers in the same shape, with the same bar boundaries (ticker/bars.py),
// and `seq` tells which ticks the bars already hold, as the server's does.

import { INTERVALS } from "./figure.js";

const KEEP = 3_600; // bars per symbol and interval, as the server's hub.bars_kept

export class LocalBars {
  constructor() {
    this.symbols = new Map(); // symbol -> {seq, "1s": [bar...], "5s": [...], "1m": [...]}
  }

  clear() {
    this.symbols.clear();
  }

  // Start a symbol over from these ticks (its snapshot replaced what was held).
  reset(symbol, ticks) {
    this.symbols.delete(symbol);
    for (const tick of ticks) this.add(tick);
  }

  add(tick) {
    let held = this.symbols.get(tick.symbol);
    if (!held) {
      held = { seq: 0, ...Object.fromEntries(Object.keys(INTERVALS).map((k) => [k, []])) };
      this.symbols.set(tick.symbol, held);
    }
    held.seq = tick.seq;
    for (const [interval, ms] of Object.entries(INTERVALS)) {
      const bars = held[interval];
      const start = tick.ts - (tick.ts % ms);
      const bar = bars[bars.length - 1];
      if (bar && bar.start === start) {
        bar.high = Math.max(bar.high, tick.price);
        bar.low = Math.min(bar.low, tick.price);
        bar.close = tick.price;
        bar.volume += tick.size;
      } else if (!bar || start > bar.start) {
        bars.push({ start, open: tick.price, high: tick.price, low: tick.price,
                    close: tick.price, volume: tick.size });
        if (bars.length > KEEP * 1.25) bars.splice(0, bars.length - KEEP); // amortised trim
      }
    }
  }

  // What /api/bars would answer; a promise, like the fetch it stands in for. Copies: the chart
  // edits its arrays in place.
  async bars(symbol, interval, limit) {
    const held = this.symbols.get(symbol);
    const bars = held ? held[interval].slice(-limit).map((bar) => ({ ...bar })) : [];
    return { symbol, interval, seq: held ? held.seq : 0, bars };
  }
}
