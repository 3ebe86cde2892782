"""Bounded model work: `ModelGate` runs each model job in a worker thread, at most
`server_concurrency` at once and at most `server_queue_size` waiting (503 beyond), and
answers its result as JSON encoded in that thread too. A request that set `gate_times` (the
observer: `facer_cli.server.observe`) learns how long it waited for a slot and how long its model
work ran."""

from __future__ import annotations

import asyncio
import json
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import anyio
from starlette.responses import Response

from facer_cli.server.errors import ServerBusyError

T = TypeVar("T")


@dataclass
class GateTimes:
    """A request's time at the gate: waiting for a slot, and running in a worker thread."""

    wait_s: float = 0.0
    run_s: float = 0.0
    jobs: int = 0


# Set per request by the observer; model jobs add their times to it.
gate_times: ContextVar[GateTimes | None] = ContextVar("facer_gate_times", default=None)


class ModelGate:
    """At most `slots` model jobs at once, each in a worker thread; at most `queue_size`
    requests waiting for a slot, each for at most `timeout_s`; beyond: `ServerBusyError` (503)."""

    def __init__(self, slots: int, queue_size: int, timeout_s: float):
        self.slots = slots
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.running = 0
        self.waiting = 0
        self.refused = 0
        self._semaphore = asyncio.Semaphore(slots)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._semaphore.locked() and self.waiting >= self.queue_size:
            self.refused += 1
            raise ServerBusyError(
                f"busy: {self.running} request(s) running the models and {self.waiting} waiting "
                f"(server_concurrency {self.slots}, server_queue_size {self.queue_size}); retry shortly"
            )
        self.waiting += 1
        times = gate_times.get()
        queued = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._semaphore.acquire()
        except TimeoutError:
            self.refused += 1
            raise ServerBusyError(
                f"busy: no model slot came free within {self.timeout_s:g} s (server_queue_timeout_s); retry shortly"
            ) from None
        finally:
            self.waiting -= 1
            if times is not None:
                times.wait_s += time.perf_counter() - queued
        self.running += 1
        started = time.perf_counter()
        try:
            # Not abandoned on cancellation: the slot stays taken until the thread is done.
            return await anyio.to_thread.run_sync(fn, *args)
        finally:
            self.running -= 1
            self._semaphore.release()
            if times is not None:
                times.run_s += time.perf_counter() - started
                times.jobs += 1

    async def run_json(self, fn: Callable[[], dict], status_code: int = 200) -> Response:
        """`run(fn)` answered as JSON encoded in the worker thread too: the event loop, which reads
        every upload, does not also encode each 512-float template (FastAPI would check and encode
        the returned dict there first)."""
        body = await self.run(lambda: json_body(fn()))
        return JSONBody(body, status_code=status_code)

    def to_dict(self) -> dict:
        return {
            "slots": self.slots,
            "running": self.running,
            "waiting": self.waiting,
            "queue_size": self.queue_size,
            "refused": self.refused,
        }


def json_body(data: dict) -> bytes:
    """`data` as the bytes Starlette's JSONResponse sends."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


class JSONBody(Response):
    """A JSON answer already encoded (`ModelGate.run_json`)."""

    media_type = "application/json"
