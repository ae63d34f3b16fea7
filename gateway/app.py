"""The gateway's Starlette app: REST -> gRPC for every annotated RPC, the realtime WebSocket,
health, OpenAPI, docs.

    app = create_app(channel_for=mesh.channel_for)   # one grpc.aio.Channel per service name
    app = create_app(channel_for=..., verifier=shared_verifier)   # + GET /api/v1/realtime

Routes, transcoders and gRPC callables are built once, here; a request costs one regex match,
one json_format conversion each way and the upstream call. Upstream calls carry a deadline and
the metadata `authorization` (untouched), `x-request-id` (the client's if sane, else a new
UUID4; echoed as a response header) and `x-forwarded-for` (the client address as uvicorn sees
it; run uvicorn with proxy headers from trusted proxies only).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import grpc
import structlog
from grpc_health.v1 import health_pb2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route as HttpRoute
from starlette.routing import WebSocketRoute

from gateway import openapi as openapi_builder
from gateway.docs import render_docs
from gateway.errors import HttpError, from_rpc_error, gateway_error
from gateway.path_template import PathDecodeError
from gateway.realtime import PATH as REALTIME_PATH
from gateway.realtime import Method, Realtime, Upstream
from gateway.routes import (
    MethodNotAllowed,
    Route,
    RouteNotFound,
    Router,
    collect_routes,
    load_files,
)
from gateway.transcode import TranscodeError, Transcoder
from services.runtime.config import RealtimeSettings
from services.runtime.tokens import TokenVerifier

__all__ = ["create_app", "DEFAULT_MAX_BODY_BYTES"]

log = structlog.get_logger("zynk.gateway")

DEFAULT_MAX_BODY_BYTES = 1 << 20
ChannelFor = Callable[[str], grpc.aio.Channel]
Readiness = Callable[[], Mapping[str, bool] | Awaitable[Mapping[str, bool]]]

C = grpc.StatusCode
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
_NDJSON = "application/x-ndjson"
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# Methods the catch-all accepts, so that a wrong one gets the router's 405 with `Allow`.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(slots=True)
class _Endpoint:
    route: Route
    transcoder: Transcoder
    call: Any  # grpc.aio.UnaryUnaryMultiCallable or UnaryStreamMultiCallable


class _Reject(Exception):
    def __init__(self, error: HttpError) -> None:
        self.error = error


def create_app(
    *,
    channel_for: ChannelFor,
    modules: Iterable[str] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    default_timeout_s: float = 30.0,
    stream_timeout_s: float = 300.0,
    health_timeout_s: float = 2.0,
    readiness: Readiness | None = None,
    openapi: str | os.PathLike[str] | None = None,
    require_credentials: bool = True,
    verifier: TokenVerifier | None = None,
    realtime: RealtimeSettings | None = None,
    realtime_channel_for: ChannelFor | None = None,
) -> Starlette:
    """Build the gateway.

    channel_for: service full name (e.g. "zynk.auth.v1.AuthService") -> grpc.aio.Channel;
        called once per service at startup. The caller owns (and closes) the channels.
    modules: generated `*_pb2` module names to expose; default: every one under `zynk`.
    max_body_bytes: larger request bodies get 413 (checked before and while reading).
    default_timeout_s / stream_timeout_s: deadline of unary / server-streaming upstream calls.
    readiness: optional extra check for /readyz, returning {check name: ready?} (sync or async).
    openapi: path of a FileDescriptorSet with source info (gen/zynk.binpb) so that /openapi.json
        carries the proto comments; files it lacks are taken from the loaded descriptors.
    require_credentials: answer 401 without calling upstream when a non-public route gets no
        Authorization header (the services still verify the token).
    verifier: the process's access-token verifier. With it the app serves the realtime
        WebSocket at GET /api/v1/realtime (docs/realtime.md), which authenticates sockets
        locally; without it that route does not exist.
    realtime: the socket's settings (heartbeats, limits); default RealtimeSettings().
    realtime_channel_for: channels for the sockets' own upstream calls (the shared Relay
        stream to messaging, watches, typing and heartbeats), ideally built with
        gateway.realtime.CHANNEL_OPTIONS and no interceptors; default channel_for. `call`
        frames use the REST multicallables.
    """
    files = load_files(modules)
    router = Router(collect_routes(files))
    endpoints: dict[int, _Endpoint] = {}
    channels: dict[str, grpc.aio.Channel] = {}
    callables: dict[tuple[str, str], Any] = {}
    health: dict[str, Any] = {}

    def channel_of(service: str) -> grpc.aio.Channel:
        if service not in channels:
            channels[service] = channel_for(service)
        return channels[service]

    for route in router.routes:
        transcoder = Transcoder(route)
        key = (route.service, route.method.name)
        if key not in callables:
            channel = channel_of(route.service)
            factory = channel.unary_stream if route.server_streaming else channel.unary_unary
            callables[key] = factory(
                route.grpc_path,
                request_serializer=transcoder.request_class.SerializeToString,
                response_deserializer=transcoder.response_class.FromString,
            )
            if route.service not in health:
                health[route.service] = channel.unary_unary(
                    _HEALTH_CHECK,
                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                    response_deserializer=health_pb2.HealthCheckResponse.FromString,
                )
        endpoints[id(route)] = _Endpoint(route, transcoder, callables[key])

    image_files = openapi_builder.files_from_image(openapi) if openapi is not None else []
    known = {f.name for f in image_files}
    doc_files = image_files + [
        f for f in openapi_builder.files_from_descriptors(files) if f.name not in known
    ]
    document = openapi_builder.build(doc_files, services={r.service for r in router.routes})
    openapi_body = openapi_builder.dump(document).encode()
    docs_body = render_docs(document)

    async def api(request: Request) -> Response:
        rid = _request_id(request.headers.get("x-request-id"))
        try:
            route, path_vars = router.match(request.method, _raw_path(request.scope))
            ep = endpoints[id(route)]
            metadata = _metadata(request, rid, require=require_credentials and not route.public)
            body = await _read_body(request, ep.transcoder.has_body, max_body_bytes)
            msg = ep.transcoder.build_request(
                path_vars, request.scope.get("query_string", b""), body
            )
            if route.server_streaming:
                return await _stream(ep, msg, metadata, rid, stream_timeout_s)
            reply = await ep.call(msg, timeout=default_timeout_s, metadata=metadata)
            return Response(
                ep.transcoder.encode_response(reply),
                media_type="application/json",
                headers={"x-request-id": rid},
            )
        except _Reject as e:
            return _error_response(e.error, rid)
        except TranscodeError as e:
            return _error_response(_transcode_error(e), rid)
        except RouteNotFound:
            return _error_response(
                gateway_error(404, C.NOT_FOUND, "ROUTE_NOT_FOUND", "no such route"), rid
            )
        except MethodNotAllowed as e:
            return _error_response(
                gateway_error(
                    405, C.UNIMPLEMENTED, "METHOD_NOT_ALLOWED",
                    f"method {request.method} is not allowed here; allowed: {', '.join(e.allowed)}",
                    headers={"allow": ", ".join(e.allowed)},
                ),
                rid,
            )
        except PathDecodeError as e:
            return _error_response(
                gateway_error(400, C.INVALID_ARGUMENT, "MALFORMED_PATH", str(e)), rid
            )
        except ClientDisconnect:
            return Response(status_code=499, headers={"x-request-id": rid})
        except grpc.RpcError as e:
            return _upstream_error(e, rid, request)

    routes: list[Any] = []
    rt = None
    if verifier is not None:
        unary = {
            f"{ep.route.service}/{ep.route.method.name}":
                Method(ep.call, ep.transcoder.request_class)
            for ep in endpoints.values() if not ep.route.server_streaming
        }
        lean: dict[str, grpc.aio.Channel] = {}

        def realtime_channel_of(service: str) -> grpc.aio.Channel:
            if realtime_channel_for is None:
                return channel_of(service)
            if service not in lean:
                lean[service] = realtime_channel_for(service)
            return lean[service]

        rt = Realtime(settings=realtime or RealtimeSettings(), verifier=verifier,
                      upstream=Upstream(realtime_channel_of, unary),
                      timeout_s=default_timeout_s)
        routes.append(WebSocketRoute(REALTIME_PATH, rt))

        async def upgrade_required(request: Request) -> Response:
            err = gateway_error(426, C.FAILED_PRECONDITION, "UPGRADE_REQUIRED",
                                "this is a WebSocket endpoint (subprotocol zynk.v1)",
                                headers={"upgrade": "websocket"})
            return _error_response(err, _request_id(request.headers.get("x-request-id")))

        routes.append(HttpRoute(REALTIME_PATH, upgrade_required, methods=["GET"]))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        names = sorted(health)
        statuses = await asyncio.gather(*(_check(health[n], n, health_timeout_s) for n in names))
        services = dict(zip(names, statuses, strict=True))
        checks: dict[str, bool] = {}
        if readiness is not None:
            try:
                result = readiness()
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, health_timeout_s)
                checks = {str(k): bool(v) for k, v in dict(result).items()}
            except Exception:  # noqa: BLE001 -- a failing check means "not ready", not a 500
                log.warning("gateway.readiness_check_failed", exc_info=True)
                checks = {"readiness": False}
        not_ready = sorted(
            [n for n, s in services.items() if s != "SERVING"]
            + [n for n, ok in checks.items() if not ok]
        )
        body = {
            "status": "unready" if not_ready else "ready",
            "services": services,
            "checks": checks,
            "notReady": not_ready,
        }
        return JSONResponse(body, status_code=503 if not_ready else 200)

    async def openapi_json(request: Request) -> Response:
        return Response(openapi_body, media_type="application/json")

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_body)

    async def http_exception(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        code = {404: C.NOT_FOUND, 405: C.UNIMPLEMENTED}.get(status, C.INVALID_ARGUMENT)
        reason = {404: "ROUTE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(status, "BAD_REQUEST")
        err = gateway_error(status, code, reason, str(getattr(exc, "detail", "")) or reason)
        return _error_response(err, _request_id(request.headers.get("x-request-id")))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("gateway.unhandled_error", path=request.url.path, exc_info=exc)
        err = gateway_error(500, C.INTERNAL, "INTERNAL", "internal error")
        return _error_response(err, _request_id(request.headers.get("x-request-id")))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        if rt is not None:
            await rt.stop()

    app = _Gateway(
        routes=[
            *routes,
            HttpRoute("/healthz", healthz, methods=["GET"]),
            HttpRoute("/readyz", readyz, methods=["GET"]),
            HttpRoute("/openapi.json", openapi_json, methods=["GET"]),
            HttpRoute("/docs", docs, methods=["GET"]),
            HttpRoute("/{path:path}", api, methods=sorted(_METHODS | router.http_methods)),
        ],
        exception_handlers={HTTPException: http_exception, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.router = router
    app.state.realtime = rt
    app.state.openapi = document
    return app


class _Gateway(Starlette):
    """Starlette, except that realtime sockets skip the middleware stack: it does nothing for
    a WebSocket the endpoint does not do itself, and its suspended frames would stay alive
    (about 3 KiB) for the whole life of every socket. The route is still registered."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        rt = self.state.realtime
        if rt is not None and scope["type"] == "websocket" and scope["path"] == REALTIME_PATH:
            scope["app"] = self
            await rt(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


# -- request helpers -------------------------------------------------------------------------


def _request_id(given: str | None) -> str:
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return str(uuid.uuid4())


def _raw_path(scope: Mapping[str, Any]) -> str:
    raw = scope.get("raw_path")
    if raw is None:
        return quote(scope.get("path", "/"), safe="/:@!$&'()*+,;=-._~")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:  # stray non-ASCII bytes: treat them as percent-encoded
        return quote(raw, safe="/%:@!$&'()*+,;=-._~")


def _metadata(request: Request, rid: str, *, require: bool) -> tuple[tuple[str, str], ...]:
    md: list[tuple[str, str]] = [("x-request-id", rid)]
    auth = request.headers.get("authorization")
    if auth is not None:
        if not _HEADER_VALUE.fullmatch(auth):
            raise _Reject(gateway_error(
                401, C.UNAUTHENTICATED, "MALFORMED_CREDENTIALS", "malformed Authorization header"
            ))
        md.append(("authorization", auth))
    elif require:
        raise _Reject(gateway_error(
            401, C.UNAUTHENTICATED, "MISSING_CREDENTIALS",
            "this method needs an access token (Authorization: Bearer ...)",
        ))
    if request.client is not None and request.client.host:
        md.append(("x-forwarded-for", request.client.host))
    return tuple(md)


def _is_json(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8", "utf8",
        ):
            return False
    return True


async def _read_body(request: Request, has_body: bool, limit: int) -> bytes | None:
    """The request body, at most `limit` bytes; None when there is none."""
    headers = request.headers
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _Reject(gateway_error(
                400, C.INVALID_ARGUMENT, "BAD_CONTENT_LENGTH", "invalid Content-Length"
            ))
        if int(length) == 0:
            return None
        if int(length) > limit:
            raise _Reject(_too_large(limit))
    elif "transfer-encoding" not in headers:
        return None
    if not has_body:
        raise _Reject(gateway_error(
            400, C.INVALID_ARGUMENT, "UNEXPECTED_BODY", "this method takes no request body"
        ))
    if not _is_json(headers.get("content-type", "")):
        raise _Reject(gateway_error(
            415, C.INVALID_ARGUMENT, "UNSUPPORTED_MEDIA_TYPE",
            "request body must be JSON (Content-Type: application/json)",
        ))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Reject(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> HttpError:
    return gateway_error(
        413, C.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE",
        f"request body is larger than {limit} bytes", metadata={"limitBytes": str(limit)},
    )


# -- responses -------------------------------------------------------------------------------


def _transcode_error(e: TranscodeError) -> HttpError:
    return gateway_error(400, C.INVALID_ARGUMENT, e.reason, e.message, field=e.field)


def _error_response(err: HttpError, rid: str) -> Response:
    headers = {**err.headers, "x-request-id": rid}
    return Response(err.body(), status_code=err.http_status, headers=headers,
                    media_type="application/json")


def _upstream_error(e: grpc.RpcError, rid: str, request: Request) -> Response:
    err, original = from_rpc_error(e)
    if err.http_status >= 500:
        log.warning(
            "gateway.upstream_error", request_id=rid, path=request.url.path,
            grpc_code=err.status.code, upstream_message=original,
        )
    return _error_response(err, rid)


async def _stream(
    ep: _Endpoint, msg: Any, metadata: Any, rid: str, timeout: float
) -> Response:
    """Server streaming as NDJSON. An error before the first message is an ordinary error
    response; after it, a final `{"error": Status}` line."""
    call = ep.call(msg, timeout=timeout, metadata=metadata)
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    encode = ep.transcoder.encode_response

    async def lines():
        try:
            item = first
            while item is not grpc.aio.EOF:
                yield encode(item) + b"\n"
                item = await call.read()
        except grpc.RpcError as e:
            err, original = from_rpc_error(e)
            if err.http_status >= 500:
                log.warning("gateway.upstream_stream_error", request_id=rid,
                            grpc_code=err.status.code, upstream_message=original)
            yield b'{"error":' + err.body() + b"}\n"
        finally:
            call.cancel()

    return StreamingResponse(lines(), media_type=_NDJSON, headers={"x-request-id": rid})


async def _check(call: Any, service: str, timeout: float) -> str:
    try:
        reply = await call(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as e:
        code = e.code() if callable(getattr(e, "code", None)) else None
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    except Exception:  # noqa: BLE001
        return "UNKNOWN"
