"""Replicas of `facer serve` on one PostgreSQL store: in step with each other, and soft when the
database fails.

* an enrollment on one replica is identified on another, and after a removal on one has returned,
  no replica names that person again (the stamp is read before every search; LISTEN/NOTIFY warms
  the index before the next request);
* GET /ready (store reachable, models loaded, index caught up) beside GET /health, both without
  the API key; the server's store connections come from a pool closed on shutdown;
* PostgreSQL stopped, restarted, or a backend terminated under load: every answer is a 200 or a 503
  with Retry-After within the request deadline, never a 500 or a hang, and the server recovers by
  itself; a connection killed in the middle of an enrollment leaves nothing half-written.

Servers run in threads (uvicorn on a real socket) over the fake engine, except the test of two
real `facer serve` processes, which loads the real models; PostgreSQL is a real throwaway server
(tests/pg_cluster.py).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("psycopg")
httpx = pytest.importorskip("httpx")

from pg_cluster import free_port, wait_until_up  # noqa: E402
from store_backends import new_cluster  # noqa: E402

from facer_cli.errors import StoreUnavailableError  # noqa: E402
from facer_cli.settings import Settings  # noqa: E402

KEY = "fleet-test-key-0123456789"


def picture(seed: int) -> bytes:
    """A picture the fake engine sees one face in; another seed is another person."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), (192, 192), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".png", image)[1].tobytes()


def files(data: bytes, name: str = "face.png") -> list:
    return [("files", (name, data, "image/png"))]


@contextmanager
def serving(engine: Any, db: str, **values: Any) -> Iterator[tuple[httpx.Client, Any]]:
    """`facer serve`'s app on a real socket, in a thread: (a client with the API key, the app)."""
    import uvicorn

    from facer_cli.server import create_app

    settings = Settings.from_values({"db": db, "min_valid_frames": 1, "api_key": KEY, **values})
    app = create_app(settings, engine=engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=30) as client:
            yield client, app
    finally:
        server.should_exit = True
        thread.join(30)


def replica_of(app: Any) -> Any:
    return app.state.facer.replica


