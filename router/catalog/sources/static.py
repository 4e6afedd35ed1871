"""The static catalog file, re-read when it changes (no restart needed).

The file is polled by modification time and size: portable, cheap, and it survives editors that
replace the file instead of writing it. An edit that does not parse is logged and ignored; the
last good catalog stays in force.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio

from router.catalog.config_file import load_catalog_file
from router.catalog.record import Catalog
from router.errors import ConfigError

log = logging.getLogger("toolmesh.catalog")


class StaticFileSource:
    name = "file"

    def __init__(self, path: Path, poll_interval: float = 1.0) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._healthy = True

    @property
    def healthy(self) -> bool:
        return self._healthy

    def load(self) -> Catalog:
        """Read the file now; raises ConfigError (used at start-up, when a bad file must stop us)."""
        return load_catalog_file(self.path)

    async def snapshots(self) -> AsyncGenerator[Catalog, None]:
        stamp = await self._stamp()
        yield await anyio.to_thread.run_sync(self.load)
        while True:
            await anyio.sleep(self.poll_interval)
            current = await self._stamp()
            if current == stamp:
                continue
            stamp = current
            try:
                catalog = await anyio.to_thread.run_sync(self.load)
            except ConfigError as exc:
                self._healthy = False
                log.error("catalog edit rejected; keeping the last good catalog", extra={"reason": str(exc)})
                continue
            self._healthy = True
            log.info("catalog file reloaded", extra={"servers": len(catalog.servers)})
            yield catalog

    async def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = await anyio.Path(self.path).stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)
