"""Relays membership changes to MessagingService.ApplyGroupMembershipChange.

The domain writes each change into `pending_changes` in the same transaction as the change
itself, so a committed change is never lost; this module delivers the rows:

- right after the commit (`committed`), and the RPC waits a moment for it, so in the normal
  case the conversation already follows the new member list when the client gets its answer;
- otherwise from a background loop that retries with exponential backoff (with jitter) until
  messaging accepts, and that picks up rows left by a crash or by another replica.

A row is deleted only after messaging answered OK, so delivery is at-least-once; messaging
ignores a replayed `change_id` (it is stored in the row, so every retry carries the same one).
One group's changes go strictly in `seq` order: one runner per group in this process, and a
lease row in the store across replicas; a refused change blocks its group's later changes
(never skipped) while other groups go on. Nothing here decides anything about membership."""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc

from services.group import names
from services.group.store import GroupStore, PendingChange
from services.runtime.errors import Unavailable
from services.runtime import context as ctx
from services.runtime import logging as zlog
from services.runtime.config import GroupSettings
from zynk.messaging.v1 import messaging_pb2

log = zlog.get("group.relay")

BATCH = 100
MAX_PARALLEL_GROUPS = 32


class MembershipSink(Protocol):
    async def apply(self, request: messaging_pb2.ApplyGroupMembershipChangeRequest) -> None:
        """Deliver one change; raise if it was not accepted."""


def pending_change(group_id: str, actor_id: str, *, added: Sequence[str] = (),
                   removed: Sequence[str] = (), admins: Sequence[str] = (),
                   deleted: bool = False, now: float) -> PendingChange:
    """The row to write in the change's transaction: a fresh change_id and the request as
    messaging will receive it, every time it is (re)sent."""
    change_id = str(uuid.uuid4())
    request = messaging_pb2.ApplyGroupMembershipChangeRequest(
        group=names.group_name(group_id), change_id=change_id,
        actor=names.user_name(actor_id),
        added_users=[names.user_name(u) for u in added],
        removed_users=[names.user_name(u) for u in removed],
        group_deleted=deleted, admins=[names.user_name(u) for u in admins])
    return PendingChange(change_id=change_id, group_id=group_id,
                         request=request.SerializeToString(deterministic=True),
                         create_time=now)