def wait_for(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# -- errors -------------------------------------------------------------------------------
def test_a_store_unavailable_is_503_with_retry_after_and_the_stores_exit_code():
    from facer_cli.cli.errors import ERROR_EXIT
    from facer_cli.errors import StoreError, resolve
    from facer_cli.server.errors import response_for

    response = response_for(StoreUnavailableError("cannot reach the PostgreSQL server of {db}", "x"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert b"the database" in response.body and b"x" not in response.body.replace(b"cannot", b"")
    assert issubclass(StoreUnavailableError, StoreError)
    assert resolve(ERROR_EXIT, StoreUnavailableError) == resolve(ERROR_EXIT, StoreError) == 6


# -- /ready, /health, the pool -------------------------------------------------------------
@pytest.mark.slow
def test_ready_and_health_need_no_key_and_say_what_was_checked(fake_engine, postgres_url):
    with serving(fake_engine, postgres_url) as (client, app):
        plain = httpx.Client(base_url=str(client.base_url), timeout=10)
        ready = plain.get("/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready" and body["backend"] == "postgresql"
        assert body["checks"] == {
            "models": "loaded",
            "store": "reachable",
            "gallery": {"templates": 0, "caught_up": True},
        }
        assert body["pool"]["size"] == app.state.facer.settings.server_concurrency + 4
        assert wait_for(lambda: plain.get("/ready").json()["listening"])
        assert plain.get("/health").status_code == 200
        assert plain.get("/users").status_code == 401
        replica = replica_of(app)
        plain.close()
    assert replica.pool.pool.closed and replica.listener._thread is None


def test_ready_on_sqlite(client_for, fake_engine):
    ready = client_for().get("/ready")
    assert ready.status_code == 200 and ready.json()["backend"] == "sqlite", ready.text


@pytest.mark.slow
def test_the_pool_is_what_every_request_borrows_from(fake_engine, postgres_url):
    with serving(fake_engine, postgres_url, server_concurrency=1) as (client, app):
        pool = replica_of(app).pool
        for seed in range(3):
            assert client.post(f"/users/p{seed}/enroll", files=files(picture(seed))).status_code == 201
        for _ in range(10):
            assert client.get("/users").status_code == 200
        stats = pool.pool.get_stats()
        assert stats["pool_size"] <= 5 and stats.get("connections_num", 0) <= 5, stats


# -- replicas in step ----------------------------------------------------------------------
@pytest.mark.slow
def test_two_replicas_identify_each_others_enrollments_and_never_a_removed_person(fake_engine, postgres_url):
    rng = random.Random(1207)
    with serving(fake_engine, postgres_url) as (a, app_a), serving(fake_engine, postgres_url) as (b, app_b):
        index_b = app_b.state.facer.facer.gallery_index()
        people = {f"person_{i}": picture(1000 + i) for i in range(8)}
        for name, data in people.items():
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            assert first.post(f"/users/{name}/enroll", files=files(data)).status_code == 201
            found = second.post("/identify", files=files(data)).json()
            assert found["decision"] == "identified" and found["user"] == name, found
        # The listener brings B's index up to date without a request of its own.
        assert a.post("/users/late/enroll", files=files(picture(77))).status_code == 201
        assert wait_for(lambda: len(index_b) == len(people) + 1), len(index_b)
        assert replica_of(app_b).listener.notifications > 0
        names = list(people)
        rng.shuffle(names)
        for name in names:
            remover, other = (a, b) if rng.random() < 0.5 else (b, a)
            assert remover.delete(f"/users/{name}").status_code == 200
            for server in (other, remover):
                found = server.post("/identify", files=files(people[name])).json()
                assert not (found["decision"] == "identified" and found["user"] == name), found
                assert name not in [c["user"] for c in found["candidates"]], found


@pytest.mark.slow
def test_two_real_facer_serve_processes_on_one_postgres(postgres_url, faces, tmp_path):
    """Real models, two processes: enrolled on A → identified on B; removed on B → never named on A."""
    from helpers import people

    photos = people(faces)
    rng = random.Random(20261207)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    env["FACER_API_KEY"] = KEY
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "facer_cli",
                "serve",
                "--port",
                str(port),
                "--db",
                postgres_url,
                "--log-level",
                "warning",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port in ports
    ]
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", headers={"X-API-Key": KEY}, timeout=60) for p in ports]
    try:
        for client, process in zip(clients, processes, strict=True):
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "no /ready within 120 s"
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        a, b = clients

        def upload(paths):
            return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]

        obama, kit = photos["obama"], photos["kit_harington"]
        assert a.post("/users/obama/enroll", files=upload(obama[:3])).status_code == 201
        found = b.post("/identify", files=upload(obama[3:4])).json()
        assert found["decision"] == "identified" and found["user"] == "obama", found
        assert b.post("/users/kit_harington/enroll", files=upload(kit)).status_code == 201
        found = a.post("/identify", files=upload([rng.choice(kit)])).json()
        assert found["decision"] == "identified" and found["user"] == "kit_harington", found
        assert b.delete("/users/obama").status_code == 200
        for shot in rng.sample(obama, len(obama)):
            found = a.post("/identify", files=upload([shot])).json()
            assert found["user"] != "obama" and "obama" not in [c["user"] for c in found["candidates"]], found
    finally:
        for client in clients:
            client.close()
        for process in processes:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


# -- faults ---------------------------------------------------------------------------------
def backends(url: str, where: str = "application_name = 'facer'") -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(f"SELECT pid FROM pg_stat_activity WHERE {where}").fetchall()]


@pytest.mark.slow
def test_a_connection_killed_in_the_middle_of_an_enrollment_leaves_nothing_half_written(fake_engine, postgres_url):
    import psycopg

    with serving(fake_engine, postgres_url) as (client, _app):
        assert client.post("/users/before/enroll", files=files(picture(1))).status_code == 201
        with psycopg.connect(postgres_url) as blocker:  # holds the samples table: the enrollment waits there
            blocker.execute("LOCK TABLE samples IN ACCESS EXCLUSIVE MODE")
            answer: dict[str, Any] = {}
            thread = threading.Thread(
                target=lambda: answer.update(r=client.post("/users/half/enroll", files=files(picture(2)))), daemon=True
            )
            thread.start()
            waiting: list[int] = []
            assert wait_for(
                lambda: bool(
                    waiting.extend(backends(postgres_url, "wait_event_type = 'Lock' AND application_name = 'facer'"))
                    or waiting
                )
            ), "the enrollment never reached the samples"
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (waiting[0],))
            blocker.rollback()
            thread.join(30)
        response = answer["r"]
        assert response.status_code == 503 and response.headers["Retry-After"] == "1", response.text
        assert response.json()["error"]["type"] == "StoreUnavailableError"
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM users WHERE name = 'half'").fetchone() == (1 - 1,)
            assert conn.execute(
                "SELECT count(*) FROM templates t LEFT JOIN users u ON u.id = t.user_id WHERE u.id IS NULL"
            ).fetchone() == (0,)
            assert conn.execute(
                "SELECT count(*) FROM samples s LEFT JOIN templates t ON t.id = s.template_id WHERE t.id IS NULL"
            ).fetchone() == (0,)
        again = client.post("/users/half/enroll", files=files(picture(2)))  # the pool replaced the connection
        assert again.status_code == 201, again.text


