"""gRPC server bootstrap: one grpc.aio server per service, with the shared interceptor,
gRPC health and reflection, message-size limits, and a graceful stop that reports
NOT_SERVING first and then drains in-flight calls."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.runtime import logging as zlog

log = zlog.get("server")

Register = Callable[[grpc.aio.Server], None]


@dataclasses.dataclass
class ServiceSpec:
    """What a composition root hands to the runtime to serve one service."""

    name: str  # "auth"
    full_names: list[str]  # gRPC services registered by `register`
    register: Register
    on_stop: list[Callable] = dataclasses.field(default_factory=list)
    # Called when the server starts draining, before in-flight calls are awaited: end
    # long-lived streams here (subscriptions, watches) so they do not hold the stop for the
    # whole grace period. Sync or async callables.
    on_drain: list[Callable] = dataclasses.field(default_factory=list)
    # Servers this service cannot work without beyond the process's own (its database):
    # name -> coroutine function that raises when the server does not answer. The process
    # probes them periodically and reports NOT_SERVING meanwhile (mesh/health.py).
    health_checks: dict[str, Callable[[], Awaitable[object]]] = dataclasses.field(
        default_factory=dict)


class GrpcServer:
    def __init__(self, spec: ServiceSpec, interceptor: grpc.aio.ServerInterceptor,
                 max_message_bytes: int) -> None:
        self.spec = spec
        self.health = health.aio.HealthServicer()
        self.port: int | None = None
        self._server = grpc.aio.server(
            interceptors=[interceptor],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 1),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.max_pings_without_data", 0),
            ],
        )
        spec.register(self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            [*spec.full_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            self._server,
        )

    async def start(self, host: str, port: int) -> int:
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"{self.spec.name}: cannot listen on {host}:{port}")
        await self._server.start()
        await self.set_serving(True)
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """What gRPC health answers for the server ("") and each of its services."""
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ["", *self.spec.full_names]:
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        await self.set_serving(False)
        stopping = asyncio.ensure_future(self._server.stop(grace_s))
        # Let the server refuse new calls first, then end the streams that would never finish.
        await asyncio.sleep(0)
        await _call_all(self.spec.on_drain)
        await stopping
        await _call_all(self.spec.on_stop)


async def _call_all(callbacks: list[Callable]) -> None:
    for cb in callbacks:
        try:
            res = cb()
            if hasattr(res, "__await__"):
                await res
        except Exception:
            log.exception("shutdown hook failed", hook=getattr(cb, "__qualname__", repr(cb)))


def unimplemented_service(full_name: str, reason: str) -> Register:
    """Serve every method of a service that is not built yet as UNIMPLEMENTED, honestly."""
    from google.protobuf import descriptor_pool

    from services.runtime.catalog import BY_FULL_NAME

    if full_name in BY_FULL_NAME:
        BY_FULL_NAME[full_name].pb2_grpc  # noqa: B018  (imports and registers the contract)
    service = descriptor_pool.Default().FindServiceByName(full_name)
    message = f"{full_name} is not implemented yet: {reason}"

    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

    async def stream(request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)
        yield  # pragma: no cover - makes this an async generator

    handlers = {}
    for m in service.methods:
        req = _message_class(m.input_type)
        resp = _message_class(m.output_type)
        if m.client_streaming:
            make = (grpc.stream_stream_rpc_method_handler if m.server_streaming
                    else grpc.stream_unary_rpc_method_handler)
            fn = stream if m.server_streaming else unary
        else:
            make = (grpc.unary_stream_rpc_method_handler if m.server_streaming
                    else grpc.unary_unary_rpc_method_handler)
            fn = stream if m.server_streaming else unary
        handlers[m.name] = make(fn, request_deserializer=req.FromString,
                                response_serializer=resp.SerializeToString)

    def register(server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(full_name, handlers),))

    return register


def _message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)
