"""A fleet of `facer serve` replicas on one PostgreSQL store, section by section.

    python benchmarks/bench_fleet.py [--only throughput,backends,enrollers,coldstart,bulk,lag] [--rounds 3]
                                     [--requests 40] [--enrollers 1,2,4,8] [--enrollments 6]
                                     [--sizes 100000,1000000] [--bulk 100000] [--trials 200]
                                     [--lag-gallery 10000]

Sections (`--only`, comma-separated; default: all, in this order):

- `throughput`: two `facer serve` replicas (`--concurrency 1`, one ONNX thread: one core each) on one
  PostgreSQL database against one replica alone, POST /identify with one photo, from a load generator
  that spreads its keep-alive connections over the replicas as a load balancer would (two per replica;
  requests prepared beforehand and sent on raw sockets: `bench_server.send_one`). Alternated rounds;
  requests/s, p50 and p99 per side. Beside it, in the same run, the machine's own ceiling for that
  ratio: two one-thread engine processes at once against one alone, without HTTP, a load generator or
  a database (`bench_speed.two_processes_at_once`, as `bench_speed.py --only 4`). Target ≥ 1.8×.
- `backends`: the same single-process verify and identify (`Facer` in this process, the models loaded
  once, each call opening its store as a command does) on PostgreSQL against SQLite, the same gallery
  on both, alternated; median ms per call. Target ≤ 1.2× SQLite's time. Then the same calls with each
  photo's engine report computed once and reused (`ReportsOnce`): the store's and the service's own
  time, which the models' 100-200 ms per photo (and a busy machine's noise) otherwise hide.
- `enrollers`: N processes (`--enrollers`) enrolling distinct users at once on one PostgreSQL database,
  `--enrollments` each, their clocks started together once every process has loaded its models:
  enrollments per second and failures (must be 0).
- `coldstart`: a replica's gallery index built from PostgreSQL (`--sizes` random templates, filled in
  one transaction; no sidecar there) against SQLite's, built without a sidecar and mapped from one;
  median of 3, templates per second and the resident memory it added.
- `bulk`: `--bulk` random templates written by the store's bulk insert (`insert_rows`, as `facer store
  copy` writes) in one transaction into PostgreSQL and into SQLite, the time at each tenth and the
  gallery counters after; then `facer store copy` of an SQLite store of as many into PostgreSQL.
- `lag`: enrolled on A, identified on B (a `Replica` of `facer serve`: pool, LISTEN, index), `--trials`
  times over a gallery of `--lag-gallery`: B's search issued as soon as A's enrollment returned, and
  how soon B's index is warm with no request at all (NOTIFY → refresh); p50, p99, max. Target: < 1 s.

PostgreSQL is a throwaway cluster (`tests/pg_cluster.py`) in a temporary folder, removed at the end.
The photos are the bundled ones and ../shared/faces/people where present, each enrolled as its own
user (photos the gates refuse are left out). Prints figures; asserts nothing about time. On a
machine with two cores the load generator and PostgreSQL share the cores with the replicas: the
ceiling beside the ratio says what these cores allow at most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import benchmark_photos, percentile, subprocess_env  # noqa: E402
from pg_cluster import Cluster  # noqa: E402

# One process enrolling distinct users: models loaded and every photo touched once, it prints "ready"
# and waits for a line on stdin (the clocks of all the processes start together), then enrolls and
# prints a JSON line: enrollments made, failures (type: message), seconds.
ENROLLER = r"""
import json, sys, time
from facer_cli.service import Facer
from facer_cli.settings import Settings
url, prefix, count, photos = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
facer = Facer(Settings.from_values({"db": url, "min_valid_frames": 1}))
for path in photos:
    facer.engine.analyze_path(path)
print("ready", flush=True)
sys.stdin.readline()
made, failures, started = 0, [], time.perf_counter()
for i in range(count):
    try:
        facer.enroll(f"{prefix}-{i}", [photos[i % len(photos)]], allow_lookalike=True)
        made += 1
    except Exception as exc:
        failures.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"made": made, "failures": failures, "wall": time.perf_counter() - started}), flush=True)
