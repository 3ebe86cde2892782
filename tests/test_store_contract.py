"""One store contract, two backends: the same operations give the same answers on SQLite and
PostgreSQL (`backend`, tests/store_backends.py).

A scenario of enrollments, an added and a replaced template, verify and identify log entries,
look-alikes, a rename and a removal is run on a store of each backend; what a caller can see of it
(`list`, `show`, the logs, look-alikes, the gallery's counters, row counts, exported vectors) is
written down as a transcript, and PostgreSQL's transcript must equal SQLite's. The identify index
over each backend's `gallery_source` then catches up with enrollments, replacements, bulk inserts
and removals made through the contract, exactly as a full search of the stored vectors answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from facer_cli.errors import UnknownUserError
from facer_cli.gallery.index import GalleryIndex
from facer_cli.settings import Settings
from facer_cli.store.contract import open_store
from facer_cli.store.records import FACE_CHANGED, AttemptRecord, IdentifyRecord, now

MODEL = "bundled:c0ffee00c0ffee00"
DIMENSION = 512


def unit(seed: int) -> np.ndarray:
    # A seed family of this file's own: other tests search the shared cluster's files for their vectors.
    vector = np.random.default_rng([0xC0C0, seed]).normal(size=DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def scenario(store: Any) -> dict[str, Any]:
    """Run the same operations on `store` and return what a caller sees of them, leaving out what
    may differ without being drift: times, and ids (compared by their order instead)."""
    seen: dict[str, Any] = {}
    ids = [
        store.import_vector(name, unit(seed), model=MODEL, source=f"{name}.npy").id
        for seed, name in enumerate(("alice", "bob", "carol", "dave"), start=1)
    ]
    ids.append(store.import_vector("alice", unit(11), model=MODEL, source="alice-2.npy", mode="add").id)
    ids.append(store.import_vector("bob", unit(12), model=MODEL, source="bob-2.npy", mode="replace").id)
    seen["ids_increase"] = ids == sorted(ids) and len(set(ids)) == len(ids)

    for band, similarity in (("match", 0.71), ("uncertain", 0.41), ("no_match", 0.05)):
        store.record_attempt(
            AttemptRecord(
                user="alice",
                model=MODEL,
                source="door-1",
                band=band,
                similarity=similarity,
                threshold_high=0.5,
                threshold_low=0.3,
                frames_seen=3,
                frames_used=2,
            )
        )
    store.record_attempt(AttemptRecord(user="bob", model=MODEL, source="door-2", band="no_probe"))
    users = store.user_ids(["alice", "bob", "carol", "dave", "nobody"])
    seen["user_ids_known"] = sorted(users)
    store.record_lookalikes("carol", [(users["alice"], 0.62), (users["dave"], 0.58)], MODEL)
    store.record_identification(
        IdentifyRecord(
            model=MODEL,
            source="door-1",
            decision="identified",
            user="carol",
            similarity=0.8,
            threshold=0.5,
            margin=0.2,
            candidates=[{"user": "carol", "similarity": 0.8}, {"user": "alice", "similarity": 0.6}],
            gallery_size=store.gallery_size(MODEL),
            frames_seen=2,
            frames_used=2,
        )
    )
    store.record_identification(IdentifyRecord(model=MODEL, source="door-2", decision="unknown"))

    store.rename("carol", "Caroline")
    removal = store.remove("dave")
    seen["removal"] = (removal.user, removal.templates, removal.samples)
    with pytest.raises(UnknownUserError):
        store.show("dave")

    seen["list"] = [(u.name, u.templates, u.frames, u.models) for u in store.list()]
    seen["count"] = store.count()
    details = store.show("alice")
    seen["alice_templates"] = [(t.source, t.model, t.dimension) for t in details.templates]
    seen["alice_attempts"] = [
        (a.user, a.band, a.source, a.similarity, a.frames_seen, a.frames_used) for a in details.attempts
    ]
    seen["attempts"] = sorted((a.user, a.band, a.source) for a in store.attempts())
    seen["attempts_of_removed_user_kept"] = [a.band for a in store.attempts("dave")]
    seen["identifications"] = [
        (e["decision"], e["user"], e["similarity"], e["source"], e["candidates"], e["gallery_size"])
        for e in store.identifications()
    ]
    seen["lookalikes"] = [(x.user, round(x.similarity, 6), x.model) for x in store.lookalikes("Caroline")]
    seen["lookalikes_of_alice"] = [x.user for x in store.lookalikes("alice")]
    seen["gallery_size"] = store.gallery_size(MODEL)
    source = store.gallery_source()
    with source.read_transaction():
        seen["gallery_stamp"] = source.stamp(MODEL)
    seen["row_counts"] = {table: n for table, n in store.row_counts().items() if table != "data_keys"}
    exported = store.export("bob")
    seen["bob_is_the_replacement"] = bool(np.allclose(exported.vector, unit(12), atol=1e-6))
    seen["templates_of_alice"] = len(store.templates_of_model("alice", MODEL))
    seen["check"] = store.check()
    return seen


def test_the_same_operations_give_the_same_answers_on_every_backend(backend_db, tmp_path):
    with open_store(Settings(db=backend_db)) as store:
        seen = scenario(store)
    # What holds on every backend, stated once...
    assert seen["ids_increase"] is True
    assert seen["removal"] == ("dave", 1, 0)
    assert [row[0] for row in seen["list"]] == ["Caroline", "alice", "bob"]  # by code point, as `list` orders
    assert seen["alice_attempts"][0][1] == "no_match"  # newest first
    assert seen["attempts_of_removed_user_kept"] == []  # dave never verified
    assert [e[0] for e in seen["identifications"]] == ["unknown", "identified"]  # newest first
    assert seen["lookalikes"] == [("alice", 0.62, MODEL)]  # dave's went with him
    assert seen["gallery_stamp"] == {"inserts": 6, "deletes": 2, "reused": 0}
    assert seen["bob_is_the_replacement"] and seen["check"] == "ok"
    # ...and PostgreSQL answers exactly as SQLite does.
    with open_store(Settings(db=str(tmp_path / "reference" / "facer.db"))) as reference:
        assert seen == scenario(reference)


# -- the identify index over each backend ---------------------------------------------
def exact_top(store: Any, probe: np.ndarray, top_k: int) -> list[tuple[str, float]]:
    """Each user's best cosine with `probe` over every stored template: the answer an index must give."""
    best: dict[str, float] = {}
    for user in store.list():
        for template in store.templates_of_model(user.name, MODEL):
            score = float(template.vector @ probe)
            best[user.name] = max(best.get(user.name, -2.0), score)
    return sorted(best.items(), key=lambda item: -item[1])[:top_k]


