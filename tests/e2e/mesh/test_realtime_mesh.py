"""`zynk up` serves the realtime WebSocket with the process's shared token verifier: a token
from a real login opens a socket for its device, and `call` frames reach the real services.
(The full inbox and presence flows against the real messaging and presence services are
end-to-end tests of those services.)"""

import json

import pytest
import websockets

from tests.support.rest import signup

pytestmark = pytest.mark.timeout(30)


async def test_a_real_login_opens_a_socket_for_its_device(mesh, http):
    login = await signup(http)
    token = login["tokens"]["accessToken"]
    url = mesh.gateway_url.replace("http://", "ws://") + "/api/v1/realtime"
    async with websockets.connect(url, subprotocols=["zynk.v1"], open_timeout=5,
                                  ping_interval=None) as ws:
        await ws.send(json.dumps({"id": "a", "auth": {"accessToken": token}}))
        ready = json.loads(await ws.recv())
        assert ready["id"] == "a"
        assert ready["ready"]["device"] == login["device"]["name"]
        # A unary call through the socket reaches the auth service as this user.
        user = login["device"]["name"].rsplit("/devices/", 1)[0]
        await ws.send(json.dumps({"id": "c", "call": {
            "method": "zynk.auth.v1.AuthService/GetUser", "request": {"name": user}}}))
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("id") == "c":
                break
            # Until the messaging service lands, its Subscribe answers UNIMPLEMENTED and the
            # socket reports it (then closes 1011); once it lands, the inbox starts.
            assert "inbox" in frame or frame["error"]["code"] == 12, frame
            if "error" in frame:
                return
        assert frame["result"]["user"]["name"] == user


async def test_a_forged_token_is_refused(mesh):
    url = mesh.gateway_url.replace("http://", "ws://") + "/api/v1/realtime"
    async with websockets.connect(url, subprotocols=["zynk.v1"], open_timeout=5,
                                  additional_headers={"Authorization": "Bearer x.y.z"}) as ws:
        frame = json.loads(await ws.recv())
        assert frame["error"]["code"] == 16
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4401