"""


def header(title: str) -> None:
    print(f"\n{title}  (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores)", flush=True)


class Fleet:
    """What the sections share: the PostgreSQL cluster, a scratch folder, the photos that enroll."""

    def __init__(self, folder: Path, args: argparse.Namespace):
        self.folder = folder
        self.args = args
        self.cluster = Cluster()
        self.cluster.start()
        self._usable: list[Path] | None = None

    def close(self) -> None:
        self.cluster.destroy()

    def database(self, name: str) -> str:
        return self.cluster.create_database(name)

    def engine(self):  # noqa: ANN201 - the engine's type loads onnxruntime
        from facer_cli.engine.face_engine import get_engine
        from facer_cli.settings import Settings

        return get_engine(Settings())

    def enroll_gallery(self, db: str) -> list[tuple[str, Path]]:
        """Every photo the gates accept, each as its own user in `db`: [(user, photo)]."""
        from facer_cli.errors import FacerError
        from facer_cli.service import Facer
        from facer_cli.settings import Settings

        facer = Facer(Settings.from_values({"db": db, "min_valid_frames": 1}), engine=self.engine())
        enrolled = []
        for i, photo in enumerate(self._usable if self._usable is not None else benchmark_photos()):
            name = f"user{i:03d}"
            try:
                facer.enroll(name, [photo], allow_lookalike=True)
            except FacerError:
                continue
            enrolled.append((name, photo))
        if self._usable is None:
            self._usable = [photo for _, photo in enrolled]
        return enrolled

    def usable(self) -> list[Path]:
        if self._usable is None:
            self.enroll_gallery(str(self.folder / "probe-photos.db"))
        assert self._usable is not None
        return self._usable


# -- throughput: two replicas against one ------------------------------------------------------------
async def spread_load(
    targets: list[tuple[str, int]], path: str, bodies: list[tuple[str, bytes]], requests: int, per_target: int
) -> tuple[list[float], dict, float]:
    """`requests` POSTs of `path`, `per_target` keep-alive connections to each target: (latencies ms,
    statuses, wall s)."""
    from bench_server import keep_alive_worker, request_queue, upload_request

    prepared = {
        target: [upload_request(target[0], target[1], path, name, data) for name, data in bodies] for target in targets
    }
    queue = request_queue(requests)
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    started = time.perf_counter()
    await asyncio.gather(
        *(
            keep_alive_worker(target, prepared[target], queue, latencies, statuses)
            for target in targets
            for _ in range(per_target)
        )
    )
    return latencies, statuses, time.perf_counter() - started


def section_throughput(fleet: Fleet) -> None:
    from bench_server import free_port, running_server
    from bench_speed import two_processes_at_once

    args = fleet.args
    header("throughput: two `facer serve` replicas on one PostgreSQL database against one alone, POST /identify")
    db = fleet.database("throughput")
    gallery = fleet.enroll_gallery(db)
    photos = [photo for _, photo in gallery]
    bodies = [(p.name, p.read_bytes()) for p in photos]
    env = dict(subprocess_env(), FACER_ONNX_THREADS="1")
    ports = [free_port(), free_port()]

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db", db,
                "--concurrency", "1", "--log-level", "warning"]  # fmt: skip

    targets = [("127.0.0.1", port) for port in ports]
    with (
        running_server(command(ports[0]), env, fleet.folder, ports[0]),
        running_server(command(ports[1]), env, fleet.folder, ports[1]),
    ):
        for target in targets:  # every photo through each replica once before any clock starts
            asyncio.run(spread_load([target], "/identify", bodies, len(bodies), 1))
        sides: dict[str, list] = {"one replica": [], "two replicas": []}
        rates: dict[str, list[float]] = {"one replica": [], "two replicas": []}
        for _ in range(args.rounds):
            for name, used in (("one replica", targets[:1]), ("two replicas", targets)):
                times, statuses, wall = asyncio.run(
                    spread_load(used, "/identify", bodies, args.requests * len(used), 2)
                )
                sides[name] += times
                rates[name].append(len(times) / wall)
                print(f"  {name:<13} {len(times) / wall:5.1f} requests/s  statuses {statuses}", flush=True)
    print(
        f"  {len(gallery)} users enrolled; {len(photos)} photos as probes; each replica one model slot, one ONNX thread"
    )
    for name, times in sides.items():
        print(
            f"  {name:<13} median {statistics.median(rates[name]):5.1f} requests/s over {args.rounds} rounds; "
            f"latency p50 {percentile(times, 50):.0f} ms, p99 {percentile(times, 99):.0f} ms ({len(times)} requests)"
        )
    ratios = [two / one for one, two in zip(rates["one replica"], rates["two replicas"], strict=True)]
    ratio = statistics.median(ratios)
    print(f"  two replicas / one: median {ratio:.2f}× ({min(ratios):.2f}–{max(ratios):.2f})  target ≥ 1.8×")
    ceilings = [two_processes_at_once(env, photos) for _ in range(args.rounds)]
    ceiling = statistics.median(ceilings)
    print(
        f"  the machine's ceiling: two one-thread engine processes at once do {ceiling:.2f}× one alone's photos/s "
        f"({min(ceilings):.2f}–{max(ceilings):.2f}; no HTTP, no database, no load generator); the fleet reaches "
        f"{ratio / ceiling:.0%} of it"
    )


# -- backends: PostgreSQL against SQLite in one process ---------------------------------------------
class ReportsOnce:
    """The engine, each photo analysed once: later calls get a copy of the first report (the photo is
    still read and decoded), so what is timed is the store's and the service's own work."""

    def __init__(self, engine: object):
        self.engine = engine
        self.reports: dict[tuple, object] = {}

    def analyze(self, image: object, source: str, **options: object) -> object:
        import copy

        key = (source, tuple(sorted(options.items())))
        if key not in self.reports:
            self.reports[key] = self.engine.analyze(image, source, **options)  # type: ignore[attr-defined]
        return copy.deepcopy(self.reports[key])

    def __getattr__(self, name: str) -> object:
        return getattr(self.engine, name)


def section_backends(fleet: Fleet) -> None:
    args = fleet.args
    header("backends: single-process verify and identify, PostgreSQL against SQLite (the same gallery)")
    dbs = {"SQLite": str(fleet.folder / "backends.db"), "PostgreSQL": fleet.database("backends")}
    fleet.usable()  # the same photos, so the same user names, on both
    galleries = {name: fleet.enroll_gallery(db) for name, db in dbs.items()}
    pairs = galleries["SQLite"]
    assert [u for u, _ in pairs] == [u for u, _ in galleries["PostgreSQL"]]
    engine = fleet.engine()
    print(f"  {len(pairs)} users; {args.requests} calls of each, alternated; median ms per call (p90):")
    print("  with the models:")
    time_backends(dbs, pairs, engine, args.requests)
    print("  the store and the service only (each photo's engine report reused):")
    time_backends(dbs, pairs, ReportsOnce(engine), args.requests)


def time_backends(dbs: dict[str, str], pairs: list[tuple[str, Path]], engine: object, requests: int) -> None:
    from facer_cli.service import Facer
    from facer_cli.settings import Settings

    facers = {
        name: Facer(Settings.from_values({"db": db, "min_valid_frames": 1}), engine=engine)  # type: ignore[arg-type]
        for name, db in dbs.items()
    }
    calls: dict[tuple[str, str], Callable[[str, Path], object]] = {}
    for name, facer in facers.items():
        calls[(name, "verify")] = lambda user, photo, facer=facer: facer.verify(user, [photo])
        calls[(name, "identify")] = lambda user, photo, facer=facer: facer.identify([photo])
    for call in calls.values():  # the gallery index built, every photo touched once
        for user, photo in pairs:
            call(user, photo)
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
    for i in range(requests):
        user, photo = pairs[i % len(pairs)]
        for key, call in calls.items():
            started = time.perf_counter()
            call(user, photo)
            samples[key].append((time.perf_counter() - started) * 1000)
    for op in ("verify", "identify"):
        sqlite, pg = (statistics.median(samples[(b, op)]) for b in ("SQLite", "PostgreSQL"))
        print(
            f"    {op:<9} SQLite {sqlite:6.1f} ms ({percentile(samples[('SQLite', op)], 90):.1f}), "
            f"PostgreSQL {pg:6.1f} ms ({percentile(samples[('PostgreSQL', op)], 90):.1f}): "
            f"{pg / sqlite:.2f}× ({pg - sqlite:+.1f} ms)  target ≤ 1.2×"
        )


# -- enrollers: N processes enrolling at once on PostgreSQL ---------------------------------------------
def section_enrollers(fleet: Fleet) -> None:
    args = fleet.args
    header(f"enrollers: N processes enrolling at once on one PostgreSQL database, {args.enrollments} each")
    photos = [str(p) for p in fleet.usable()]
    env = dict(subprocess_env(), FACER_ONNX_THREADS="1")
    for count in args.enrollers:
        db = fleet.database(f"enrollers_{count}")
        # The schema made once, as a fleet's first server does, before the processes race.
        from facer_cli.service import Facer
        from facer_cli.settings import Settings

        Facer(Settings.from_values({"db": db})).open_store().close()
        children = [
            subprocess.Popen(
                [sys.executable, "-c", ENROLLER, db, f"p{n}", str(args.enrollments), *photos],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for n in range(count)
        ]
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise SystemExit(f"an enrolling process failed (exit {child.wait()})")
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("\n")
            child.stdin.flush()
        results = [json.loads(child.stdout.readline()) for child in children if child.stdout is not None]
        wall = time.perf_counter() - started
        for child in children:
            child.wait()
        made = sum(r["made"] for r in results)
        failures = [f for r in results for f in r["failures"]]
        print(
            f"  {count} enroller(s): {made} enrollments in {wall:.2f} s = {made / wall:5.2f} per second; "
            f"failures {len(failures)}" + (f": {failures[:3]}" if failures else " (must be 0)"),
            flush=True,
        )


# -- coldstart and lag: a replica's gallery index from PostgreSQL -----------------------------------
BENCH_MODEL = "bench:fleet-0000"  # templates of no real model: these sections load none
DIMENSION = 512
PER_PERSON = 4


def random_templates(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIMENSION)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def fill_postgres(url: str, count: int, seed: int = 0) -> None:
    """`count` random templates of BENCH_MODEL, PER_PERSON a user, by binary COPY in one transaction
    (the triggers run: the gallery counter's, once per COPY since schema step m006)."""
    import psycopg

    from facer_cli.store.postgres.repository import PostgresStore

    PostgresStore(url).close()  # the schema
    users = max(1, count // PER_PERSON)
    with psycopg.connect(url) as conn:
        with conn.cursor().copy("COPY users (name, created, updated) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text"])
            for i in range(users):
                copy.write_row((f"u{i:07d}", "c", "c"))
        ids = [row[0] for row in conn.execute("SELECT id FROM users ORDER BY id").fetchall()]
        sql = "COPY templates (user_id, vector, dimension, model, created) FROM STDIN (FORMAT BINARY)"
        for start in range(0, count, 50_000):
            block = random_templates(min(50_000, count - start), seed + start)
            with conn.cursor().copy(sql) as copy:
                copy.set_types(["int8", "bytea", "int4", "text", "text"])
                for j, row in enumerate(block, start):
                    copy.write_row((ids[min(j // PER_PERSON, users - 1)], row.tobytes(), DIMENSION, BENCH_MODEL, "c"))
        conn.commit()


def fill_sqlite(path: Path, count: int, seed: int = 0) -> None:
    """The same templates in an SQLite store (the triggers run)."""
    import sqlite3

    from facer_cli.settings import Settings
    from facer_cli.store.contract import open_store

    open_store(Settings(db=str(path))).close()  # the schema
    users = max(1, count // PER_PERSON)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO users (id, name, created, updated) VALUES (?, ?, 'c', 'c')",
            ((i + 1, f"u{i:07d}") for i in range(users)),
        )
        for start in range(0, count, 20_000):
            block = random_templates(min(20_000, count - start), seed + start)
            conn.executemany(
                "INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (?, ?, ?, ?, 'c')",
                (
                    (min(j // PER_PERSON, users - 1) + 1, row.tobytes(), DIMENSION, BENCH_MODEL)
                    for j, row in enumerate(block, start)
                ),
            )


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def section_coldstart(fleet: Fleet) -> None:
    """A replica's cold start: its gallery index built from the store (PostgreSQL keeps no sidecar),
    beside SQLite's (built without a sidecar, and mapped from one)."""
    from facer_cli.gallery import GalleryIndex
    from facer_cli.store.postgres.gallery import PostgresGallerySource

    header("coldstart: a replica's gallery index from the store, median of 3")
    for count in fleet.args.sizes:
        started = time.perf_counter()
        url = fleet.database(f"cold_{count}")
        fill_postgres(url, count)
        filled = time.perf_counter()
        path = fleet.folder / f"cold_{count}.db"
        fill_sqlite(path, count)
        print(
            f"  {count:>9,} templates: filled PostgreSQL in {filled - started:.1f} s (one transaction), "
            f"SQLite in {time.perf_counter() - filled:.1f} s",
            flush=True,
        )

        def opened(store: Any, sidecars: str | None = None) -> tuple[float, int, float]:
            if sidecars is not None:
                for sidecar in fleet.folder.glob(sidecars):
                    sidecar.unlink()
            before = rss_mb()
            clock = time.perf_counter()
            with GalleryIndex.open(store() if callable(store) else store, BENCH_MODEL) as index:
                took, size, grown = time.perf_counter() - clock, len(index), rss_mb() - before
            return took, size, grown

        ways: list[tuple[str, Any, str | None]] = [
            ("PostgreSQL, built from the store", partial(PostgresGallerySource, url), None),
            ("SQLite, built (no sidecar)", path, f"{path.name}.gallery-*"),
            ("SQLite, sidecar mapped", path, None),
        ]
        for label, store, sidecars in ways:
            runs = [opened(store, sidecars) for _ in range(3)]
            took = statistics.median(r[0] for r in runs)
            size, grown = runs[-1][1], max(r[2] for r in runs)
            print(
                f"    {label:<34} {took:7.2f} s  ({size:,} templates, {size / took:,.0f} per second; "
                f"resident memory +{grown:.0f} MiB while open)",
                flush=True,
            )


def section_bulk(fleet: Fleet) -> None:
    """A bulk write into PostgreSQL (`facer store copy`'s): `--bulk` random templates, PER_PERSON a
    user, inserted through the store's `insert_rows` in one transaction, BATCH_ROWS rows a call as a
    copy makes them; then the whole `facer store copy` of an SQLite store of as many templates into
    an empty database. SQLite's `insert_rows` of the same rows beside the first."""
    from facer_cli.service.store_copy import copy_store
    from facer_cli.store import Store
    from facer_cli.store.bulk import BATCH_ROWS
    from facer_cli.store.postgres.repository import PostgresStore

    count = fleet.args.bulk
    header(f"bulk: {count:,} templates into a store in one transaction, {BATCH_ROWS} rows a call")
    users = max(1, count // PER_PERSON)
    vectors = random_templates(count, seed=3)

    def template_rows(user_ids: list[int], start: int, stop: int) -> list[dict[str, Any]]:
        return [
            {"user_id": user_ids[min(j // PER_PERSON, users - 1)], "vector": vectors[j].tobytes(),
             "dimension": DIMENSION, "model": BENCH_MODEL, "frames_seen": 1, "frames_used": 1, "outliers": 0,
             "mean_quality": 0.5, "source": "bench", "created": "c", "model_unverified": False}
            for j in range(start, stop)
        ]  # fmt: skip

    stores = [
        ("PostgreSQL", lambda: PostgresStore(fleet.database("bulk"))),
        ("SQLite", lambda: Store(fleet.folder / "bulk.db")),
    ]
    for label, opened in stores:
        with opened() as store:
            started = time.perf_counter()
            with store.exclusive_transaction("bench"):
                user_ids: list[int] = []
                for start in range(0, users, BATCH_ROWS):
                    names = range(start, min(users, start + BATCH_ROWS))
                    user_ids += store.insert_rows(
                        "users", [{"name": f"u{i:07d}", "created": "c", "updated": "c"} for i in names]
                    )
                clock, marks = time.perf_counter(), []
                for start in range(0, count, BATCH_ROWS):
                    store.insert_rows("templates", template_rows(user_ids, start, min(count, start + BATCH_ROWS)))
                    if (start + BATCH_ROWS) % max(BATCH_ROWS, count // 10) == 0:
                        marks.append(f"{start + BATCH_ROWS:,} {time.perf_counter() - clock:.1f} s")
            took = time.perf_counter() - started
            counted = store.conn.execute("SELECT inserts, deletes, high_water, reused FROM gallery_version").fetchone()
            print(
                f"  {label:<10} insert_rows: {took:7.1f} s, {users:,} users and {count:,} templates, committed "
                f"({count / took:,.0f} templates per second); gallery counters (inserts, deletes, high water, "
                f"reused) {tuple(counted)}",
                flush=True,
            )
            print(f"             templates done at: {', '.join(marks)}", flush=True)
    path = fleet.folder / "bulk-source.db"
    fill_sqlite(path, count, seed=3)
    url = fleet.database("bulk_copy")
    started = time.perf_counter()
    result = copy_store(path, url)
    took = time.perf_counter() - started
    copied = {table.table: table.copied for table in result.tables}
    print(
        f"  facer store copy, SQLite → PostgreSQL: {took:7.1f} s for {count:,} templates ({count / took:,.0f} per "
        f"second; copied {copied['templates']:,}, verified {result.verified})",
        flush=True,
    )


class StubEngine:
    """What a replica's gallery needs of an engine: the model's fingerprint."""

    fingerprint = BENCH_MODEL


def section_lag(fleet: Fleet) -> None:
    """Enrolled on A (a store of this process) → identified on B (a replica: pool, listener, index),
    `--trials` times over a gallery of `--lag-gallery` templates: B's first search after A's enrollment
    returned (the stamp is read before it), and, without any search, how soon B's listener has
    brought its index up to date (NOTIFY → refresh)."""
    from facer_cli.server.replica import Replica
    from facer_cli.service import Facer
    from facer_cli.settings import Settings
    from facer_cli.store.postgres.repository import PostgresStore

    trials, size = fleet.args.trials, fleet.args.lag_gallery
    header(f"lag: enrolled on A, identified on B ({trials} trials each, gallery {size:,} templates)")
    url = fleet.database("lag")
    fill_postgres(url, size, seed=7)
    facer_b = Facer(Settings.from_values({"db": url}), engine=StubEngine())  # type: ignore[arg-type]
    replica = Replica.start(facer_b)
    try:
        index = facer_b.gallery_index()
        assert replica.listener is not None
        deadline = time.monotonic() + 10
        while not replica.listener.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        probes = random_templates(2 * trials, seed=99)
        searched, warmed, missed = [], [], 0
        with PostgresStore(url) as store_a:
            for trial in range(trials):
                name = f"lag-s{trial}"
                store_a.import_vector(name, probes[trial], model=BENCH_MODEL, source="bench")
                returned = time.perf_counter()
                found = index.search(probes[trial], top_k=1)
                searched.append((time.perf_counter() - returned) * 1000)
                missed += not (found and found[0].name == name)
            for trial in range(trials, 2 * trials):
                before = len(index)
                store_a.import_vector(f"lag-w{trial}", probes[trial], model=BENCH_MODEL, source="bench")
                returned = time.perf_counter()
                while len(index) == before and time.perf_counter() - returned < 5:
                    time.sleep(0.0005)
                warmed.append((time.perf_counter() - returned) * 1000)
        for label, values in (
            ("identified on B, searching at once", searched),
            ("B's index warm without a request", warmed),
        ):
            print(
                f"  {label:<36} p50 {percentile(values, 50):7.1f} ms   p99 {percentile(values, 99):7.1f} ms   "
                f"max {max(values):7.1f} ms",
                flush=True,
            )
        print(f"  searches that did not name the person just enrolled: {missed} (must be 0)", flush=True)
    finally:
        replica.close()


SECTIONS: dict[str, Callable[[Fleet], None]] = {
    "throughput": section_throughput,
    "backends": section_backends,
    "enrollers": section_enrollers,
    "coldstart": section_coldstart,
    "bulk": section_bulk,
    "lag": section_lag,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (throughput)")
    parser.add_argument("--requests", type=int, default=40, help="requests per replica per round; calls per backend")
    parser.add_argument("--enrollers", default="1,2,4,8", help="process counts for the enrollers section")
    parser.add_argument("--enrollments", type=int, default=6, help="enrollments per enrolling process")
    parser.add_argument(
        "--sizes", default="100000", help="gallery sizes for the coldstart section (1000000 fits 24 GiB)"
    )
    parser.add_argument("--bulk", type=int, default=100_000, help="templates the bulk section writes")
    parser.add_argument("--trials", type=int, default=200, help="enrollments timed by the lag section, each way")
    parser.add_argument(
        "--lag-gallery", type=int, default=10_000, help="templates already in the lag section's gallery"
    )
    args = parser.parse_args()
    args.enrollers = [int(n) for n in args.enrollers.split(",")]
    args.sizes = [int(n) for n in args.sizes.split(",")]
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    with tempfile.TemporaryDirectory(prefix="facer-fleet-") as folder:
        fleet = Fleet(Path(folder), args)
        try:
            for name in chosen:
                SECTIONS[name](fleet)
        finally:
            fleet.close()


if __name__ == "__main__":
    main()
