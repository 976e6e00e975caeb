// Wire protocol v1, the browser's side: a mirror of ticker/protocol.py (docs/protocol.md is the
// contract). tests/test_web_protocol.py imports this module in Chromium and compares every
// constant with the Python ones, so the two cannot drift apart silently.

export const PROTOCOL_VERSION = 1;

export const MESSAGE_TYPES = Object.freeze([
  "hello", "subscribed", "unsubscribed", "snapshot", "ticks", "pong", "error",
]);

export const OPS = Object.freeze(["subscribe", "unsubscribe", "ping"]);

export const ERROR_CODES = Object.freeze([
  "bad_json", "bad_request", "unknown_op", "unknown_symbol", "too_many_symbols", "rate_limited",
]);

export const CLOSE_CODES = Object.freeze({
  going_away: 1001, // server shutting down: reconnect with backoff, then resume
  unsupported_data: 1003, // a binary frame: the page has a bug, do not reconnect
  invalid_data: 1007, // text that is not UTF-8
  policy_violation: 1008, // far over the command rate limit
  too_big: 1009, // a message over the server's size cap
  internal_error: 1011, // reconnect with backoff
  try_again_later: 1013, // server not ready (no feed yet): reconnect with backoff
  idle: 4001, // subscribed to nothing for too long: reconnect when there is something to watch
  slow_consumer: 4008, // fell behind: reconnect and resume
  bad_request: 4500,
});

// Two ranges (docs/protocol.md): these codes and 4500-4999 mean "the same would fail again: do
// not reconnect"; every other code (and a dropped connection) means "reconnect with backoff".
export const TERMINAL_CLOSE_CODES = Object.freeze([1003, 1007, 1008, 1009]);
export const TERMINAL_CLOSE_MIN = 4500;
export const TERMINAL_CLOSE_MAX = 4999;

export function isTerminalClose(code) {
  return TERMINAL_CLOSE_CODES.includes(code)
    || (code >= TERMINAL_CLOSE_MIN && code <= TERMINAL_CLOSE_MAX);
}

// Client messages. `resume` is {epoch, seqs: {SYMBOL: lastSeq}}; the server then sends exactly the
// missed ticks (no snapshot) for every symbol it still has history for.
export function subscribe(symbols, { id, resume } = {}) {
  const message = { op: "subscribe", symbols: [...symbols] };
  if (id !== undefined) message.id = id;
  if (resume) message.resume = resume;
  return message;
}

export function unsubscribe(symbols, { id } = {}) {
  const message = { op: "unsubscribe", symbols: [...symbols] };
  if (id !== undefined) message.id = id;
  return message;
}

export function ping(id) {
  return { op: "ping", id };
}
