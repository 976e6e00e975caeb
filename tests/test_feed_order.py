"""The merge of a drain's runs into feed order: the compiled one (ticker/_order.c) and the
pure-Python fallback give the same answer, on rings that have wrapped too; bad input is an error,
not a crash."""

from __future__ import annotations

import os
import random
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker import feed_order as order_module
from ticker.feed_order import Run, feed_order, merge_in_python

compiled = order_module.compiled_merge


def test_the_compiled_merge_is_built_where_the_tools_are() -> None:
    if compiled is None:
        message = "ticker/_order.c was not compiled (hatch_build.py): the merge runs in Python"
        if os.environ.get("TICKER_REQUIRE_ALL_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)


def make_runs(lengths: list[int], seed: int, capacity: int) -> tuple[list[Run], list[bytes]]:
    """Runs of the given lengths with places dealt at random; each ring is ``capacity`` long
    (when a run fits it) and the run starts at a random slot, so some wrap around."""
    rng = random.Random(seed)
    owners = [k for k, length in enumerate(lengths) for _ in range(length)]
    rng.shuffle(owners)
    runs_ticks: list[list[bytes]] = [[] for _ in lengths]
    runs_places: list[list[int]] = [[] for _ in lengths]
    feed = []
    for place, owner in enumerate(owners, start=1):
        tick = f'{{"symbol":"S{owner}","place":{place}}}'.encode()
        runs_ticks[owner].append(tick)
        runs_places[owner].append(place)
        feed.append(tick)
    runs: list[Run] = []
    for k, (ticks, places) in enumerate(zip(runs_ticks, runs_places, strict=True)):
        size = max(capacity, len(places))
        start = rng.randrange(size)
        ring = array("q", [0] * size)
        for j, place in enumerate(places):
            ring[(start + j) % size] = place
        runs.append((f"S{k}", 1, ticks, ring, start))
    return runs, feed


@given(lengths=st.lists(st.integers(0, 30), min_size=2, max_size=12), seed=st.integers(0, 99),
       capacity=st.sampled_from([1, 4, 64]))
def test_both_merges_give_the_feed_order(lengths: list[int], seed: int, capacity: int) -> None:
    runs, feed = make_runs(lengths, seed, capacity)
    assert list(merge_in_python(runs)) == feed
    if compiled is not None:
        assert compiled(runs) == feed
    order = feed_order(runs)
    concatenated = [tick for run in runs for tick in run[2]]
    assert (concatenated if order is None else [concatenated[i] for i in order]) == feed


def test_the_compiled_merge_refuses_bad_runs_with_an_error() -> None:
    if compiled is None:
        pytest.skip("ticker/_order.c is not compiled here")
    good: Run = ("A", 1, [b"1", b"2"], array("q", [1, 2]), 0)
    with pytest.raises(TypeError):
        compiled((good, good))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compiled([("A", 1, (b"1",), array("q", [1]), 0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="array"):
        compiled([("A", 1, [b"1"], array("d", [1.0]), 0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="array"):
        compiled([("A", 1, [b"1", b"2", b"3"], array("q", [1, 2]), 0)])
    with pytest.raises(ValueError, match="array"):
        compiled([("A", 1, [b"1"], array("q", [1, 2]), 5)])
    with pytest.raises(ValueError, match="array"):
        compiled([("A", 1, [b"1"], b"not an array of places", 0)])  # type: ignore[list-item]
    assert compiled([good, ("B", 1, [b"0"], array("q", [0]), 0)]) == [b"0", b"1", b"2"]
