"""Channels to other services: one grpc.aio channel per service, created on first use and
reused, with the client interceptors (request id, deadline propagation, internal
credential) and a service config that retries only methods without side effects."""

from __future__ import annotations

import json
from collections.abc import Mapping

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from services.runtime.interceptors import client_interceptors

_SAFE_PREFIXES = ("Get", "List", "BatchGet", "Lookup", "Search")


def retryable_methods(full_name: str) -> list[str]:
    """Unary methods that are safe to retry: declared idempotent in the contract, or a
    standard read method (Get/List/BatchGet/Lookup/Search)."""
    service = descriptor_pool.Default().FindServiceByName(full_name)
    out = []
    for m in service.methods:
        if m.client_streaming or m.server_streaming:
            continue
        level = m.GetOptions().idempotency_level
        if level != descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN or m.name.startswith(
                _SAFE_PREFIXES):
            out.append(m.name)
    return out


def service_config(full_name: str) -> str:
    methods = retryable_methods(full_name)
    config: dict = {"methodConfig": []}
    if methods:
        config["methodConfig"].append({
            "name": [{"service": full_name, "method": m} for m in methods],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        })
    return json.dumps(config)


class Channels:
    def __init__(self, addresses: Mapping[str, str], internal_token: str,
                 default_deadline_s: float) -> None:
        """`addresses` maps gRPC service full names to host:port."""
        # Kept by reference: a host that binds ports at start fills it in afterwards.
        self._addresses = addresses
        self._token = internal_token
        self._deadline = default_deadline_s
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, full_name: str) -> grpc.aio.Channel:
        ch = self._channels.get(full_name)
        if ch is None:
            address = self._addresses[full_name]
            ch = grpc.aio.insecure_channel(
                address,
                options=[
                    ("grpc.service_config", service_config(full_name)),
                    ("grpc.enable_retries", 1),
                    ("grpc.keepalive_time_ms", 30_000),
                    # gRPC's default reconnect backoff grows to 120 s: a replica restarted
                    # after a minute would then stay unreached for minutes. Peers sit at
                    # fixed addresses on a LAN, so retrying a connect every <= 2 s is cheap.
                    ("grpc.initial_reconnect_backoff_ms", 200),
                    ("grpc.max_reconnect_backoff_ms", 2_000),
                ],
                interceptors=client_interceptors(self._token, self._deadline),
            )
            self._channels[full_name] = ch
        return ch

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
