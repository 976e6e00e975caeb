// The numbers behind a chart, without the DOM: history and live ticks turned into plotly traces
// (a line, or candles with volume), the layout, and the axis ranges that "follow live" keeps.
// Every array here is bounded: LINE_MAX_POINTS points, MAX_CANDLES candles.

export const WINDOWS = { "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000 };
export const INTERVALS = { "1s": 1_000, "5s": 5_000, "1m": 60_000 };
// The line keeps every tick for 1 minute; longer windows keep the last price per bucket, so that
// every window holds at most about 3,000 points (plotly redraws a whole trace per update).
export const LINE_BUCKET_MS = { "1m": 0, "5m": 200, "15m": 500, "1h": 2_000 };
export const LINE_MAX_POINTS = 3_000;
// Candlesticks are SVG, one path per candle: more than this per chart gets slow.
export const MAX_CANDLES = 900;
// Ticks waiting while the chart cannot draw (paused, tab hidden, scrolled away). Past this the
// chart drops them and asks for a fresh snapshot instead of replaying a backlog.
export const PENDING_CAP = 4_000;
export const HISTORY_BARS_MAX = 3_600; // /api/bars' default hub.bars_kept
// Plotly shows epoch-ms dates as UTC; shifting them by the local offset makes the axis read local
// time, as the trader's clock does.
export const TZ_SHIFT_MS = -new Date().getTimezoneOffset() * 60_000;

export function candleSpanMs(settings) {
  return Math.min(WINDOWS[settings.window], MAX_CANDLES * INTERVALS[settings.interval]);
}

// -- data ---------------------------------------------------------------------------------------

// 1 s bar closes for the part of the window older than the ticks held, then the ticks.
export function buildLine(bars, ticks, settings) {
  const bucket = LINE_BUCKET_MS[settings.window];
  const firstTs = ticks.length ? ticks[0].ts : Infinity;
  const x = [];
  const y = [];
  const add = (ts, price) => {
    const at = ts + TZ_SHIFT_MS;
    const n = x.length;
    if (bucket && n && Math.floor(at / bucket) === Math.floor(x[n - 1] / bucket)) {
      x[n - 1] = at;
      y[n - 1] = price;
    } else {
      x.push(at);
      y.push(price);
    }
  };
  for (const bar of bars) {
    if (bar.start + 1_000 > firstTs) break; // the ticks cover this second
    add(bar.start + 1_000, bar.close);
  }
  for (const tick of ticks) add(tick.ts, tick.price);
  const drop = Math.max(0, x.length - LINE_MAX_POINTS);
  return { x: x.slice(drop), y: y.slice(drop) };
}

export function buildCandles(bars, ticks, settings) {
  const data = { x: [], open: [], high: [], low: [], close: [], volume: [], colors: [] };
  for (const bar of bars) {
    data.x.push(bar.start + TZ_SHIFT_MS);
    data.open.push(bar.open);
    data.high.push(bar.high);
    data.low.push(bar.low);
    data.close.push(bar.close);
    data.volume.push(bar.volume);
    data.colors.push(null);
  }
  const ms = INTERVALS[settings.interval];
  for (const tick of ticks) addTick(data, tick, ms);
  trimFront(data, MAX_CANDLES);
  return data;
}

// Fold one trade into the candles: the same bar boundaries as the server (ticker/bars.py).
export function addTick(data, tick, intervalMs, colors) {
  const x = tick.ts - (tick.ts % intervalMs) + TZ_SHIFT_MS;
  const n = data.x.length;
  if (n && data.x[n - 1] === x) {
    const i = n - 1;
    if (tick.price > data.high[i]) data.high[i] = tick.price;
    if (tick.price < data.low[i]) data.low[i] = tick.price;
    data.close[i] = tick.price;
    data.volume[i] += tick.size;
    if (colors) data.colors[i] = volumeColour(data, i, colors);
  } else if (!n || x > data.x[n - 1]) {
    data.x.push(x);
    data.open.push(tick.price);
    data.high.push(tick.price);
    data.low.push(tick.price);
    data.close.push(tick.price);
    data.volume.push(tick.size);
    data.colors.push(colors ? volumeColour(data, n, colors) : null);
  }
  // A trade older than the newest bar is left out, as the server does.
}

export function trimFront(data, keep) {
  const drop = data.x.length - keep;
  if (drop > 0) for (const key of Object.keys(data)) data[key].splice(0, drop);
}

function volumeColour(data, i, colors) {
  return data.close[i] >= data.open[i] ? colors.upVolume : colors.downVolume;
}

// -- plotly figure ------------------------------------------------------------------------------

export function lineTraces(data, colors) {
  return [{
    type: "scatter", mode: "lines", x: data.x, y: data.y,
    line: { color: colors.accent, width: 1.5 },
    hovertemplate: "%{x|%H:%M:%S.%L}  <b>%{y:,.2f}</b><extra></extra>",
  }];
}

export function candleTraces(data, colors) {
  for (let i = 0; i < data.x.length; i += 1) data.colors[i] = volumeColour(data, i, colors);
  return [
    {
      type: "candlestick", x: data.x, open: data.open, high: data.high, low: data.low,
      close: data.close, whiskerwidth: 0, hoverlabel: { namelength: 0 },
      increasing: { line: { color: colors.up, width: 1 }, fillcolor: colors.up },
      decreasing: { line: { color: colors.down, width: 1 }, fillcolor: colors.down },
    },
    {
      type: "bar", x: data.x, y: data.volume, yaxis: "y2", marker: { color: data.colors },
      hovertemplate: "vol %{y:,}<extra></extra>",
    },
  ];
}

// Time labels as precise as the zoom needs: seconds while ticks are seconds apart, and so on.
const TIME_TICKS = [
  { dtickrange: [null, 999], value: "%H:%M:%S.%L" },
  { dtickrange: [1_000, 59_999], value: "%H:%M:%S" },
  { dtickrange: [60_000, 86_399_999], value: "%H:%M" },
  { dtickrange: [86_400_000, null], value: "%b %d" },
];

export function baseLayout(settings, colors) {
  const candles = settings.view === "candles";
  const axis = { gridcolor: colors.grid, zeroline: false, linecolor: colors.border,
                 tickfont: { size: 10 }, automargin: false };
  const layout = {
    // Plotly keeps the user's zoom across react() calls while this stays the same.
    uirevision: `${settings.view}:${settings.interval}:${settings.window}`,
    margin: { l: 26, r: 58, t: 6, b: 22 }, // l: room for the first time label
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: colors.font, size: 10, color: colors.muted },
    showlegend: false,
    hovermode: candles ? "x" : "closest",
    hoverlabel: { bgcolor: colors.panel, bordercolor: colors.border, font: { color: colors.fg } },
    modebar: { bgcolor: "rgba(0,0,0,0)", color: colors.muted, activecolor: colors.accent },
    xaxis: { ...axis, type: "date", rangeslider: { visible: false },
             anchor: candles ? "y2" : "y", // time labels under the volume bars, not between
             tickformatstops: TIME_TICKS },
    yaxis: { ...axis, side: "right", tickformat: ",.2f", domain: candles ? [0.27, 1] : [0, 1] },
    annotations: [],
    shapes: [],
  };
  if (candles) {
    layout.yaxis2 = { ...axis, side: "right", domain: [0, 0.2], tickformat: "~s", nticks: 3 };
  }
  return layout;
}

