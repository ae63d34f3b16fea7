"""What a misbehaving or curious client gets through the gateway: non-members, other users'
inboxes, envelopes for devices that do not exist, oversize ciphertext, malformed ids — each a
clear 4xx naming the problem, never a 500, and nothing written."""

from __future__ import annotations

import base64
import uuid

from tests.support.rest import bearer, signup


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def conversation(http, a: dict, b: dict) -> str:
    r = await http.post("/api/v1/conversations", headers=bearer(a["tokens"]["accessToken"]),
                        json={"type": "TYPE_DIRECT", "participants": [b["user"]["name"]]})
    assert r.status_code == 200, r.text
    return r.json()["name"]


def send_body(to_device: str, ciphertext: bytes = b"\x01" * 64, **kw) -> dict:
    return {"messageId": kw.get("message_id", str(uuid.uuid4())),
            "pairwise": {"envelopes": [{"recipientDevice": to_device,
                                        "type": "ENVELOPE_TYPE_RATCHET",
                                        "ciphertext": b64(ciphertext)}]}}


async def test_a_non_member_can_neither_read_nor_send(http):
    alice, bob, mallory = await signup(http), await signup(http), await signup(http)
    conv = await conversation(http, alice, bob)
    ok = await http.post(f"/api/v1/{conv}/messages:send",
                         headers=bearer(alice["tokens"]["accessToken"]),
                         json=send_body(bob["device"]["name"]))
    assert ok.status_code == 200, ok.text
    m = bearer(mallory["tokens"]["accessToken"])
    for r in (await http.get(f"/api/v1/{conv}", headers=m),
              await http.get(f"/api/v1/{conv}/messages", headers=m),
              await http.get(f"/api/v1/{ok.json()['message']['name']}", headers=m),
              await http.post(f"/api/v1/{conv}/messages:send", headers=m,
                              json=send_body(bob["device"]["name"])),
              await http.post(f"/api/v1/{conv}:markRead", headers=m,
                              json={"readSequence": 1})):
        assert r.status_code in (403, 404), (r.request.url, r.status_code, r.text)
        assert r.json().get("code") != 13  # never INTERNAL
    # Mallory's own conversation list does not show it.
    mine = await http.get("/api/v1/conversations", headers=m)
    assert conv not in [c["name"] for c in mine.json().get("conversations", [])]


async def test_nobody_reads_or_acknowledges_another_devices_inbox(http):
    alice, bob = await signup(http), await signup(http)
    conv = await conversation(http, alice, bob)
    await http.post(f"/api/v1/{conv}/messages:send",
                    headers=bearer(alice["tokens"]["accessToken"]),
                    json=send_body(bob["device"]["name"]))
    a = bearer(alice["tokens"]["accessToken"])
    r = await http.get(f"/api/v1/{bob['device']['name']}/inbox:subscribe", headers=a)
    assert r.status_code in (403, 404), r.text
    r = await http.post(f"/api/v1/{bob['device']['name']}/inbox:acknowledge", headers=a,
                        json={"cursor": "1"})
    assert r.status_code in (400, 403, 404), r.text


async def test_envelopes_for_devices_that_do_not_exist_are_refused(http):
    alice, bob = await signup(http), await signup(http)
    conv = await conversation(http, alice, bob)
    ghost = f"{bob['user']['name']}/devices/{uuid.uuid4()}"
    r = await http.post(f"/api/v1/{conv}/messages:send",
                        headers=bearer(alice["tokens"]["accessToken"]),
                        json=send_body(ghost))
    assert r.status_code == 400, r.text
    info = r.json()["details"][0]
    assert info["reason"] == "DEVICE_MISMATCH"
    assert ghost in info["metadata"]["extra_devices"]
    assert bob["device"]["name"] in info["metadata"]["missing_devices"]
    # Nothing was stored.
    r = await http.get(f"/api/v1/{conv}/messages", headers=bearer(bob["tokens"]["accessToken"]))
    assert [m for m in r.json().get("messages", []) if "envelope" in m] == []


async def test_oversize_ciphertext_and_malformed_ids_are_400_with_the_field(http):
    alice, bob = await signup(http), await signup(http)
    conv = await conversation(http, alice, bob)
    a = bearer(alice["tokens"]["accessToken"])
    r = await http.post(f"/api/v1/{conv}/messages:send", headers=a,
                        json=send_body(bob["device"]["name"], b"\x00" * (64 * 1024 + 1)))
    assert r.status_code == 400, r.text
    fields = {v["field"] for d in r.json()["details"] for v in d.get("fieldViolations", [])}
    assert any("ciphertext" in f for f in fields), fields
    r = await http.post(f"/api/v1/{conv}/messages:send", headers=a,
                        json=send_body(bob["device"]["name"], message_id="not-a-uuid"))
    assert r.status_code == 400 and "message_id" in r.text
    r = await http.post(f"/api/v1/{conv}/messages:send", headers=a,
                        json={"messageId": str(uuid.uuid4())})  # no content at all
    assert r.status_code == 400


async def test_the_sender_is_the_token_not_the_request(http):
    """There is no sender field to forge: the stored sender is the authenticated device."""
    alice, bob = await signup(http), await signup(http)
    conv = await conversation(http, alice, bob)
    r = await http.post(f"/api/v1/{conv}/messages:send",
                        headers=bearer(alice["tokens"]["accessToken"]),
                        json={**send_body(bob["device"]["name"]),
                              "sender": bob["user"]["name"]})
    assert r.status_code == 400  # unknown field: refused, not silently ignored
    r = await http.post(f"/api/v1/{conv}/messages:send",
                        headers=bearer(alice["tokens"]["accessToken"]),
                        json=send_body(bob["device"]["name"]))
    assert r.json()["message"]["sender"] == alice["user"]["name"]
    assert r.json()["message"]["senderDevice"] == alice["device"]["name"]
