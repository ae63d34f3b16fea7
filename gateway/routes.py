"""The REST route table: every google.api.http rule of the loaded services, and fast lookup.

Services are discovered from the descriptor pool of the generated modules that are imported:
by default every `*_pb2` module under the `zynk` package, or an explicit list of module names.
ACCESS_INTERNAL methods are never routed. Conflicting routes (same HTTP method, same template
shape) fail at startup. Lookup is one precompiled regular expression per HTTP method; no
descriptor is touched per request.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

from gateway.path_template import PathTemplate, normalize_path
from zynk.api.v1 import annotations_pb2 as access_pb2

__all__ = [
    "MethodNotAllowed",
    "Route",
    "RouteConflictError",
    "RouteNotFound",
    "Router",
    "access_of",
    "collect_routes",
    "discover_modules",
    "http_rules",
    "load_files",
]

log = structlog.get_logger("zynk.gateway")

ACCESS_PUBLIC = access_pb2.ACCESS_PUBLIC
ACCESS_INTERNAL = access_pb2.ACCESS_INTERNAL
_PATTERNS = ("get", "put", "post", "delete", "patch")


class RouteConflictError(ValueError):
    """Two HTTP bindings would match the same requests."""


class RouteNotFound(LookupError):
    """No route matches the path under any HTTP method."""


class MethodNotAllowed(LookupError):
    """The path matches routes, but only under other HTTP methods."""

    def __init__(self, allowed: Sequence[str]) -> None:
        super().__init__(", ".join(allowed))
        self.allowed = tuple(allowed)


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP binding of one RPC."""

    http_method: str
    template: PathTemplate
    method: MethodDescriptor
    body: str
    response_body: str
    access: int
    binding: int  # 0 for the main rule, n for the n-th additional binding

    @property
    def service(self) -> str:
        return self.method.containing_service.full_name

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        return self.method.server_streaming

    @property
    def public(self) -> bool:
        return self.access == ACCESS_PUBLIC

    def __str__(self) -> str:
        return f"{self.http_method} {self.template} -> {self.grpc_path}"


def discover_modules(package: str = "zynk") -> list[str]:
    """Names of every generated `*_pb2` module under `package`, sorted."""
    pkg = importlib.import_module(package)
    names = [
        info.name
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}.")
        if info.name.endswith("_pb2")
    ]
    return sorted(names)


def load_files(modules: Iterable[str] | None = None) -> list[FileDescriptor]:
    """Import the generated modules and return their file descriptors (in the given order)."""
    names = discover_modules() if modules is None else list(modules)
    return [importlib.import_module(name).DESCRIPTOR for name in names]


def access_of(options) -> int:
    """The `(zynk.api.v1.access)` of a MethodOptions message (ACCESS_UNSPECIFIED when unset)."""
    return options.Extensions[access_pb2.access]


def http_rules(options) -> list[tuple[int, http_pb2.HttpRule]]:
    """The `(google.api.http)` rule of a MethodOptions message and its additional bindings."""
    if not options.HasExtension(annotations_pb2.http):
        return []
    rule = options.Extensions[annotations_pb2.http]
    return [(0, rule), *((i, r) for i, r in enumerate(rule.additional_bindings, start=1))]


def rule_pattern(rule: http_pb2.HttpRule) -> tuple[str, str] | None:
    """(HTTP method, path template) of a rule, or None when it has no pattern."""
    kind = rule.WhichOneof("pattern")
    if kind is None:
        return None
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def collect_routes(files: Iterable[FileDescriptor]) -> list[Route]:
    """Every HTTP binding of every non-internal, non-client-streaming method in `files`."""
    routes: list[Route] = []
    seen: set[str] = set()
    for file in files:
        for service in file.services_by_name.values():
            if service.full_name in seen:
                continue
            seen.add(service.full_name)
            for method in service.methods:
                options = method.GetOptions()
                access = access_of(options)
                rules = http_rules(options)
                if not rules or access == ACCESS_INTERNAL:
                    continue
                if method.client_streaming:
                    log.warning("gateway.skip_client_streaming", method=method.full_name)
                    continue
                for binding, rule in rules:
                    pattern = rule_pattern(rule)
                    if pattern is None:
                        raise ValueError(f"{method.full_name}: HTTP rule #{binding} has no path")
                    verb, path = pattern
                    routes.append(
                        Route(
                            http_method=verb,
                            template=PathTemplate.parse(path),
                            method=method,
                            body=rule.body,
                            response_body=rule.response_body,
                            access=access,
                            binding=binding,
                        )
                    )
    return routes


class Router:
    """Maps (HTTP method, raw path) to a route and its decoded path variables."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes: tuple[Route, ...] = tuple(routes)
        by_shape: dict[tuple, Route] = {}
        for r in self.routes:
            key = (r.http_method, r.template.shape)
            if key in by_shape:
                raise RouteConflictError(f"conflicting HTTP routes: {by_shape[key]} and {r}")
            by_shape[key] = r
        self._tables: dict[str, tuple[re.Pattern[str], dict[str, tuple[Route, list[str]]]]] = {}
        for verb in sorted({r.http_method for r in self.routes}):
            ordered = sorted(
                (r for r in self.routes if r.http_method == verb),
                key=lambda r: r.template.specificity,
            )
            alternatives, groups = [], {}
            for i, r in enumerate(ordered):
                alternatives.append(f"(?P<r{i}>{r.template.regex(f'r{i}v')})")
                groups[f"r{i}"] = (r, [f"r{i}v{k}" for k in range(len(r.template.variables))])
            self._tables[verb] = (re.compile("^(?:" + "|".join(alternatives) + ")$"), groups)

    @property
    def http_methods(self) -> frozenset[str]:
        return frozenset(self._tables)

    def match(self, http_method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """Raises RouteNotFound, MethodNotAllowed, or PathDecodeError for malformed paths."""
        path = normalize_path(raw_path)
        table = self._tables.get(http_method)
        if table is not None:
            m = table[0].match(path)
            if m is not None:
                route, names = table[1][m.lastgroup]
                return route, route.template.bind([m.group(n) for n in names])
        allowed = [v for v, (rx, _) in self._tables.items() if rx.match(path)]
        if allowed:
            raise MethodNotAllowed(allowed)
        raise RouteNotFound(raw_path)
