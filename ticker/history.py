"""The last ticks of one symbol, encoded, addressed by seq: a ring buffer read with slices."""

from __future__ import annotations

import logging

log = logging.getLogger("ticker.history")


class History:
    __slots__ = ("_capacity", "_origin", "_ring", "first", "last")

    def __init__(self, capacity: int) -> None:
        self._ring: list[bytes] = []
        self._capacity = capacity
        self._origin = 0  # seq stored at index 0 since the ring (re)started
        self.first = 0  # seq of the oldest tick kept; 0 while empty
        self.last = 0

    def append(self, seq: int, data: bytes) -> None:
        """Seqs must follow on (the hub starts a new History when they do not)."""
        if self.last and seq != self.last + 1:
            log.warning("seq jumped from %d to %d; history restarts there", self.last, seq)
            self._ring.clear()
            self.last = 0
        ring = self._ring
        if not self.last:
            self._origin = self.first = seq
        if len(ring) < self._capacity:
            ring.append(data)
        else:
            ring[(seq - self._origin) % self._capacity] = data
            self.first = seq - self._capacity + 1
        self.last = seq

    def reaches(self, seq: int) -> bool:
        """Whether every tick after ``seq`` is still here (or ``seq`` is the latest)."""
        return seq == self.last or (self.first <= seq + 1 and seq < self.last)

    def after(self, seq: int) -> list[bytes]:
        """The ticks after ``seq``, which must satisfy :meth:`reaches`; two slices at most."""
        return self._range(seq + 1)

    def latest(self, count: int) -> list[bytes]:
        return self._range(max(self.first, self.last - count + 1)) if self.last else []

    def _range(self, start: int) -> list[bytes]:
        if start > self.last:
            return []
        ring, capacity = self._ring, self._capacity
        begin = (start - self._origin) % capacity
        end = (self.last - self._origin) % capacity + 1
        return ring[begin:end] if begin < end else ring[begin:] + ring[:end]
