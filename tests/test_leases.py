"""Which upstream session serves a client (router.upstream.leases), asked of real backends: the
sample server over HTTP in each era, and as a stdio child, each run by a `Backend` directly."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from router.catalog.record import BackendRecord
from router.upstream.backend import Backend
from router.upstream.base import Message
from router.upstream.leases import Client
from tests.support.procs import REPO_ROOT, sample_server_http

pytestmark = pytest.mark.anyio

SAMPLING = {"sampling": {}}


async def nobody_outside(message: Message) -> Message | None:
    return None


@asynccontextmanager
async def running(record: BackendRecord, **options: Any) -> AsyncIterator[Backend]:
    backend = Backend(
        record,
        request_timeout=10,
        connect_timeout=20,
        reconnect_min=0.2,
        reconnect_max=1,
        protocol="auto",
        on_change=lambda _: None,
        **options,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(backend.run)
        with anyio.fail_after(30):
            await backend.first_attempt.wait()
        assert backend.state == "ready", backend.last_error
        try:
            yield backend
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_a_legacy_http_backend_lends_a_sampling_client_its_own_session(tmp_path: Any, era: str) -> None:
    """A 2025 client that can sample gets a session of its own (declaring only its capabilities)
    on a legacy HTTP backend, the same one on every call until its session ends; a client that
    declared nothing, and every client of a 2026-07-28 backend, gets the shared session."""
    with sample_server_http("s", era=era, log_dir=tmp_path) as (url, _):  # type: ignore[arg-type]
        record = BackendRecord(server="s", instance_id="s", transport="http", url=url)
        async with running(record) as backend:
            shared = backend.session
            sampler = Client("legacy", SAMPLING, "client-1", nobody_outside)
            async with backend.lease_for(sampler) as first:
                pass
            async with backend.lease_for(sampler) as again:
                pass
            async with backend.lease_for(Client("legacy", {}, "client-2", nobody_outside)) as plain:
                assert plain.session is shared and plain.kind == "shared"
            async with backend.lease_for(Client("modern", SAMPLING)) as stateless:
                assert stateless.session is shared
            if era == "modern":
                assert first.session is shared and first.own_session_id is None
                return
            assert first.kind == "variant" and first.session is not shared
            assert first.session.client_capabilities == SAMPLING
            assert again.session is first.session and first.own_session_id is not None
            reply = await first.request("tools/list", None, 10, None)
            assert "result" in reply
            await backend.forget_client("client-1")
            async with backend.lease_for(sampler) as after:
                assert after.session is not first.session  # a fresh one once the old one is gone


async def test_a_clients_own_http_session_declares_only_what_a_server_tailors_to(tmp_path: Any) -> None:
    """A variant session declares the spec's flags of sampling, elicitation and roots, not the
    client's experimental data or unknown keys: those are the client's own business, and a
    backend the router opens a session to is not told them."""
    noisy = {
        "sampling": {"tools": {}, "bogus": 1},
        "experimental": {"private": "x" * 1000},
        "made-up": {"flag": True},
    }
    with sample_server_http("s", era="legacy", log_dir=tmp_path) as (url, _):
        record = BackendRecord(server="s", instance_id="s", transport="http", url=url)
        client = Client("legacy", noisy, "client-1", nobody_outside)
        async with running(record) as backend, backend.lease_for(client) as own:
            assert own.kind == "variant"
            assert own.session.client_capabilities == {"sampling": {"tools": {}}}
            assert "result" in await own.request("tools/list", None, 10, None)


async def test_a_stdio_backend_lends_a_child_declaring_the_clients_capabilities() -> None:
    """On a stdio backend a sampling client's call goes to a child started with its capabilities;
    a client that declared nothing stays on the main child, and a call through `Backend.call` is
    answered on the child it leased. The sample server speaks both eras, so a 2026-07-28 client
    is served stateless, by the child asked `server/discover` first (upstream/other_era.py)."""
    record = BackendRecord(
        server="kids",
        instance_id="kids",
        transport="stdio",
        command=sys.executable,
        args=("-m", "tests.servers.sample", "--name", "kids", "--transport", "stdio"),
        cwd=str(REPO_ROOT),
    )
    async with running(record, stdio_variants=2) as backend:
        shared = backend.session
        async with backend.lease_for(Client("legacy", SAMPLING, "client-1", nobody_outside)) as child:
            assert child.kind == "child" and child.session is not shared
            assert child.session.client_capabilities == SAMPLING
        async with backend.lease_for(Client("modern", SAMPLING)) as stateless:
            assert stateless.kind == "shared" and stateless.session.era == "modern"
            assert stateless.session is backend.other_era.session
        async with backend.lease_for(Client("legacy", {}, "client-2")) as plain:
            assert plain.session is shared
        leased: list[Any] = []

        def handler_for(lease: Any) -> None:
            leased.append(lease)

        reply = await backend.call(
            "tools/list", None, handler_for, client=Client("legacy", SAMPLING, "client-1")
        )
        assert "result" in reply and [lease.session for lease in leased] == [child.session]
