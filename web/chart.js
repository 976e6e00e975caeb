// One symbol's chart: a live price line, or candlesticks with volume bars under them.
//
// History comes from /api/bars plus the recent ticks the store holds; after that the chart only
// appends. Ticks wait in `pending` until the grid's animation frame calls flush(), which draws all
// of them with one Plotly call. Every trace has a bounded length, so a tab left open all day does
// not grow. While the user has zoomed or panned, the chart stops steering its axes ("follow live"
// is off) until the Live button or a double-click turns it back on.

import {
  HISTORY_BARS_MAX, INTERVALS, LINE_BUCKET_MS, LINE_MAX_POINTS, MAX_CANDLES, PENDING_CAP,
  TZ_SHIFT_MS, WINDOWS, addTick, baseLayout, buildCandles, buildLine, candleRanges,
  candleSpanMs, candleTraces, lineRanges, lineTraces, trimFront,
} from "./figure.js";
import { arrow, fmtChange, fmtPct, fmtPrice, sessionChange } from "./format.js";

// No `responsive`: the grid's ResizeObserver resizes each chart when its cell changes, which also
// covers window resizes. Double-click and the autoscale button autorange, which turns following
// back on; "reset axes" would restore the ranges of the first draw, long stale: not offered.
const PLOT_CONFIG = {
  displaylogo: false,
  showTips: false, // plotly's "double-click to zoom back out" popup: the Live button says it
  displayModeBar: "hover",
  doubleClick: "autosize",
  modeBarButtonsToRemove: ["select2d", "lasso2d", "resetScale2d", "toImage"],
};

export class Chart {
  constructor(symbol, { name, store, api, settings, colors, onRemove, wake, replay = false }) {
    this.symbol = symbol;
    this.replay = replay; // a recording: "Follow" rather than "Live", and a watermark
    this.wake = wake; // asks the grid for an animation frame
    this.store = store;
    this.api = api;
    this.settings = settings;
    this.colors = colors;
    this.state = "idle"; // idle | loading | live | stale (overflowed) | resyncing | error
    this.pending = [];
    this.follow = true;
    this.dirty = false; // redraw even without new ticks (follow turned on, theme changed)
    this.waitingSince = 0; // when the oldest undrawn change came: the grid draws oldest first
    this.drawnAt = 0;
    this.dragging = false;
    this.inView = true;
    this.lastSeq = 0; // last seq drawn or pending: the chart's own continuity check
    this.seqGaps = 0;
    this.reloads = 0;
    this.quoteDirty = true; // the header's price is redrawn every frame, paused or not
    this._gen = 0;
    this._plotted = false;
    this._drawing = false; // Plotly.react under way: no flush until it is done
    this._retry = 0;
    this.el = buildCard(symbol, name, onRemove, () => this.setFollow(true), replay);
    this.gd = this.el.querySelector(".plot");
    this._px = this.el.querySelector(".px");
    this._chg = this.el.querySelector(".chg");
    this._note = this.el.querySelector(".chart-note");
    this._live = this.el.querySelector(".live");
  }

  get points() {
    return this._plotted ? this.gd.data[0].x.length : 0;
  }

  // A tick the store took. Ignored until the history is drawn: reload() reads the store itself.
  push(tick) {
    this.quoteDirty = true;
    if (this.state !== "live") return;
    // From nothing held, a replay's run may start at any seq (the store checked it).
    if (this.lastSeq && tick.seq !== this.lastSeq + 1) this.seqGaps += 1;
    this.lastSeq = tick.seq;
    if (this.pending.length >= PENDING_CAP) {
      this.pending = [];
      this._setState("stale");
      return;
    }
    if (!this.pending.length && !this.dirty) this.waitingSince = performance.now();
    this.pending.push(tick);
  }

  canDraw() {
    return this.state === "live" && this._plotted && !this._drawing && this.inView
      && !this.dragging && !document.hidden;
  }

  waitForSnapshot() {
    this._setState("loading");
  }

  // The grid asked for a fresh snapshot after an overflow; reload() follows when it comes.
  markResyncing() {
    this._setState("resyncing");
  }

  needsDraw() {
    return this.pending.length > 0 || this.dirty;
  }

  setSettings(settings) {
    this.settings = settings;
    this.follow = true;
    this.reload();
  }

  setName(name) {
    this.el.querySelector(".name").textContent = name;
  }

  // A theme change: the same data drawn again in the new colours (the zoom stays: same uirevision).
  setColors(colors) {
    this.colors = colors;
    if (!this._plotted || this._drawing) return;
    const [first, second] = this.gd.data;
    const data = this.settings.view === "candles"
      ? { x: first.x, open: first.open, high: first.high, low: first.low, close: first.close,
          volume: second.y, colors: second.marker.color }
      : { x: first.x, y: first.y };
    // Redecorated (line colour, price tag) at the next frame, which must be asked for: a paused
    // replay or a quiet market sends no tick that would ask for it.
    this._draw(data).then(() => {
      this._markDirty();
      this.wake();
    });
  }

