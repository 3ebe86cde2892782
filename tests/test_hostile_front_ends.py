"""Hostile input through the front ends: missing and unreadable files among good ones, and a seeded
fuzz corpus through `facer inspect --json` and `POST /token/generate` (valid JSON, no 500, bounded memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import pytest
from helpers import REPO, photo, run_json, run_without_privileges
from hostile_files import fuzz_seeds, mutations

FUZZ_COUNT = 500


def test_a_missing_file_among_good_ones_gets_its_own_row_and_the_others_go_on(faces, tmp_path):
    good = [photo(faces, f"obama_{i}") for i in (1, 2, 3)]
    missing = tmp_path / "gone.jpg"
    result, data = run_json("inspect", good[0], missing, good[1])
    assert result.exit_code == 0, result.output
    assert [f["accepted"] for f in data["frames"]] == [True, False, True]
    assert "no such file" in data["frames"][1]["reason"]
    result, data = run_json("enroll", "obama", *good, missing, "--db", tmp_path / "facer.db")
    assert result.exit_code == 0, result.output
    assert data["template"]["frames_seen"] == 4 and data["template"]["frames_used"] == 3


def test_unreadable_files_and_folders_are_rows_that_say_so(faces, tmp_path):
    root = tmp_path / "photos"
    locked = root / "locked"
    locked.mkdir(parents=True)
    (root / "a.jpg").symlink_to(photo(faces, "biden_1"))
    (locked / "b.jpg").write_bytes(photo(faces, "biden_2").read_bytes())
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(photo(faces, "obama_1").read_bytes())
    secret.chmod(0o000)
    locked.chmod(0o000)
    try:
        done = run_without_privileges([sys.executable, "-m", "facer_cli", "inspect", "--json", str(root), str(secret)],
                                      cwd=REPO)
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)
    assert done.returncode == 0, done.stderr
    frames = {f["source"]: f for f in json.loads(done.stdout)["frames"]}
    assert frames[str(root / "a.jpg")]["accepted"] is True
    assert "cannot read (permission denied)" in frames[str(locked)]["reason"]
    assert "cannot read (permission denied)" in frames[str(secret)]["reason"]
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory, bundled_images):
    seeds = fuzz_seeds(cv2.imread(str(bundled_images / "yaoming.jpg")))
    folder = tmp_path_factory.mktemp("fuzz")
    for name, data in mutations(seeds, FUZZ_COUNT, seed=20261124):
        suffix = Path(name.rsplit("-", 1)[0]).suffix  # the seed's own suffix, so folders list it
        (folder / (name + suffix)).write_bytes(data)
    clean = tmp_path_factory.mktemp("clean")
    for name, data in seeds.items():
        (clean / name).write_bytes(data)
    return folder, clean


PEAK = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run([sys.executable, "-m", "facer_cli", *sys.argv[1:]], capture_output=True, text=True)
    sys.stderr.write(done.stderr)
    sys.stdout.write(done.stdout)
    print("PEAK_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "EXIT", done.returncode, file=sys.stderr)
""")


def inspect_with_peak(folder):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_")}
    done = subprocess.run([sys.executable, "-c", PEAK, "inspect", "--json", str(folder)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=900)
    tail = done.stderr.strip().splitlines()[-1].split()
    return done, int(tail[1]) // 1024, int(tail[3])


@pytest.mark.slow
def test_fuzzed_images_through_inspect_give_valid_json_and_bounded_memory(fuzz_folder):
    folder, clean = fuzz_folder
    baseline, clean_mb, _ = inspect_with_peak(clean)
    done, fuzz_mb, code = inspect_with_peak(folder)
    assert code in (0, 4), done.stderr[-2000:]
    data = json.loads(done.stdout)  # valid JSON, with a row per file
    assert len(data["frames"]) == FUZZ_COUNT
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert fuzz_mb < clean_mb + 100, (fuzz_mb, clean_mb)
    refused = sum(f["error"] is not None for f in data["frames"])
    assert 0 < refused < FUZZ_COUNT


@pytest.mark.slow
def test_fuzzed_images_through_token_generate_never_500(fuzz_folder, client_for):
    folder, _ = fuzz_folder
    client = client_for()
    statuses: dict[int, int] = {}
    for path in sorted(folder.iterdir()):
        response = client.post("/token/generate", files=[("files", (path.name, path.read_bytes(), "image/jpeg"))])
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        body = json.loads(response.text)  # valid JSON every time
        assert response.status_code in (200, 400, 413, 422), (path.name, response.text[:300])
        if response.status_code != 200:
            assert body["error"]["type"] != "InternalError"
    assert statuses.get(200, 0) > 0 and sum(statuses.values()) == FUZZ_COUNT