# Runs pg_ctl for the test from a process started before the load: a fork in this process while a
# worker thread is inside a BLAS call (the fake engine's projection) can hang that call for good
# (OpenBLAS shuts its threads down in a fork handler), which would be the harness's hang, not facer's.
CONTROLLER = r"""
import json, subprocess, sys
for line in sys.stdin:
    done = subprocess.run(**json.loads(line), capture_output=True, text=True, timeout=120)
    print(json.dumps(done.returncode), flush=True)
"""


class PgCtl:
    """`pg_ctl stop|start` of a `Cluster`, run by a helper process."""

    def __init__(self, cluster: Any):
        self.cluster = cluster
        self.process = subprocess.Popen(
            [sys.executable, "-c", CONTROLLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def _run(self, *args: str) -> None:
        import json

        cluster = self.cluster
        call: dict[str, Any] = {
            "args": [str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), *args],
            "cwd": str(cluster.folder),
        }
        if cluster.owner is not None:
            call.update(user=cluster.owner.pw_uid, group=cluster.owner.pw_gid, extra_groups=[])
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(call) + "\n")
        self.process.stdin.flush()
        self.process.stdout.readline()

    def stop(self) -> None:
        self._run("-m", "fast", "-w", "-t", "60", "stop")

    def start(self) -> None:
        self._run("-l", str(self.cluster.folder / "server.log"), "-w", "-t", "60", "start")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)


@pytest.mark.slow
def test_postgres_stopped_restarted_and_backends_killed_under_load(fake_engine):
    """A few threads send requests in a bounded loop while PostgreSQL is stopped, started, restarted
    and its facer backends terminated: each answer is a 200 or a 503 with Retry-After, within the
    request deadline; afterwards the server answers by itself."""
    cluster = new_cluster()
    try:
        cluster.start()
        url = cluster.create_database("fleet_faults")
        deadline_s = 5.0  # server_body_timeout_s: statement_timeout 5 s, connect_timeout 1 s
        with serving(fake_engine, url, server_body_timeout_s=deadline_s) as (client, _app):
            assert client.post("/users/known/enroll", files=files(picture(5))).status_code == 201
            pg_ctl = PgCtl(cluster)
            seen: list[tuple[str, int, str | None, float]] = []
            stop = threading.Event()

            def load(kind: str) -> None:
                with httpx.Client(base_url=str(client.base_url), headers={"X-API-Key": KEY}, timeout=30) as http:
                    while not stop.is_set():
                        started = time.monotonic()
                        try:
                            if kind == "identify":
                                r = http.post("/identify", files=files(picture(5)))
                            elif kind == "users":
                                r = http.get("/users")
                            else:
                                r = http.get("/ready")
                        except httpx.TransportError as exc:  # a hang or a dropped connection: a failure
                            seen.append((kind, 0, type(exc).__name__, time.monotonic() - started))
                            continue
                        seen.append((kind, r.status_code, r.headers.get("Retry-After"), time.monotonic() - started))
                        time.sleep(0.01)

            threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in ("identify", "users", "ready")]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            pg_ctl.stop()
            time.sleep(3.0)
            down = len(seen)
            pg_ctl.start()
            wait_until_up(url)
            time.sleep(1.0)
            pg_ctl.stop()  # a restart
            pg_ctl.start()
            wait_until_up(url)
            time.sleep(1.0)
            with __import__("psycopg").connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'facer'")
            recovered = wait_for(lambda: client.get("/ready").status_code == 200, 30)
            time.sleep(1.0)
            stop.set()
            for thread in threads:
                thread.join(60)
            pg_ctl.close()
            assert recovered, "the server did not recover by itself"
            statuses = {status for _, status, _, _ in seen}
            assert statuses <= {200, 503}, [s for s in seen if s[1] not in (200, 503)][:5]
            assert 503 in statuses and down > 0
            assert all(after == "1" for _, status, after, _ in seen if status == 503)
            slowest = max(elapsed for *_, elapsed in seen)
            assert slowest < deadline_s + 3, slowest
            found = client.post("/identify", files=files(picture(5))).json()
            assert found["decision"] == "identified" and found["user"] == "known", found
            # Each kind answered 200 again at the end of the loop.
            for kind in ("identify", "users", "ready"):
                assert [s for k, s, _, _ in seen if k == kind][-1] == 200, kind
    finally:
        cluster.destroy()
