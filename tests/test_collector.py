"""The garbage collector's policy (ticker/collector.py), with CPython's real collector: what a
full collection walks after a freeze, the thaw that lets frozen cycles go, and the config."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from ticker.collector import Collector
from ticker.config import load_config
from ticker.errors import ConfigError


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.collect()
    yield
    gc.unfreeze()  # the test process must not keep anything frozen


class Node:
    """A tracked object in a reference cycle, as connection objects often are."""

    def __init__(self) -> None:
        self.me = self


def test_after_a_full_collection_its_survivors_are_frozen_and_left_out_of_the_next() -> None:
    collector = Collector(thaw_interval=3600.0)
    collector.install()
    try:
        alive = [[k] for k in range(50_000)]  # tracked: lists
        gc.collect()  # a full collection, as CPython's thresholds would start one
        assert collector.full_collections == 1 and collector.freezes == 0
        walked_before = len(gc.get_objects(generation=2))
        collector.turn()
        assert collector.freezes == 1
        assert gc.get_freeze_count() >= len(alive)
        # What a full collection walks now: only what is new since.
        assert len(gc.get_objects(generation=2)) < walked_before - len(alive)
        assert not any(obj is alive[0] for obj in gc.get_objects(generation=2))
        collector.turn()
        assert collector.freezes == 1  # nothing new to freeze without a full collection
    finally:
        collector.uninstall()


def test_young_collections_do_not_freeze() -> None:
    collector = Collector(thaw_interval=3600.0)
    collector.install()
    try:
        gc.collect(0)
        gc.collect(1)
        collector.turn()
        assert collector.full_collections == 0 and collector.freezes == 0
    finally:
        collector.uninstall()


def test_a_cycle_frozen_while_alive_is_freed_after_the_thaw() -> None:
    now = [0.0]
    collector = Collector(thaw_interval=60.0, clock=lambda: now[0])
    collector.install()
    try:
        node = Node()
        gone = weakref.ref(node)
        gc.collect()
        collector.turn()  # frozen with the rest
        del node
        gc.collect()
        assert gone() is not None  # the documented cost: garbage, but frozen
        collector.turn()  # that collection's survivors join the frozen
        assert collector.freezes == 2
        now[0] = 61.0
        collector.turn()
        assert collector.thaws == 1 and gc.get_freeze_count() == 0
        gc.collect()
        assert gone() is None
        collector.turn()  # that full collection's survivors are frozen in turn
        assert collector.freezes == 3 and gc.get_freeze_count() > 0
    finally:
        collector.uninstall()


def test_a_young_cycle_is_collected_before_a_freeze_not_frozen() -> None:
    collector = Collector(thaw_interval=3600.0)
    collector.install()
    try:
        gc.collect()
        node = Node()
        gone = weakref.ref(node)
        del node  # garbage, young, in a cycle
        collector.turn()
        assert gone() is None
    finally:
        collector.uninstall()


def test_the_task_freezes_at_start_and_unhooks_when_cancelled() -> None:
    async def main() -> Collector:
        collector = Collector(thaw_interval=3600.0)
        collector.start()
        task = asyncio.create_task(collector.run())
        await asyncio.sleep(0.01)
        assert collector._on_collection in gc.callbacks
        assert gc.get_freeze_count() > 0 and collector.freezes == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return collector

    collector = asyncio.run(main())
    assert collector._on_collection not in gc.callbacks


def test_the_thaw_interval_is_configured_and_checked() -> None:
    assert load_config(None).server.gc_thaw_interval == 3600.0
    assert load_config(None, {"server": {"gc_thaw_interval": 0}}).server.gc_thaw_interval == 0
    with pytest.raises(ConfigError, match="gc_thaw_interval"):
        load_config(None, {"server": {"gc_thaw_interval": -1}})
