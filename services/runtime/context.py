"""Per-call context carried in contextvars: the request id, the authenticated principal and
the call's deadline. Interceptors set them; domain code and outgoing calls read them."""

from __future__ import annotations

import contextvars
import dataclasses
import time

from services.runtime.errors import Unauthenticated


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user acting through one of their devices."""

    user_id: str
    device_id: str
    token_id: str = ""
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def user_name(self) -> str:
        return f"users/{self.user_id}"

    @property
    def device_name(self) -> str:
        return f"users/{self.user_id}/devices/{self.device_id}"


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)
# Set by the server interceptor on ACCESS_PER_ITEM calls only: the verifier every item's own
# access token must pass (the very one that checks bearer tokens on every other call).
item_verifier: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "item_verifier", default=None)
# Absolute time.monotonic() by which the current inbound call must finish, if it has one.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
# The caller's network address as the edge saw it (for per-address rate limits).
client_address: contextvars.ContextVar[str] = contextvars.ContextVar("client_address", default="")


def current_principal() -> Principal:
    """The authenticated caller; raises UNAUTHENTICATED when the call carried no valid token."""
    p = principal.get()
    if p is None:
        raise Unauthenticated("this call needs a valid access token", reason="TOKEN_MISSING")
    return p


def time_remaining() -> float | None:
    d = deadline.get()
    return None if d is None else d - time.monotonic()
