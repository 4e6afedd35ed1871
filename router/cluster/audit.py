"""The `nats` audit sink: each batch of audit records published on a NATS subject."""

from __future__ import annotations

from router.observe.audit import Publisher


class NatsSink:
    """Publishes each record on `subject` through the router's NATS link (any `Publisher`)."""

    name = "nats"

    def __init__(self, publisher: Publisher, subject: str) -> None:
        self.publisher = publisher
        self.subject = subject

    async def write(self, lines: list[bytes]) -> None:
        for line in lines:
            await self.publisher.publish(self.subject, line)
