// The dashboard's entry point: reads the view from the URL, wires the connection to the store,
// the store to the watchlist and the charts, and keeps the URL in step with what is on screen so
// that a link reproduces the view (see url-state.js).
//
// Two modes, chosen by the URL when the page loads: live (the market, over WebSocket, SSE or long
// polling) and replay (?replay=NAME: a recording, over /ws/replay). Switching mode loads the page
// afresh, so replayed data can never mix with live data. Both feed the same store, watchlist and
// charts; in replay the chart history comes from the replayed ticks (local-bars.js), not from the
// live server's /api/bars.

import { HttpError, fetchBars, fetchSymbols } from "./api.js";
import { ChartGrid } from "./charts.js";
import { PENDING_CAP } from "./figure.js";
import { Connection } from "./connection.js";
import { LocalBars } from "./local-bars.js";
import { subscribe, unsubscribe } from "./protocol.js";
import { RecordingMenu } from "./recordings.js";
import { ReplayControls, readReplayParams } from "./replay.js";
import { SymbolSearch } from "./search.js";
import { StatusBar } from "./status.js";
import { Store } from "./store.js";
import { colors, initTheme } from "./theme.js";
import { readTransport, readView, replaceQuery, viewQuery } from "./url-state.js";
import { Watchlist } from "./watchlist.js";

const DEFAULT_SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA"];
const MAX_CHARTS = 12;

const $ = (selector) => document.querySelector(selector);

// -- URL state ------------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const initial = readView(params);
const replayParams = readReplayParams(params);
const forcedTransport = replayParams ? null : readTransport(params);

function writeUrl() {
  const mode = replay ? `${replay.urlParams()}&` : "";
  const transport = forcedTransport ? `&transport=${forcedTransport}` : "";
  replaceQuery(`?${mode}${viewQuery(selection, settings)}${transport}`);
}

// -- state ----------------------------------------------------------------------------------------

const settings = { ...initial.settings };
let universe = []; // every symbol of the feed, from the last hello
let selection = []; // chart symbols, in display order; set on the first hello
let started = false;
let chartedOnly = false; // the server refused the whole universe: subscribe to charted symbols
let paused = false;
const names = new Map(); // symbol -> company name, from /api/symbols

const localBars = replayParams ? new LocalBars() : null; // the replay's chart history

const store = new Store({
  replay: Boolean(replayParams),
  onTick(tick) {
    localBars?.add(tick);
    watchlist.mark(tick.symbol);
    grid.push(tick);
    wake();
  },
  onReset(symbol) {
    localBars?.reset(symbol, store.since(symbol));
    watchlist.mark(symbol);
    grid.reset(symbol);
    if (!replay && store.get(symbol).open === null) refreshSymbolsSoon();
    wake();
  },
  onGap(symbol) {
    resync([symbol], false);
  },
});

