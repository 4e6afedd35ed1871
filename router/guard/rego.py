"""A Rego decision on every tool call: the policy's `rego` names a module and a query.

`{"rego": {"module": "<file path or inline source>", "query": "data.toolmesh.allow",
"budget_ms": 100}}`. After the name-based rules (and any `when`) allow a `tools/call`, the query is
evaluated with `input` = the same fields the CEL conditions see (guard/conditions.py,
`input_document`), by regorus, Microsoft's Rego engine, embedded through the `opa-eval` wheel
(the `rego` extra, imported only when a policy has `rego`). The call is allowed only when the
query gives `true`; false, undefined, anything else, an evaluation error or an evaluation over its
budget deny it, with the reason in the audit record (fail closed).

The module is compiled once per policy version: a syntax error refuses the document naming
`rego.module` and the engine's message, and the last valid policy stays. Decisions are cached per
(policy version, input) when the module cannot see the clock (no `input.time`, no `time.now_ns`,
no `input` read as a whole): bounded, cleared when full.

In the router, evaluation runs in worker processes (`RegoWorkers`: two per replica, started when
the policy is installed; `router/guard/rego_worker.py`). The engine keeps the interpreter lock for
a whole evaluation, so on any thread of the router's own process a slow evaluation would stop the
event loop until it returned (measured: a 5 s evaluation on a worker thread let the loop's thread
run once): only another process can be given up on. When the budget ends (waiting for a free
worker included) the call is denied at once, with `toolmesh_policy_decision_failures{reason=
"timeout"}`; the worker gets `grace` (1 s) more to answer and goes back to the pool, or is killed
and replaced. So a runaway evaluation holds one of two workers for at most a second, and calls
behind busy workers are denied at their own budget: nothing piles up. The round trip adds
~0.05-0.09 ms p50 (bench/policy_rego.py); the default budget (100 ms) leaves room for a loaded
host's scheduling. Without workers (a `Guard` built alone, as in unit tests and the bench's
in-process case) `decide` evaluates on the caller's thread and a decision over its budget is
discarded once the engine returns.
"""

from __future__ import annotations

import importlib
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from router.errors import ConfigError
from router.guard.conditions import CallFacts, input_document
from router.lifecycle import Service

log = logging.getLogger("toolmesh.policy")

MAX_CACHED = 4096
# A worker's reply is the query's value: bounded, so a runaway result cannot grow memory.
MAX_REPLY = 1 << 20
# What makes a decision depend on more than its input (the clock, randomness, the network).
_UNCACHEABLE = re.compile(
    r"input\s*\.\s*time\b|input\s*\[|\binput\b(?!\s*\.)|time\.now_ns|rand\.|uuid\.|http\.send|opa\.runtime"
)


def _opa_eval() -> Any:
    try:
        return importlib.import_module("opa_eval")
    except ImportError:
        raise ConfigError(
            "policy", "the policy has a `rego` decision, but Rego support is not installed",
            "install the `rego` extra: pip install 'toolmesh[rego]'",
        ) from None  # fmt: skip


def _message(exc: BaseException, path: str) -> str:
    """The engine's message, with the temporary file's path replaced by the field."""
    text = str(exc).replace(path, "rego.module").strip()
    return re.sub(r"\s*\n\s*", " ", text)[:400]


