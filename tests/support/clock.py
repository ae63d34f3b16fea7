"""A clock to inject where the code under test takes `clock: Callable[[], float]`."""

from __future__ import annotations

import time


class FakeClock:
    """Stands still until advanced; starts at `start`, or at the real time by default."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
