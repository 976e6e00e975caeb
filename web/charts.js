// The grid of charts: adds and removes them in the order of the selection, routes each tick to its
// chart, and draws every chart that has something new once per animation frame. A chart that
// cannot draw (paused, tab hidden, scrolled out of view) keeps its ticks up to a cap; one that
// overflowed is resynced from a fresh snapshot when it can draw again.

import { Chart } from "./chart.js";

// A plotly redraw costs milliseconds whatever the number of new points (it recomputes the whole
// figure). So a frame draws the charts that have waited longest until FRAME_BUDGET_MS is spent,
// and each chart waits between redraws long enough that all of them together take about
// CPU_SHARE of the main thread (measured, so a fast machine redraws up to 20 times a second and a
// slow one less often): a dozen charts stay responsive, and an all-day tab does not burn a core.
const FRAME_BUDGET_MS = 8;
const CPU_SHARE = 0.4;
const MIN_REDRAW_MS = 50;
const MAX_REDRAW_MS = 1_000;

export class ChartGrid {
  constructor(container, { store, api, settings, colors, onRemove, onResync, wake, replay }) {
    this.container = container;
    this.deps = { store, api, onRemove, wake, replay };
    this.store = store;
    this.wake = wake; // (re)schedules frame() when something became drawable
    this.settings = settings;
    this.colors = colors;
    this.onResync = onResync; // (symbols) ask the server for fresh snapshots
    this.paused = false;
    this.charts = new Map();
    this.frames = 0; // frames that drew, and the time they took: for tickerDebug
    this.drawMs = 0;
    this.redrawMs = 5; // moving average of one chart's redraw
    this.interval = MIN_REDRAW_MS; // current wait between two redraws of one chart
    this._empty = container.querySelector(".charts-empty");
    // Only charts on screen are drawn: with a dozen charts on a phone most are scrolled away.
    this._seen = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const chart = this.charts.get(entry.target.dataset.symbol);
        if (chart) chart.inView = entry.isIntersecting;
      }
      this.wake();
    });
    // A chart's cell changes size with the window, the layout breakpoints and the scrollbar.
    this._sized = new ResizeObserver((entries) => {
      for (const entry of entries) {
        if (entry.target.isConnected && entry.target.data) Plotly.Plots.resize(entry.target);
      }
    });
  }

  // Make the grid show exactly `symbols`, in that order; returns the charts that are new.
  sync(symbols, names) {
    const wanted = new Set(symbols);
    for (const [symbol, chart] of this.charts) {
      if (!wanted.has(symbol)) {
        this._seen.unobserve(chart.el);
        this._sized.unobserve(chart.gd);
        chart.destroy();
        this.charts.delete(symbol);
      }
    }
    const added = [];
    for (const symbol of symbols) {
      let chart = this.charts.get(symbol);
      if (!chart) {
        chart = new Chart(symbol, { ...this.deps, name: names.get(symbol) ?? "",
                                    settings: this.settings, colors: this.colors });
        this.charts.set(symbol, chart);
        added.push(chart);
      }
      this.container.appendChild(chart.el); // appending an attached node moves it: keeps order
    }
    for (const chart of added) {
      this._seen.observe(chart.el);
      this._sized.observe(chart.gd);
      // Before its first snapshot a symbol's history is not known yet; the snapshot reloads it.
      if (this.store.get(chart.symbol)?.ready) chart.reload();
      else chart.waitForSnapshot();
    }
    this._empty.hidden = symbols.length > 0;
    return added;
  }

  push(tick) {
    this.charts.get(tick.symbol)?.push(tick);
  }

  // The store replaced this symbol's data (snapshot): redraw it from scratch.
  reset(symbol) {
    this.charts.get(symbol)?.reload();
  }

  setSettings(settings) {
    this.settings = settings;
    for (const chart of this.charts.values()) chart.setSettings(settings);
  }

  setColors(colors) {
    this.colors = colors;
    for (const chart of this.charts.values()) chart.setColors(colors);
  }

  setPaused(paused) {
    this.paused = paused;
    this.container.classList.toggle("paused", paused);
    this.wake();
  }

  followAll() {
    for (const chart of this.charts.values()) chart.setFollow(true);
  }

  // One animation frame: at most one Plotly call per chart, with all its pending ticks.
  frame() {
    if (document.hidden) return;
    for (const chart of this.charts.values()) if (chart.quoteDirty) chart.renderQuote();
    if (this.paused) return;
    const started = performance.now();
    const stale = [];
    const ready = [];
    let drawable = 0;
    for (const chart of this.charts.values()) {
      if (chart.state === "stale" && chart.inView) {
        stale.push(chart.symbol);
        chart.markResyncing();
      } else if (chart.canDraw()) {
        drawable += 1;
        if (chart.needsDraw() && started - chart.drawnAt >= this.interval) ready.push(chart);
      }
    }
    if (stale.length) this.onResync(stale);
    ready.sort((a, b) => a.waitingSince - b.waitingSince);
    let now = started;
    for (const chart of ready) {
      chart.flush();
      const end = performance.now();
      this.redrawMs += ((end - now) - this.redrawMs) * 0.1;
      now = end;
      if (now - started > FRAME_BUDGET_MS) break;
    }
    this.interval = Math.min(MAX_REDRAW_MS,
                             Math.max(MIN_REDRAW_MS, (drawable * this.redrawMs) / CPU_SHARE));
    this.frames += 1;
    this.drawMs += now - started;
  }

  hasWork() {
    if (this.paused || document.hidden) return false; // quotes: every tick wakes a frame anyway
    for (const chart of this.charts.values()) {
      if (chart.canDraw() && chart.needsDraw()) return true;
      if (chart.state === "stale" && chart.inView) return true;
    }
    return false;
  }

  debug() {
    const out = {};
    for (const [symbol, chart] of this.charts) {
      out[symbol] = { state: chart.state, points: chart.points, pending: chart.pending.length,
                      lastSeq: chart.lastSeq, seqGaps: chart.seqGaps, reloads: chart.reloads,
                      follow: chart.follow, view: chart.settings.view };
    }
    return out;
  }
}
