"""Auth end to end as a plain HTTP client sees it: the whole embedded mesh (`zynk up`) with
JSON through the gateway — register, log in, refresh with reuse detection, publish keys,
claim bundles (one-time prekeys handed out once under 50 concurrent claims), and the 4xx a
client gets for bad input and bad tokens."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.auth import DeviceKeys
from tests.support.rest import bearer, signup


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def publish(http, who: dict, keys: DeviceKeys) -> dict:
    r = await http.post(f"/api/v1/{who['device']['name']}:publishKeys",
                        headers=bearer(who["tokens"]["accessToken"]),
                        json={"identityKey": b64(keys.identity_key),
                              "signedPrekey": {"keyId": keys.signed_prekey_id,
                                               "publicKey": b64(keys.signed_prekey),
                                               "signature": b64(keys.signature)},
                              "oneTimePrekeys": [{"keyId": i, "publicKey": b64(k)}
                                                 for i, k in keys.one_time_prekeys.items()]})
    assert r.status_code == 200, r.text
    return r.json()


async def test_register_login_refresh_and_reuse_revokes_the_family(http):
    who = await signup(http, "laptop")
    assert who["user"]["name"].startswith("users/") and who["device"]["displayName"] == "laptop"
    # 64-bit and well-known types follow the proto3 JSON mapping.
    assert who["tokens"]["accessTokenExpireTime"].endswith("Z")
    me = await http.get("/api/v1/users/me", headers=bearer(who["tokens"]["accessToken"]))
    assert me.status_code == 200 and me.json()["name"] == who["user"]["name"]

    old = who["tokens"]["refreshToken"]
    r = await http.post("/api/v1/auth/refresh", json={"refreshToken": old})
    assert r.status_code == 200, r.text
    fresh = r.json()["tokens"]
    assert fresh["refreshToken"] != old
    # Presenting the used token again: the whole family (the device) is revoked.
    r = await http.post("/api/v1/auth/refresh", json={"refreshToken": old})
    assert r.status_code == 401
    assert r.json()["details"][0]["reason"] == "REFRESH_TOKEN_REUSED"
    r = await http.post("/api/v1/auth/refresh", json={"refreshToken": fresh["refreshToken"]})
    assert r.status_code == 401
    r = await http.get("/api/v1/users/me", headers=bearer(fresh["accessToken"]))
    assert r.status_code == 401


async def test_publish_keys_and_fetch_bundles(http):
    bob = await signup(http, "bob-phone")
    keys = DeviceKeys.generate(5)
    assert (await publish(http, bob, keys))["oneTimePrekeyCount"] == 5
    alice = await signup(http)
    r = await http.post(f"/api/v1/{bob['user']['name']}:claimKeyBundles",
                        headers=bearer(alice["tokens"]["accessToken"]), json={})
    assert r.status_code == 200, r.text
    [bundle] = r.json()["bundles"]
    assert bundle["device"] == bob["device"]["name"]
    assert base64.b64decode(bundle["identityKey"]) == keys.identity_key
    assert base64.b64decode(bundle["oneTimePrekey"]["publicKey"]) in keys.one_time_prekeys.values()
    status = await http.get(f"/api/v1/{bob['device']['name']}/prekeyStatus",
                            headers=bearer(bob["tokens"]["accessToken"]))
    assert status.json()["oneTimePrekeyCount"] == 4


async def test_fifty_concurrent_claims_never_share_a_one_time_prekey(http):
    bob = await signup(http)
    keys = DeviceKeys.generate(30)
    await publish(http, bob, keys)
    claimers = [await signup(http) for _ in range(5)]

    async def claim(i: int):
        who = claimers[i % len(claimers)]
        r = await http.post(f"/api/v1/{bob['user']['name']}:claimKeyBundles",
                            headers=bearer(who["tokens"]["accessToken"]), json={})
        assert r.status_code == 200, r.text
        return r.json()["bundles"][0].get("oneTimePrekey")

    handed = await asyncio.gather(*[claim(i) for i in range(50)])
    ids = [p["keyId"] for p in handed if p]
    assert len(ids) == 30 and len(set(ids)) == 30  # each once; the other 20 got none
    assert sum(p is None for p in handed) == 20


async def test_bad_input_is_a_clear_400(http):
    r = await http.post("/api/v1/auth/register", json={"username": "x"})
    assert r.status_code == 400
    fields = {v["field"] for d in r.json()["details"] for v in d.get("fieldViolations", [])}
    assert {"username", "password"} <= fields
    r = await http.post("/api/v1/auth/register", content=b"{not json",
                        headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = await http.post("/api/v1/auth/login", json={"username": 5, "password": ["x"]})
    assert r.status_code == 400
    r = await http.post("/api/v1/auth/register", content=b"{" + b" " * (2 << 20) + b"}",
                        headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_missing_expired_and_forged_tokens_are_401(http, mesh):
    who = await signup(http)
    assert (await http.get("/api/v1/users/me")).status_code == 401
    forged_key = Ed25519PrivateKey.generate()
    now = int(time.time())
    claims = {"iss": "zynk", "aud": "zynk-api", "sub": who["user"]["name"].split("/")[1],
              "sid": who["device"]["name"].split("/")[3], "jti": uuid.uuid4().hex,
              "iat": now, "exp": now + 300}
    kid = jwt.get_unverified_header(who["tokens"]["accessToken"])["kid"]
    forged = jwt.encode(claims, forged_key, algorithm="EdDSA",
                        headers={"kid": kid, "typ": "at+jwt"})
    none_alg = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})
    real_key = serialization.load_pem_private_key(
        (mesh.settings.data_dir / "keys" / "jwt-ed25519.pem").read_bytes(), password=None)
    expired = jwt.encode({**claims, "iat": now - 3600, "exp": now - 600}, real_key,
                         algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
    r = await http.get("/api/v1/users/me", headers=bearer(expired))
    assert r.status_code == 401 and r.json()["details"][0]["reason"] == "TOKEN_EXPIRED"
    for token in (forged, none_alg, "garbage", who["tokens"]["refreshToken"]):
        r = await http.get("/api/v1/users/me", headers=bearer(token))
        assert r.status_code == 401, (token[:20], r.text)
        assert "Traceback" not in r.text
