"""The last ticks of one symbol, encoded, addressed by seq: a ring buffer read with slices.

Beside each tick it keeps the tick's place in the feed (a number the hub counts up across all
symbols), so that a reader of several symbols can put their ticks back in the order the feed
published them (:func:`ticker.feed_order.in_feed_order`). The places sit in an ``array`` of
machine integers: 8 bytes a tick, where a list of ints would hold 40.
"""

from __future__ import annotations

import logging
from array import array

log = logging.getLogger("ticker.history")


class History:
    __slots__ = ("_capacity", "_origin", "_places", "_ring", "first", "last")

    def __init__(self, capacity: int) -> None:
        self._ring: list[bytes] = []
        self._places = array("q")
        self._capacity = capacity
        self._origin = 0  # seq stored at index 0 since the ring (re)started
        self.first = 0  # seq of the oldest tick kept; 0 while empty
        self.last = 0

    def append(self, seq: int, data: bytes, place: int = 0) -> None:
        """Seqs must follow on (the hub starts a new History when they do not); ``place`` is the
        tick's position in the feed, rising across all symbols."""
        if self.last and seq != self.last + 1:
            log.warning("seq jumped from %d to %d; history restarts there", self.last, seq)
            self._ring.clear()
            self._places = array("q")
            self.last = 0
        ring = self._ring
        if not self.last:
            self._origin = self.first = seq
        if len(ring) < self._capacity:
            ring.append(data)
            self._places.append(place)
        else:
            index = (seq - self._origin) % self._capacity
            ring[index] = data
            self._places[index] = place
            self.first = seq - self._capacity + 1
        self.last = seq

    def reaches(self, seq: int) -> bool:
        """Whether every tick after ``seq`` is still here (or ``seq`` is the latest)."""
        return seq == self.last or (self.first <= seq + 1 and seq < self.last)

    def after(self, seq: int) -> list[bytes]:
        """The ticks after ``seq``, which must satisfy :meth:`reaches`; two slices at most."""
        return self.after_placed(seq)[0]

    def after_placed(self, seq: int) -> tuple[list[bytes], array[int], int]:
        """:meth:`after`'s ticks, and where their places in the feed are: the ring of places
        (shared, not a copy) and the index of the first; later ones follow it, modulo the
        ring's length."""
        last = self.last
        if seq >= last:
            return [], self._places, 0
        ring, capacity, origin = self._ring, self._capacity, self._origin
        # Never before the oldest tick kept: a cursor placed at 0 on a run whose seqs start
        # higher (a replay that seeked) means "from the first".
        begin = (max(seq + 1, self.first) - origin) % capacity
        end = (last - origin) % capacity + 1
        return (ring[begin:end] if begin < end else ring[begin:] + ring[:end],
                self._places, begin)

    def latest(self, count: int) -> list[bytes]:
        return self.after(self.last - count) if self.last else []