// -- follow-live ranges -------------------------------------------------------------------------

export function lineRanges(x, y, newX, newY, settings) {
  const n = x.length + newX.length;
  if (!n) return null;
  const at = (i) => (i < x.length ? x[i] : newX[i - x.length]);
  const val = (i) => (i < x.length ? y[i] : newY[i - x.length]);
  const span = WINDOWS[settings.window];
  // Less history than the window (a young feed): fit what there is rather than leave part of the
  // chart empty. A little room on the right keeps the newest point off the axis.
  const shown = Math.min(span, Math.max(at(n - 1) - at(0), 1_000));
  const xmax = at(n - 1) + shown * 0.03;
  const xmin = Math.max(xmax - span, at(0) - shown * 0.01);
  let lo = Infinity;
  let hi = -Infinity;
  let i = n - 1;
  for (; i >= 0 && at(i) >= xmin; i -= 1) {
    lo = Math.min(lo, val(i));
    hi = Math.max(hi, val(i));
  }
  if (i >= 0) { // the line enters from the left edge: keep that segment in view
    lo = Math.min(lo, val(i));
    hi = Math.max(hi, val(i));
  }
  return { x: [xmin, xmax], y: padded(lo, hi) };
}

export function candleRanges(data, settings) {
  const n = data.x.length;
  if (!n) return null;
  const ms = INTERVALS[settings.interval];
  const xmax = data.x[n - 1] + ms * 1.5;
  const xmin = Math.max(xmax - candleSpanMs(settings) - ms, data.x[0] - ms * 1.5);
  let lo = Infinity;
  let hi = -Infinity;
  let vol = 0;
  for (let i = n - 1; i >= 0 && data.x[i] >= xmin; i -= 1) {
    lo = Math.min(lo, data.low[i]);
    hi = Math.max(hi, data.high[i]);
    vol = Math.max(vol, data.volume[i]);
  }
  return { x: [xmin, xmax], y: padded(lo, hi), y2: [0, Math.max(vol, 1) * 1.08] };
}

function padded(lo, hi) {
  const pad = Math.max((hi - lo) * 0.08, hi * 0.0002, 0.01);
  return [lo - pad, hi + pad];
}
