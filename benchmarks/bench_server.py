"""`facer serve` under a bounded load on loopback, against the CLI's per-image time.

    python benchmarks/bench_server.py [--requests 300] [--parallel 8] [--concurrency 2] [--time-limit 180]

Starts `facer serve` as a subprocess on 127.0.0.1 (a free port, a temporary
database), waits for /health, then sends `--requests` POST /token/generate
requests, one image each, `--parallel` keep-alive connections at a time (requests
built beforehand and sent on raw sockets, so the load generator costs the shared
cores little), cycling over the bundled photos (and ../shared/faces/people when
present). Prints errors, throughput and
p50/p90/p99 latency, then the same images through the CLI's path:
(a) in process, `engine.analyze_path` per image (what `facer inspect` does per
file once the models are loaded), and (b) one `facer inspect --json IMAGE`
process per image (models loaded every time). Ratios at the end; asserts
nothing about time. Loopback only, bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from facer_cli.engine.face_engine import get_engine
from facer_cli.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_photos, percentile  # noqa: E402

benchmark_images = benchmark_photos


@contextmanager
def running_server(command: list[str], env: dict, cwd: str | Path, port: int) -> Iterator[tuple[str, dict, float]]:
    """A `facer serve` process: (base URL, its /health answer, seconds until it answered); stopped after."""
    server = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started, health = time.monotonic(), None
        while time.monotonic() - started < 90 and server.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        if health is None:
            server.kill()
            raise SystemExit(f"the server did not answer /health:\n{server.communicate()[0]}")
        yield base, health, time.monotonic() - started
    finally:
        server.terminate()
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_in_process(images: list[Path], rounds: int) -> float:
    """Milliseconds per image through `engine.analyze_path` (decode + analyse), models loaded once."""
    engine = get_engine(Settings.from_values({}))
    for path in images:  # first touch of each file out of the timing
        engine.analyze_path(path)
    started = time.perf_counter()
    for _ in range(rounds):
        for path in images:
            engine.analyze_path(path)
    return (time.perf_counter() - started) / (rounds * len(images)) * 1000


def cli_per_process(images: list[Path], count: int, env: dict) -> float:
    """Milliseconds per `facer inspect --json IMAGE` process (start, load models, analyse, exit)."""
    started = time.perf_counter()
    for path in images[:count]:
        subprocess.run([sys.executable, "-m", "facer_cli", "inspect", "--json", str(path)], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return (time.perf_counter() - started) / min(count, len(images)) * 1000


BOUNDARY = "facer-bench-boundary-7f3a"


def upload_request(host: str, port: int, path: str, name: str, data: bytes) -> bytes:
    """One whole HTTP/1.1 request: POST `path` with `data` as the multipart file part `files`."""
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    body = head + data + f"\r\n--{BOUNDARY}--\r\n".encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def send_one(streams, request: bytes) -> tuple[int, bool]:
    """Write one prepared request and read its answer: (status, whether the connection stays open)."""
    reader, writer = streams
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    fields = {k.strip().lower(): v.strip().lower() for k, v in fields.items()}
    await reader.readexactly(int(fields.get("content-length", "0")))
    return status, fields.get("connection") != "close"


async def load_run(base: str, bodies: list[tuple[str, bytes]], requests: int, parallel: int, time_limit: float):
    """`requests` POST /token/generate, `parallel` keep-alive connections at a time: (latencies ms,
    statuses, wall s). The requests are built before the clock starts and sent on raw sockets (the
    way wrk does): on a 2-core machine the load generator shares the cores with the server, and an
    HTTP client library's own work per request (multipart encoding, header objects, JSON) would be
    counted against the server."""
    host, port = base.removeprefix("http://").split(":")
    prepared = [upload_request(host, int(port), "/token/generate", name, data) for name, data in bodies]
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    deadline = time.monotonic() + time_limit
    queue = request_queue(requests)
    started = time.perf_counter()
    await asyncio.gather(
        *(keep_alive_worker((host, int(port)), prepared, queue, latencies, statuses, deadline) for _ in range(parallel))
    )
    return latencies, statuses, time.perf_counter() - started


def request_queue(requests: int) -> asyncio.Queue[int]:
    """The numbers of the requests to send, taken by the workers in turn."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    return queue


