"""The hub's wake walk: the compiled one (ticker/_wake.c) and the Python one wake the same
subscribers, on real Subscribers and on other objects; errors reach the caller; nothing leaks."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import Any

import pytest

from ticker import hub as hub_module
from ticker.history import History
from ticker.hub import wake_idle_in_python
from ticker.subscriber import Cursor, Subscriber

compiled = hub_module.compiled_wake_idle
WALKS: list[Callable[[dict[Any, Any]], int]] = [wake_idle_in_python]
if compiled is not None:
    WALKS.append(compiled)


def test_the_compiled_walk_is_built_where_the_tools_are() -> None:
    if compiled is None:
        message = "ticker/_wake.c was not compiled (hatch_build.py): the walk runs in Python"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def subscribers(count: int) -> dict[Subscriber, Cursor]:
    history = History(16)
    return {Subscriber(max_lag=1000, max_frame_ticks=1000): Cursor(history, 0, 0.0)
            for _ in range(count)}


@pytest.mark.parametrize("walk", WALKS, ids=lambda w: w.__module__ or "c")
def test_only_subscribers_not_pending_are_woken(walk: Callable[[dict[Any, Any]], int]) -> None:
    group = subscribers(6)
    woken: list[Subscriber] = []
    for k, subscriber in enumerate(group):
        subscriber.pending = k % 3 == 0
        subscriber.on_wake = lambda s=subscriber: woken.append(s)  # type: ignore[misc]
    idle = [s for s in group if not s.pending]
    assert walk(group) == 4
    assert woken == idle  # in the dict's order
    assert all(s.pending for s in group)
    assert walk(group) == 0  # all pending now: nobody twice


class Plain:
    """Not a Subscriber, and no slots: the walk takes the generic path."""

    def __init__(self, pending: object) -> None:
        self.pending = pending
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


class Slotted(Subscriber):
    __slots__ = ("extra",)


class Computed:
    """pending is a property: the walk must not read a slot behind it."""

    __slots__ = ("_pending", "woken")

    def __init__(self) -> None:
        self._pending = 0
        self.woken = 0

    @property
    def pending(self) -> bool:
        return self._pending > 1

    def wake(self) -> None:
        self.woken += 1
        self._pending += 1


@pytest.mark.parametrize("walk", WALKS, ids=lambda w: w.__module__ or "c")
def test_any_object_with_pending_and_wake_is_walked_alike(
        walk: Callable[[dict[Any, Any]], int]) -> None:
    real = subscribers(2)
    sub = Slotted(max_lag=1000, max_frame_ticks=1000)
    plain_idle, plain_busy, truthy = Plain(False), Plain(True), Plain([1])
    computed = Computed()
    mixed: dict[Any, None] = dict.fromkeys([*real, plain_idle, sub, plain_busy, truthy, computed])
    for _ in range(3):
        walk(mixed)
    assert plain_idle.woken == 3 and plain_busy.woken == 0 and truthy.woken == 0
    assert computed.woken == 2
    assert all(s.pending for s in real) and sub.pending


@pytest.mark.parametrize("walk", WALKS, ids=lambda w: w.__module__ or "c")
def test_errors_reach_the_caller(walk: Callable[[dict[Any, Any]], int]) -> None:
    class Broken(Plain):
        def wake(self) -> None:
            raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        walk({Broken(False): None})
    with pytest.raises(AttributeError):
        walk({object(): None})
    unset = Subscriber.__new__(Subscriber)  # its slots never assigned
    with pytest.raises(AttributeError):
        walk({unset: None})
    group: dict[Any, None] = {}

    class Grows(Plain):
        def wake(self) -> None:
            group[Plain(True)] = None

    group[Grows(False)] = None
    with pytest.raises(RuntimeError, match="changed size"):
        walk(group)


@pytest.mark.skipif(compiled is None, reason="ticker/_wake.c not built")
def test_the_compiled_walk_rejects_what_is_not_a_dict_and_leaks_nothing() -> None:
    assert compiled is not None
    with pytest.raises(TypeError):
        compiled([Plain(False)])  # type: ignore[arg-type]
    group = subscribers(50)
    probe = next(iter(group))
    gc.collect()
    before = sys.getrefcount(probe), sys.getrefcount(Subscriber)
    for _ in range(1000):
        for subscriber in group:
            subscriber.pending = False
        assert compiled(group) == 50
    gc.collect()
    assert (sys.getrefcount(probe), sys.getrefcount(Subscriber)) == before
