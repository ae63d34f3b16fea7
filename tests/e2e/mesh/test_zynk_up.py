"""`zynk up` as a client sees it: every service reachable over gRPC with reflection and
health, the gateway serving the API, unbuilt services answering UNIMPLEMENTED honestly."""


import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.runtime.catalog import CATALOG
from tests.support.rest import signup


async def _reflected_services(address: str) -> set[str]:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)

        async def requests():
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for resp in stub.ServerReflectionInfo(requests()):
            return {s.name for s in resp.list_services_response.service}
    return set()


async def test_reflection_lists_all_twelve_services(mesh):
    seen: set[str] = set()
    for st in mesh.services:
        seen |= await _reflected_services(st.address)
    assert {info.full_name for info in CATALOG.values()} <= seen
    assert len(mesh.services) == 12


async def test_every_service_is_healthy(mesh):
    for st in mesh.services:
        async with grpc.aio.insecure_channel(st.address) as ch:
            r = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=st.full_name), timeout=5)
            assert r.status == health_pb2.HealthCheckResponse.SERVING, st.name


def test_the_banner_names_the_backends_in_use(mesh):
    banner = mesh.banner()
    assert "embedded mode" in banner
    if mesh.settings.backends.storage == "sqlite":
        assert "SQLite under" in banner and "in-process" in banner
    else:  # the same mesh on the distributed backends says so, without the password
        assert "PostgreSQL" in banner and "Redis" in banner and "Kafka" in banner
        assert "in-process" not in banner


async def test_gateway_health_and_readiness(http):
    assert (await http.get("/healthz")).status_code == 200
    r = await http.get("/readyz")
    assert r.status_code == 200, r.text


def _example_path(route) -> str:
    """A concrete path the route matches (wildcards filled with a plausible id)."""
    t = route.template
    segs = ["00000000-0000-4000-8000-000000000001" if s in ("*", "**") else s
            for s in t.segments]
    return "/" + "/".join(segs) + (f":{t.verb}" if t.verb else "")


async def test_openapi_lists_every_annotated_route(http):
    from gateway.openapi import _openapi_path
    from gateway.routes import collect_routes, load_files

    doc = (await http.get("/openapi.json")).json()
    documented = {(path, verb.upper()) for path, ops in doc["paths"].items() for verb in ops}
    routes = collect_routes(load_files(None))
    assert routes, "no routes collected"
    for route in routes:
        assert (_openapi_path(route.template)[0], route.http_method) in documented, route
    # the seed's blockchain routes keep their exact paths
    for path in ["/api/v1/blockchain/identity/register", "/api/v1/blockchain/audit/anchor",
                 "/api/v1/blockchain/identity/{did}/verify",
                 "/api/v1/blockchain/audit/proof/{message_id}"]:
        assert path in doc["paths"], path
    assert (await http.get("/docs")).status_code == 200


async def test_unbuilt_services_answer_unimplemented(mesh, http):
    token = (await signup(http))["tokens"]["accessToken"]
    unbuilt = [s for s in mesh.services if not s.implemented]
    honest = 0
    for st in unbuilt:
        async with grpc.aio.insecure_channel(st.address) as ch:
            # Any method of the service: all answer the same honest UNIMPLEMENTED.
            from google.protobuf import descriptor_pool, message_factory

            svc = descriptor_pool.Default().FindServiceByName(st.full_name)
            from services.runtime.access import Access, policy_for

            from services.runtime.interceptors import violations_of

            unary = [m for m in svc.methods if not m.client_streaming and not m.server_streaming]
            user_methods = [m for m in unary if policy_for(f"/{st.full_name}/{m.name}").access
                            is Access.AUTHENTICATED]
            # Prefer a method whose empty request is valid, so the call reaches the service.
            method = next((m for m in user_methods if not violations_of(
                message_factory.GetMessageClass(m.input_type)())),
                next(iter(user_methods), None))
            if method is None:  # admin-only service (analytics): a user is refused first
                method = unary[0]
                expected = (grpc.StatusCode.PERMISSION_DENIED,)
            else:
                # INVALID_ARGUMENT: the empty request already fails the contract's rules,
                # which the runtime checks before the (absent) service would run.
                expected = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INVALID_ARGUMENT)
            req_cls = message_factory.GetMessageClass(method.input_type)
            resp_cls = message_factory.GetMessageClass(method.output_type)
            call = ch.unary_unary(f"/{st.full_name}/{method.name}",
                                  request_serializer=req_cls.SerializeToString,
                                  response_deserializer=resp_cls.FromString)
            try:
                await call(req_cls(), metadata=(("authorization", f"Bearer {token}"),),
                           timeout=5)
                raise AssertionError(f"{st.name} answered a call it cannot serve")
            except grpc.aio.AioRpcError as e:
                assert e.code() in expected, (st.name, e.code())
                honest += e.code() == grpc.StatusCode.UNIMPLEMENTED
    if unbuilt:
        assert honest >= 1, "no unbuilt service reached its UNIMPLEMENTED answer"


async def test_protected_routes_refuse_calls_without_a_valid_token(http):
    from gateway.routes import collect_routes, load_files

    from services.runtime.access import Access, policy_for

    checked = 0
    for route in collect_routes(load_files(None)):
        if policy_for(route.grpc_path).access is Access.PUBLIC:
            continue
        path = _example_path(route)
        for headers in ({}, {"authorization": "Bearer not-a-token"}):
            r = await http.request(route.http_method, path, headers=headers,
                                   json={} if route.body else None)
            assert r.status_code == 401, (route.http_method, path, r.status_code, r.text)
        checked += 1
    assert checked > 50
