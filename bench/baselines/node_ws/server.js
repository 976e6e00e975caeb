// Baseline 4: Node.js and the `ws` package, each tick encoded once, one write per client per flush.
//
// The market is the other baselines' (../common.py): node starts ../node_feed.py, which writes the
// hello and then one line per batch of ticks already encoded by ticker's own encoding. Node keeps
// a set of subscribers per symbol, appends each tick's JSON to its subscribers' pending lists and,
// as soon as it is idle (setImmediate after what it read), sends every client with pending ticks
// one "ticks" message: its tick strings joined, one ws send per client per flush. No timer.
//
// It speaks the same subset of protocol v1 as the other baselines: a hello, then "subscribe"
// answered by "subscribed", then "ticks" messages. No bound on a client's buffer (ws buffers what
// the socket does not take), as in the batched baseline.
//
//     npm ci && node server.js --port 8001 --symbols 100 --tick-rate 100 --python python3
"use strict";

const { spawn } = require("node:child_process");
const path = require("node:path");
const { parseArgs } = require("node:util");
const { WebSocket, WebSocketServer } = require("ws");

const { values: args } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    symbols: { type: "string", default: "100" },
    "tick-rate": { type: "string" },
    seed: { type: "string", default: "1" },
    python: { type: "string", default: "python3" }, // runs the feeder
  },
});
if (args.port === undefined || args["tick-rate"] === undefined) {
  console.error("usage: node server.js --port P --tick-rate T [--symbols N] [--seed S] [--python PY]");
  process.exit(2);
}

const TICKS_PREFIX = '{"type":"ticks","ticks":[';
const TICKS_SUFFIX = "]}";

let hello = null; // the first line from the feeder, sent to every client as it is
const subscribers = new Map(); // symbol -> Set of clients
let dirty = []; // clients with pending ticks
let flushScheduled = false;

function requested(text) {
  // The known symbols of a "subscribe" request; anything else is ignored (common.requested).
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return [];
  }
  if (message === null || typeof message !== "object" || message.op !== "subscribe") return [];
  if (!Array.isArray(message.symbols)) return [];
  return message.symbols
    .filter((s) => typeof s === "string" && subscribers.has(s.toUpperCase()))
    .map((s) => s.toUpperCase());
}

function onBatch(line) {
  // "SYMBOL\t{tick}\tSYMBOL\t{tick}...": route by symbol, never parse a tick.
  const fields = line.split("\t");
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const clients = subscribers.get(fields[i]);
    if (clients === undefined) continue;
    const tick = fields[i + 1];
    for (const client of clients) {
      if (client.pending.length === 0) dirty.push(client);
      client.pending.push(tick);
    }
  }
  if (!flushScheduled && dirty.length > 0) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function flush() {
  flushScheduled = false;
  const clients = dirty;
  dirty = [];
  for (const client of clients) {
    const pending = client.pending;
    client.pending = [];
    if (client.ws.readyState === WebSocket.OPEN) {
      client.ws.send(TICKS_PREFIX + pending.join(",") + TICKS_SUFFIX);
    }
  }
}

function onConnection(ws) {
  const client = { ws, pending: [], symbols: new Set() };
  ws.send(hello);
  ws.on("message", (data) => {
    const symbols = requested(data.toString());
    for (const symbol of symbols) {
      if (!client.symbols.has(symbol)) {
        client.symbols.add(symbol);
        subscribers.get(symbol).add(client);
      }
    }
    ws.send(JSON.stringify({ type: "subscribed", symbols, resumed: [] }));
  });
  ws.on("close", () => {
    for (const symbol of client.symbols) subscribers.get(symbol).delete(client);
    client.symbols.clear();
  });
  ws.on("error", () => {}); // a broken client; "close" follows
}

function listen() {
  const server = new WebSocketServer({
    host: args.host,
    port: Number(args.port),
    path: "/ws",
    perMessageDeflate: false, // as the other servers run: no compression
  });
  server.on("connection", onConnection);
  server.on("listening", () => {
    const { version } = require("ws/package.json");
    console.error(`node-ws: ws ${version} on node ${process.version}, listening on ` +
                  `ws://${args.host}:${args.port}/ws`);
  });
  server.on("error", (error) => {
    console.error(`node-ws: ${error.message}`);
    stop(1);
  });
}

const feeder = spawn(
  args.python,
  [path.join(__dirname, "..", "node_feed.py"), "--symbols", args.symbols,
   "--tick-rate", args["tick-rate"], "--seed", args.seed],
  { stdio: ["ignore", "pipe", "inherit"] },
);
let stopping = false;

function stop(code) {
  stopping = true;
  feeder.kill("SIGTERM");
  process.exit(code);
}

feeder.on("error", (error) => {
  console.error(`node-ws: cannot start the feeder (${args.python}): ${error.message}`);
  process.exit(1);
});
feeder.on("exit", (code, signal) => {
  if (!stopping) {
    console.error(`node-ws: the feeder exited (${signal ?? code})`);
    process.exit(1);
  }
});

let rest = "";
feeder.stdout.setEncoding("utf8");
feeder.stdout.on("data", (chunk) => {
  const lines = (rest + chunk).split("\n");
  rest = lines.pop();
  for (const line of lines) {
    if (hello === null) {
      hello = line;
      for (const symbol of JSON.parse(line).symbols) subscribers.set(symbol, new Set());
      listen(); // only once there is a market to serve
    } else {
      onBatch(line);
    }
  }
});

process.on("SIGTERM", () => stop(0));
process.on("SIGINT", () => stop(0));