async def keep_alive_worker(
    target: tuple[str, int],
    prepared: list[bytes],
    queue: asyncio.Queue[int],
    latencies: list[float],
    statuses: dict[int | str, int],
    deadline: float = float("inf"),
) -> None:
    """Take request numbers from `queue` and send request i % len(prepared) on one keep-alive
    connection to `target` (a new one after the server closes it), until the queue is empty or the
    `deadline` (time.monotonic()) passes; each latency in ms and each status (or error) counted."""
    streams = None
    while time.monotonic() < deadline:
        try:
            i = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        started = time.perf_counter()
        try:
            if streams is None:
                streams = await asyncio.open_connection(*target)
            key, keep = await asyncio.wait_for(send_one(streams, prepared[i % len(prepared)]), 120)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            key, keep = type(exc).__name__, False
        latencies.append((time.perf_counter() - started) * 1000)
        statuses[key] = statuses.get(key, 0) + 1
        if not keep and streams is not None:
            streams[1].close()
            streams = None
    if streams is not None:
        streams[1].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=None, help="server_concurrency (default: the setting's)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="stop sending after this many seconds")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over the images for the in-process CLI time")
    parser.add_argument("--processes", type=int, default=3, help="`facer inspect` processes to time")
    args = parser.parse_args()

    images = benchmark_images()
    bodies = [(p.name, p.read_bytes()) for p in images]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_") or k == "FACER_TEST_FACES"}
    print(f"{len(images)} images; {os.cpu_count()} CPU core(s)")

    # The in-process time is taken before and after the load run (the machine's load may change).
    in_process_before = cli_in_process(images, args.rounds)
    per_process_ms = cli_per_process(images, args.processes, env)

    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db", str(Path(folder) / "bench.db"),
                   "--log-level", "warning"]
        if args.concurrency:
            command += ["--concurrency", str(args.concurrency)]
        with running_server(command, env, folder, port) as (base, health, ready_s):
            slots = health["models"]["slots"]
            print(f"server ready in {ready_s:.1f} s (process start + model load): {health['fingerprint']} on "
                  f"{health['provider']}, {slots} model slot(s)")
            latencies, statuses, wall = asyncio.run(
                load_run(base, bodies, args.requests, args.parallel, args.time_limit)
            )
            refused = httpx.get(f"{base}/health", timeout=5).json()["models"]["refused"]

    in_process_after = cli_in_process(images, args.rounds)
    in_process_ms = (in_process_before + in_process_after) / 2
    done = len(latencies)
    errors = sum(n for key, n in statuses.items() if key != 200)
    per_request_ms = wall / done * 1000
    p50, p90, p99 = (percentile(latencies, q) for q in (50, 90, 99))
    print()
    print(f"POST /token/generate, one image each: {done} of {args.requests} requests, {args.parallel} at a time, "
          f"{wall:.1f} s")
    print(f"  statuses: {dict(sorted(statuses.items(), key=str))}; errors: {errors}; refused by the queue: {refused}")
    print(f"  throughput: {done / wall:.1f} requests/s ({per_request_ms:.1f} ms of wall time per request)")
    print(f"  latency ms: p50 {p50:.1f}, p90 {p90:.1f}, p99 {p99:.1f}, max {max(latencies):.1f}, mean {statistics.mean(latencies):.1f}")
    print()
    print("CLI path, same images:")
    print(f"  in process (engine.analyze_path, models loaded once): {in_process_ms:.1f} ms per image "
          f"(before the load run {in_process_before:.1f}, after {in_process_after:.1f})")
    print(f"  one `facer inspect --json IMAGE` process per image:   {per_process_ms:.0f} ms per image")
    print()
    print("ratios:")
    print(f"  server wall time per request / in-process per image: {per_request_ms / in_process_ms:.2f}x")
    print(f"  server p50 latency / in-process per image:           {p50 / in_process_ms:.2f}x "
          f"({args.parallel} requests in flight on {slots} slot(s))")
    print(f"  `facer inspect` process per image / server per request: {per_process_ms / per_request_ms:.0f}x")


if __name__ == "__main__":
    main()
