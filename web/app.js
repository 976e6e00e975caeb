// The dashboard's entry point: reads the view from the URL, wires the connection to the store,
// the store to the watchlist and the charts, and keeps the URL in step with what is on screen so
// that a link reproduces the view (?symbols=AAPL,MSFT&view=candles&interval=5s&window=5m).

import { fetchBars, fetchSymbols } from "./api.js";
import { ChartGrid } from "./charts.js";
import { INTERVALS, PENDING_CAP, WINDOWS } from "./figure.js";
import { Connection } from "./connection.js";
import { subscribe, unsubscribe } from "./protocol.js";
import { SymbolSearch } from "./search.js";
import { StatusBar } from "./status.js";
import { Store } from "./store.js";
import { colors, initTheme } from "./theme.js";
import { Watchlist } from "./watchlist.js";

const DEFAULT_SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA"];
const MAX_CHARTS = 12;
const VIEWS = ["line", "candles"];
const DEFAULTS = { view: "line", interval: "5s", window: "5m" };
const SYMBOL = /^[A-Z0-9][A-Z0-9.-]{0,15}$/;

const $ = (selector) => document.querySelector(selector);

// -- URL state ------------------------------------------------------------------------------------

function readUrl() {
  const params = new URLSearchParams(location.search);
  const pick = (key, allowed) => {
    const value = params.get(key);
    return allowed.includes(value) ? value : DEFAULTS[key];
  };
  const settings = {
    view: pick("view", VIEWS),
    interval: pick("interval", Object.keys(INTERVALS)),
    window: pick("window", Object.keys(WINDOWS)),
  };
  // No "symbols" at all means the default selection; "symbols=" (empty) means none.
  const raw = params.get("symbols");
  const symbols = raw === null ? null
    : [...new Set(raw.split(",").map((s) => s.trim().toUpperCase()).filter((s) => SYMBOL.test(s)))];
  return { settings, symbols };
}

function writeUrl() {
  // Built by hand: URLSearchParams would escape the commas (symbols=AAPL%2CMSFT).
  const query = `?symbols=${selection.join(",")}&view=${settings.view}`
    + `&interval=${settings.interval}&window=${settings.window}`;
  if (query !== location.search) history.replaceState(null, "", query + location.hash);
}

// -- state ----------------------------------------------------------------------------------------

const initial = readUrl();
const settings = { ...initial.settings };
let selection = []; // chart symbols, in display order; set on the first hello
let started = false;
let chartedOnly = false; // the server refused the whole universe: subscribe to charted symbols
let paused = false;
const names = new Map(); // symbol -> company name, from /api/symbols

const store = new Store({
  onTick(tick) {
    watchlist.mark(tick.symbol);
    grid.push(tick);
    wake();
  },
  onReset(symbol) {
    watchlist.mark(symbol);
    grid.reset(symbol);
    if (store.get(symbol).open === null) refreshSymbolsSoon();
    wake();
  },
  onGap(symbol) {
    resync([symbol], false);
  },
});

const connection = new Connection(socketUrl(), {
  onOpen(hello) {
    if (store.hello(hello)) refreshSymbolsSoon(0); // a new feed run: new opens
    watchlist.setSymbols(hello.symbols);
    if (!search.entries.length) {
      search.setEntries(hello.symbols.map((symbol) => ({ symbol, name: "" }))); // names follow
    }
    if (!started) start(hello.symbols);
    else setSelection(selection.filter((s) => store.get(s))); // a symbol may have gone
    // Charted symbols first, so their snapshots come first; the rest feed the watchlist.
    if (chartedOnly) subscribeAll(selection, CHARTED);
    else subscribeAll([...new Set([...selection, ...hello.symbols])]);
  },
  onMessage(message) {
    switch (message.type) {
      case "hello": // again on a live connection when the feed restarts
        if (store.hello(message)) refreshSymbolsSoon(0);
        break;
      case "ticks": store.ticks(message); break;
      case "snapshot": store.snapshot(message); break;
      case "subscribed": store.subscribed(message); break;
      case "unsubscribed": store.unsubscribed(message); break;
      case "error":
        if (message.code === "too_many_symbols" && message.id === ALL) {
          // The server caps symbols per connection below the universe: live charts come first.
          toast("The server limits symbols per connection: only charted symbols are live");
          chartedOnly = true;
          subscribeAll(selection, CHARTED);
        } else {
          toast(`Server: ${message.message}`);
        }
        break;
      default: break; // pong is handled by the connection; unknown types are ignored (protocol)
    }
  },
  onState() {
    status.render(); // called from connection.start() on, when everything below exists
  },
});

const watchlist = new Watchlist($(".wl"), { store, onPick: pickSymbol });
const search = new SymbolSearch($("#search"), $("#suggestions"), { onPick: pickSymbol });
const grid = new ChartGrid($("#charts"), {
  store, settings: { ...settings }, colors: colors(), wake,
  api: { bars: fetchBars },
  onRemove: (symbol) => setSelection(selection.filter((s) => s !== symbol)),
  onResync: (symbols) => resync(symbols, true),
});
const status = new StatusBar($(".status"), {
  connection, store, onRetry: () => connection.reconnectNow(), titleSymbol: () => selection[0],
});

const ALL = "all"; // request ids, to tell which subscribe an error is about
const CHARTED = "charted";

function subscribeAll(symbols, id = ALL) {
  const resume = store.resume();
  if (symbols.length) connection.send(subscribe(symbols, resume ? { id, resume } : { id }));
}

