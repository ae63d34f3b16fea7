"""The expiry sweeper keeps going when the store is down, and says so without a traceback
(an outage is expected operation, not a bug)."""

import asyncio

from structlog.testing import capture_logs

from services.messaging.domain import run_sweeper
from services.runtime.errors import Unavailable


class FlakyDomain:
    def __init__(self) -> None:
        self.calls = 0

    async def expire_due(self) -> int:
        self.calls += 1
        if self.calls == 1:
            raise Unavailable("the database is unavailable; retry")
        return 2


async def test_an_unavailable_store_is_a_warning_and_the_sweep_goes_on():
    domain, stop = FlakyDomain(), asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(run_sweeper(domain, 0.01, stop))
        while domain.calls < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)
    waiting = [e for e in logs if e["event"] == "expiry sweep waiting for the store"]
    assert waiting and waiting[0]["log_level"] == "warning"
    assert "exc_info" not in waiting[0]
    assert any(e["event"] == "expired messages erased" and e["count"] == 2 for e in logs)