const connection = new Connection({
  // Replay is served over WebSocket only; live falls back to SSE, then long polling.
  transports: replayParams ? ["ws"] : forcedTransport ? [forcedTransport] : ["ws", "sse", "poll"],
  wsPath: () => (replay ? replay.socketPath() : "ws"),
  subscription: wantedSymbols,
  onOpen(hello) {
    newRun(hello);
    universe = hello.symbols;
    watchlist.setSymbols(hello.symbols);
    if (!search.entries.length) {
      search.setEntries(hello.symbols.map((symbol) => ({ symbol, name: "" }))); // names follow
    }
    if (!started) start(hello.symbols);
    else setSelection(selection.filter((s) => store.get(s))); // a symbol may have gone
    // Charted symbols first, so their snapshots come first; the rest feed the watchlist.
    if (chartedOnly) subscribeAll(selection, CHARTED);
    else subscribeAll([...new Set([...selection, ...hello.symbols])]);
    replay?.connected();
  },
  onMessage(message) {
    switch (message.type) {
      case "hello": // again on a live connection when the feed restarts, or a replay seeks
        newRun(message);
        replay?.message(message);
        break;
      case "replay":
      case "replay_end":
        replay?.message(message);
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
    // Stopped for good (a terminal close, or no token): say why where it cannot be missed.
    if (connection.state === "offline" && connection.reason) {
      toast(`Stopped: ${connection.reason}`, { sticky: true });
    }
  },
});

const replay = replayParams && new ReplayControls($(".replaybar"), {
  ...replayParams,
  send: (command) => connection.send(command),
  position: () => store.newestTs,
  onChange: () => writeUrl(),
  onState: () => status.render(),
  onSwitch: (name) => location.assign(replayHref(name, replay.speed)),
  onLive: () => location.assign(`?${viewQuery(selection, settings)}`),
});
const watchlist = new Watchlist($(".wl"), { store, onPick: pickSymbol });
const search = new SymbolSearch($("#search"), $("#suggestions"), { onPick: pickSymbol });
const grid = new ChartGrid($("#charts"), {
  store, settings: { ...settings }, colors: colors(), wake, replay: Boolean(replay),
  api: { bars: localBars ? (...args) => localBars.bars(...args) : fetchBars },
  onRemove: (symbol) => setSelection(selection.filter((s) => s !== symbol)),
  onResync: (symbols) => resync(symbols, true),
});
const status = new StatusBar($(".status"), {
  connection, store, replay, onRetry: () => connection.reconnectNow(),
  titleSymbol: () => selection[0],
});
if (!replay) {
  new RecordingMenu($(".replay-open"), $(".replay-menu"), { href: (name) => replayHref(name) });
}

function replayHref(name, speed = "10") {
  return `?replay=${encodeURIComponent(name)}&speed=${speed}&${viewQuery(selection, settings)}`;
}

// The first hello of a connection, or a later one: a new run drops what was held.
function newRun(hello) {
  if (!store.hello(hello)) return;
  localBars?.clear();
  refreshSymbolsSoon(0); // new opens (live)
}

const ALL = "all"; // request ids, to tell which subscribe an error is about
const CHARTED = "charted";

function subscribeAll(symbols, id = ALL) {
  const resume = store.resume();
  if (symbols.length) connection.send(subscribe(symbols, resume ? { id, resume } : { id }));
}

// What to ask for over transports that carry the subscription in the URL (SSE, long polling):
// the charted symbols first (their snapshots come first), then the rest for the watchlist.
async function wantedSymbols() {
  if (!universe.length) universe = (await fetchSymbols()).map((row) => row.symbol);
  const charted = (started ? selection : initial.symbols ?? DEFAULT_SYMBOLS)
    .filter((s) => universe.includes(s));
  return chartedOnly ? charted : [...new Set([...charted, ...universe])];
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
  } catch (error) {
    if (error instanceof HttpError && error.status === 401) {
      // Retrying cannot help: say what would.
      connection.halt("this server needs an access token: open the page as ?token=YOUR_TOKEN");
      return;
    }
    refreshTimer = setTimeout(refreshSymbols, 5_000);
    return;
  }
  refreshTimer = 0;
  for (const row of rows) {
    names.set(row.symbol, row.name);
    watchlist.setName(row.symbol, row.name);
    const held = store.get(row.symbol);
    // The live market's opens; a replay's are its own first trades (see Store).
    if (held && row.open !== null && !replay) held.open = row.open;
  }
  // The feed's own symbols: a recording's may be a few of the live ones, or others entirely.
  const searchable = universe.length ? universe : rows.map((row) => row.symbol);
  search.setEntries(searchable.map((symbol) => ({ symbol, name: names.get(symbol) ?? "" })));
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
  for (const group of document.querySelectorAll(".seg[data-setting]")) {
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

for (const group of document.querySelectorAll(".seg[data-setting]")) {
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
  if (event.key === "p" && replay) replay.togglePlay();
  else if (event.key === "p") setPaused(!paused);
  else if (event.key === "l") grid.followAll();
});

initTheme($(".theme"), () => grid.setColors(colors()));

let toastTimer = 0;
function toast(text, { sticky = false } = {}) {
  const box = $(".toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  if (!sticky) toastTimer = setTimeout(() => { box.hidden = true; }, 6_000);
}

// A read-only window into the live state, for tests and for a curious trader's console.
window.tickerDebug = Object.freeze({
  get mode() { return replay ? "replay" : "live"; },
  get state() { return connection.state; },
  get transport() { return connection.kind; },
  get replay() { return replay ? replay.debug() : null; },
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
  recent(symbol) { return store.since(symbol).map((t) => ({ seq: t.seq, ts: t.ts })); },
});

document.body.classList.toggle("replay-mode", Boolean(replay));
if (replay) {
  $(".follow").textContent = "Follow";
  $(".follow").title = "Return every chart to the newest trade played (L)";
  $(".wl-title small").textContent = "change since the first trade played";
}
renderControls();
if (replay) replay.load().then((found) => found && connection.start());
else connection.start();
refreshSymbolsSoon(0); // names early; and a server that wants a token says so here

// The watchlist sticks below the header, whose height depends on the mode and the width.
new ResizeObserver(([entry]) => {
  document.documentElement.style.setProperty("--head-h", `${entry.target.offsetHeight}px`);
}).observe($(".masthead"));