class RegoDecision:
    """One compiled module and query; `decide` gives None (allowed) or why the call is refused."""

    def __init__(
        self,
        source: str,
        module: str,
        query: str,
        budget_ms: float,
        on_failure: Callable[[str], None] | None = None,
        workers: RegoWorkers | None = None,
    ) -> None:
        opa_eval = _opa_eval()
        text = self._text = _module_text(source, module)
        self._workers = workers
        self._pool: _Pool | None = None
        self._closed = False
        self.query, self.budget = query, budget_ms / 1000
        self._on_failure = on_failure
        self.cacheable = _UNCACHEABLE.search(re.sub(r"#.*", "", text)) is None
        self._cache: dict[bytes, str | None] = {}
        with tempfile.TemporaryDirectory(prefix="toolmesh-rego-") as tmp:
            path = self._path = str(Path(tmp) / "policy.rego")  # the engine's messages name it
            Path(path).write_text(text, encoding="utf-8")
            try:
                self._engine = opa_eval.OpaEval(path, query=query)
            except Exception as exc:
                raise ConfigError(
                    f"policy {source}, field 'rego.module'", f"not a valid Rego module: {_message(exc, path)}",
                    "fix the module (docs/security.md shows examples)",
                ) from None  # fmt: skip
            try:
                self._engine.evaluate_parsed("{}")
            except Exception as exc:
                if "rule path" in str(exc):
                    raise ConfigError(
                        f"policy {source}, field 'rego.query'", f"{query!r} names no rule of the module",
                        "name a rule the module defines, e.g. data.toolmesh.allow",
                    ) from None  # fmt: skip

    def activate(self) -> _Pool | None:
        """This decision is now the policy's: start its workers (if the router runs them)."""
        if self._workers is not None and self._pool is None and not self._closed:
            self._pool = self._workers.pool(self._text, self.query)
        return self._pool

    def close(self) -> None:
        """The policy was replaced: its workers end (those evaluating, once they answer)."""
        self._closed = True
        if self._pool is not None:
            self._pool.close()

    def _document(self, facts: CallFacts) -> bytes:
        return orjson.dumps(input_document(facts, with_time=not self.cacheable), option=orjson.OPT_SORT_KEYS)

    async def decide_within_budget(self, facts: CallFacts) -> str | None:
        """`decide`, evaluated in a worker process and given up (denied) when the budget ends."""
        pool = self._pool or self.activate()
        if pool is None or pool.closed:  # no workers here, or a call that began under the last policy
            return self.decide(facts)
        document = self._document(facts)
        if self.cacheable:
            cached = self._cache.get(document, False)
            if cached is not False:
                return cached  # type: ignore[return-value]
        try:
            reply = await pool.evaluate(document, self.budget)
        except TimeoutError:
            return self._failed(
                "timeout",
                f"rego decision {self.query} ran over its budget of {self.budget * 1000:g} ms and was stopped",
            )
        except RegoUnavailable as exc:
            return self._failed("error", f"rego decision {self.query} could not be evaluated: {exc}")
        if reply[:1] != b"=":
            why = reply[1:].decode(errors="replace")
            return self._failed("error", f"rego decision {self.query} could not be evaluated: {why}")
        return self._decided(document, orjson.loads(reply[1:]))

    def decide(self, facts: CallFacts) -> str | None:
        """The decision on the caller's thread (no workers): over budget is known only after."""
        document = self._document(facts)
        if self.cacheable:
            cached = self._cache.get(document, False)
            if cached is not False:
                return cached  # type: ignore[return-value]
        started = time.perf_counter()
        try:
            result = self._engine.evaluate_parsed(document.decode())
        except Exception as exc:
            return self._failed(
                "error", f"rego decision {self.query} could not be evaluated: {_message(exc, self._path)}"
            )
        took = time.perf_counter() - started
        if took > self.budget:
            return self._failed(
                "timeout",
                f"rego decision {self.query} took {took * 1000:.1f} ms, over its budget of {self.budget * 1000:g} ms",
            )
        return self._decided(document, result)

    def _decided(self, document: bytes, result: Any) -> str | None:
        if result is True:
            reason = None
        elif result is False:
            reason = f"denied by rego decision {self.query} (false)"
        elif result == "<undefined>":
            reason = f"denied by rego decision {self.query} (undefined)"
        else:
            reason = f"denied by rego decision {self.query} (gave {type(result).__name__}, not true)"
        if self.cacheable:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[document] = reason
        return reason

    def _failed(self, kind: str, reason: str) -> str:
        if self._on_failure is not None:
            self._on_failure(kind)
        return reason


def _module_text(source: str, module: str) -> str:
    """Inline source (it has a line break or begins with `package`) or a file's path."""
    if "\n" in module or module.lstrip().startswith("package"):
        return module
    try:
        return Path(module).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"policy {source}, field 'rego.module'", f"cannot read {module!r}: {exc.strerror}",
            "give the path of a .rego file or the module's source",
        ) from None  # fmt: skip


class RegoUnavailable(Exception):
    """No worker could be started for the module (the call is denied)."""


