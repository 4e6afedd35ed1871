"""What a catalog source is: something that yields whole catalog snapshots as they change.

One interface, one module per implementation (static file here; Consul and etcd alongside).
A source yields a complete `Catalog` each time; the router diffs snapshots itself, so sources stay
small. A source that cannot reach its registry keeps quiet (the router keeps the last snapshot)
and reports its health through `healthy`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from router.catalog.record import Catalog


class CatalogSource(Protocol):
    """A stream of catalog snapshots."""

    name: str

    @property
    def healthy(self) -> bool:
        """False while the source cannot reach what it watches."""
        ...

    def snapshots(self) -> AsyncGenerator[Catalog, None]:
        """Yield the current catalog, then a new one whenever it changes."""
        ...
