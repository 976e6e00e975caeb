// The REST side: symbol metadata and OHLCV bars. Relative URLs, so the page also works behind a
// reverse proxy that mounts it under a path.

import { withToken } from "./auth.js";

export class HttpError extends Error {
  constructor(status) {
    super(`HTTP ${status}`);
    this.status = status;
  }
}

async function getJson(path) {
  const response = await fetch(withToken(path), { cache: "no-store" });
  if (!response.ok) throw new HttpError(response.status);
  return response.json();
}

// [{symbol, name, sector, price, open, change, change_pct, seq}]
export function fetchSymbols() {
  return getJson("api/symbols");
}

// {symbol, interval, bars: [{start, open, high, low, close, volume}]}, oldest first. A server
// configured to keep fewer bars than asked answers 400; ask again for its default amount.
export async function fetchBars(symbol, interval, limit) {
  const query = `symbol=${encodeURIComponent(symbol)}&interval=${interval}`;
  try {
    return await getJson(`api/bars?${query}&limit=${limit}`);
  } catch (error) {
    if (error instanceof HttpError && error.status === 400) return getJson(`api/bars?${query}`);
    throw error;
  }
}

// [{name, size, first_ts, last_ts, symbols, tick_count}], in time order: the server's recordings.
export function fetchRecordings() {
  return getJson("api/recordings");
}

// {status, epoch, feed, ...}: which feed runs (a poller has no hello to say so).
export function fetchReady() {
  return getJson("readyz");
}