class _Worker:
    """One worker process, used by one evaluation at a time."""

    def __init__(self, process: Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        self.replies = BufferedByteReceiveStream(process.stdout)

    async def send(self, line: bytes) -> None:
        await self.stdin.send(line + b"\n")

    async def reply(self) -> bytes:
        """The next reply line. Cancelled while waiting, nothing read is lost: a later call
        still reads that reply whole."""
        return await self.replies.receive_until(b"\n", MAX_REPLY)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


class _Pool:
    """The workers of one module: at most `size` processes, each started in the background and
    handed out one evaluation at a time. A call whose budget ends is denied at once; its worker
    gets `grace` more to answer (under CPU pressure a worker may just not have been scheduled)
    and then goes back to the pool, or is killed and replaced: a runaway evaluation holds one
    worker for at most `grace`, and only `size` exist."""

    def __init__(
        self, text: str, query: str, size: int, start_timeout: float, grace: float, tg: TaskGroup
    ) -> None:
        self.text, self.query, self.size = text, query, size
        self.start_timeout, self.grace = start_timeout, grace
        self.closed = False
        self._tg = tg
        self._send, self._idle = anyio.create_memory_object_stream[_Worker](size)
        self._up = anyio.Event()  # the first worker answered: waits from here on are budgeted
        self._why: str | None = None
        self._live: set[_Worker] = set()
        for _ in range(size):
            tg.start_soon(self._spawn)

    async def evaluate(self, document: bytes, budget: float) -> bytes:
        if not self._up.is_set():  # the pool's start is not the decision's time
            with anyio.move_on_after(self.start_timeout):
                await self._up.wait()
            if not self._up.is_set():
                raise RegoUnavailable(self._why or "its worker process did not start in time")
        with anyio.fail_after(budget):
            worker = await self._idle.receive()
            try:
                await worker.send(document)
            except BaseException as exc:  # a line half written: this worker cannot be trusted
                self._retire(worker, replace=True)
                if isinstance(exc, Exception):
                    raise RegoUnavailable(f"its worker process failed ({type(exc).__name__})") from None
                raise
            try:
                reply = await worker.reply()
            except BaseException as exc:
                if isinstance(exc, Exception):  # the worker died
                    self._retire(worker, replace=True)
                    raise RegoUnavailable(f"its worker process failed ({type(exc).__name__})") from None
                self._tg.start_soon(self._wait_or_kill, worker)  # over budget (or the call ended)
                raise
        self._release(worker)
        return reply

    async def _wait_or_kill(self, worker: _Worker) -> None:
        """The call gave up on this worker's evaluation: take it back if it answers in time."""
        with anyio.move_on_after(self.grace):
            try:
                await worker.reply()  # the late answer, discarded
            except Exception:
                self._retire(worker, replace=True)
                return
            self._release(worker)
            return
        log.warning("rego evaluation still running past its budget; worker killed")
        self._retire(worker, replace=True)

    def _release(self, worker: _Worker) -> None:
        if self.closed:
            self._retire(worker, replace=False)
        else:
            self._send.send_nowait(worker)

    def close(self, *, busy_too: bool = False) -> list[Process]:
        """No more evaluations here: idle workers end now, busy ones when they answer (the policy
        was replaced) or now too (the router stops: their processes are returned, to be waited
        for)."""
        self.closed = True
        ended = [worker.process for worker in self._live] if busy_too else []
        if busy_too:
            for worker in list(self._live):
                self._retire(worker, replace=False)
        while True:
            try:
                worker = self._idle.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            ended.append(worker.process)
            self._retire(worker, replace=False)
        return ended

    def _retire(self, worker: _Worker, replace: bool) -> None:
        self._live.discard(worker)
        worker.kill()
        try:
            self._tg.start_soon(_reap, worker.process)
            if replace and not self.closed:
                self._tg.start_soon(self._spawn)
        except RuntimeError:  # the router is stopping: killed is enough
            pass

    async def _spawn(self) -> None:
        delay = 0.5
        while not self.closed:
            try:
                worker = await self._start()
            except (OSError, RegoUnavailable, TimeoutError, anyio.EndOfStream, anyio.IncompleteRead) as exc:
                self._why = f"its worker process did not start: {exc}"
                log.warning("rego worker did not start; retrying", extra={"reason": str(exc)})
                await anyio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if self.closed:
                self._retire(worker, replace=False)
                return
            self._send.send_nowait(worker)
            self._up.set()
            return

    async def _start(self) -> _Worker:
        process = await anyio.open_process(
            [sys.executable, "-m", "router.guard.rego_worker"], stderr=subprocess.DEVNULL
        )
        worker = _Worker(process)
        self._live.add(worker)
        try:
            with anyio.fail_after(self.start_timeout):
                await worker.send(orjson.dumps({"module": self.text, "query": self.query}))
                ready = await worker.reply()
        except BaseException:
            self._retire(worker, replace=False)
            raise
        if ready != b"+":
            self._retire(worker, replace=False)
            raise RegoUnavailable(ready[1:].decode(errors="replace"))
        return worker


async def _reap(process: Process) -> None:
    with anyio.CancelScope(shield=True):
        await process.aclose()


class RegoWorkers(Service):
    """The worker processes Rego decisions are evaluated in (see the module's docstring): the
    policy in force gets a pool when it is installed, the pool of the policy it replaced ends."""

    def __init__(self, size: int = 2, start_timeout: float = 30.0, grace: float = 1.0) -> None:
        self.size, self.start_timeout, self.grace = size, start_timeout, grace
        self._tg: TaskGroup | None = None
        self._pools: list[_Pool] = []

    def pool(self, text: str, query: str) -> _Pool | None:
        """A pool for this module, or None before the service runs (then the caller's thread)."""
        if self._tg is None:
            return None
        self._pools = [p for p in self._pools if not p.closed]
        pool = _Pool(text, query, self.size, self.start_timeout, self.grace, self._tg)
        self._pools.append(pool)
        return pool

    async def start(self, tg: TaskGroup) -> None:
        self._tg = tg

    async def stop(self) -> None:
        self._tg = None
        ended = [process for pool in self._pools for process in pool.close(busy_too=True)]
        with anyio.move_on_after(5):  # killed: reaped here, before the event loop goes away
            for process in ended:
                await process.aclose()
