"""A full disk must not kill facer: the identify index's sidecar has its space reserved before it is mapped
(a write through a map to a page the filesystem cannot back is SIGBUS, exit 135), and an index that cannot
write any file is kept in memory and still answers. Temporary sidecars left by a killed process are
removed the next time an index opens."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO

from facer_cli.gallery import GalleryIndex
from facer_cli.gallery import sidecar as sidecar_module
from facer_cli.service import Facer
from facer_cli.settings import Settings
from facer_cli.store import Store
from facer_cli.store.gallery_source import SQLiteGallerySource, sidecar_path

MODEL = "test:model"
# Templates whose sidecar (about 540 bytes each) does not fit in what is left free, while the store
# (about 4.6 KB each) fits in the 2 MiB file system.
TEMPLATES = 300
LEFT_FREE = 96 * 1024


def unit(rng: np.random.Generator, dimension: int = 512) -> np.ndarray:
    v = rng.standard_normal(dimension).astype(np.float32)
    return v / np.linalg.norm(v)


def fill_store(db: Path, model: str, dimension: int, count: int) -> None:
    rng = np.random.default_rng(7)
    with Store(db) as store, store.transaction("fill"):
        for i in range(count):
            store.import_vector(f"user{i}", unit(rng, dimension), model=model, source="test")
    with Store(db) as store:
        store.checkpoint(0.0)


@pytest.fixture
def small_disk():
    """A 2 MiB tmpfs, mounted for the test (root only: skipped where mounting is not permitted)."""
    mount = Path("/tmp") / f"facer-full-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip() or 'not permitted'}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill_disk(mount: Path, leave: int) -> None:
    """Fill the file system up to `leave` bytes free."""
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with open(mount / f"filler-{uuid.uuid4().hex[:6]}", "wb") as f:
        f.write(b"\1" * max(0, free - leave))


def full_store(tmp_path: Path, mount: Path) -> Path:
    """A store of TEMPLATES templates of the current model on the small disk, filled to LEFT_FREE."""
    fingerprint, dimension = Facer(Settings()).current_model()
    built = tmp_path / "built.db"
    fill_store(built, fingerprint, dimension or 512, TEMPLATES)
    db = mount / "facer.db"
    shutil.copyfile(built, db)
    fill_disk(mount, LEFT_FREE)
    return db


def identify(db: Path, photo: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "facer_cli", "identify", str(photo), "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


@pytest.mark.slow
def test_identify_on_a_full_disk_answers_or_says_why_never_sigbus(small_disk, tmp_path, bundled_images):
    db = full_store(tmp_path, small_disk)
    photo = bundled_images / "yaoming.jpg"
    answered = identify(db, photo, small_disk)
    assert answered.returncode != 128 + signal.SIGBUS and answered.returncode >= 0, answered.stderr
    # The sidecar does not fit; the store's own write (the audit row) does: the search answers from
    # memory (or a temporary file elsewhere), and says once why no sidecar was written.
    assert answered.returncode in (0, 15, 16), answered.stdout + answered.stderr
    assert "300 template(s)" in answered.stdout
    assert answered.stderr.count("could not be written beside the store (No space left on device") == 1
    assert not list(small_disk.glob(".facer.db.gallery-*")), "a partial sidecar was left behind"
    # Full to the last block: the store itself cannot record the attempt; exit 6 with one clear line.
    fill_disk(small_disk, 0)
    full = identify(db, photo, small_disk)
    assert full.returncode == 6, full.stdout + full.stderr
    assert "database or disk is full" in full.stderr


def test_the_server_survives_identify_on_a_full_disk(small_disk, tmp_path, bundled_images, client_for):
    db = full_store(tmp_path, small_disk)
    client = client_for(db=str(db))
    photo = ("files", ("yaoming.jpg", (bundled_images / "yaoming.jpg").read_bytes(), "image/jpeg"))
    first = client.post("/identify", files=[photo])
    assert first.status_code in (200, 503), first.text
    if first.status_code == 200:
        assert first.json()["gallery_size"] == TEMPLATES
    fill_disk(small_disk, 0)
    second = client.post("/identify", files=[photo])
    assert second.status_code in (200, 503), second.text
    if second.status_code == 503:
        assert second.json()["error"]["type"] == "StoreError"
    assert client.get("/health").status_code == 200  # the process is still there


# -- the same, without a file system of its own ------------------------------------------------
def test_an_index_that_cannot_write_any_file_is_kept_in_memory(tmp_path, monkeypatch, caplog):
    db = tmp_path / "facer.db"
    fill_store(db, MODEL, 512, 50)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sidecar_module.os, "posix_fallocate", no_space)  # the sidecar and the temp file
    caplog.set_level(logging.WARNING, logger="facer.gallery")
    with GalleryIndex.open(db, MODEL) as index:
        probe = unit(np.random.default_rng(7))  # user0's template
        assert index.search(probe, top_k=1)[0].name == "user0"
        assert not index.persistent and index.in_memory and "kept in memory" in index.in_memory
        with Store(db) as store:
            store.import_vector("late", unit(np.random.default_rng(99)), model=MODEL, source="test")
        assert index.search(unit(np.random.default_rng(99)), top_k=1)[0].name == "late"
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "No space left on device" in caplog.records[0].message
    assert not list(tmp_path.glob("*.gallery-*")) and not list(tmp_path.glob(".*.tmp"))


def test_reserve_writes_zeros_where_the_filesystem_cannot_allocate(tmp_path, monkeypatch):
    def unsupported(*args, **kwargs):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(sidecar_module.os, "posix_fallocate", unsupported)
    with open(tmp_path / "f", "wb") as f:
        sidecar_module.reserve(f.fileno(), 3 * sidecar_module.ZERO_CHUNK + 5)
    stat = os.stat(tmp_path / "f")
    assert stat.st_size == 3 * sidecar_module.ZERO_CHUNK + 5
    assert stat.st_blocks * 512 >= stat.st_size  # allocated, not a sparse hole


# -- temporary files left by a killed writer ---------------------------------------------------
WRITER = textwrap.dedent(
    """
    import fcntl, os, sys, tempfile, time
    from pathlib import Path
    from facer_cli.gallery.sidecar import temporary_prefix
    fd, name = tempfile.mkstemp(prefix=temporary_prefix(Path(sys.argv[1])), suffix=".tmp", dir=Path(sys.argv[1]).parent)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 1 << 20)
    print(name, flush=True)
    time.sleep(60)
    """
)


def writer(target: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_a_killed_writers_temporary_sidecar_is_removed_at_the_next_open(tmp_path):
    db = tmp_path / "facer.db"
    fill_store(db, MODEL, 512, 3)
    target = sidecar_path(db, MODEL)
    killed, left = writer(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    running, busy = writer(target)  # a live writer's file stays
    old = tmp_path / f".{target.name}.abcd1234.tmp"  # an earlier facer's (no pid), long untouched
    old.write_bytes(b"\0" * 4096)
    os.utime(old, (1, 1))
    try:
        assert left.exists() and busy.exists()
        with GalleryIndex.open(SQLiteGallerySource(db), MODEL) as index:
            assert len(index) == 3
        assert not left.exists() and not old.exists()
        assert busy.exists()
    finally:
        running.kill()
        running.wait()
    with GalleryIndex.open(SQLiteGallerySource(db), MODEL):
        pass
    assert not busy.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
