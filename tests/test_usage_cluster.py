"""Usage across replicas: three routers on one NATS, calls spread over them, one stopped
mid-run; every replica's /v1/usage then counts each call exactly once. With a spool directory
(`usage_spool_dir`), a replica killed outright loses none of the calls it answered."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import orjson
import pytest
from nats.js.api import StreamConfig

from router.cluster.link import NatsLink
from router.cluster.usage import SharedUsage
from router.cluster.usage_spool import UsageSpool, batch_of
from tests.guard_support import guarded_env
from tests.support.cluster import cluster, nats_server
from tests.support.mcpcall import call_tool
from tests.support.procs import sample_server_http

pytestmark = pytest.mark.anyio


async def test_usage_sums_equal_the_calls_made_across_replicas_after_one_stops(tmp_path: Path) -> None:
    keys, env = guarded_env(tmp_path, {"ops": ["admins"], "guest": ["guests"]}, {"default": "allow"})
    env["TOOLMESH_ADMIN_GROUPS"] = "admins"
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        cluster(tmp_path, {"svc": {"url": url}}, env=env) as group,
    ):
        replicas = list(group.replicas)
        made = {"guest": 0, "ops": 0}
        async with aiohttp.ClientSession() as http:
            for n in range(60):
                if n == 30:
                    await anyio.to_thread.run_sync(replicas[2].process.stop)  # mid-run
                alive = replicas[:2] if n >= 30 else replicas
                agent = "guest" if n % 3 else "ops"
                target = alive[n % len(alive)]
                headers = {"Authorization": f"Bearer {keys[agent]}"}
                reply = await call_tool(http, target.mcp_url, "svc__echo", {"text": str(n)}, headers=headers)
                assert "result" in reply, reply
                made[agent] += 1

            ops = {"Authorization": f"Bearer {keys['ops']}"}
            for replica in replicas[:2]:
                deadline = time.monotonic() + 15
                while True:
                    async with http.get(
                        f"{replica.base_url}/v1/usage?by=agent&period=day", headers=ops
                    ) as response:
                        assert response.status == 200
                        rows = (await response.json())["rows"]
                    counted = {row["agent"]: row["calls"] for row in rows}
                    if counted == made or time.monotonic() > deadline:
                        break
                    await anyio.sleep(0.2)
                assert counted == made, (replica.base_url, counted, made)


async def test_a_replica_killed_outright_loses_only_the_calls_of_its_last_flush(tmp_path: Path) -> None:
    """SIGKILL, no goodbye: what the survivors count equals the calls made, minus at most the
    calls the killed replica answered after its last acknowledged publish: its last flush
    interval (0.05 s) plus a publish round trip (given 0.45 s here on a loaded machine); never
    more than made."""
    run = await killed_mid_run(
        tmp_path, {}, settle=15, enough=lambda counted, made: counted >= made - 50, after=2
    )
    made, counts = len(run.answered), run.counts
    killed_late = sum(
        1 for index, at in run.answered if index == 2 and run.killed_at - 0.5 <= at <= run.killed_at
    )
    lost = made - counts[0]
    print(
        f"made {made}, counted {counts}, lost {lost}, killed replica's calls in its last 0.5 s {killed_late}"
    )
    assert counts[0] == counts[1], counts
    assert 0 <= lost <= killed_late, (made, counts, killed_late)
    assert sum(1 for index, _ in run.answered if index == 2) > 5  # the killed replica did serve


@dataclass
class KilledRun:
    answered: list[tuple[int, float]]  # (replica, when the client had the reply) of each answered call
    killed_at: float  # when replica 2 was SIGKILLed
    counts: list[int]  # what the two survivors count, once settled


async def killed_mid_run(
    tmp_path: Path,
    env: dict[str, str],
    settle: float,
    enough: Callable[[int, int], bool] = lambda counted, made: counted >= made,
    after: float = 0.0,
) -> KilledRun:
    """Three replicas, three clients calling steadily for 4 s, replica 2 SIGKILLed after 2 s; then
    the survivors' usage sums are read until they agree and `enough(counted, made)` holds, at least
    `after` s past the calls and at most `settle` s."""
    keys, guarded = guarded_env(tmp_path, {"ops": ["admins"]}, {"default": "allow"})
    guarded.update(env, TOOLMESH_ADMIN_GROUPS="admins")
    ops = {"Authorization": f"Bearer {keys['ops']}"}
    with (
        sample_server_http("svc", log_dir=tmp_path) as (url, _),
        cluster(tmp_path, {"svc": {"url": url}}, env=guarded) as group,
    ):
        replicas = list(group.replicas)
        alive = [True, True, True]
        answered: list[tuple[int, float]] = []
        killed_at = 0.0
        async with aiohttp.ClientSession() as http:

            async def client(offset: int, until: float) -> None:
                n = offset
                while time.monotonic() < until:
                    n += 1
                    index = n % 3
                    if not alive[index]:
                        continue
                    try:
                        reply = await call_tool(
                            http, replicas[index].mcp_url, "svc__echo", {"text": str(n)}, headers=ops
                        )
                    except (aiohttp.ClientError, OSError):
                        continue  # in flight when the replica died: never answered, not made
                    if "result" in reply:
                        answered.append((index, time.monotonic()))
                    await anyio.sleep(0.005)

            async def killer() -> None:
                nonlocal killed_at
                await anyio.sleep(2.0)
                alive[2] = False
                os.kill(replicas[2].process.pid, signal.SIGKILL)
                killed_at = time.monotonic()

            until = time.monotonic() + 4.0
            async with anyio.create_task_group() as tg:
                for offset in range(3):
                    tg.start_soon(client, offset, until)
                tg.start_soon(killer)

            made = len(answered)
            counts: list[int] = []
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline:
                counts = []
                for replica in replicas[:2]:
                    async with http.get(
                        f"{replica.base_url}/v1/usage?by=agent&period=day", headers=ops
                    ) as response:
                        counts.append(sum(row["calls"] for row in (await response.json())["rows"]))
                if counts[0] == counts[1] and enough(counts[0], made) and time.monotonic() > until + after:
                    break
                await anyio.sleep(0.3)
    return KilledRun(answered, killed_at, counts)


async def test_with_a_spool_a_replica_killed_outright_loses_none_of_the_calls_it_answered(
    tmp_path: Path,
) -> None:
    """The replicas share a spool directory; one is SIGKILLed under steady calls and the
    survivors publish what it answered and never had acknowledged. Publishing only once a
    second (`usage_flush_interval` 1), so that without the spool the kill loses dozens of calls:
    with it, the usage sums equal the calls answered (a call whose line was written just before
    the kill cut off its reply would count too: at most one per client, not seen so far)."""
    env = {"TOOLMESH_USAGE_SPOOL_DIR": str(tmp_path / "spool"), "TOOLMESH_USAGE_FLUSH_INTERVAL": "1"}
    run = await killed_mid_run(tmp_path, env, settle=20)
    made, counts, served = len(run.answered), run.counts, sum(1 for index, _ in run.answered if index == 2)
    print(f"made {made}, counted {counts}, the killed replica answered {served}")
    assert served > 20  # the killed replica did serve, and more than its last second's worth
    assert counts[0] == counts[1], counts
    assert 0 <= counts[0] - made <= 3, (made, counts)
    # The killed replica's spool was adopted and deleted; the survivors removed theirs on stopping.
    assert sorted(path.name for path in (tmp_path / "spool").iterdir()) == []


async def test_a_dead_replicas_spool_is_published_once_even_the_batch_stored_without_its_ack(
    tmp_path: Path,
) -> None:
    """A dead replica left batch 1 stored in the stream (its acknowledgement never came), batch 2
    drained but never published, and calls counted since: the replica that adopts its spool
    publishes batches 2 and the rest, not 1 again. A live replica's spool is left alone."""
    prefix = f"t{secrets.token_hex(2)}"
    spool_dir = tmp_path / "spool"
    dead = UsageSpool(spool_dir, "dead")
    dead.open()

    def calls(count: int, tool: str) -> None:
        for n in range(count):
            line = (time.time(), "ann", "svc", tool, True, 0.01, 10 + n, 100, 0.5, "ops", "")
            dead.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    calls(2, "a")
    dead.rotate(1)
    calls(3, "b")
    dead.rotate(2)
    calls(4, "c")
    for fd in (dead._fd, dead._lock_fd):  # killed: the kernel closes its files and drops its lock
        os.close(fd)
    alive = UsageSpool(spool_dir, "alive")
    alive.open()
    alive.write(b"[0]\n")

    with nats_server(tmp_path) as nats:
        async with NatsLink(nats.url, prefix=prefix) as link:
            assert link.js is not None
            await link.js.add_stream(
                StreamConfig(name=f"{prefix}_usage", subjects=[f"{prefix}.usage.*"], duplicate_window=120)
            )
            first = orjson.dumps(batch_of(spool_dir / "usage.dead.1.calls", 3600))
            await link.js.publish(
                f"{prefix}.usage.dead", first, stream=f"{prefix}_usage", headers={"Nats-Msg-Id": "dead.1"}
            )
            async with SharedUsage(link, "adopter", 3600, spool_dir=spool_dir) as usage:
                counted: dict[str, int] = {}
                with anyio.fail_after(10):
                    while sum(counted.values()) < 9:
                        await anyio.sleep(0.1)
                        counted = {
                            row["tool"]: row["calls"] for row in usage.query(by=["tool"], period="day")
                        }
                await anyio.sleep(1.5)  # another round of the publisher: nothing more arrives
                counted = {row["tool"]: row["calls"] for row in usage.query(by=["tool"], period="day")}
                request_bytes = sum(row["request_bytes"] for row in usage.query(by=["tool"], period="day"))
    assert counted == {"a": 2, "b": 3, "c": 4}, counted
    assert request_bytes == 10 + 11 + (10 + 11 + 12) + (10 + 11 + 12 + 13)
    left = sorted(path.name for path in spool_dir.iterdir())
    assert left == ["usage.alive.1.calls", "usage.alive.lock"], left  # the dead replica's files went
    alive.close()


