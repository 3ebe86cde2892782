"""Freed image memory is kept for the next photo (`facer_cli.engine.heap`): once the heap has grown to a
large photo's size, more such photos cost no page faults, in the main thread and in a worker
thread; a malloc tuned from the environment is left alone."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

# The engine analyses one large photo six times in the main thread, then six times in a new thread,
# and prints the page faults of the last three runs in each (the heap grows to its size in the first).
SCRIPT = """
import json, resource, sys, threading
from facer_cli.engine.face_engine import get_engine
from facer_cli.settings import Settings

engine = get_engine(Settings())
path = sys.argv[1]

def settled_faults():
    for _ in range(3):
        engine.analyze_path(path)
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(3):
        engine.analyze_path(path)
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before

found = {"heap": engine.heap, "main": settled_faults()}
worker = threading.Thread(target=lambda: found.update(worker=settled_faults()))
worker.start()
worker.join()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def large_photo(bundled_images: Path, tmp_path_factory) -> Path:
    """An 8 MP JPEG: its decode and resized copies are blocks glibc would map and unmap per photo."""
    image = cv2.imread(str(bundled_images / "yaoming.jpg"))
    scale = (8e6 / (image.shape[0] * image.shape[1])) ** 0.5
    big = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_CUBIC)
    path = tmp_path_factory.mktemp("heap") / "large.jpg"
    assert cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def faults(photo: Path, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(photo)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_large_photos_cost_no_page_faults_once_the_heap_has_grown_in_any_thread(large_photo):
    found = faults(large_photo)
    assert found["heap"] == "kept for reuse"
    # A few new small blocks at most, where glibc's defaults cost thousands (below).
    assert found["main"] < 300, found
    assert found["worker"] < 300, found


@pytest.mark.slow
def test_a_malloc_tuned_from_the_environment_is_left_as_it_was_set(large_photo):
    # perturb=0 is glibc's default: only the presence of the tunable says "tuned by hand".
    found = faults(large_photo, GLIBC_TUNABLES="glibc.malloc.perturb=0")
    assert found["heap"] == "left as the environment set it"
    # glibc's own thresholds: the large blocks go back to the kernel and fault in again.
    assert found["main"] > 3000, found
    assert found["worker"] > 3000, found


@pytest.mark.parametrize(
    "name, value, tuned",
    [
        ("MALLOC_ARENA_MAX", "2", True),
        ("MALLOC_TRIM_THRESHOLD_", "0", True),
        ("GLIBC_TUNABLES", "glibc.malloc.arena_max=2", True),
        ("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=2048", False),
        ("MALLOCATOR", "x", False),
    ],
)
def test_which_environment_counts_as_a_malloc_tuned_by_hand(monkeypatch, name, value, tuned):
    from facer_cli.engine.heap import tuned_from_environment

    for other in [k for k in os.environ if k == "GLIBC_TUNABLES" or k.startswith("MALLOC")]:
        monkeypatch.delenv(other)
    monkeypatch.setenv(name, value)
    assert tuned_from_environment() is tuned
