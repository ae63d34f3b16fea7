"""A new user through the gateway's REST routes, as a plain HTTP client makes one."""

from __future__ import annotations

import uuid

import httpx

PASSWORD = "a long enough password"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def signup(http: httpx.AsyncClient, device: str | None = None) -> dict:
    """Register a new user and log in (naming the device, if given): the LoginResponse JSON
    (user, device, tokens)."""
    username = f"u{uuid.uuid4().hex[:12]}"
    r = await http.post("/api/v1/auth/register", json={"username": username,
                                                        "password": PASSWORD})
    assert r.status_code == 200, r.text
    login = {"username": username, "password": PASSWORD}
    if device is not None:
        login["deviceDisplayName"] = device
    r = await http.post("/api/v1/auth/login", json=login)
    assert r.status_code == 200, r.text
    return r.json()