async def test_while_nats_is_down_the_spool_keeps_minute_totals_not_a_line_per_call(tmp_path: Path) -> None:
    """NATS never came: 20,000 calls are counted and spooled. The spool is compacted into minute
    totals as it grows (a line per call would be ~1.7 MB; it stays a few KB), yet a replica that
    adopts it once the first is killed publishes every call, with the same totals."""
    prefix = f"t{secrets.token_hex(2)}"
    spool_dir = tmp_path / "spool"
    down = NatsLink("nats://127.0.0.1:9", prefix=prefix)  # never started: no NATS for this replica
    usage = SharedUsage(down, "lonely", 3600, spool_dir=spool_dir, spool_compact_at=4096)
    assert usage.spool is not None
    usage.spool.open()
    start = time.time() - 300
    largest = 0
    made: Counter[tuple[str, str]] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    for n in range(20_000):
        agent, tool = ("ann", "bob")[n % 2], ("a", "b", "c")[n % 3]
        ok = n % 7 != 0
        usage.add(agent, "svc", tool, ok, 0.01, 10, 100 + n % 5, 0.25, now=start + n * 0.015, groups="ops")
        made[agent, tool] += 1
        failed[agent, tool] += not ok
        largest = max(largest, usage.spool.size)
    segment = spool_dir / "usage.lonely.1.calls"
    assert segment.stat().st_size == usage.spool.size
    assert largest < 20_000, largest  # bounded by the minute totals, not by the calls
    assert not list(spool_dir.glob(".usage.*"))  # no compaction left half-done
    expected = {tuple(row[:4]): row[4:] for row in usage.outbox.rows()}
    assert sum(row[0] for row in expected.values()) == 20_000
    spooled = {tuple(row[:4]): row[4:] for row in batch_of(segment, 3600)}
    assert spooled.keys() == expected.keys()
    for key, totals in expected.items():
        assert spooled[key] == pytest.approx(totals), key
    assert usage.spool._fd >= 0
    for fd in (usage.spool._fd, usage.spool._lock_fd):  # killed before NATS came back
        os.close(fd)

    with nats_server(tmp_path) as nats:
        async with (
            NatsLink(nats.url, prefix=prefix) as link,
            SharedUsage(link, "adopter", 3600, spool_dir=spool_dir) as adopter,
        ):
            rows: list[dict[str, object]] = []
            with anyio.fail_after(10):
                while sum(int(str(row["calls"])) for row in rows) < 20_000:
                    await anyio.sleep(0.1)
                    rows = adopter.query(by=["agent", "tool"], period="day")
            await anyio.sleep(1.5)  # another round of the publisher: nothing more arrives
            rows = adopter.query(by=["agent", "tool"], period="day")
    assert {(row["agent"], row["tool"]): row["calls"] for row in rows} == made
    assert {(row["agent"], row["tool"]): row["errors"] for row in rows} == failed
    assert sorted(path.name for path in spool_dir.iterdir()) == []  # adopted and deleted