function socketUrl() {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function start(available) {
  started = true;
  const wanted = initial.symbols ?? DEFAULT_SYMBOLS.filter((s) => available.includes(s));
  const known = wanted.filter((s) => available.includes(s));
  const unknown = wanted.filter((s) => !available.includes(s));
  if (unknown.length) toast(`Unknown symbol(s) left out: ${unknown.join(", ")}`);
  const chosen = initial.symbols === null && !known.length ? available.slice(0, 4) : known;
  setSelection(chosen.slice(0, MAX_CHARTS));
  refreshSymbolsSoon(0);
}

function setSelection(symbols) {
  if (chartedOnly && connection.connected) {
    const added = symbols.filter((s) => !selection.includes(s));
    const removed = selection.filter((s) => !symbols.includes(s));
    if (added.length) connection.send(subscribe(added, { id: CHARTED }));
    if (removed.length) connection.send(unsubscribe(removed));
  }
  selection = symbols;
  grid.sync(selection, names);
  watchlist.setCharted(selection);
  search.setCharted(selection);
  writeUrl();
}

// From the search box or a watchlist row: chart it, or show it if it is already charted.
function pickSymbol(symbol) {
  if (!selection.includes(symbol)) {
    if (selection.length >= MAX_CHARTS) {
      toast(`At most ${MAX_CHARTS} charts: remove one first`);
      return;
    }
    setSelection([...selection, symbol]);
  }
  grid.charts.get(symbol)?.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

// Drop a symbol's ticks until the server confirms the unsubscribe, then subscribe again: with
// resume (after a gap: only the missed ticks come) or fresh (a snapshot instead of a backlog).
// Offline, the next connection's subscribe does the same.
function resync(symbols, fresh) {
  for (const symbol of symbols) store.beginResync(symbol, fresh);
  if (!connection.connected) return;
  connection.send(unsubscribe(symbols));
  const seqs = Object.fromEntries(symbols.map((s) => [s, store.get(s).lastSeq]));
  connection.send(subscribe(symbols, fresh ? {} : { resume: { epoch: store.epoch, seqs } }));
}

// -- symbol metadata (names, session opens) -------------------------------------------------------

let refreshTimer = 0;
function refreshSymbolsSoon(delay = 3_000) {
  if (refreshTimer && delay) return;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshSymbols, delay);
}

async function refreshSymbols() {
  let rows;
  try {
    rows = await fetchSymbols();
  } catch {
    refreshTimer = setTimeout(refreshSymbols, 5_000);
    return;
  }
  refreshTimer = 0;
  for (const row of rows) {
    names.set(row.symbol, row.name);
    watchlist.setName(row.symbol, row.name);
    const held = store.get(row.symbol);
    if (held && row.open !== null) held.open = row.open;
  }
  search.setEntries(rows.map(({ symbol, name }) => ({ symbol, name })));
  for (const [symbol, chart] of grid.charts) {
    chart.setName(names.get(symbol) ?? "");
    chart.quoteDirty = true; // the open may have changed
  }
  watchlist.markAll();
  wake();
}

// -- drawing --------------------------------------------------------------------------------------

// Everything visual happens in one animation frame, however many ticks arrived since the last.
let frameRequested = false;
function wake() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

function frame() {
  frameRequested = false;
  watchlist.flush();
  grid.frame();
  if (grid.hasWork()) wake();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) wake(); // draws what waited, or resyncs charts that overflowed
});

// -- controls -------------------------------------------------------------------------------------

function renderControls() {
  for (const group of document.querySelectorAll(".seg")) {
    const key = group.dataset.setting;
    for (const button of group.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.value === settings[key]));
    }
  }
  $(".seg[data-setting=interval]").classList.toggle("inactive", settings.view !== "candles");
  $(".pause").setAttribute("aria-pressed", String(paused));
  $(".pause .label").textContent = paused ? "Resume" : "Pause";
  $(".paused-badge").hidden = !paused;
  document.body.classList.toggle("is-paused", paused);
}

for (const group of document.querySelectorAll(".seg")) {
  group.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button || settings[group.dataset.setting] === button.dataset.value) return;
    settings[group.dataset.setting] = button.dataset.value;
    // Picking a candle interval while the line shows means "show me candles".
    if (group.dataset.setting === "interval") settings.view = "candles";
    renderControls();
    writeUrl();
    grid.setSettings({ ...settings });
  });
}

function setPaused(value) {
  paused = value;
  grid.setPaused(paused); // the watchlist stays live; only the charts freeze
  renderControls();
}

$(".pause").addEventListener("click", () => setPaused(!paused));
$(".follow").addEventListener("click", () => grid.followAll());
addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select")) return;
  if (event.key === "p") setPaused(!paused);
  else if (event.key === "l") grid.followAll();
});

initTheme($(".theme"), () => grid.setColors(colors()));

let toastTimer = 0;
function toast(text) {
  const box = $(".toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 6_000);
}

// A read-only window into the live state, for tests and for a curious trader's console.
window.tickerDebug = Object.freeze({
  get state() { return connection.state; },
  get epoch() { return store.epoch; },
  get lastSeq() { return store.lastSeqs(); },
  get duplicates() { return store.counts.duplicates; },
  get gaps() { return store.counts.gaps; },
  get counts() { return { ...store.counts }; },
  get reconnects() { return connection.reconnects; },
  get rttMs() { return connection.rttMs; },
  get paused() { return paused; },
  get selection() { return [...selection]; },
  get settings() { return { ...settings }; },
  get charts() { return grid.debug(); },
  get pendingCap() { return PENDING_CAP; },
  get frames() { return grid.frames; },
  get drawMs() { return grid.drawMs; },
  get redraw() { return { ms: grid.redrawMs, everyMs: grid.interval }; },
});

renderControls();
connection.start();