class MembershipRelay:
    def __init__(self, store: GroupStore, sink: MembershipSink, settings: GroupSettings,
                 clock: Callable[[], float] = time.time, holder: str | None = None) -> None:
        self._store = store
        self._sink = sink
        self._s = settings
        self._clock = clock  # wall clock: leases are compared across replicas
        self.holder = holder or str(uuid.uuid4())
        self._lease_s = max(30.0, 3 * settings.relay_call_timeout_s)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())
        self._runners: dict[str, asyncio.Task] = {}
        self._dirty: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._next_try: dict[str, float] = {}  # time.monotonic() before which not to retry
        self._parallel = asyncio.Semaphore(MAX_PARALLEL_GROUPS)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task | None = None
        # Whether the last call to messaging succeeded: while it is failing, RPCs do not wait
        # for their change to be relayed (they would only add latency to an outage).
        self._healthy = True

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = _spawn(self._loop())

    async def stop(self) -> None:
        """Stop sending; rows not yet accepted stay for the next start."""
        tasks = [t for t in [self._loop_task, *self._runners.values()] if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._runners.clear()

    # -- after a commit ----------------------------------------------------------------------

    async def committed(self, group_id: str) -> None:
        """A transaction wrote a pending change for `group_id`: relay it now, waiting at most
        `relay_inline_wait_s` (the background loop finishes whatever this does not)."""
        runner = self._ensure_runner(group_id)
        if self._healthy and self._s.relay_inline_wait_s > 0:
            await asyncio.wait({runner}, timeout=self._s.relay_inline_wait_s)

    def wake(self) -> None:
        self._wake.set()

    # -- delivery ----------------------------------------------------------------------------

    def _ensure_runner(self, group_id: str) -> asyncio.Task:
        self._dirty.add(group_id)
        runner = self._runners.get(group_id)
        if runner is None or runner.done():
            runner = _spawn(self._run_group(group_id))
            self._runners[group_id] = runner
        return runner

    async def _run_group(self, group_id: str) -> bool:
        try:
            # A commit that lands while this runner sends marks the group dirty again, so
            # its row is picked up by the next pass instead of waiting for the loop.
            while group_id in self._dirty:
                self._dirty.discard(group_id)
                if not await self.drain(group_id):
                    return False
            return True
        except Unavailable as e:  # the database is down or restarting: expected, no trace
            log.warning("membership relay waiting for the store", group_id=group_id,
                        error=str(e))
            self._next_try[group_id] = time.monotonic() + self._s.relay_backoff_max_s
            return False
        except Exception:  # the store failed: the rows are still there, try again later
            log.exception("membership relay failed; will retry", group_id=group_id)
            self._next_try[group_id] = time.monotonic() + self._s.relay_backoff_max_s
            return False
        finally:
            if self._runners.get(group_id) is asyncio.current_task():
                del self._runners[group_id]

    async def drain(self, group_id: str) -> bool:
        """Send the group's pending changes in order until none is left (True) or one is not
        accepted (False: it stays, and the group is retried after a backoff)."""
        lock = self._locks.get(group_id)
        if lock is None:
            lock = self._locks[group_id] = asyncio.Lock()
        async with lock, self._parallel:
            # The release is in `finally` even for the acquisition: a cancellation (stop)
            # can land while the lease's COMMIT runs, leaving a lease we hold but were never
            # told we got. Releasing a lease someone else holds does nothing.
            try:
                now = self._clock()
                if not await self._store.acquire_relay_lease(group_id, self.holder, now,
                                                             now + self._lease_s):
                    # Another replica is relaying this group. Look again soon, not when its
                    # lease would expire: it releases the lease when its pass ends, which may
                    # be just before the row we were told about was there to see (the lease
                    # runs out by itself only if that replica died).
                    self._next_try[group_id] = (time.monotonic()
                                                + self._s.relay_backoff_initial_s)
                    return False
                leased_at = now
                while True:
                    rows = await self._store.pending_changes(group_id, BATCH)
                    if not rows:
                        self._attempts.pop(group_id, None)
                        self._next_try.pop(group_id, None)
                        return True
                    for row in rows:
                        now = self._clock()
                        if now - leased_at > self._lease_s / 2:
                            if not await self._store.acquire_relay_lease(
                                    group_id, self.holder, now, now + self._lease_s):
                                return False
                            leased_at = now
                        if not await self._send(row):
                            return False
                        await self._store.complete_change(row.seq)
            finally:
                await _uncancellable(self._store.release_relay_lease(group_id, self.holder))

    async def _send(self, row: PendingChange) -> bool:
        request = messaging_pb2.ApplyGroupMembershipChangeRequest.FromString(row.request)
        try:
            await self._sink.apply(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._healthy = False
            attempts = self._attempts.get(row.group_id, 0) + 1
            self._attempts[row.group_id] = attempts
            delay = min(self._s.relay_backoff_max_s,
                        self._s.relay_backoff_initial_s * 2 ** min(attempts - 1, 30))
            delay *= random.uniform(0.8, 1.2)
            self._next_try[row.group_id] = time.monotonic() + delay
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            fields = dict(group_id=row.group_id, change_id=row.change_id, attempt=attempts,
                          retry_in_s=round(delay, 2),
                          error=code.name if code else type(exc).__name__)
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
                        grpc.StatusCode.UNAUTHENTICATED):
                # Not transient: a bug or a misconfigured mesh. Keep the row (dropping it
                # would desynchronise the conversation) and say so loudly.
                log.error("messaging refused a membership change; will retry", **fields)
            else:
                log.warning("membership change not relayed yet; will retry", **fields)
            self._wake.set()  # let the loop recompute its sleep for the new retry time
            return False
        if not self._healthy:
            log.info("membership relay reaches messaging again")
        self._healthy = True
        return True

    # -- the background loop -----------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.relay_due()
            except asyncio.CancelledError:
                raise
            except Unavailable as e:
                log.warning("membership relay pass waiting for the store", error=str(e))
            except Exception:
                log.exception("membership relay pass failed; will retry")
            now = time.monotonic()
            waits = [t - now for t in self._next_try.values()]
            timeout = max(0.01, min([self._s.relay_poll_s, *waits]))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def relay_due(self) -> None:
        """Start a runner for every group with pending rows whose backoff has passed."""
        now = time.monotonic()
        for group_id in await self._store.pending_groups(1000):
            if self._next_try.get(group_id, 0.0) <= now and group_id not in self._runners:
                self._ensure_runner(group_id)


async def _uncancellable(coro) -> None:
    """Run `coro` to the end even if the caller is cancelled meanwhile (then re-raise): a
    lease release cut short by stop() would roll back and block the group until the lease
    expires."""
    task = asyncio.ensure_future(coro)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _spawn(coro) -> asyncio.Task:
    """A task that keeps the request id for its logs but not the inbound call's deadline:
    relaying outlives the RPC that committed the change."""
    context = contextvars.copy_context()
    context.run(ctx.deadline.set, None)
    return asyncio.create_task(coro, context=context)
