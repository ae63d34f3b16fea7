"""Server and client interceptors shared by every service.

The server side is one wrapper per method (built once, cached) rather than a stack of
interceptors: each extra layer costs a Python call and a context switch per RPC. For each
call it sets the request id, deadline and client address in the context, authenticates
per the method's declared access, validates the request against its buf.validate rules,
turns domain errors into google.rpc.Status (AIP-193), hides unexpected errors behind
INTERNAL, and writes one structured log line.

The client side forwards the request id, shortens the outgoing deadline to what is left
of the inbound one, and presents the mesh's internal credential."""

from __future__ import annotations

import hmac
import inspect
import re
import time
import random
from collections.abc import Callable

import grpc
import protovalidate
from grpc_status import rpc_status

from services.runtime import context as ctx
from services.runtime import logging as zlog
from services.runtime.access import Access, MethodPolicy, policy_for
from services.runtime.errors import (
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    ZynkError,
    internal_status,
)
from services.runtime.tokens import TokenVerifier

log = zlog.get("rpc")

INTERNAL_TOKEN_HEADER = "x-zynk-internal-token"
# What a caller may pass as a request id (it goes into logs and onward metadata).
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_request_ids = random.Random()


def violations_of(message) -> list[tuple[str, str]]:
    """buf.validate violations as (field path, description) pairs."""
    out = []
    for v in protovalidate.collect_violations(message):
        parts = []
        # Message-level (CEL) rules have no field path.
        elements = v.proto.field.elements if v.proto.field is not None else []
        for el in elements:
            name = el.field_name
            sub = getattr(el, "subscript", None)
            idx = getattr(sub, "value", None) if sub is not None else None
            parts.append(f"{name}[{idx}]" if isinstance(idx, int) else name)
        out.append((".".join(parts) or "(message)", v.proto.message or v.proto.rule_id))
    return out


def validate(message) -> None:
    violations = violations_of(message)
    if violations:
        summary = "; ".join(f"{f}: {d}" for f, d in violations)
        raise InvalidArgument(f"invalid request: {summary}", field_violations=violations,
                              reason="VALIDATION_FAILED")


