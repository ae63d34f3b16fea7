"""The shared runtime over real gRPC: authentication from the contract's access option,
validation, error mapping, request ids and deadline propagation. A small test servicer
stands in for a service so these run without any service's domain."""

import base64
import time
import uuid

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from services.runtime import context as ctx
from services.runtime.channels import Channels
from services.runtime.errors import AlreadyExists
from services.runtime.interceptors import ServerInterceptor
from services.runtime.revocations import MemoryRevocationList
from services.runtime.server import GrpcServer, ServiceSpec, unimplemented_service
from services.runtime.tokens import JwksKeySource, TokenVerifier
from zynk.auth.v1 import auth_pb2, auth_pb2_grpc

ISS, AUD = "zynk-test", "zynk-api"


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Keys:
    def __init__(self, kid="k1"):
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": kid}

    def token(self, *, sub="u1", sid="d1", ttl=60, typ="at+jwt", alg="EdDSA", **extra):
        now = int(time.time())
        claims = {"iss": ISS, "aud": AUD, "sub": sub, "sid": sid, "jti": uuid.uuid4().hex,
                  "iat": now, "exp": now + ttl, **extra}
        return jwt.encode(claims, self.private, algorithm=alg,
                          headers={"kid": self.kid, "typ": typ})


class Probe(auth_pb2_grpc.AuthServiceServicer):
    """Test servicer: reports what the runtime put in the call context."""

    def __init__(self, channels):
        self.channels = channels
        self.downstream_seen = {}

    async def Register(self, request, context):
        raise AlreadyExists("username taken", reason="USERNAME_TAKEN")

    async def GetJwks(self, request, context):
        self.downstream_seen = {"rid": ctx.request_id.get(), "remaining": ctx.time_remaining()}
        return auth_pb2.GetJwksResponse()

    async def GetUser(self, request, context):
        p = ctx.current_principal()
        # Call "another service" (ourselves) to see what the client interceptor forwards.
        stub = auth_pb2_grpc.AuthServiceStub(self.channels.get("zynk.auth.v1.AuthService"))
        await stub.GetJwks(auth_pb2.GetJwksRequest())
        return auth_pb2.GetUserResponse(user=auth_pb2.User(
            name=p.user_name, display_name=ctx.request_id.get()))

    async def LookupUser(self, request, context):
        raise RuntimeError("secret internal detail")


@pytest.fixture(scope="module")
async def env():
    keys = Keys()
    source = JwksKeySource(fetch=None)
    source.set_keys([keys.jwk])
    revocations = MemoryRevocationList()
    verifier = TokenVerifier(source, ISS, AUD, revocations)
    addresses = {}
    channels = Channels(addresses, "internal-secret", 30)
    probe = Probe(channels)
    spec = ServiceSpec("auth", ["zynk.auth.v1.AuthService"],
                       lambda s: auth_pb2_grpc.add_AuthServiceServicer_to_server(probe, s))
    server = GrpcServer(spec, ServerInterceptor(verifier, "internal-secret"), 1 << 20)
    port = await server.start("127.0.0.1", 0)
    addresses["zynk.auth.v1.AuthService"] = f"127.0.0.1:{port}"
    other = GrpcServer(ServiceSpec("messaging", ["zynk.auth.v1.AuthService"],
                                   unimplemented_service("zynk.auth.v1.AuthService", "later")),
                       ServerInterceptor(verifier, "x"), 1 << 20)
    other_port = await other.start("127.0.0.1", 0)
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield {"stub": auth_pb2_grpc.AuthServiceStub(ch), "keys": keys, "probe": probe,
           "revocations": revocations, "port": port, "other_port": other_port, "channel": ch}
    await ch.close()
    await channels.close()
    await server.stop(1)
    await other.stop(1)


def _bearer(token):
    return (("authorization", f"Bearer {token}"),)


async def _code(coro):
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await coro
    return ei.value


