"""Many at once, on real photos: `enroll --batch/--manifest` (outcomes, look-alikes within a batch,
Ctrl-C then a re-run, a dry run that writes nothing), `identify --each` and `identify --all-faces`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, people, run

from facer_cli.cli.errors import EXIT_BATCH_INCOMPLETE, EXIT_CODES

SEVERAL = ("alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie")  # two photos or more


def batch_json(*args: object) -> tuple[int, dict]:
    result = run("enroll", *args, "--json")
    assert result.stdout.strip().startswith("{"), result.output
    return result.exit_code, json.loads(result.stdout)


def statuses(data: dict) -> dict[str, str]:
    return {p["name"]: p["status"] for p in data["people"]}


@pytest.mark.slow
def test_batch_enrolls_everyone_with_enough_photos_and_reports_the_others(tmp_path, faces):
    db, report = tmp_path / "f.db", tmp_path / "report.csv"
    code, data = batch_json("--batch", faces / "people", "--db", db, "--min-valid-frames", "3", "--report", report)
    counts = {name: len(photos) for name, photos in people(faces).items()}
    assert statuses(data) == {name: "enrolled" if n >= 3 else "refused" for name, n in counts.items()}
    assert code == EXIT_BATCH_INCOMPLETE and EXIT_BATCH_INCOMPLETE in EXIT_CODES
    refused = [p for p in data["people"] if p["status"] == "refused"]
    assert all("too few usable frames" in p["reason"] for p in refused)
    rows = report.read_text().splitlines()
    assert rows[0].startswith("name,status") and len(rows) == 1 + len(counts)
    # Again: everyone enrolled is skipped, nothing else changes.
    code, again = batch_json("--batch", faces / "people", "--db", db, "--min-valid-frames", "3")
    assert {n for n, s in statuses(again).items() if s == "skipped"} == {n for n, c in counts.items() if c >= 3}
    # With two photos enough, the rest are enrolled too; exit 0 when all are enrolled or skipped.
    code, last = batch_json("--batch", faces / "people", "--db", db, "--min-valid-frames", "1")
    assert code == 0 and set(statuses(last).values()) <= {"enrolled", "skipped"}


def test_manifest_with_one_person_under_two_names_reports_the_lookalike(tmp_path, faces):
    obama = people(faces)["obama"]
    manifest = tmp_path / "export" / "people.csv"
    manifest.parent.mkdir()
    rows = ["name,path"] + [f"obama,{p}" for p in obama[:2]] + [f"barack,{p}" for p in obama[2:]]
    rows += [f"biden,{os.path.relpath(p, manifest.parent)}" for p in people(faces)["biden"]]  # relative paths
    manifest.write_text("\n".join(rows) + "\n")
    code, data = batch_json("--manifest", manifest, "--db", tmp_path / "f.db", "--min-valid-frames", "2")
    assert statuses(data) == {"obama": "enrolled", "barack": "lookalike", "biden": "enrolled"}
    barack = next(p for p in data["people"] if p["name"] == "barack")
    assert barack["looks_like"] == "obama" and barack["similarity"] >= 0.5
    assert code == EXIT_BATCH_INCOMPLETE


def store_digest(db: Path) -> list[tuple]:
    """The users and their template vectors, as stored."""
    with sqlite3.connect(db) as con:
        tables = {row[0] for row in con.execute("select name from sqlite_master where type='table'")}
        assert "users" in tables and "templates" in tables
        return sorted(
            con.execute("select u.name, t.vector from users u join templates t on t.user_id = u.id").fetchall()
        )


def enrolled_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("select count(*) from users").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_ctrl_c_then_a_rerun_ends_with_the_store_of_an_uninterrupted_run(tmp_path, faces):
    batch = tmp_path / "batch"
    photos = people(faces)
    for i in range(24):  # 24 people, photos of the six, in a seeded order: a batch long enough to stop
        name = sorted(photos)[i % len(photos)]
        (batch / f"p{i:02d}").mkdir(parents=True)
        for p in photos[name]:
            shutil.copy(p, batch / f"p{i:02d}" / p.name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACER_WORKERS": "1", "FACER_MIN_VALID_FRAMES": "1"}
    args = [sys.executable, "-m", "facer_cli", "enroll", "--batch", str(batch), "--allow-lookalike", "--json"]
    whole, stopped = tmp_path / "whole.db", tmp_path / "stopped.db"
    done = subprocess.run([*args, "--db", str(whole)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([*args, "--db", str(stopped)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while enrolled_count(stopped) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    kept = enrolled_count(stopped)
    assert 1 <= kept < 24
    # What was decided before the interrupt is said: JSON on stdout, one line on stderr, then the usual line.
    partial = json.loads(out)
    assert partial["interrupted"] is True and partial["people_total"] == 24
    assert kept - 1 <= partial["counts"]["enrolled"] <= kept  # Ctrl-C may land between a commit and its report
    lines = err.decode().strip().splitlines()
    assert lines[-1] == "interrupted" and lines[-2].startswith(f"stopped: {len(partial['people'])} of 24 people decided")
    assert "run the same command again to go on" in lines[-2]
    again = subprocess.run([*args, "--db", str(stopped)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    outcome = statuses(json.loads(again.stdout))
    assert sum(s == "skipped" for s in outcome.values()) == kept
    assert store_digest(stopped) == store_digest(whole)


def store_files(folder: Path) -> dict[str, str]:
    """The store's files and their hashes: the database, its WAL and sidecars; not SQLite's `-shm`, the
    shared-memory index every reader updates (it holds no data)."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.glob("f.db*") if f.suffix != ".db-shm"}