  setFollow(follow) {
    this.follow = follow;
    this._live.setAttribute("aria-pressed", String(follow));
    this._markDirty();
    this.wake();
  }

  // Fetch the history and draw it from scratch; live ticks continue from the store's last seq.
  async reload() {
    clearTimeout(this._retry);
    const gen = ++this._gen;
    this.reloads += 1;
    this.quoteDirty = true;
    this.pending = [];
    this._setState("loading");
    const candles = this.settings.view === "candles";
    const interval = candles ? this.settings.interval : "1s";
    const span = candles ? candleSpanMs(this.settings) : WINDOWS[this.settings.window];
    const limit = Math.min(HISTORY_BARS_MAX, Math.ceil(span / INTERVALS[interval]) + 2);
    let history;
    try {
      history = await this.api.bars(this.symbol, interval, limit);
    } catch (error) {
      if (gen !== this._gen) return;
      this._setState("error", `history unavailable (${error.message}); retrying`);
      this._retry = setTimeout(() => this.reload(), 3_000);
      return;
    }
    if (gen !== this._gen) return; // a newer reload (or removal) overtook this one
    const held = this.store.get(this.symbol);
    if (!held) return;
    // Bars that the server built before it answered already contain the ticks we had received
    // then; with the server's seq we know exactly which, without it we assume all of them.
    const barsSeq = Number.isInteger(history.seq) ? history.seq : held.lastSeq;
    const data = candles
      ? buildCandles(history.bars, this.store.since(this.symbol, barsSeq), this.settings)
      : buildLine(history.bars, this.store.since(this.symbol, 0), this.settings);
    // Live from here on: ticks after held.lastSeq queue up while plotly draws the history.
    this.lastSeq = held.lastSeq;
    this._setState("live");
    await this._draw(data);
    if (gen !== this._gen) return;
    this._markDirty(); // price tag, header
    this.wake();
  }

  _markDirty() {
    if (!this.pending.length && !this.dirty) this.waitingSince = performance.now();
    this.dirty = true;
  }

  // Draw whatever is pending in one Plotly call. Called from the grid's animation frame.
  flush() {
    if (!this._plotted) return;
    const ticks = this.pending;
    this.pending = [];
    this.dirty = false;
    this.drawnAt = performance.now();
    if (this.settings.view === "candles") this._flushCandles(ticks);
    else this._flushLine(ticks);
  }

  _flushLine(ticks) {
    const trace = this.gd.data[0];
    const bucket = LINE_BUCKET_MS[this.settings.window];
    const xs = [];
    const ys = [];
    const n = trace.x.length;
    let lastX = n ? trace.x[n - 1] : -Infinity;
    for (const tick of ticks) {
      const x = tick.ts + TZ_SHIFT_MS;
      if (bucket && Math.floor(x / bucket) === Math.floor(lastX / bucket)) {
        // Same bucket: the newest price replaces the bucket's point, in place.
        if (xs.length) {
          xs[xs.length - 1] = x;
          ys[ys.length - 1] = tick.price;
        } else if (n) {
          trace.x[n - 1] = x;
          trace.y[n - 1] = tick.price;
        }
      } else {
        xs.push(x);
        ys.push(tick.price);
      }
      lastX = x;
    }
    this._steer(lineRanges(trace.x, trace.y, xs, ys, this.settings));
    this._decorate();
    // extendTraces trims to LINE_MAX_POINTS and redraws (it also picks up the in-place change).
    if (xs.length) Plotly.extendTraces(this.gd, { x: [xs], y: [ys] }, [0], LINE_MAX_POINTS);
    else Plotly.redraw(this.gd);
  }

  _flushCandles(ticks) {
    // The forming candle changes in place and new candles are appended, for both traces at once;
    // extendTraces cannot do either (it only appends, and one call extends one set of
    // attributes), so the arrays are edited directly and redrawn once, which is what
    // extendTraces does internally too.
    const [candle, volume] = this.gd.data;
    const data = { x: candle.x, open: candle.open, high: candle.high, low: candle.low,
                   close: candle.close, volume: volume.y, colors: volume.marker.color };
    for (const tick of ticks) addTick(data, tick, INTERVALS[this.settings.interval], this.colors);
    trimFront(data, MAX_CANDLES);
    this._steer(candleRanges(data, this.settings));
    this._decorate();
    Plotly.redraw(this.gd);
  }

  // Follow live: the window ends at the newest data, and the price axis fits what is visible.
  _steer(ranges) {
    if (!this.follow || !ranges) return;
    const layout = this.gd.layout;
    Object.assign(layout.xaxis, { range: ranges.x, autorange: false });
    Object.assign(layout.yaxis, { range: ranges.y, autorange: false });
    if (ranges.y2 && layout.yaxis2) {
      Object.assign(layout.yaxis2, { range: ranges.y2, autorange: false });
    }
  }

