"""Groups as a REST client sees them through the gateway of the whole embedded mesh: the
transcoded routes, partial updates with an update mask, invite links, and the 404 that hides
a private group from a non-member. (Whether messaging then follows the membership is the
end-to-end messaging tests' business; until messaging is served, the relay keeps the changes
and the API answers regardless.)"""

from __future__ import annotations

from tests.support.rest import bearer, signup


async def login(http) -> tuple[str, dict[str, str]]:
    body = await signup(http)
    return body["user"]["name"], bearer(body["tokens"]["accessToken"])


async def test_groups_over_rest(http):
    owner, owner_h = await login(http)
    friend, friend_h = await login(http)
    stranger, stranger_h = await login(http)

    r = await http.post("/api/v1/groups", headers=owner_h, json={
        "group": {"displayName": "Hikers"}, "initialMembers": [friend]})
    assert r.status_code == 200, r.text
    g = r.json()["group"]
    gid = g["name"].removeprefix("groups/")
    assert g["conversation"] == f"conversations/{gid}"
    assert (g["owner"], g["memberCount"], g["callerRole"]) == (owner, 2, "ROLE_OWNER")

    # a partial update names only what changes
    r = await http.patch(f"/api/v1/{g['name']}?updateMask=description", headers=owner_h,
                         json={"description": "Sundays", "etag": g["etag"]})
    assert r.status_code == 200, r.text
    assert (r.json()["displayName"], r.json()["description"]) == ("Hikers", "Sundays")
    r = await http.patch(f"/api/v1/{g['name']}?updateMask=description", headers=owner_h,
                         json={"description": "stale", "etag": g["etag"]})
    assert r.status_code == 409, r.text

    r = await http.get(f"/api/v1/{g['name']}", headers=stranger_h)
    assert r.status_code == 404, r.text
    r = await http.post(f"/api/v1/{g['name']}:addMembers", headers=friend_h,
                        json={"users": [stranger]})
    assert r.status_code == 403, r.text
    r = await http.post("/api/v1/groups", headers=owner_h, json={"group": {"displayName": ""}})
    assert r.status_code == 400, r.text

    r = await http.post(f"/api/v1/{g['name']}/invites", headers=owner_h, json={"maxUses": 1})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    r = await http.post("/api/v1/groups:join", headers=stranger_h, json={"inviteToken": token})
    assert r.status_code == 200, r.text
    assert r.json()["member"]["role"] == "ROLE_MEMBER"

    r = await http.get(f"/api/v1/{g['name']}/members", headers=stranger_h)
    assert [m["user"] for m in r.json()["members"]] == [owner, friend, stranger]

    r = await http.post(f"/api/v1/{g['name']}:leave", headers=owner_h, json={})
    assert r.status_code == 200, r.text
    assert r.json()["newOwner"] == friend
    r = await http.get("/api/v1/groups", headers=friend_h)
    assert [x["callerRole"] for x in r.json()["groups"]] == ["ROLE_OWNER"]
