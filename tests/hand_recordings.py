"""Recordings written the way a stranger would: Python's json module, not our writer.

Keys in another order, spaces after separators, whole-number prices as ints, an extra field our
format does not have, and bursts where several symbols trade within the same millisecond (so a
replay hands the hub ticks of many symbols at once).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

START_MS = 1_763_880_000_000.0
SYMBOLS = ("AAPL", "AMD", "JNJ", "META", "MSFT", "XOM")


def hand_ticks(count: int, seed: int = 3, symbols: tuple[str, ...] = SYMBOLS,
               start_ms: float = START_MS) -> list[dict[str, Any]]:
    """``count`` ticks in time order; about one in three comes in a burst of the same ms."""
    rng = random.Random(seed)
    seqs = dict.fromkeys(symbols, 0)
    ts = start_ms
    ticks = []
    for _ in range(count):
        if rng.random() > 0.35:
            ts += rng.uniform(5.0, 60.0)
        symbol = rng.choice(symbols)
        seqs[symbol] += 1
        price = round(rng.uniform(20.0, 400.0), 2)
        if rng.random() < 0.1:
            price = float(round(price))
        ticks.append({"symbol": symbol, "seq": seqs[symbol], "ts": round(ts, 3), "price": price,
                      "size": rng.choice((1, 100, 200, 500)), "bid": round(price - 0.01, 2),
                      "ask": round(price + 0.01, 2)})
    return ticks


def line_of(tick: dict[str, Any]) -> str:
    """A tick as someone else's program might write it."""
    fields = dict(tick)
    if fields["price"] == int(fields["price"]):
        fields["price"] = int(fields["price"])
    fields["exchange"] = "XNAS"
    ordered = dict(sorted(fields.items(), reverse=True))
    return json.dumps(ordered)


def write_hand_recording(path: Path, ticks: list[dict[str, Any]],
                         lines: dict[int, str] | None = None) -> Path:
    """``lines`` replaces the line of tick index k (0-based) with the given text."""
    symbols = sorted({t["symbol"] for t in ticks}, key=SYMBOLS.index)
    header = {"format": "ticker-recording", "version": 1, "created": START_MS,
              "source": "hand", "symbols": symbols}
    body = [lines.get(k, line_of(t)) if lines else line_of(t) for k, t in enumerate(ticks)]
    path.write_text("\n".join([json.dumps(header), *body]) + "\n")
    return path


def nan_price_line(tick: dict[str, Any]) -> str:
    """What json.dumps writes for a float("nan") price: NaN, which is not JSON."""
    return json.dumps({**tick, "price": float("nan")})


def by_symbol(ticks: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for tick in ticks:
        grouped.setdefault(tick["symbol"], []).append(tick)
    return grouped


def without(ticks: list[dict[str, Any]], dropped: list[int]) -> list[dict[str, Any]]:
    """``ticks`` without the indices ``dropped``; each symbol's later seqs renumbered."""
    behind: dict[str, int] = {}
    kept = []
    for k, tick in enumerate(ticks):
        if k in dropped:
            behind[tick["symbol"]] = behind.get(tick["symbol"], 0) + 1
            continue
        kept.append({**tick, "seq": tick["seq"] - behind.get(tick["symbol"], 0)})
    return kept
