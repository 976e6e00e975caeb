"""Feeds produce ticks. Every source of ticks (simulated, recorded, imported) is a Feed."""

from feeds.base import Feed

__all__ = ["Feed"]
