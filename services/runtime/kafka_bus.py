"""The event bus on Kafka (distributed mode), with aiokafka. Same contract as MemoryEventBus.

Naming: every topic and consumer group is `<topic_prefix><name>`. A record's key is
Event.key (events of one conversation share a partition, hence an order), its value the
payload, and its headers carry `event_id` and `type_name`.

Consumption is at-least-once with manual commits: a partition's offset is committed only
once the handler returned for that record and every record before it. Each assigned
partition has its own worker task, so a handler failing on one partition is retried there
with backoff, in place, while the other partitions go on; a worker that falls far behind
gets its partition paused at the fetcher (bounded memory) until it drains. Progress is
committed in one request per fetch round (not per record), on rebalance and on close, so a
restart replays at most the last round — harmless, since handlers are idempotent.

Publishing waits for acks=all; a broker that cannot be reached within the request timeout
makes `publish` raise Unavailable (the outbox relay keeps its rows and retries)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from services.runtime import logging as zlog
from services.runtime.bus import Event, Handler
from services.runtime.config import Backends
from services.runtime.errors import Unavailable

log = zlog.get("bus.kafka")

EVENT_ID = "event_id"
TYPE_NAME = "type_name"
_TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


def bus_unavailable(what: str, err: BaseException | None = None) -> Unavailable:
    detail = f": {type(err).__name__}" if err is not None else ""
    return Unavailable(f"event bus unavailable ({what}{detail}); retry later",
                       reason="BUS_UNAVAILABLE")


class KafkaEventBus:
    def __init__(
        self,
        bootstrap: str,
        *,
        topic_prefix: str = "",
        partitions: int = 12,
        replication_factor: int = 1,
        idempotence: bool = True,
        request_timeout_s: float = 10.0,
        session_timeout_s: float = 10.0,
        client_id: str = "zynk",
        retry_delay_s: float = 0.2,
        max_retry_delay_s: float = 5.0,
        max_pending_per_partition: int = 1000,
        stop_grace_s: float = 5.0,
    ) -> None:
        if not bootstrap:
            raise ValueError("kafka bus needs a bootstrap address (backends.kafka_bootstrap)")
        self.bootstrap = bootstrap
        self.prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.idempotence = idempotence
        self.request_timeout_ms = int(request_timeout_s * 1000)
        self.session_timeout_ms = int(session_timeout_s * 1000)
        self.client_id = client_id
        self.retry_delay_s = retry_delay_s
        self.max_retry_delay_s = max_retry_delay_s
        self.max_pending = max_pending_per_partition
        self.stop_grace_s = stop_grace_s
        self._consumers: dict[tuple[str, str], _GroupConsumer] = {}
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._topic_lock = asyncio.Lock()
        self._ready_topics: set[str] = set()
        self._late_starts: set[asyncio.Task] = set()
        self._started = False
        self._closed = False

    @classmethod
    def from_settings(cls, backends: Backends, client_id: str = "zynk", **kw) -> KafkaEventBus:
        return cls(backends.kafka_bootstrap, topic_prefix=backends.topic_prefix,
                   partitions=backends.kafka_partitions,
                   replication_factor=backends.kafka_replication_factor,
                   idempotence=backends.kafka_idempotence,
                   request_timeout_s=backends.kafka_request_timeout_s,
                   session_timeout_s=backends.kafka_session_timeout_s, client_id=client_id,
                   **kw)

    def name(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    # -- consuming ---------------------------------------------------------------------

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        if (topic, group) in self._consumers:
            raise ValueError(f"group {group!r} already consumes {topic!r}")
        consumer = _GroupConsumer(self, topic, group, handler)
        self._consumers[(topic, group)] = consumer
        if self._started:
            task = asyncio.create_task(self._start_late(consumer))
            self._late_starts.add(task)
            task.add_done_callback(self._late_starts.discard)

    async def _start_late(self, consumer: _GroupConsumer) -> None:
        delay = self.retry_delay_s
        while not self._closed:
            try:
                await consumer.start()
                return
            except (Unavailable, KafkaError, OSError):
                log.warning("consumer start failed; will retry", topic=consumer.topic,
                            group=consumer.group)
                await asyncio.sleep(delay)
                delay = min(self.max_retry_delay_s, delay * 2)

    async def start(self) -> None:
        """Create missing topics, connect the producer and start every consumer. Raises
        Unavailable when the broker cannot be reached (the process should not come up)."""
        await self.ensure_topics({t for t, _ in self._consumers})
        await self._ensure_producer()
        await asyncio.gather(*(c.start() for c in self._consumers.values()))
        self._started = True

    # -- publishing --------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        await self.publish_many((event,))

    async def publish_many(self, events: Sequence[Event]) -> None:
        """Publish in order and return once the broker acknowledged every event; raises
        Unavailable otherwise (some may have been written: at-least-once)."""
        if not events:
            return
        if self._closed:
            raise bus_unavailable("bus closed")
        producer = await self._ensure_producer()
        topics = {e.topic for e in events}
        await self.ensure_topics(topics)
        futures = []
        try:
            # A safety net only: aiokafka expires unacknowledged batches after the request
            # timeout itself, so this fires only if the client got stuck.
            async with asyncio.timeout(self.request_timeout_ms / 1000 * 2 + 1):
                for e in events:
                    futures.append(await producer.send(
                        self.name(e.topic), value=e.payload,
                        key=e.key.encode() if e.key else None,
                        headers=[(EVENT_ID, e.event_id.encode()),
                                 (TYPE_NAME, e.type_name.encode())]))
                results = await asyncio.gather(*futures, return_exceptions=True)
        except (KafkaError, OSError, TimeoutError) as err:
            self._forget_topics(topics)
            raise bus_unavailable("publish failed", err) from err
        for r in results:
            if isinstance(r, BaseException):
                # The broker may have lost the topic (restarted without storage): re-create.
                self._forget_topics(topics)
                raise bus_unavailable("publish failed", r) from r

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._producer_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=self.client_id, acks="all",
                    enable_idempotence=self.idempotence,
                    request_timeout_ms=self.request_timeout_ms)
                try:
                    await producer.start()
                except (KafkaError, OSError) as err:
                    await producer.stop()
                    raise bus_unavailable("cannot connect to the broker", err) from err
                self._producer = producer
        return self._producer

    # -- health ------------------------------------------------------------------------

    async def ping(self) -> None:
        """One round trip to a broker (a metadata request naming no topic, so its cost does
        not grow with the cluster); raises Unavailable when no broker answers. The process's
        health probe calls it and bounds the wait itself."""
        producer = await self._ensure_producer()
        client = producer.client
        node = client.get_random_node()
        if node is None:
            raise bus_unavailable("no broker known")
        try:
            await client.send(node, MetadataRequest([]))
        except (KafkaError, OSError, TimeoutError) as err:
            raise bus_unavailable("broker did not answer", err) from err

    # -- topics ------------------------------------------------------------------------

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics that do not exist yet (idempotent; racing creators are fine)."""
        missing = sorted({self.name(t) for t in topics} - self._ready_topics)
        if not missing:
            return
        async with self._topic_lock:
            missing = [t for t in missing if t not in self._ready_topics]
            if not missing:
                return
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                        client_id=f"{self.client_id}-admin",
                                        request_timeout_ms=self.request_timeout_ms)
            try:
                await admin.start()
                resp = await admin.create_topics(
                    [NewTopic(t, self.partitions, self.replication_factor) for t in missing])
            except (KafkaError, OSError, TimeoutError) as err:
                raise bus_unavailable("cannot create topics", err) from err
            finally:
                await admin.close()
            for name, code, message in resp.topic_errors:
                if code not in (0, _TOPIC_EXISTS):
                    raise bus_unavailable(f"cannot create topic {name}: {code} {message}")
            self._ready_topics.update(missing)

    def _forget_topics(self, topics: Iterable[str]) -> None:
        self._ready_topics.difference_update(self.name(t) for t in topics)

    # -- shutdown ----------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        for t in list(self._late_starts):
            t.cancel()
        await asyncio.gather(*self._late_starts, return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in self._consumers.values()),
                             return_exceptions=True)
        self._started = False
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()
            except KafkaError:
                log.warning("producer did not stop cleanly")


