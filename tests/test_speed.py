"""Speed work that must not change results: frames analysed in threads equal the sequential loop's,
the detector is safe from several threads, and start-up leaves out what a command does not need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import FACES, REPO

from facer_cli.errors import ImageError
from facer_cli.service import Facer
from facer_cli.service.inputs import InputFile, Limits, cores, frames_from_files, worker_count
from facer_cli.settings import Settings, read_environment, with_overrides
from facer_cli.sources.images import load_image


def photos(bundled_images: Path) -> list[Path]:
    found = [bundled_images / name for name in ("players.jpg", "yaoming.jpg", "gdp.jpg")]
    faces = FACES
    if faces.is_dir():
        found += sorted(p for p in faces.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    return found


def same_frames(a, b) -> None:
    assert [f.source for f in a] == [f.source for f in b]
    assert [f.to_dict() for f in a] == [f.to_dict() for f in b]  # every float, exactly
    for x, y in zip(a, b, strict=True):
        for fx, fy in zip(x.faces, y.faces, strict=True):
            assert (fx.embedding is None) == (fy.embedding is None)
            if fx.embedding is not None:
                assert fx.embedding.dtype == fy.embedding.dtype and np.array_equal(fx.embedding, fy.embedding)


def test_worker_count(monkeypatch):
    assert worker_count(0, 1) == 1
    assert worker_count(0, 1000) == cores()
    monkeypatch.setattr("facer_cli.service.inputs.cores", lambda: 4)
    assert worker_count(3, 2) == 2 and worker_count(3, 10) == 3 and worker_count(1, 10) == 1
    assert worker_count(8, 10) == 4 and worker_count(0, 10) == 4
    assert Settings().workers == 2 and worker_count(Settings().workers, 10) == 2
    with pytest.raises(Exception, match="workers"):
        with_overrides(Settings(), workers=-1)


@pytest.mark.slow
@pytest.mark.parametrize("all_faces", [False, True])
def test_threads_give_the_sequential_frames_in_input_order(engine, bundled_images, tmp_path, all_faces, monkeypatch):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    items = [InputFile.from_path(p) for p in photos(bundled_images)]
    items[1:1] = [InputFile.from_path(broken), InputFile.from_path(tmp_path / "missing.jpg")]
    limits = Limits.of(Settings())
    sequential = frames_from_files(engine, items, limits, all_faces=all_faces, workers=1).frames
    assert sequential[1].error and sequential[2].error and sum(bool(f.faces) for f in sequential) >= 3
    for workers in (2, 3):
        monkeypatch.setattr("facer_cli.service.inputs.cores", lambda: 4)  # three threads even on two cores
        progress: list[int] = []
        threaded = frames_from_files(
            engine, items, limits, all_faces=all_faces, workers=workers, on_progress=progress.append
        )
        assert progress == [1] * len(items)
        same_frames(sequential, threaded.frames)


def test_threads_in_strict_mode_raise_the_first_bad_item(engine, bundled_images, monkeypatch):
    good = (bundled_images / "yaoming.jpg").read_bytes()
    uploads = [InputFile.from_bytes(name, data) for name, data in
               [("a.jpg", good), ("first-bad.jpg", b"nothing"), ("b.jpg", good), ("second-bad.jpg", b"x" * 10)]]
    monkeypatch.setattr("facer_cli.service.inputs.cores", lambda: 2)
    for workers in (1, 2):
        with pytest.raises(ImageError, match="first-bad.jpg"):
            frames_from_files(engine, uploads, Limits.of(Settings()), strict=True, workers=workers)


def test_facer_uses_the_workers_setting(engine, bundled_images, monkeypatch):
    monkeypatch.setattr("facer_cli.service.inputs.cores", lambda: 2)
    paths = photos(bundled_images)[:6]
    one = Facer(with_overrides(Settings(), workers=1), engine=engine).inspect(paths)
    two = Facer(with_overrides(Settings(), workers=2), engine=engine).inspect(paths)
    same_frames(one.frames, two.frames)
    assert (one.template is None) == (two.template is None)
    if one.template is not None:
        assert np.array_equal(one.template.vector, two.template.vector)


@pytest.mark.slow
def test_detector_is_safe_from_several_threads(engine, bundled_images):
    detector = engine.detector
    images = [load_image(p, 50_000_000) for p in photos(bundled_images)[:4]]
    sizes = [(320, 320), (640, 640), (256, 416)]
    expected = {(i, s): detector.detect(img, input_size=s) for i, img in enumerate(images) for s in sizes}
    detector.center_cache.clear()  # threads race to fill it
    failures: list[str] = []

    def work(offset: int) -> None:
        keys = list(expected)
        for n in range(len(keys) * 2):
            i, size = keys[(n + offset) % len(keys)]
            boxes, kps = detector.detect(images[i], input_size=size)
            want_boxes, want_kps = expected[(i, size)]
            if not (np.array_equal(boxes, want_boxes) and np.array_equal(kps, want_kps)):
                failures.append(f"image {i} at {size}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert all(not centers.flags.writeable for centers in detector.center_cache.values())


def test_environment_read_by_hand():
    environ = {"FACER_DET_SIZE": "640", "facer_max_frames": "7", "FACER_NOT_A_SETTING": "1", "OTHER": "2"}
    assert read_environment(environ) == {"det_size": "640", "max_frames": "7"}


@pytest.mark.slow
def test_verify_loads_neither_sqlite_utils_nor_pydantic_settings(tmp_path, bundled_images):
    """An up-to-date store opens without sqlite_utils; settings need no pydantic-settings."""
    db = tmp_path / "facer.db"
    photo = bundled_images / "yaoming.jpg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    enroll = [sys.executable, "-m", "facer_cli", "enroll", "yao", str(photo), "--min-valid-frames", "1",
              "--db", str(db)]
    subprocess.run(enroll, capture_output=True, text=True, cwd=REPO, env=env, check=True, timeout=120)
    code = (
        "import sys\nfrom facer_cli.cli.app import main\nsys.argv = ['facer', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', [m for m in ('sqlite_utils', 'pydantic_settings', 'insightface') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "verify", "yao", str(photo), "--db", str(db)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert "MATCH" in done.stdout and "LOADED []" in done.stdout, done.stdout[-800:] + done.stderr


@pytest.mark.slow
def test_the_console_script_ends_without_losing_output_audit_row_or_wal(tmp_path, bundled_images):
    """`facer verify` ends with os._exit (no interpreter teardown): the JSON is complete, the attempt is
    in the store and the store is intact, in WAL mode, for the next process."""
    import sqlite3

    from facer_cli.store import Store

    db = tmp_path / "facer.db"
    photo = bundled_images / "yaoming.jpg"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    base = [sys.executable, "-m", "facer_cli"]
    subprocess.run([*base, "enroll", "yao", str(photo), "--min-valid-frames", "1", "--db", str(db)],
                   capture_output=True, cwd=REPO, env=env, check=True, timeout=120)
    for _ in range(2):
        done = subprocess.run([*base, "verify", "yao", str(photo), "--db", str(db), "--json"],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)  # the whole document, flushed before the process ended
        assert result["band"] == "match" and result["attempt_id"]
    with Store(db, access="read") as store:
        assert [a.id for a in store.attempts("yao")][:2] == [result["attempt_id"], result["attempt_id"] - 1]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_the_console_script_asks_for_one_blas_thread_unless_told_otherwise():
    from facer_cli.entry import one_blas_thread

    environ: dict[str, str] = {}
    one_blas_thread(environ)
    assert environ == {"OPENBLAS_NUM_THREADS": "1"}
    environ = {"OPENBLAS_NUM_THREADS": "2"}
    one_blas_thread(environ)
    assert environ == {"OPENBLAS_NUM_THREADS": "2"}
