"""Messaging through the gateway, as a client sees it: REST + NDJSON inbox stream over real
HTTP in front of the whole embedded mesh (`zynk up`)."""

from __future__ import annotations

import base64
import json
import uuid

from tests.support import rest


async def signup(http) -> dict:
    body = await rest.signup(http, "e2e")
    return {"user": body["user"]["name"], "device": body["device"]["name"],
            "h": rest.bearer(body["tokens"]["accessToken"])}


async def inbox(http, who: dict, after: str = "") -> list[dict]:
    """The inbox stream (NDJSON) up to its caughtUp line."""
    out = []
    params = {"afterCursor": after} if after else {}
    async with http.stream("GET", f"/api/v1/{who['device']}/inbox:subscribe", params=params,
                           headers=who["h"]) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            event = event.get("result", event)
            if "caughtUp" in event:
                return out
            out.append(event)
    raise AssertionError("stream ended before caughtUp")


async def test_send_receive_acknowledge_over_rest(http):
    alice, bob = await signup(http), await signup(http)
    r = await http.post("/api/v1/conversations", headers=alice["h"],
                        json={"type": "TYPE_DIRECT", "participants": [bob["user"]]})
    assert r.status_code == 200, r.text
    conv = r.json()["name"]
    ct = base64.b64encode(b"ciphertext for bob").decode()
    send = {"messageId": str(uuid.uuid4()), "pairwise": {"envelopes": [
        {"recipientDevice": bob["device"], "type": "ENVELOPE_TYPE_PREKEY", "ciphertext": ct}]}}
    r = await http.post(f"/api/v1/{conv}/messages:send", headers=alice["h"], json=send)
    assert r.status_code == 200, r.text
    msg = r.json()["message"]
    assert msg["sequence"] == "2" and msg["sender"] == alice["user"]
    again = await http.post(f"/api/v1/{conv}/messages:send", headers=alice["h"], json=send)
    assert again.json()["message"] == msg  # idempotent retry
    entries = await inbox(http, bob)
    assert [e["message"]["sequence"] for e in entries] == ["1", "2"]
    assert entries[1]["message"]["envelope"]["ciphertext"] == ct
    r = await http.post(f"/api/v1/{bob['device']}/inbox:acknowledge", headers=bob["h"],
                        json={"cursor": entries[1]["cursor"]})
    assert r.status_code == 200, r.text
    assert r.json().get("pendingCount", "0") == "0"
    assert await inbox(http, bob) == []
    receipts = await inbox(http, alice)
    assert receipts[-1]["receipt"]["type"] == "RECEIPT_TYPE_DELIVERED"
    r = await http.get(f"/api/v1/{conv}/messages", headers=bob["h"],
                       params={"orderBy": "sequence"})
    assert [m["sequence"] for m in r.json()["messages"]] == ["1", "2"]


async def test_errors_over_rest(http):
    alice, bob = await signup(http), await signup(http)
    eve = await signup(http)
    r = await http.post("/api/v1/conversations", headers=alice["h"],
                        json={"type": "TYPE_DIRECT", "participants": [bob["user"]]})
    conv = r.json()["name"]
    send = {"messageId": str(uuid.uuid4()), "pairwise": {"envelopes": [
        {"recipientDevice": alice["device"], "type": "ENVELOPE_TYPE_RATCHET",
         "ciphertext": "eA=="}]}}
    r = await http.post(f"/api/v1/{conv}/messages:send", headers=alice["h"], json=send)
    assert r.status_code == 400, r.text
    info = [d for d in r.json()["details"] if d["@type"].endswith("ErrorInfo")][0]
    assert info["reason"] == "DEVICE_MISMATCH"
    assert info["metadata"]["missing_devices"] == bob["device"]
    assert info["metadata"]["extra_devices"] == alice["device"]
    r = await http.get(f"/api/v1/{conv}/messages", headers=eve["h"])
    assert r.status_code == 403, r.text
    r = await http.get(f"/api/v1/{bob['device']}/inbox:subscribe", headers=alice["h"])
    assert r.status_code == 403, r.text