def assert_index_exact(index: GalleryIndex, store: Any, probes: np.ndarray, top_k: int = 3) -> None:
    for probe in probes:
        found = [(c.name, c.similarity) for c in index.search(probe, top_k=top_k)]
        expected = exact_top(store, probe, top_k)
        assert [name for name, _ in found] == [name for name, _ in expected]
        assert np.allclose([s for _, s in found], [s for _, s in expected], atol=1e-5)


@pytest.fixture
def filled_store(backend_db):
    with open_store(Settings(db=backend_db)) as store:
        for user in range(40):
            store.import_vector(f"person {user:02d}", unit(100 + user), model=MODEL, source="seed")
        yield store


def test_the_index_catches_up_with_what_the_contract_writes_without_a_rebuild(filled_store):
    store = filled_store
    probes = np.stack([unit(100 + user) for user in (0, 5, 9)] + [unit(500), unit(501)])
    with GalleryIndex.open(store.gallery_source(), MODEL) as index:
        assert (len(index), index.rebuilds) == (40, 1)
        store.import_vector("newcomer", unit(500), model=MODEL, source="door")
        store.import_vector("person 05", unit(501), model=MODEL, source="door", mode="add")
        store.import_vector("person 09", unit(502), model=MODEL, source="door", mode="replace")
        store.remove("person 00")
        assert_index_exact(index, store, probes)
        assert (index.rebuilds, len(index)) == (1, 41) and index.catch_ups >= 1
        assert "person 00" not in {c.name for c in index.search(unit(100), top_k=5)}
        # A replaced template is gone: person 09's old face finds someone else first.
        assert index.search(unit(109), top_k=1)[0].name != "person 09"
    # A cold open of the same store agrees.
    with GalleryIndex.open(store.gallery_source(), MODEL) as cold:
        assert len(cold) == 41
        assert_index_exact(cold, store, probes)


def test_bulk_inserts_through_the_contract_are_found_and_counted(filled_store):
    store = filled_store
    with GalleryIndex.open(store.gallery_source(), MODEL) as index:
        created = now()
        user_ids = store.insert_rows(
            "users", [{"name": f"bulk {i:03d}", "created": created, "updated": created} for i in range(120)]
        )
        rows = [
            {
                "user_id": uid,
                "vector": unit(1000 + i).astype("<f4").tobytes(),
                "dimension": DIMENSION,
                "model": MODEL,
                "frames_seen": None,
                "frames_used": None,
                "outliers": None,
                "mean_quality": None,
                "source": "bulk",
                "created": created,
                "model_unverified": False,
            }
            for i, uid in enumerate(user_ids)
        ]
        with store.transaction("bulk"):
            template_ids = store.insert_rows("templates", rows)
        assert template_ids == sorted(template_ids) and len(set(template_ids)) == 120
        source = store.gallery_source()
        with source.read_transaction():
            assert source.stamp(MODEL)["inserts"] == 160
        probes = np.stack([unit(1000), unit(1119), unit(130)])
        assert_index_exact(index, store, probes)
        assert len(index) == 160 and index.search(unit(1119), top_k=1)[0].name == "bulk 119"


def test_many_removals_mean_a_rebuild_and_no_removed_person_is_named(filled_store):
    store = filled_store
    with GalleryIndex.open(store.gallery_source(), MODEL) as index:
        for user in range(0, 40, 2):  # half of them
            store.remove(f"person {user:02d}")
        assert index.refresh() is True and index.rebuilds == 2 and len(index) == 20
        for user in range(0, 40, 2):
            assert index.search(unit(100 + user), top_k=1)[0].name != f"person {user:02d}"
        assert_index_exact(index, store, np.stack([unit(101), unit(102)]))


def test_a_changed_face_recorded_at_enrollment_is_no_verification(backend_store):
    store = backend_store
    store.import_vector("alice", unit(1), model=MODEL, source="a.npy")
    store.record_attempt(AttemptRecord(user="alice", model=MODEL, source="b.npy", band=FACE_CHANGED, similarity=0.1))
    assert store.list()[0].last_verified is None
    store.record_attempt(AttemptRecord(user="alice", model=MODEL, source="door", band="match", similarity=0.7))
    assert store.list()[0].last_verified == store.attempts("alice")[0].created
