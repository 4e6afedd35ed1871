"""Usage totals across replicas: each replica's minutes through a JetStream stream, summed by all.

`add()` (after a call's reply, as in the embedded ledger) only updates this replica's outbox, a
`UsageLedger` in memory, and wakes the publisher (an event set, once per flush). The publisher
is pipelined: one publish at a time, each awaiting its acknowledgement, and the next drains
what was counted meanwhile as soon as the previous one was acknowledged, but never sooner than
`flush_interval` (0.05 s by default) after the previous one began. That floor, enforced in
`_run`, is what bounds the message rate: a replica under steady load publishes at most twenty
messages a second (fewer when a round trip takes longer), an idle one none. Each message is published on
`<prefix>.usage.<replica>` into the stream `<prefix>_usage` (limits retention, `max_age` the
usage retention) with a `Nats-Msg-Id` of `<replica>.<sequence>`: a publish whose ack was lost is
sent again under the same id and stored once (the stream's duplicate window). Every replica
reads the whole stream with an ordered consumer and merges each message once into its view,
which `/v1/usage` reads: so every replica answers with every replica's calls, each counted once.

What can be lost: a replica killed outright (SIGKILL, power) loses the calls it answered after
its last acknowledged publish: those of the last `flush_interval` plus one publish round trip
at most (measured in tests/test_usage_cluster.py, 3 replicas, one SIGKILLed mid-run: 18-20 of
1,181-1,237 calls lost with a 0.2 s floor, 1-2 of 820-1,211 with 0.05 s), unless a spool
keeps them (`spool_dir`, cluster/usage_spool.py: each call's line on disk before its reply,
published by the replica that adopts the dead one's spool; none lost); a replica that stops
normally publishes its outbox on the way out. Calls in flight when a replica dies were never
answered and are not counted. While NATS is down the outbox keeps growing (by minute totals, not
by calls; the spool too, once compacted) and is published when the link is back; the view lags
meanwhile. A replica that starts reads the stream from its
start, so its view is whole once it has caught up.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.abc import TaskGroup
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from router.cluster.link import NatsLink
from router.cluster.usage_spool import (
    ADOPT_INTERVAL,
    COMPACT_AT,
    Orphan,
    UsageSpool,
    adoptable,
    batch_of,
    release,
)
from router.lifecycle import Service
from router.observe.usage import DEFAULT_BY, Counted, Groups, Period, Row, UsageLedger

log = logging.getLogger("toolmesh.usage")

FLUSH_INTERVAL = 0.05  # the floor between two publishes: at most 20 messages a second under load
RETRY = 1.0  # seconds between attempts while NATS is down or slow


class SharedUsage(Service):
    def __init__(
        self,
        link: NatsLink,
        replica: str,
        retention: float,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        spool_dir: Path | None = None,
        spool_compact_at: int = COMPACT_AT,
    ) -> None:
        self.link = link
        self.replica = replica
        self.retention = retention
        self.flush_interval = flush_interval
        self.outbox = UsageLedger(retention)
        self.view = UsageLedger(retention)
        self.stream = f"{link.prefix}_usage"
        self.subject = link.subject("usage", replica)
        self._pending: tuple[int, bytes] | None = None  # a batch not yet acknowledged: (number, rows)
        # With a spool directory: every call's line on disk until its batch is acknowledged
        # (cluster/usage_spool.py), written before the call's reply (`spooled`: see bookkeeping).
        self.spool = (
            UsageSpool(spool_dir, replica, compact_at=spool_compact_at) if spool_dir is not None else None
        )
        self.spooled = self.spool is not None
        self._adopt_at = 0.0
        self._sequence = itertools.count(1)
        self._subscribed = False
        self._wake = anyio.Event()
        self._woken = False  # `_wake` is set: a plain flag, cheaper per call than `is_set()`

    def add(
        self,
        agent: str,
        server: str,
        tool: str,
        ok: bool,
        seconds: float,
        request_bytes: int,
        response_bytes: int,
        cost: float,
        now: float | None = None,
        groups: Groups = "",
        namespace: str = "",
    ) -> None:
        if self.spool is not None:
            if now is None:
                now = time.time()
            line = (
                now,
                agent,
                server,
                tool,
                ok,
                seconds,
                request_bytes,
                response_bytes,
                cost,
                self.outbox.groups_text(groups),
                namespace,
            )
            self.spool.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
        self.outbox.add(
            agent, server, tool, ok, seconds, request_bytes, response_bytes, cost, now, groups, namespace
        )
        spool = self.spool
        if spool is not None and spool.size >= spool.compact_at:  # NATS down for a while
            spool.compact(self.outbox.rows())
        if not self._woken:
            self._woken = True
            self._wake.set()

    def query(
        self,
        *,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        by: Iterable[str] = DEFAULT_BY,
        period: Period = "hour",
    ) -> list[dict[str, Any]]:
        return self.view.query(agent=agent, since=since, until=until, by=by, period=period)

    def counted(self) -> Counted:
        """This replica's own calls (the Prometheus counters are per replica)."""
        return self.outbox.counted()

    async def start(self, tg: TaskGroup) -> None:
        if self.spool is not None:
            self.spool.open()
        tg.start_soon(self._run)

    async def stop(self) -> None:
        with anyio.move_on_after(2):
            await self.flush()
        if self.spool is not None:
            self.spool.close()

    async def _run(self) -> None:
        """Publish soon after calls were counted; follow the stream as soon as NATS is there."""
        last = 0.0
        while True:
            with anyio.move_on_after(RETRY):  # also the retry tick of a failed publish
                await self._wake.wait()
            self._wake, self._woken = anyio.Event(), False
            await anyio.sleep(max(0.0, last + self.flush_interval - anyio.current_time()))
            last = anyio.current_time()
            try:
                if not self._subscribed and self.link.js is not None:
                    await self._follow()
                await self.flush()
                if self.spool is not None and self._subscribed and last >= self._adopt_at:
                    self._adopt_at = last + ADOPT_INTERVAL
                    await self.adopt()
            except Exception as exc:  # NATS down or slow: the outbox waits for the next round
                log.debug("usage not shared yet", extra={"reason": repr(exc)})

    async def flush(self) -> None:
        """Publish what was counted since the last flush (and any batch not yet acknowledged)."""
        js = self.link.js
        if js is None or not self.link.connected:
            return
        if self._pending is None:
            rows = self.outbox.drain()
            if not rows:
                return
            self._pending = (next(self._sequence), orjson.dumps(rows))
            if self.spool is not None:  # the calls of this batch are its segment, complete
                self.spool.rotate(self._pending[0])
        if not self._subscribed:
            await self._follow()
        number, data = self._pending
        await js.publish(
            self.subject, data, stream=self.stream, headers={"Nats-Msg-Id": f"{self.replica}.{number}"}
        )
        self._pending = None
        if self.spool is not None:
            self.spool.acknowledged(number)

    async def adopt(self) -> None:
        """Publish what dead replicas sharing the spool directory counted and never had
        acknowledged (cluster/usage_spool.py), and delete their spools."""
        assert self.spool is not None
        for orphan in await anyio.to_thread.run_sync(adoptable, self.spool.directory, self.replica):
            done = False
            try:
                done = await self._replay(orphan)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(functools.partial(release, orphan, done=done))

    async def _replay(self, orphan: Orphan) -> bool:
        """The batches of a dead replica the stream does not have, published in order under its
        subject and message ids. It published one batch at a time, each once the previous was
        acknowledged, so the stream has its batches up to the last one stored on its subject."""
        js = self.link.js
        if js is None or not self.link.connected:
            return False
        subject = self.link.subject("usage", orphan.replica)
        try:
            last = await js.get_last_msg(self.stream, subject)
            stored = int(str((last.headers or {}).get("Nats-Msg-Id", "")).rpartition(".")[2] or 0)
        except NotFoundError:  # it never had a batch stored
            stored = 0
        calls = 0
        for number, path in orphan.segments:
            if number <= stored:
                continue
            rows = await anyio.to_thread.run_sync(batch_of, path, self.retention)
            if rows:
                headers = {"Nats-Msg-Id": f"{orphan.replica}.{number}"}
                await js.publish(subject, orjson.dumps(rows), stream=self.stream, headers=headers)
                calls += sum(row[4] for row in rows)
        log.info(
            "usage of a dead replica published from its spool",
            extra={"replica": orphan.replica, "calls": calls, "stored_before": stored},
        )
        return True

    async def _follow(self) -> None:
        js = self.link.js
        assert js is not None
        config = StreamConfig(
            name=self.stream,
            subjects=[self.link.subject("usage", "*")],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=self.retention,
            duplicate_window=120,
            description="toolmesh usage minutes",
        )
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(config)
        await js.subscribe(
            self.link.subject("usage", "*"),
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._apply,
        )
        self._subscribed = True

    async def _apply(self, msg: Msg) -> None:
        try:
            rows: list[Row] = [tuple(row) for row in orjson.loads(msg.data)]
        except (orjson.JSONDecodeError, TypeError, ValueError):
            log.warning("usage message ignored: not usage rows", extra={"subject": msg.subject})
            return
        self.view.merge(rows)
