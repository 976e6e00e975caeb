// Every symbol's last price and change since the open. Rows are built once; a tick only marks its
// symbol, and the next animation frame rewrites the cells of the marked rows (at most one write
// per symbol per frame however many ticks came). The last-price cell flashes green or red.

import { arrow, direction, fmtChange, fmtPct, fmtPrice, sessionChange } from "./format.js";

export class Watchlist {
  constructor(table, { store, onPick }) {
    this.body = table.tBodies[0];
    this.count = document.querySelector(".wl-count");
    this.store = store;
    this.rows = new Map(); // symbol -> {row, last, chg, pct, shown, flip}
    this.dirty = new Set();
    this.body.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) onPick(row.dataset.symbol);
    });
    this.body.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === " ") && event.target.matches("tr")) {
        event.preventDefault();
        onPick(event.target.dataset.symbol);
      }
    });
  }

  setSymbols(symbols) {
    if (symbols.length === this.rows.size && symbols.every((s) => this.rows.has(s))) return;
    this.body.textContent = "";
    this.rows.clear();
    for (const symbol of symbols) {
      const row = this.body.insertRow();
      row.dataset.symbol = symbol;
      row.tabIndex = 0;
      row.innerHTML = '<th scope="row" class="sym"></th><td class="num last"></td>'
        + '<td class="num chg"></td><td class="num pct"></td>';
      row.cells[0].textContent = symbol;
      const [, last, chg, pct] = row.cells;
      this.rows.set(symbol, { row, last, chg, pct, shown: null, seq: 0, flip: false });
      this.dirty.add(symbol);
    }
    this.count.textContent = String(symbols.length);
  }

  setName(symbol, name) {
    const entry = this.rows.get(symbol);
    if (entry) entry.row.title = name ? `${symbol} \u00B7 ${name}` : symbol;
  }

  setCharted(symbols) {
    const charted = new Set(symbols);
    for (const [symbol, { row }] of this.rows) {
      row.classList.toggle("charted", charted.has(symbol));
    }
  }

  mark(symbol) {
    this.dirty.add(symbol);
  }

  markAll() {
    for (const symbol of this.rows.keys()) this.dirty.add(symbol);
  }

  hasWork() {
    return this.dirty.size > 0;
  }

  flush() {
    for (const symbol of this.dirty) {
      const entry = this.rows.get(symbol);
      const held = this.store.get(symbol);
      if (!entry || !held) continue;
      const price = held.last ? held.last.price : null;
      const { change, pct, dir } = sessionChange(price, held.open);
      entry.last.textContent = fmtPrice(price);
      entry.chg.textContent = change === null ? "" : `${arrow(dir)} ${fmtChange(change)}`;
      entry.pct.textContent = fmtPct(pct);
      entry.row.dataset.dir = dir;
      const seq = held.last ? held.last.seq : 0;
      if (price !== null && entry.shown !== null && seq !== entry.seq) {
        // Alternating between two identical animations restarts the flash on every update
        // without forcing a style recalculation.
        const tick = direction(Math.round((price - entry.shown) * 100));
        entry.flip = !entry.flip;
        entry.last.dataset.flash = `${tick}-${entry.flip ? 1 : 2}`;
      }
      entry.shown = price;
      entry.seq = seq;
    }
    this.dirty.clear();
  }
}
