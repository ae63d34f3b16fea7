"""Presence through the gateway, as a client sees it under `zynk up`: REST heartbeats and
reads, and the watch stream as newline-delimited JSON. (Only the caller's own presence here:
seeing others needs messaging's conversations, covered by tests/integration/presence.)"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.rest import bearer, signup

pytestmark = pytest.mark.timeout(30)


async def test_heartbeat_read_and_watch_over_rest(http):
    auth = bearer((await signup(http))["tokens"]["accessToken"])
    r = await http.post("/api/v1/presence:heartbeat", json={}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["heartbeatInterval"] == "25s"
    assert body["presence"]["state"] == "PRESENCE_STATE_ONLINE"
    me = body["presence"]["name"]

    r = await http.get("/api/v1/presence:batchGet", params={"names": "users/me/presence"},
                       headers=auth)
    assert r.status_code == 200, r.text
    assert [(p["name"], p["state"]) for p in r.json()["presences"]] == [
        (me, "PRESENCE_STATE_ONLINE")]

    async with asyncio.timeout(10):
        async with http.stream("GET", "/api/v1/presence:watch",
                               params={"names": "users/me/presence"}, headers=auth) as s:
            assert s.status_code == 200
            lines = s.aiter_lines()
            first = json.loads(await anext(lines))
            assert first["presence"]["name"] == me
            assert first["presence"]["state"] == "PRESENCE_STATE_ONLINE"
            r = await http.post("/api/v1/presence:heartbeat",
                                json={"state": "PRESENCE_STATE_OFFLINE"}, headers=auth)
            assert r.json()["presence"]["state"] == "PRESENCE_STATE_OFFLINE"
            change = json.loads(await anext(lines))
            assert change["presence"]["state"] == "PRESENCE_STATE_OFFLINE"
            assert change["presence"]["lastSeenTime"].endswith(":00Z")


async def test_bad_presence_requests_are_400(http):
    auth = bearer((await signup(http))["tokens"]["accessToken"])
    r = await http.get("/api/v1/presence:batchGet", headers=auth)
    assert r.status_code == 400, r.text
    r = await http.post("/api/v1/presence:heartbeat", json={"state": "NOT_A_STATE"},
                        headers=auth)
    assert r.status_code == 400, r.text
    r = await http.post("/api/v1/conversations/x y:setTyping", json={"typing": True},
                        headers=auth)
    assert r.status_code == 400, r.text
    violations = r.json()["details"][1]["fieldViolations"]
    assert [v["field"] for v in violations] == ["conversation"]
