"""The same face enrolled under two names at the same moment: exactly one is stored, the other refused
as a look-alike (exit 7), every time, on both backends — the look-alike search and the insert are one
transaction under the store's lock on the model's enrollments (`StoreContract.lock_enrollments`).

Two threads of one process (as `facer serve` runs requests) on SQLite and PostgreSQL, and two
processes on one SQLite file, start each round together at a barrier; a fixed seed jitters who starts
first. `--allow-lookalike` still lets both in."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, photo

from facer_cli.cli.errors import exit_code_for
from facer_cli.errors import LookalikeError
from facer_cli.service import Facer
from facer_cli.settings import Settings
from facer_cli.store import Store

ROUNDS = 10
SEED = 20261207
NAMES = ("ann", "bea")


def obama_photos(faces: Path) -> list[Path]:
    return [photo(faces, f"obama_{i}") for i in (1, 2, 3)]


def race(facer: Facer, frames: Any, rng: random.Random, allow_lookalike: bool = False) -> dict[str, str]:
    """Both names enrolled from the same frames by two threads released together: name -> "stored",
    "lookalike" (with exit code 7) or the unexpected error."""
    barrier = threading.Barrier(2)
    delays = [rng.uniform(0, 0.004) for _ in NAMES]
    outcome: dict[str, str] = {}

    def enroll(name: str, delay: float) -> None:
        barrier.wait()
        threading.Event().wait(delay)
        try:
            facer.enroll(name, frames, allow_lookalike=allow_lookalike)
            outcome[name] = "stored"
        except LookalikeError as error:
            outcome[name] = f"lookalike {exit_code_for(error)}"
        except Exception as error:  # noqa: BLE001  (reported by the assertion)
            outcome[name] = repr(error)

    threads = [threading.Thread(target=enroll, args=(name, delay)) for name, delay in zip(NAMES, delays, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcome


@pytest.mark.slow
def test_two_threads_enrolling_one_face_under_two_names(backend_db, engine, faces):
    facer = Facer(Settings(db=backend_db), engine=engine)
    frames = facer.frames_from_paths(obama_photos(faces))
    rng = random.Random(SEED)
    for round_ in range(ROUNDS):
        outcome = race(facer, frames, rng)
        assert sorted(outcome.values()) == ["lookalike 7", "stored"], (round_, outcome)
        stored = [user.name for user in facer.users().users]
        assert stored == [name for name, result in outcome.items() if result == "stored"], (round_, stored)
        facer.remove_user(stored[0])
    outcome = race(facer, frames, rng, allow_lookalike=True)
    assert outcome == {"ann": "stored", "bea": "stored"}
    assert [other.user for other in facer.user("ann").lookalikes] == ["bea"]


PROCESS = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    from facer_cli.errors import LookalikeError
    from facer_cli.cli.errors import exit_code_for
    from facer_cli.service import Facer
    from facer_cli.settings import Settings

    name, work, rounds, delays = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    photos = sys.argv[5:]
    frames = Facer(Settings()).frames_from_paths(photos)  # the models load (once) before the first round
    for round_ in range(rounds):
        facer = Facer(Settings(db=str(work / f"round{round_}.db")))
        (work / f"ready-{round_}-{name}").touch()
        while len(list(work.glob(f"ready-{round_}-*"))) < 2:  # the barrier: both processes here
            time.sleep(0.0005)
        time.sleep(delays[round_])
        try:
            facer.enroll(name, frames, allow_lookalike=round_ == rounds - 1)
            result = "stored"
        except LookalikeError as error:
            result = f"lookalike {exit_code_for(error)}"
        print(json.dumps({"round": round_, "name": name, "result": result}), flush=True)
    """
)


@pytest.mark.slow
def test_two_processes_enrolling_one_face_under_two_names(faces, tmp_path):
    """The last round allows look-alikes: both are stored."""
    rounds = ROUNDS + 1
    for round_ in range(rounds):
        Store(tmp_path / f"round{round_}.db").close()  # the stores exist: the processes only race to enroll
    rng = random.Random(SEED)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROCESS,
                name,
                str(tmp_path),
                str(rounds),
                json.dumps([rng.uniform(0, 0.004) for _ in range(rounds)]),
                *map(str, obama_photos(faces)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in NAMES
    ]
    results: dict[int, dict[str, str]] = {round_: {} for round_ in range(rounds)}
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        for line in out.splitlines():
            row = json.loads(line)
            results[row["round"]][row["name"]] = row["result"]
    for round_ in range(ROUNDS):
        assert sorted(results[round_].values()) == ["lookalike 7", "stored"], (round_, results[round_])
        with Store(tmp_path / f"round{round_}.db", access="read") as store:
            assert [user.name for user in store.list()] == [
                name for name, result in results[round_].items() if result == "stored"
            ]
    assert results[ROUNDS] == {"ann": "stored", "bea": "stored"}
