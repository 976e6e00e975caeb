from collections.abc import Callable, Iterator

from feeds.market_walk import Model
from ticker.model import Tick

def walk(model: Model, random: Callable[[], float], start_ms: float, tick_type: type[Tick],
         /) -> Iterator[Tick]: ...
