"""Best-effort twins of bus events, for caches that must not wait for the bus.

A durable event (the outbox, then Kafka) can take seconds to arrive — a consumer group's
first join alone does — and a cache dropped only then serves stale data meanwhile. So the
producer also publishes a hint on the process pub/sub (Redis across replicas) right after the
commit; consumers drop their cache entry on whichever arrives first. The event stays the
guarantee (pub/sub may lose a hint), the hint only closes the window.

Channel                 payload        twin of
`hint:devices.changed`  user id UTF-8  `devices.changed` (a device was added or revoked)
"""

from __future__ import annotations

DEVICES_CHANGED = "hint:devices.changed"
