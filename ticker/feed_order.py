"""Putting a connection's ticks back in the order the feed published them.

A drain takes, per subscribed symbol, a run of consecutive ticks from that symbol's history
(ticker/subscriber.py); each tick has its place in the feed, a number the hub counts up across all
symbols (ticker/history.py). Clients get the runs merged by place, so across symbols they see the
tape as it was published. ticker/_order.c does the merge (a k-way merge on a heap of run heads,
compiled at install by hatch_build.py); the same merge in Python is the fallback, and the
reference the tests hold it to.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from itertools import pairwise
from operator import itemgetter

Run = tuple[str, int, list[bytes], "array[int]", int]
"""(symbol, seq of the first tick, encoded ticks, the places ring, the index of the first tick's
place in it): consecutive ticks of one symbol, and where each came in the feed (History.places)."""


def run_places(run: Run) -> list[int]:
    _, _, ticks, ring, start = run
    end = start + len(ticks)
    if end <= len(ring):
        return ring[start:end].tolist()
    return ring[start:].tolist() + ring[:end - len(ring)].tolist()


def feed_order(runs: list[Run]) -> list[int] | None:
    """The runs' ticks, as indices into their concatenation, in the order the feed published
    them; None when the concatenation already is. (SSE needs the order itself; the
    frames of the other transports come from :func:`in_feed_order`.)"""
    if len(runs) < 2:
        return None
    keys: list[int] = []
    for run in runs:
        keys += run_places(run)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return None if all(a < b for a, b in pairwise(order)) else order


def merge_in_python(runs: list[Run]) -> Sequence[bytes]:
    """:func:`in_feed_order` where ticker._order is not compiled (and its reference in tests)."""
    ticks: list[bytes] = []
    for run in runs:
        ticks += run[2]
    order = feed_order(runs)
    if order is None:
        return ticks
    merged: tuple[bytes, ...] = itemgetter(*order)(ticks)  # at least two: a tuple
    return merged


compiled_merge: Callable[[list[Run]], list[bytes]] | None
try:
    from ticker._order import merge as compiled_merge
except ImportError:  # not built (no C compiler where it was installed): hatch_build.py
    compiled_merge = None


def in_feed_order(runs: list[Run]) -> Sequence[bytes]:
    """The runs' encoded ticks, merged into feed order (across symbols, as published)."""
    if len(runs) < 2:
        return runs[0][2] if runs else ()
    if compiled_merge is not None:
        return compiled_merge(runs)
    return merge_in_python(runs)