  // The header's last price and change: cheap text, so it follows every frame like the
  // watchlist, even while the plot waits for its turn or is paused.
  renderQuote() {
    this.quoteDirty = false;
    const held = this.store.get(this.symbol);
    const last = held?.last?.price ?? null;
    const { change, pct, dir } = sessionChange(last, held?.open);
    this._px.textContent = fmtPrice(last);
    this._chg.textContent = change === null ? ""
      : `${arrow(dir)} ${fmtChange(change)} (${fmtPct(pct)})`;
    this._chg.className = `chg num ${dir}`;
  }

  // The last-price tag on the axis, the dotted session-open line, the line colour.
  _decorate() {
    const held = this.store.get(this.symbol);
    const last = held?.last?.price ?? null;
    const { dir } = sessionChange(last, held?.open);
    const c = this.colors;
    const colour = dir === "up" ? c.up : dir === "down" ? c.down : c.accent;
    const layout = this.gd.layout;
    layout.annotations = last === null ? [] : [{
      xref: "paper", x: 1, xanchor: "left", yref: "y", y: last, text: fmtPrice(last),
      showarrow: false, bgcolor: colour, borderpad: 2, font: { color: c.tagText, size: 10 },
    }];
    // Even a chart cropped out of a screenshot says it is not the live market.
    if (this.replay) layout.annotations.push(REPLAY_MARK(c));
    layout.shapes = held?.open ? [{
      type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: held.open, y1: held.open,
      line: { color: c.muted, width: 1, dash: "dot" }, layer: "below",
    }] : [];
    if (this.settings.view === "line") this.gd.data[0].line.color = colour;
  }

  async _draw(data) {
    const candles = this.settings.view === "candles";
    const traces = candles ? candleTraces(data, this.colors) : lineTraces(data, this.colors);
    const layout = baseLayout(this.settings, this.colors);
    const ranges = candles ? candleRanges(data, this.settings)
      : lineRanges(data.x, data.y, [], [], this.settings);
    if (this.follow && ranges) {
      layout.xaxis.range = ranges.x;
      layout.yaxis.range = ranges.y;
      if (ranges.y2) layout.yaxis2.range = ranges.y2;
    }
    this._drawing = true;
    try {
      await Plotly.react(this.gd, traces, layout, PLOT_CONFIG);
    } finally {
      this._drawing = false;
    }
    if (!this._plotted) this._listen();
    this._plotted = true;
  }

  // Any zoom or pan by the user stops following; a double-click (autorange) resumes it.
  _listen() {
    this.gd.on("plotly_relayouting", () => { this.dragging = true; });
    this.gd.on("plotly_relayout", (event) => {
      this.dragging = false;
      this.wake();
      const keys = Object.keys(event);
      if (event["xaxis.autorange"] || event["yaxis.autorange"]) this.setFollow(true);
      else if (keys.some((key) => /^(xaxis|yaxis2?)\.range/.test(key))) this.setFollow(false);
    });
  }

  _setState(state, note = "") {
    this.state = state;
    this.el.dataset.state = state;
    const clamped = this.settings.view === "candles"
      && candleSpanMs(this.settings) < WINDOWS[this.settings.window];
    const span = clamped ? `last ${candleSpanMs(this.settings) / 60_000} min` : "";
    const catching = state === "stale" || state === "resyncing" ? "catching up\u2026" : "";
    this._note.textContent = note || catching || span;
    this._note.title = !note && !catching && clamped
      ? `At most ${MAX_CANDLES} candles per chart: pick a longer interval for the whole window`
      : this._note.textContent;
  }

  destroy() {
    this._gen += 1;
    clearTimeout(this._retry);
    if (this._plotted) Plotly.purge(this.gd);
    this.el.remove();
  }
}

const REPLAY_MARK = (c) => ({
  xref: "paper", yref: "paper", x: 0.5, y: 0.5, text: "REPLAY", showarrow: false,
  font: { size: 44, color: c.replay, family: c.font }, opacity: 0.13,
});

function buildCard(symbol, name, onRemove, onLive, replay) {
  const el = document.createElement("article");
  el.className = "chart";
  el.dataset.symbol = symbol;
  el.innerHTML = `
    <header class="chart-head">
      <span class="sym"></span><span class="name"></span>
      <span class="quote"><span class="px num"></span><span class="chg num"></span></span>
      <span class="chart-note"></span>
      <button type="button" class="live" aria-pressed="true"></button>
      <button type="button" class="remove" title="Remove this chart">\u00D7</button>
    </header>
    <div class="plot"></div>`;
  el.querySelector(".sym").textContent = symbol;
  const live = el.querySelector(".live");
  live.textContent = replay ? "Follow" : "Live";
  live.title = replay
    ? "Follow playback: keep the newest trade played at the right edge (or double-click the chart)"
    : "Follow live: keep the newest data at the right edge (or double-click the chart)";
  el.querySelector(".name").textContent = name;
  el.querySelector(".remove").setAttribute("aria-label", `Remove ${symbol}`);
  el.querySelector(".remove").addEventListener("click", () => onRemove(symbol));
  el.querySelector(".live").addEventListener("click", onLive);
  return el;
}