@pytest.mark.slow
def test_dry_run_leaves_the_store_byte_for_byte_unchanged(tmp_path, faces):
    db = tmp_path / "f.db"
    obama = people(faces)["obama"]
    assert run("enroll", "obama", *obama, "--db", db).exit_code == 0
    batch = tmp_path / "batch"
    for name in SEVERAL:
        shutil.copytree(faces / "people" / name, batch / name)
    shutil.copytree(faces / "people" / "obama", batch / "barack")  # a look-alike of the enrolled obama
    before = store_files(tmp_path)
    assert "f.db" in before
    code, data = batch_json("--batch", batch, "--db", db, "--dry-run", "--min-valid-frames", "2")
    assert data["dry_run"] is True
    s = statuses(data)
    assert s["obama"] == "skipped" and s["barack"] == "lookalike" and s["biden"] == "enrolled"
    assert store_files(tmp_path) == before
    # No store yet: a dry run creates none.
    code, data = batch_json("--batch", batch, "--db", tmp_path / "new.db", "--dry-run", "--min-valid-frames", "2")
    assert not (tmp_path / "new.db").exists() and statuses(data)["biden"] == "enrolled"


@pytest.fixture
def enrolled_batch(tmp_path, faces) -> tuple[Path, dict[str, Path]]:
    """SEVERAL enrolled from all but their last photo; the last held out."""
    batch, held_out = tmp_path / "batch", {}
    for name in SEVERAL:
        photos = people(faces)[name]
        (batch / name).mkdir(parents=True)
        for p in photos[:-1]:
            shutil.copy(p, batch / name / p.name)
        held_out[name] = photos[-1]
    db = tmp_path / "f.db"
    code, _ = batch_json("--batch", batch, "--db", db, "--min-valid-frames", "1")
    assert code == 0
    return db, held_out


def test_identify_each_gives_one_right_answer_per_held_out_file(enrolled_batch, tmp_path):
    db, held_out = enrolled_batch
    probes = tmp_path / "probes"
    probes.mkdir()
    for p in held_out.values():
        shutil.copy(p, probes / p.name)
    result = run("identify", "--each", probes, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)
    assert len(answers) == len(held_out)
    truth = {p.name: name for name, p in held_out.items()}
    assert {Path(a["file"]).name: a["user"] for a in answers} == truth
    assert all(a["decision"] == "identified" and a["margin"] > 0 for a in answers)
    csv_out = run("identify", "--each", *held_out.values(), "--db", db, "--csv")
    assert csv_out.stdout.splitlines()[0] == "file,decision,user,similarity,margin,reason"
    assert len(csv_out.stdout.splitlines()) == 1 + len(held_out)


SCENES = {  # /work/shared/faces/README.md: which enrolled people each scene holds
    "two_people.jpg": {"obama", "biden"},
    "obama_and_biden.jpg": {"obama", "biden"},  # and a third person, not enrolled
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
}


def test_all_faces_names_each_enrolled_person_present_and_no_one_twice(enrolled_batch, faces):
    db, _ = enrolled_batch
    for scene, present in SCENES.items():
        result = run("identify", "--all-faces", faces / "scenes" / scene, "--db", db, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        named = [f["user"] for f in data["faces"] if f["decision"] == "identified"]
        assert len(named) == len(set(named)), (scene, named)
        assert set(named) == present, (scene, data["faces"])
        assert all(len(f["box"]) == 4 for f in data["faces"])


def test_no_name_twice_when_two_faces_match_one_person(enrolled_batch, faces, tmp_path):
    """Two copies of obama side by side: the better face keeps the name, the other is ambiguous."""
    import cv2
    import numpy as np

    image = cv2.imread(str(people(faces)["obama"][0]))
    side = np.concatenate([image, cv2.convertScaleAbs(image, alpha=0.9, beta=0)], axis=1)
    pair = tmp_path / "pair.jpg"
    cv2.imwrite(str(pair), side)
    db, _ = enrolled_batch
    data = json.loads(run("identify", "--all-faces", pair, "--db", db, "--json").stdout)
    decisions = sorted(f["decision"] for f in data["faces"])
    assert decisions == ["ambiguous", "identified"], data["faces"]
    assert [f["user"] for f in data["faces"] if f["user"]] == ["obama"]


def test_http_identify_all_faces_names_each_person_once(enrolled_batch, faces, client_for):
    db, _ = enrolled_batch
    client = client_for(db=str(db))
    scene = faces / "scenes" / "kit_with_rose.jpg"
    response = client.post(
        "/identify?all_faces=true", files=[("files", (scene.name, scene.read_bytes(), "image/jpeg"))]
    )
    assert response.status_code == 200, response.text
    named = [f["user"] for f in response.json()["faces"] if f["decision"] == "identified"]
    assert sorted(named) == ["kit_harington", "rose_leslie"]
    two = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in people(faces)["obama"][:2]]
    assert client.post("/identify?all_faces=true", files=two).status_code == 400
