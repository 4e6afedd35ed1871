"""The `nats` audit sink: records published on a subject that a JetStream stream keeps.

The stream (`<prefix>_audit` by default) is created, or its retention updated, before the first
batch: limits retention with `max_age` (`audit_nats_max_age`, 30 days by default), file storage,
so a SIEM or `nats stream view` can read the trail back for that long. Each record is a JetStream
publish, acknowledged once stored (the audit log's background task waits, never a request); with
the link down the batch fails for NATS (logged) while the other sinks (a chained file) hold it.
"""

from __future__ import annotations

import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from router.observe.audit import Publisher

log = logging.getLogger("toolmesh.audit")

MAX_AGE = 30 * 24 * 3600.0


class NatsSink:
    """Publishes each record on `subject` through the router's NATS link (any `Publisher`), into
    the JetStream stream `stream` (None: plain subject, no stream)."""

    name = "nats"

    def __init__(
        self, publisher: Publisher, subject: str, *, stream: str | None = None, max_age: float = MAX_AGE
    ) -> None:
        self.publisher = publisher
        self.subject = subject
        self.stream = stream
        self.max_age = max_age
        self._stream_ready = stream is None

    async def write(self, lines: list[bytes]) -> None:
        if not self._stream_ready:
            await self._ensure_stream()
        js = _jetstream(self.publisher) if self.stream is not None else None
        if js is None:
            for line in lines:
                await self.publisher.publish(self.subject, line)
            return
        for line in lines:  # acknowledged: stored in the stream, or an error the audit log reports
            await js.publish(self.subject, line, stream=self.stream)

    async def _ensure_stream(self) -> None:
        js = _jetstream(self.publisher)
        if js is None or self.stream is None:
            return
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=self.max_age,
            description="toolmesh audit trail",
        )
        try:
            await js.stream_info(self.stream)
            await js.update_stream(config)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError as exc:
                log.error("audit stream not created", extra={"stream": self.stream, "reason": str(exc)})
                raise
        self._stream_ready = True
        log.info("audit stream ready", extra={"stream": self.stream, "max_age_s": self.max_age})


def _jetstream(publisher: Any) -> JetStreamContext | None:
    """The JetStream context of the router's `NatsLink` (`js`, once connected) or of a nats-py
    `Client` (`jetstream()`)."""
    js = getattr(publisher, "js", None)
    if isinstance(js, JetStreamContext):
        return js
    make = getattr(publisher, "jetstream", None)
    return make() if callable(make) else None
