"""The twelve services: their short names, generated modules and gRPC service names."""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str  # short name, also the config key: "auth"
    full_name: str  # gRPC service: "zynk.auth.v1.AuthService"

    @property
    def pb2(self) -> ModuleType:
        return importlib.import_module(f"zynk.{self.name}.v1.{self.name}_pb2")

    @property
    def pb2_grpc(self) -> ModuleType:
        return importlib.import_module(f"zynk.{self.name}.v1.{self.name}_pb2_grpc")


CATALOG: dict[str, ServiceInfo] = {
    name: ServiceInfo(name, f"zynk.{name}.v1.{cls}")
    for name, cls in [
        ("auth", "AuthService"),
        ("messaging", "MessagingService"),
        ("call", "CallService"),
        ("file", "FileService"),
        ("group", "GroupService"),
        ("presence", "PresenceService"),
        ("proximity", "ProximityService"),
        ("notification", "NotificationService"),
        ("search", "SearchService"),
        ("analytics", "AnalyticsService"),
        ("identity", "IdentityService"),
        ("audit", "AuditService"),
    ]
}
BY_FULL_NAME = {s.full_name: s for s in CATALOG.values()}
