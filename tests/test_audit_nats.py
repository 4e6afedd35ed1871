"""The audit trail's NATS sink, against a real nats-server: records arrive on the subject, whole
and without redacted secrets; a failing sink does not stop the others."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest

from router.cluster.audit import NatsSink
from router.observe.audit import AuditLog, FileSink
from router.up.processes import ManagedProcess, free_port

pytestmark = pytest.mark.anyio


def record(log: AuditLog, target: str, arguments: Any) -> None:
    log.record(
        agent="ops", session="session-id-secret", method="tools/call", target=target, server="beta",
        instance="beta-1", arguments=arguments, outcome="ok", error_code=None, seconds=0.012,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7", era="legacy",
        via="mcp",
    )  # fmt: skip


async def test_records_are_published_on_the_subject(tmp_path: Path) -> None:
    port = free_port()
    server = Path(sys.executable).parent / "nats-server"
    with ManagedProcess([str(server), "-a", "127.0.0.1", "-p", str(port)], name="nats", log_dir=tmp_path):
        deadline = anyio.current_time() + 15
        while True:
            try:
                connection = await nats.connect(
                    f"nats://127.0.0.1:{port}", max_reconnect_attempts=0, error_cb=_quiet
                )
                break
            except (OSError, nats.errors.Error):
                assert anyio.current_time() < deadline, "nats-server did not start"
                await anyio.sleep(0.1)
        try:
            received: list[bytes] = []

            async def collect(message: Any) -> None:
                received.append(message.data)

            subscription = await connection.subscribe("toolmesh.audit", cb=collect)
            await connection.flush()
            log = AuditLog(
                [NatsSink(connection, "toolmesh.audit"), FileSink(tmp_path / "audit.jsonl")],
                arguments=True,
                redact=["password"],
            )
            async with log:
                for n in range(3):
                    record(log, f"beta__echo{n}", {"text": "hi", "password": "hunter2"})
                with anyio.fail_after(10):
                    while len(received) < 3:
                        await anyio.sleep(0.05)
            await subscription.unsubscribe()
        finally:
            await connection.close()
    records = [json.loads(data) for data in received]
    assert [r["target"] for r in records] == ["beta__echo0", "beta__echo1", "beta__echo2"]
    assert records[0]["arguments"] == {"text": "hi", "password": "[redacted]"}
    assert records[0]["instance"] == "beta-1" and records[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    for data in received:
        assert b"hunter2" not in data and b"session-id-secret" not in data
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 3


async def _quiet(error: Exception) -> None:
    """nats-py logs refused connections while the server starts; the loop above retries."""


async def test_a_failing_sink_does_not_stop_the_others(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        async def publish(self, subject: str, payload: bytes) -> None:
            raise ConnectionError("nats is down")

    log = AuditLog([NatsSink(Broken(), "x"), FileSink(tmp_path / "audit.jsonl")])
    record(log, "beta__echo", {"text": "x"})
    await log.flush()
    assert json.loads((tmp_path / "audit.jsonl").read_text())["target"] == "beta__echo"


async def test_records_are_kept_in_a_jetstream_stream_with_the_retention_set(tmp_path: Path) -> None:
    port = free_port()
    server = Path(sys.executable).parent / "nats-server"
    argv = [str(server), "-js", "-sd", str(tmp_path / "js"), "-a", "127.0.0.1", "-p", str(port)]
    with ManagedProcess(argv, name="nats", log_dir=tmp_path):
        deadline = anyio.current_time() + 15
        while True:
            try:
                connection = await nats.connect(
                    f"nats://127.0.0.1:{port}", max_reconnect_attempts=0, error_cb=_quiet
                )
                break
            except (OSError, nats.errors.Error):
                assert anyio.current_time() < deadline, "nats-server did not start"
                await anyio.sleep(0.1)
        try:
            log = AuditLog([NatsSink(connection, "toolmesh.audit", stream="toolmesh_audit", max_age=3600)])
            async with log:
                for n in range(3):
                    record(log, f"beta__echo{n}", {"text": "hi"})
            js = connection.jetstream()
            info = await js.stream_info("toolmesh_audit")
            assert info.config.max_age == 3600 and info.config.subjects == ["toolmesh.audit"]
            assert info.state.messages == 3
            first = await js.get_msg("toolmesh_audit", 1)
            assert json.loads(first.data or b"{}")["target"] == "beta__echo0"
            # A router started later with another retention updates the stream, keeping its records.
            log = AuditLog([NatsSink(connection, "toolmesh.audit", stream="toolmesh_audit", max_age=7200)])
            async with log:
                record(log, "beta__echo3", {"text": "hi"})
            info = await js.stream_info("toolmesh_audit")
            assert info.config.max_age == 7200 and info.state.messages == 4
        finally:
            await connection.close()
