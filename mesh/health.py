"""A process's backend probe: gRPC health tells the truth about the servers behind it.

Every `interval_s` the probe runs each check once — the process's own (Redis, Kafka: from
ProcessBackends.checks) and each hosted service's (its database: ServiceSpec.health_checks) —
each bounded by `timeout_s`. A server reports NOT_SERVING while any check it depends on
fails, and SERVING again once all pass; only transitions are logged. The gateway's /readyz
aggregates these statuses (docs/distributed.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping

from services.runtime import logging as zlog
from services.runtime.server import GrpcServer

log = zlog.get("health")

Check = Callable[[], Awaitable[object]]


class HealthProbe:
    def __init__(self, checks: Mapping[str, Check], interval_s: float,
                 timeout_s: float) -> None:
        self._shared = dict(checks)
        self._servers: list[tuple[GrpcServer, dict[str, Check]]] = []
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._serving: dict[int, bool] = {}
        # check name -> why it failed last time (absent: it passed)
        self.failing: dict[str, str] = {}
        self._task: asyncio.Task | None = None

    def watch(self, server: GrpcServer, checks: Mapping[str, Check] | None = None) -> None:
        """Drive `server`'s health from the process's checks plus its own `checks`."""
        self._servers.append((server, dict(checks or {})))
        self._serving[id(server)] = True

    @property
    def has_checks(self) -> bool:
        return bool(self._shared) or any(own for _, own in self._servers)

    async def run_once(self) -> dict[str, str]:
        """Run every check once and apply the result; returns the failing checks."""
        named = dict(self._shared)
        for server, own in self._servers:
            for name, check in own.items():
                named[f"{server.spec.name}:{name}"] = check
        names = list(named)
        results = await asyncio.gather(*(self._run(named[n]) for n in names))
        failing = {n: why for n, why in zip(names, results, strict=True) if why is not None}
        for name, why in failing.items():
            if name not in self.failing:
                log.warning("backend unreachable: reporting NOT_SERVING", check=name,
                            error=why)
        for name in self.failing.keys() - failing.keys():
            log.info("backend reachable again", check=name)
        self.failing = failing
        shared_ok = not (failing.keys() & self._shared.keys())
        for server, own in self._servers:
            ok = shared_ok and not any(f"{server.spec.name}:{n}" in failing for n in own)
            if self._serving[id(server)] != ok:
                self._serving[id(server)] = ok
                await server.set_serving(ok)
        return failing

    async def _run(self, check: Check) -> str | None:
        try:
            await asyncio.wait_for(check(), self._timeout_s)
        except TimeoutError:
            return f"no answer within {self._timeout_s:g} s"
        except Exception as e:  # noqa: BLE001 -- any failure means "not reachable"
            return f"{type(e).__name__}: {e}"[:200]
        return None

    def start(self) -> None:
        if self._task is None and self.has_checks:
            self._task = asyncio.create_task(self._loop(), name="zynk-health-probe")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.run_once()
            except Exception:
                log.exception("health probe failed")

    async def stop(self) -> None:
        """Stop probing (before the servers stop: they report NOT_SERVING themselves)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