async def test_protected_method_needs_a_token(env):
    err = await _code(env["stub"].GetUser(auth_pb2.GetUserRequest(name="users/me")))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("make", [
    lambda k: k.token(ttl=-60),                         # expired
    lambda k: k.token(typ="JWT"),                       # not an access token
    lambda k: Keys().token(),                           # same kid, other key: bad signature
    lambda k: Keys("unknown").token(),                  # unknown key id
    lambda k: jwt.encode({"sub": "u1"}, "secret", algorithm="HS256",
                         headers={"kid": "k1", "typ": "at+jwt"}),  # alg not allowed
    lambda k: k.token()[:-4] + "AAAA",                  # tampered signature
    lambda k: "not-a-jwt",
])
async def test_bad_tokens_are_refused(env, make):
    err = await _code(env["stub"].GetUser(auth_pb2.GetUserRequest(name="users/me"),
                                          metadata=_bearer(make(env["keys"]))))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_alg_none_is_refused(env):
    unsigned = jwt.encode({"iss": ISS, "aud": AUD, "sub": "u", "sid": "d", "jti": "j",
                           "iat": int(time.time()), "exp": int(time.time()) + 60},
                          None, algorithm="none", headers={"kid": "k1", "typ": "at+jwt"})
    err = await _code(env["stub"].GetUser(auth_pb2.GetUserRequest(name="users/me"),
                                          metadata=_bearer(unsigned)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_valid_token_sets_principal_and_request_id_follows_the_call(env):
    resp = await env["stub"].GetUser(
        auth_pb2.GetUserRequest(name="users/me"),
        metadata=(*_bearer(env["keys"].token(sub="alice")), ("x-request-id", "req-123")),
        timeout=7)
    assert resp.user.name == "users/alice"
    assert resp.user.display_name == "req-123"
    seen = env["probe"].downstream_seen
    assert seen["rid"] == "req-123"  # propagated to the downstream call
    # The inbound 7 s deadline bounds the downstream call (not the 30 s default).
    assert seen["remaining"] is not None and 0 < seen["remaining"] < 7.5


async def test_revoked_device_is_refused_at_once(env):
    token = env["keys"].token(sid="dev-revoked")
    await env["stub"].GetUser(auth_pb2.GetUserRequest(name="users/me"), metadata=_bearer(token))
    await env["revocations"].revoke("dev-revoked", until=time.time() + 60)
    err = await _code(env["stub"].GetUser(auth_pb2.GetUserRequest(name="users/me"),
                                          metadata=_bearer(token)))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in err.details()


async def test_invalid_input_lists_violated_fields(env):
    err = await _code(env["stub"].Register(auth_pb2.RegisterRequest(username="9x",
                                                                     password="short")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err)
    br = error_details_pb2.BadRequest()
    assert any(d.Unpack(br) for d in status.details)
    fields = {v.field for v in br.field_violations}
    assert fields == {"username", "password"}


async def test_domain_error_maps_to_status_with_error_info(env):
    err = await _code(env["stub"].Register(auth_pb2.RegisterRequest(
        username="alice", password="a-long-enough-password")))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    info = error_details_pb2.ErrorInfo()
    assert rpc_status.from_call(err).details[0].Unpack(info)
    assert info.reason == "USERNAME_TAKEN" and info.domain == "zynk.dev"


async def test_unexpected_errors_do_not_leak(env):
    err = await _code(env["stub"].LookupUser(auth_pb2.LookupUserRequest(username="bob"),
                                             metadata=_bearer(env["keys"].token())))
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in err.details()


async def test_health_and_unimplemented(env):
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{env['other_port']}")
    h = health_pb2_grpc.HealthStub(ch)
    r = await h.Check(health_pb2.HealthCheckRequest(service="zynk.auth.v1.AuthService"))
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    stub = auth_pb2_grpc.AuthServiceStub(ch)
    err = await _code(stub.GetJwks(auth_pb2.GetJwksRequest()))
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "not implemented yet" in err.details()
    await ch.close()


async def test_admin_methods_need_the_admin_role(env):
    import zynk.analytics.v1.analytics_pb2 as apb
    import zynk.analytics.v1.analytics_pb2_grpc as agrpc

    full = "zynk.analytics.v1.AnalyticsService"
    source = JwksKeySource(fetch=None)
    source.set_keys([env["keys"].jwk])
    verifier = TokenVerifier(source, ISS, AUD, MemoryRevocationList())
    server = GrpcServer(ServiceSpec("analytics", [full], unimplemented_service(full, "later")),
                        ServerInterceptor(verifier, "x"), 1 << 20)
    port = await server.start("127.0.0.1", 0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = agrpc.AnalyticsServiceStub(ch)
        req = apb.GetDailyActiveUsersRequest()
        user = _bearer(env["keys"].token())
        admin = _bearer(env["keys"].token(roles=["admin"]))
        err = await _code(stub.GetDailyActiveUsers(req, metadata=user))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        err = await _code(stub.GetDailyActiveUsers(req, metadata=admin))
        # Past authorisation: now the request's own rules, or the not-built service, answer.
        assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)
    await server.stop(1)


async def test_one_interceptor_shared_by_servers_keeps_their_handlers_apart():
    """Regression: caching wrapped handlers by method name alone made every server answer
    health checks and reflection with the first server's servicers."""
    shared_interceptor = ServerInterceptor(None, "x")
    servers, ports = [], []
    for full in ("zynk.call.v1.CallService", "zynk.file.v1.FileService"):
        srv = GrpcServer(ServiceSpec(full, [full], unimplemented_service(full, "later")),
                         shared_interceptor, 1 << 20)
        ports.append(await srv.start("127.0.0.1", 0))
        servers.append(srv)
    for port, full, other in ((ports[0], "zynk.call.v1.CallService", "zynk.file.v1.FileService"),
                              (ports[1], "zynk.file.v1.FileService", "zynk.call.v1.CallService")):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            h = health_pb2_grpc.HealthStub(ch)
            ok = await h.Check(health_pb2.HealthCheckRequest(service=full))
            assert ok.status == health_pb2.HealthCheckResponse.SERVING
            err = await _code(h.Check(health_pb2.HealthCheckRequest(service=other)))
            assert err.code() == grpc.StatusCode.NOT_FOUND
    for srv in servers:
        await srv.stop(0)


def test_message_level_rule_violations_are_reported():
    """Regression: a message-level CEL rule (no field path) crashed the validator -> 500."""
    from services.runtime.interceptors import violations_of
    from zynk.presence.v1 import presence_pb2

    v = violations_of(presence_pb2.WatchPresenceRequest())
    assert v and v[0][0] == "(message)" and "at least one" in v[0][1]