def peer_host(peer: str) -> str:
    """gRPC's peer without the ephemeral port ("ipv4:1.2.3.4:5678" -> "1.2.3.4",
    "ipv6:[::1]:5678" -> "::1"), so per-address limits are per address, not per connection."""
    kind, _, rest = peer.replace("%5B", "[").replace("%5D", "]").partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier | None, internal_token: str) -> None:
        self._verifier = verifier
        self._internal_token = internal_token.encode()
        # Keyed by the service's own handler object, not the method name: one interceptor may
        # serve several servers, each with its own health/reflection handlers of that name.
        self._wrapped: dict[int, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        cached = self._wrapped.get(id(handler))
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, policy_for(details.method))
        self._wrapped[id(handler)] = (handler, wrapped)
        return wrapped

    # -- per call ------------------------------------------------------------------------

    async def _enter(self, policy: MethodPolicy, context) -> tuple[list, float]:
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        rid = md.get("x-request-id", "")
        if not REQUEST_ID_RE.match(rid):
            # Unique, not secret: a PRNG (seeded from os.urandom) instead of uuid4, whose
            # os.urandom call releases the GIL on every request.
            rid = f"{_request_ids.getrandbits(128):032x}"
        resets = [(ctx.request_id, ctx.request_id.set(rid))]
        remaining = context.time_remaining()
        resets.append((ctx.deadline, ctx.deadline.set(
            None if remaining is None else time.monotonic() + remaining)))
        fwd = md.get("x-forwarded-for", "").split(",")[0].strip()
        resets.append((ctx.client_address,
                       ctx.client_address.set(fwd or peer_host(context.peer()))))
        resets.append((ctx.principal, ctx.principal.set(None)))
        if policy.access is Access.AUTHENTICATED or policy.access is Access.ADMIN:
            auth = md.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("missing bearer access token", reason="TOKEN_MISSING")
            if self._verifier is None:
                raise Unauthenticated("token verification unavailable", reason="NO_VERIFIER")
            who = await self._verifier.verify(token.strip())
            if policy.access is Access.ADMIN and not who.is_admin:
                raise PermissionDenied("administrators only", reason="ADMIN_ONLY")
            ctx.principal.set(who)
        elif policy.access is Access.PER_ITEM:
            # No token on the call itself (the caller, the gateway, holds no credential): the
            # method verifies each item's device token with this same verifier.
            if self._verifier is None:
                raise Unauthenticated("token verification unavailable", reason="NO_VERIFIER")
            resets.append((ctx.item_verifier, ctx.item_verifier.set(self._verifier)))
        elif policy.access is Access.INTERNAL:
            presented = md.get(INTERNAL_TOKEN_HEADER, "").encode()
            if not hmac.compare_digest(presented, self._internal_token):
                raise Unauthenticated("internal method", reason="INTERNAL_ONLY")
        return resets, time.perf_counter()

    @staticmethod
    def _exit(resets: list) -> None:
        for var, token in reversed(resets):
            try:
                var.reset(token)
            except ValueError:  # a stream's generator finalized from another context
                return

    @staticmethod
    async def _fail(context, policy: MethodPolicy, exc: BaseException, started: float) -> None:
        if isinstance(exc, ZynkError):
            status = exc.to_status()
            log.info("rpc", method=policy.full_method, code=exc.code.name, reason=exc.reason,
                     ms=round((time.perf_counter() - started) * 1000, 2))
        else:
            status = internal_status()
            log.exception("rpc failed", method=policy.full_method,
                          error=type(exc).__name__)
        await context.abort_with_status(rpc_status.to_status(status))

    @staticmethod
    def _done(policy: MethodPolicy, started: float) -> None:
        log.debug("rpc", method=policy.full_method, code="OK",
                  ms=round((time.perf_counter() - started) * 1000, 2))

    def _wrap(self, handler: grpc.RpcMethodHandler, policy: MethodPolicy):
        if handler.unary_unary:
            inner = handler.unary_unary

            async def unary_unary(request, context):
                started = time.perf_counter()
                resets: list = []
                try:
                    resets, started = await self._enter(policy, context)
                    if policy.validate:
                        validate(request)
                    response = await inner(request, context)
                    self._done(policy, started)
                    return response
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await self._fail(context, policy, exc, started)
                finally:
                    self._exit(resets)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer)

        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def unary_stream(request, context):
                started = time.perf_counter()
                resets: list = []
                try:
                    resets, started = await self._enter(policy, context)
                    if policy.validate:
                        validate(request)
                    result = inner_stream(request, context)
                    if inspect.isasyncgen(result):
                        async for item in result:
                            yield item
                    else:
                        await result
                    self._done(policy, started)
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await self._fail(context, policy, exc, started)
                finally:
                    self._exit(resets)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer)

        # Client- and bidi-streaming: validate each incoming message as it arrives.
        inner_any = handler.stream_unary or handler.stream_stream
        is_bidi = handler.stream_stream is not None

        def checked(request_iterator):
            async def gen():
                async for msg in request_iterator:
                    if policy.validate:
                        validate(msg)
                    yield msg
            return gen()

        if not is_bidi:
            async def stream_unary(request_iterator, context):
                started = time.perf_counter()
                resets: list = []
                try:
                    resets, started = await self._enter(policy, context)
                    response = await inner_any(checked(request_iterator), context)
                    self._done(policy, started)
                    return response
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await self._fail(context, policy, exc, started)
                finally:
                    self._exit(resets)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer)

        async def stream_stream(request_iterator, context):
            started = time.perf_counter()
            resets: list = []
            try:
                resets, started = await self._enter(policy, context)
                async for item in inner_any(checked(request_iterator), context):
                    yield item
                self._done(policy, started)
            except (grpc.aio.AbortError, grpc.aio.UsageError):
                raise
            except Exception as exc:
                await self._fail(context, policy, exc, started)
            finally:
                self._exit(resets)

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, handler.request_deserializer, handler.response_serializer)


# -- client side ---------------------------------------------------------------------------


def _outgoing(details: grpc.aio.ClientCallDetails, internal_token: str,
              default_deadline_s: float | None) -> grpc.aio.ClientCallDetails:
    md = list(details.metadata or [])
    keys = {k for k, _ in md}
    rid = ctx.request_id.get()
    if rid and "x-request-id" not in keys:
        md.append(("x-request-id", rid))
    if internal_token and INTERNAL_TOKEN_HEADER not in keys:
        md.append((INTERNAL_TOKEN_HEADER, internal_token))
    timeout = details.timeout if details.timeout is not None else default_deadline_s
    remaining = ctx.time_remaining()
    if remaining is not None:
        timeout = max(0.001, remaining if timeout is None else min(timeout, remaining))
    return grpc.aio.ClientCallDetails(details.method, timeout, md, details.credentials,
                                      details.wait_for_ready)


class _ClientBase:
    def __init__(self, internal_token: str, default_deadline_s: float) -> None:
        self._token = internal_token
        self._deadline = default_deadline_s


class UnaryUnaryClient(_ClientBase, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(_outgoing(details, self._token, self._deadline), request)


class UnaryStreamClient(_ClientBase, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation, details, request):
        # Streams (subscriptions) are long-lived: no default deadline, only the inbound one.
        return await continuation(_outgoing(details, self._token, None), request)


def client_interceptors(internal_token: str, default_deadline_s: float) -> list[Callable]:
    return [UnaryUnaryClient(internal_token, default_deadline_s),
            UnaryStreamClient(internal_token, default_deadline_s)]
