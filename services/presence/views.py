"""What callers are shown: a user's presence as the API exposes it, and the other events a
watch stream carries. The privacy rules of the output live here, in one place:

- times are truncated to the minute (the contract's "minute precision"), update_time too,
  since it equals last_seen for a user who just went offline;
- a user the caller may not see is OFFLINE with no times at all, exactly like a user the
  service knows nothing about (or whose last-seen was forgotten), so the answer says nothing
  about whether the user exists or is active."""

from __future__ import annotations

import dataclasses

from services.presence.store import UserPresence
from services.presence.wire import Typing


@dataclasses.dataclass(frozen=True, slots=True)
class PresenceView:
    user_id: str
    online: bool
    last_seen: float | None
    update_time: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class Keepalive:
    server_time: float


WatchEvent = PresenceView | Typing | Keepalive


def to_minute(t: float | None) -> float | None:
    return None if t is None else float(int(t // 60) * 60)


def public(p: UserPresence) -> PresenceView:
    return PresenceView(p.user_id, p.online, None if p.online else to_minute(p.last_seen),
                        to_minute(p.since))


def hidden(user_id: str) -> PresenceView:
    return PresenceView(user_id, False, None, None)
