import dataclasses

import pytest

from gateway.path_template import PathTemplate
from gateway.routes import (
    MethodNotAllowed,
    RouteConflictError,
    RouteNotFound,
    Router,
    collect_routes,
    discover_modules,
    load_files,
)


@pytest.fixture(scope="module")
def routes(gwtest):
    return collect_routes(load_files([gwtest.module]))


def test_collects_every_binding_and_skips_internal(routes):
    by_method = {}
    for r in routes:
        by_method.setdefault(r.method.name, []).append(r)
    assert "InternalOnly" not in by_method
    search = sorted(by_method["Search"], key=lambda r: r.binding)
    assert [(r.http_method, r.template.template, r.binding, r.body) for r in search] == [
        ("GET", "/api/v1/things:search", 0, ""),
        ("GET", "/api/v1/{parent=shelves/*}/things:search", 1, ""),
        ("POST", "/api/v1/things:search", 2, "*"),
    ]
    assert by_method["Ping"][0].public
    assert not by_method["GetThing"][0].public
    assert by_method["WatchThings"][0].server_streaming
    assert by_method["GetThing"][0].grpc_path == "/gwtest.v1.GwTestService/GetThing"


def test_router_matches_and_reports_405_and_404(routes):
    router = Router(routes)
    route, values = router.match("GET", "/api/v1/shelves/s1/things/t1")
    assert route.method.name == "GetThing" and values == {"name": "shelves/s1/things/t1"}
    route, values = router.match("GET", "/api/v1/shelves/s1/things/t1/labels")
    assert route.method.name == "ListLabels"
    route, values = router.match("GET", "/api/v1/shelves/s1/things:search")
    assert route.method.name == "Search" and values == {"parent": "shelves/s1"}
    route, _ = router.match("POST", "/api/v1/shelves/s1/things/t1:archive")
    assert route.method.name == "ArchiveThing"
    with pytest.raises(MethodNotAllowed) as e:
        router.match("DELETE", "/api/v1/shelves/s1/things/t1")
    assert set(e.value.allowed) == {"GET", "PATCH"}
    with pytest.raises(RouteNotFound):
        router.match("GET", "/api/v1/nowhere")
    with pytest.raises(RouteNotFound):
        router.match("POST", "/api/v1/internal")


def test_conflicting_routes_fail_at_startup(routes):
    get_thing = next(r for r in routes if r.method.name == "GetThing")
    clash = dataclasses.replace(
        get_thing, template=PathTemplate.parse("/api/v1/shelves/{shelf}/things/{thing}")
    )
    with pytest.raises(RouteConflictError, match="conflicting"):
        Router([*routes, clash])
    # Same path under another HTTP method is fine.
    Router([*routes, dataclasses.replace(clash, http_method="DELETE")])


def test_default_discovery_finds_zynk_modules():
    names = discover_modules()
    assert "zynk.api.v1.annotations_pb2" in names
    assert all(n.startswith("zynk.") and n.endswith("_pb2") for n in names)