def _decode(topic: str, record) -> Event:
    headers = {k: v for k, v in (record.headers or ())}
    event_id = headers.get(EVENT_ID)
    type_name = headers.get(TYPE_NAME)
    return Event(
        topic=topic,
        key=record.key.decode() if record.key else "",
        # A record from a foreign producer still gets an id stable across redeliveries.
        event_id=(event_id.decode() if event_id is not None
                  else f"{record.topic}/{record.partition}/{record.offset}"),
        type_name=type_name.decode() if type_name is not None else "",
        payload=record.value or b"",
    )


class _PartitionWorker:
    """Runs the handler over one partition's records, strictly in order, retrying a failing
    record in place. `done` is the offset to commit (next record to handle)."""

    def __init__(self, owner: _GroupConsumer, tp: TopicPartition) -> None:
        self._owner = owner
        self.tp = tp
        self.queue: collections.deque = collections.deque()
        self.done: int | None = None
        self.committed: int | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def push(self, records) -> None:
        self.queue.extend(records)
        self._wake.set()

    async def _run(self) -> None:
        bus, owner = self._owner.bus, self._owner
        while not self._stop.is_set():
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            record = self.queue[0]
            event = _decode(owner.topic, record)
            attempt = 0
            while True:
                try:
                    await owner.handler(event)
                    break
                except Exception:
                    attempt += 1
                    log.exception("event handler failed; will retry", topic=owner.topic,
                                  group=owner.group, partition=record.partition,
                                  event_id=event.event_id, attempt=attempt)
                    delay = min(bus.max_retry_delay_s, bus.retry_delay_s * 2 ** min(attempt, 6))
                    try:
                        await asyncio.wait_for(self._stop.wait(), delay)
                        return  # stopping: the record stays uncommitted for the next owner
                    except TimeoutError:
                        pass
            if self.queue and self.queue[0] is record:
                self.queue.popleft()
            self.done = record.offset + 1

    async def stop(self, grace_s: float) -> None:
        """Let an in-flight handler finish (up to `grace_s`), then drop what is queued."""
        self._stop.set()
        self._wake.set()
        self.queue.clear()
        done, _ = await asyncio.wait({self._task}, timeout=grace_s)
        if not done:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class _GroupConsumer(ConsumerRebalanceListener):
    def __init__(self, bus: KafkaEventBus, topic: str, group: str, handler: Handler) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.handler = handler
        self._consumer: AIOKafkaConsumer | None = None
        self._workers: dict[TopicPartition, _PartitionWorker] = {}
        self._paused: set[TopicPartition] = set()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        bus = self.bus
        await bus.ensure_topics((self.topic,))
        session = bus.session_timeout_ms
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bus.bootstrap, client_id=bus.client_id,
            group_id=bus.name(self.group), enable_auto_commit=False,
            # A group that starts after events were published still sees them.
            auto_offset_reset="earliest",
            session_timeout_ms=session, heartbeat_interval_ms=max(100, session // 3),
            request_timeout_ms=max(bus.request_timeout_ms, session + 5000),
            fetch_max_wait_ms=200)
        consumer.subscribe([bus.name(self.topic)], listener=self)
        try:
            await consumer.start()
        except (KafkaError, OSError) as err:
            await consumer.stop()
            raise bus_unavailable("cannot connect a consumer", err) from err
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        delay = self.bus.retry_delay_s
        while True:
            try:
                await self._commit()
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                delay = self.bus.retry_delay_s
            except KafkaError:
                log.warning("consumer fetch failed; will retry", topic=self.topic,
                            group=self.group, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(self.bus.max_retry_delay_s, delay * 2)
                continue
            for tp, records in batches.items():
                worker = self._workers.get(tp)
                if worker is None:
                    worker = self._workers[tp] = _PartitionWorker(self, tp)
                worker.push(records)
                if len(worker.queue) >= self.bus.max_pending and tp not in self._paused:
                    consumer.pause(tp)
                    self._paused.add(tp)
            for tp in list(self._paused):
                worker = self._workers.get(tp)
                if worker is None or len(worker.queue) <= self.bus.max_pending // 2:
                    self._paused.discard(tp)
                    if tp in consumer.assignment():
                        consumer.resume(tp)

    async def _commit(self, workers: Iterable[_PartitionWorker] | None = None) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        due = [w for w in (self._workers.values() if workers is None else workers)
               if w.done is not None and w.done != w.committed]
        if not due:
            return
        try:
            await consumer.commit({w.tp: w.done for w in due})
        except KafkaError:
            # Not fatal: the records are handled again by whoever owns the partition next.
            log.warning("offset commit failed", topic=self.topic, group=self.group,
                        exc_info=True)
            return
        for w in due:
            w.committed = w.done

    async def on_partitions_revoked(self, revoked) -> None:
        workers = [self._workers.pop(tp) for tp in revoked if tp in self._workers]
        await asyncio.gather(*(w.stop(self.bus.stop_grace_s) for w in workers))
        await self._commit(workers)
        self._paused.difference_update(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        pass  # workers start with the first records fetched from the committed offsets

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        workers = list(self._workers.values())
        self._workers.clear()
        await asyncio.gather(*(w.stop(self.bus.stop_grace_s) for w in workers))
        await self._commit(workers)
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await consumer.stop()  # leaves the group: the others take over at once
            except KafkaError:
                log.warning("consumer did not stop cleanly", topic=self.topic,
                            group=self.group)
