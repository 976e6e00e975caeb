// Number formatting shared by the watchlist and the chart headers. Formatters are built once:
// Intl.NumberFormat construction is far slower than format(), and these run per update.

const price = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 2, maximumFractionDigits: 2,
});
const change = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: "exceptZero",
});
const volume = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export const DASH = "\u2014";
export const UP = "\u25B2";
export const DOWN = "\u25BC";
export const FLAT = "\u25AA";

export function fmtPrice(value) {
  return value === null || value === undefined ? DASH : price.format(value);
}

export function fmtChange(value) {
  return value === null || value === undefined ? DASH : change.format(value);
}

export function fmtPct(value) {
  return value === null || value === undefined ? DASH : `${change.format(value)}%`;
}

export function fmtVolume(value) {
  return volume.format(value);
}

// "up" | "down" | "flat" for a change, used as the class that colours it (always paired with an
// arrow, so the direction does not depend on telling red from green).
export function direction(delta) {
  if (delta > 0) return "up";
  if (delta < 0) return "down";
  return "flat";
}

export function arrow(dir) {
  return dir === "up" ? UP : dir === "down" ? DOWN : FLAT;
}

// Change since the session open, or nulls while either side is unknown.
export function sessionChange(last, open) {
  if (last === null || last === undefined || !open) return { change: null, pct: null, dir: "flat" };
  const delta = last - open;
  return { change: delta, pct: (100 * delta) / open, dir: direction(Math.round(delta * 100)) };
}

// Recorded times, in the trader's local time: the date matters in a replay, so it is shown.
const dateTime = new Intl.DateTimeFormat("en-US", {
  month: "short", day: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", hourCycle: "h23",
});
const clock = new Intl.DateTimeFormat("en-US", {
  hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

export function fmtDateTime(ms) {
  return ms === null || ms === undefined ? DASH : dateTime.format(ms);
}

export function fmtClock(ms) {
  return ms === null || ms === undefined ? DASH : clock.format(ms);
}

// 42 s, 5 min 30 s, 6 h 30 min: how long a recording lasts.
export function fmtDuration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s / 60} min`;
  const m = Math.round(s / 60);
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m / 60} h`;
}
