"""The gallery index: exact search through int8 codes, open-set decisions, and the sidecar file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facer_cli import gallery as g
from facer_cli.gallery import (
    Candidate,
    GalleryIndex,
    QuantisedGallery,
    exact_search,
    search,
)
from facer_cli.gallery import index as gallery_index
from facer_cli.gallery.scanner import _matmul_integer_model
from facer_cli.service.identify import decide
from facer_cli.store import Store

MODEL = "test-model-fingerprint"
DIMENSION = 512


def unit_rows(rng: np.random.Generator, rows: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def face_like_gallery(seed: int, people: int, per_person: int, spread: float = 0.9):
    """People as noisy copies of a centre (same-person cosines about 0.5-0.8), plus near-duplicates."""
    rng = np.random.default_rng(seed)
    centres = unit_rows(rng, people)
    vectors = np.repeat(centres, per_person, axis=0) + spread * unit_rows(rng, people * per_person)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1::7] = vectors[0::7][: len(vectors[1::7])] + 1e-4 * unit_rows(rng, len(vectors[1::7]))  # near-ties
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    user_ids = np.repeat(np.arange(1, people + 1), per_person)
    template_ids = np.arange(1, len(vectors) + 1) * 3  # ids need not be dense
    return template_ids, user_ids, vectors.astype(np.float32), centres


def assert_same(found: list[Candidate], expected: list[Candidate]) -> None:
    assert [(c.user_id, c.template_id) for c in found] == [(c.user_id, c.template_id) for c in expected]
    np.testing.assert_allclose([c.similarity for c in found], [c.similarity for c in expected], atol=1e-6)


# -- exact search through the int8 codes --------------------------------------------
@pytest.mark.parametrize(("seed", "people", "per_person"), [(0, 40, 3), (1, 700, 4), (2, 3000, 2)])
def test_quantised_search_equals_exact_search(seed, people, per_person):
    template_ids, user_ids, vectors, centres = face_like_gallery(seed, people, per_person)
    gallery = QuantisedGallery.from_vectors(template_ids, user_ids, vectors)
    rng = np.random.default_rng(seed + 100)
    probes = np.concatenate([
        centres[rng.integers(people, size=8)] + 0.6 * unit_rows(rng, 8),  # a known person, new photo
        unit_rows(rng, 4),  # a stranger
        vectors[rng.integers(len(vectors), size=4)],  # an enrolled template itself: exact near-ties
    ])
    expected = [exact_search(template_ids, user_ids, vectors, probe, 20) for probe in probes]
    for top_k in (1, 5, 20):
        for probe, found, best in zip(probes, g.search_batch(gallery, probes, top_k), expected, strict=False):
            assert_same(found, best[:top_k])
            float32_scores = vectors @ probe  # plain float32 numpy agrees to 1e-6 as well
            assert abs(float(float32_scores.max()) - found[0].similarity) < 1e-6


def test_error_bound_holds_for_every_row_even_for_spiky_vectors():
    rng = np.random.default_rng(7)
    vectors = unit_rows(rng, 3000)
    vectors[:1000] = np.where(np.abs(vectors[:1000]) > 0.08, vectors[:1000], 0.0)  # sparse, large codes error
    vectors[1000:1010] = 0.0
    vectors[1000:1010, :3] = 1 / np.sqrt(3)  # one huge value per row dominates the scale
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gallery = QuantisedGallery.from_vectors(np.arange(3000), np.arange(3000), vectors)
    for probe in [unit_rows(rng, 1)[0], vectors[5], np.eye(DIMENSION, dtype=np.float32)[0]]:
        quantised = g.quantise_probe(probe)
        approx, bound = g.score_bounds(gallery.scan(quantised.codes), quantised, gallery.scales,
                                       gallery.error_norms, gallery.max_row_norm)
        exact = vectors.astype(np.float64) @ probe.astype(np.float64)
        assert (np.abs(exact - approx) <= bound).all()


def test_scanner_integer_dots_are_exact():
    rng = np.random.default_rng(3)
    codes = rng.integers(-127, 128, (DIMENSION, 5000), dtype=np.int8)
    probes = rng.integers(1, 128, (3, DIMENSION), dtype=np.uint8)  # the extremes saturate a careless kernel
    probes[0] = 127
    codes[:, 0] = -127
    expected = (probes.astype(np.int64) - g.PROBE_ZERO_POINT) @ codes.astype(np.int64)
    np.testing.assert_array_equal(g.Int8Scanner(codes).dots(probes), expected)


def test_candidate_set_keeps_a_true_best_that_quantisation_ranks_lower():
    # Two people whose int8 scores are in the wrong order: the bound must keep both for re-scoring.
    approx = np.array([0.51, 0.50, 0.11, 0.06], np.float32)
    error_norms = np.full(4, 0.01, np.float32)  # bounds of 0.01: lower bounds 0.50, 0.49, ...
    bounds = g.RowBounds(error_norms, np.float32(1.0), np.float32(0.0), largest=0.01)
    rows = g.candidate_rows(approx, bounds, np.array([1, 2, 3, 4]), top_k=1)
    assert rows.tolist() == [0, 1]


def every_row_candidates(approx, bound, user_ids, top_k, known):
    """The candidate set straight from its definition: every row's bounds, T by a full sort."""
    lower, upper = approx - bound, approx + bound
    best: dict[int, float] = dict(known)
    for user, value in zip(user_ids.tolist(), lower.tolist(), strict=True):
        if np.isfinite(value) and value > best.get(user, -np.inf):
            best[user] = value
    if len(best) < top_k:
        return np.flatnonzero(np.isfinite(approx))
    threshold = sorted(best.values(), reverse=True)[top_k - 1]
    return np.flatnonzero(upper >= np.float32(threshold))


@pytest.mark.parametrize("seed", range(6))
def test_candidates_from_a_few_rows_bounds_equal_those_from_every_row(seed):
    # candidate_rows computes the bound of only the rows near the top; the set must be the one
    # that every row's lower and upper bound give, masked rows and known (delta) scores included.
    rng = np.random.default_rng(seed)
    template_ids, user_ids, vectors, _ = face_like_gallery(seed, 400, 5, spread=0.5 + 0.1 * seed)
    gallery = QuantisedGallery.from_vectors(template_ids, user_ids, vectors)
    for probe in [vectors[rng.integers(len(vectors))], unit_rows(rng, 1)[0]]:
        quantised = g.quantise_probe(probe)
        approx, bound = g.score_bounds(
            gallery.scan(quantised.codes), quantised, gallery.scales, gallery.error_norms, gallery.max_row_norm
        )
        if seed % 2:
            approx[rng.random(len(approx)) < 0.2] = -np.inf  # removed rows
        known = {int(u): float(v) for u, v in zip(rng.integers(1, 500, 3), rng.uniform(0.2, 0.9, 3), strict=True)}
        bounds = g.RowBounds.of(quantised, gallery.error_norms, gallery.largest_error, gallery.max_row_norm)
        for top_k in (1, 5, 20):
            for extra in ({}, known):
                expected = every_row_candidates(approx, bound, user_ids, top_k, extra)
                found = g.candidate_rows(approx, bounds, user_ids, top_k, extra)
                np.testing.assert_array_equal(found, expected)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_candidates_equal_every_row_definition_when_scores_crowd_within_the_bounds(seed):
    # Scores packed closer together than the bounds are wide: the cut and T nearly meet, rows far
    # below the cut can still reach T, and bounds differ from row to row.
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(50, 30_000))
    approx = rng.uniform(0.30, 0.30 + 10 ** rng.uniform(-4, -1), rows).astype(np.float32)
    error_norms = rng.uniform(0.0, 0.03, rows).astype(np.float32)
    approx[rng.random(rows) < 0.1] = -np.inf
    user_ids = rng.integers(1, max(2, rows // int(rng.integers(1, 6))), rows)
    bounds = g.RowBounds.of(
        g.quantise_probe(unit_rows(rng, 1)[0]), error_norms, g.largest_error(error_norms), 1.0
    )
    bound = bounds.at()
    for top_k in (1, 5, 20):
        for extra in ({}, {int(user_ids[0]): 0.305, -1: 0.31}):
            expected = every_row_candidates(approx, bound, user_ids, top_k, extra)
            np.testing.assert_array_equal(g.candidate_rows(approx, bounds, user_ids, top_k, extra), expected)


def test_fewer_people_than_top_k_returns_them_all():
    template_ids, user_ids, vectors, _ = face_like_gallery(4, 3, 5)
    gallery = QuantisedGallery.from_vectors(template_ids, user_ids, vectors)
    found = search(gallery, vectors[0], top_k=10)
    assert sorted(c.user_id for c in found) == [1, 2, 3]
    assert_same(found, exact_search(template_ids, user_ids, vectors, vectors[0], 10))


# -- decisions -----------------------------------------------------------------------
def people(*scores: float) -> list[Candidate]:
    return [Candidate(user_id=i + 1, template_id=10 + i, similarity=s, name=f"p{i + 1}") for i, s in enumerate(scores)]


def test_decide_identified_unknown_ambiguous():
    assert decide(people(0.7, 0.3), threshold=0.5, margin=0.1)[0] == "identified"
    assert decide(people(0.45, 0.1), threshold=0.5, margin=0.1)[0] == "unknown"
    decision, reason = decide(people(0.7, 0.65), threshold=0.5, margin=0.1)
    assert decision == "ambiguous" and "p2" in reason
    assert decide(people(0.5, 0.375), threshold=0.5, margin=0.125)[0] == "identified"  # both bounds inclusive
    assert decide([], threshold=0.5, margin=0.1)[0] == "unknown"
    assert decide(people(0.8), threshold=0.5, margin=0.1)[0] == "identified"


def test_second_template_of_the_same_person_is_no_competitor():
    # Two near-identical templates of person 1 and a distant person 2: candidates are per person.
    rng = np.random.default_rng(5)
    base = unit_rows(rng, 2)
    vectors = np.stack([base[0], base[0] + 0.01 * base[1], base[1]]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    gallery = QuantisedGallery.from_vectors([1, 2, 3], [1, 1, 2], vectors)
    found = search(gallery, base[0], top_k=5)
    assert [c.user_id for c in found] == [1, 2]
    assert decide(found, threshold=0.5, margin=0.1)[0] == "identified"


# -- the index over a store, and its sidecar -------------------------------------------
def make_store(path: Path, people_count: int = 30, per_person: int = 2, seed: int = 0, counter: bool = True):
    """A real store (every migration), filled directly; without `counter`, as an earlier facer left it."""
    _, user_ids, vectors, _ = face_like_gallery(seed, people_count, per_person)
    Store(path, access="create").close()
    conn = sqlite3.connect(path)
    if not counter:
        for trigger in ("insert", "delete", "update"):
            conn.execute(f"DROP TRIGGER gallery_version_{trigger}")
        conn.execute("DROP TABLE gallery_version")
    conn.executemany("INSERT INTO users (id, name, created, updated) VALUES (?, ?, 'c', 'u')",
                     [(u, f"person {u}") for u in range(1, people_count + 1)])
    add_templates(conn, user_ids, vectors)
    conn.commit()
    conn.close()
    return vectors


def add_templates(conn: sqlite3.Connection, user_ids, vectors, model: str = MODEL, ids=None) -> None:
    """`ids`: given ids (the store never hands a deleted id out again, but an earlier facer did)."""
    if ids is not None:
        conn.executemany(
            "INSERT INTO templates (id, user_id, vector, dimension, model, created)"
            " VALUES (?, ?, ?, ?, ?, datetime('now'))",
            [(int(i), int(u), np.asarray(v, "<f4").tobytes(), DIMENSION, model)
             for i, u, v in zip(ids, user_ids, vectors, strict=True)],
        )
        return
    conn.executemany(
        "INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (?, ?, ?, ?, datetime('now'))",
        [(int(u), np.asarray(v, "<f4").tobytes(), DIMENSION, model) for u, v in zip(user_ids, vectors, strict=False)],
    )


def stored_vectors(path: Path) -> np.ndarray:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT vector FROM templates ORDER BY id").fetchall()
    return np.stack([np.frombuffer(row[0], "<f4") for row in rows])


@pytest.fixture(params=[True, False], ids=["counter-stamp", "scan-stamp"])
def store(tmp_path, request):
    path = tmp_path / "facer.db"
    make_store(path, counter=request.param)
    return path


def test_index_answers_with_names_and_writes_a_private_sidecar(store):
    with GalleryIndex.open(store, MODEL) as index:
        assert len(index) == 60 and index.rebuilds == 1
        probe = stored_vectors(store)[10]
        found = index.search(probe, top_k=3)
        assert found[0].template_id == 11 and found[0].name == "person 6"
    sidecar = g.sidecar_path(store, MODEL)
    assert sidecar.exists() and (sidecar.stat().st_mode & 0o777) == 0o600
    with GalleryIndex.open(store, MODEL) as again:
        assert again.rebuilds == 0  # valid sidecar reused
        assert again.search(probe, top_k=3) == found


def damage_truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 4096)


def damage_flip(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size - 1000)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))


def damage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"garbage")


@pytest.mark.parametrize("damage", [Path.unlink, damage_truncate, damage_flip, damage_header])
def test_damaged_sidecar_is_rebuilt_never_trusted(store, damage):
    with GalleryIndex.open(store, MODEL):
        pass
    damage(g.sidecar_path(store, MODEL))
    with GalleryIndex.open(store, MODEL) as index:
        assert index.rebuilds == 1 and len(index) == 60
        assert g.sidecar_problem(os.open(index.sidecar, os.O_RDONLY), MODEL) is None


def test_sidecar_of_another_model_is_not_used(store):
    with GalleryIndex.open(store, MODEL) as index:
        theirs = g.sidecar_path(store, "other-model")
        theirs.write_bytes(index.sidecar.read_bytes())  # a copy that claims the wrong model
    with GalleryIndex.open(store, "other-model") as other:
        assert other.rebuilds == 1 and len(other) == 0 and other.search(np.ones(DIMENSION)) == []


def test_stale_sidecar_is_rebuilt_after_another_connection_writes(store):
    with GalleryIndex.open(store, MODEL):
        pass
    conn = sqlite3.connect(store)
    conn.execute("DELETE FROM templates WHERE id = 60")
    add_templates(conn, [1], unit_rows(np.random.default_rng(9), 1), ids=[60])  # id 60 again, a new vector
    conn.commit()
    conn.close()
    with GalleryIndex.open(store, MODEL) as index:
        assert index.rebuilds == 1 and len(index) == 60


WRITER = """
import sqlite3, sys, numpy as np
conn = sqlite3.connect(sys.argv[1])
if sys.argv[2] == "add":
    conn.execute("INSERT INTO users (id, name, created, updated) VALUES (99, 'newcomer', 'c', 'u')")
    conn.execute("INSERT INTO templates (user_id, vector, dimension, model, created) VALUES (99, ?, 512, ?, 'z')",
                 (np.frombuffer(bytes.fromhex(sys.argv[3]), '<f4').tobytes(), sys.argv[4]))
else:
    conn.execute("DELETE FROM templates WHERE user_id = 99")
conn.commit()
"""


def test_refresh_sees_enrollment_and_removal_by_another_process(store):
    probe = unit_rows(np.random.default_rng(11), 1)[0]
    with GalleryIndex.open(store, MODEL) as index:
        assert index.refresh() is False  # nothing changed: no work
        assert index.search(probe, top_k=1)[0].name != "newcomer"
        run_writer(store, "add", probe.astype("<f4").tobytes().hex(), MODEL)
        found = index.search(probe, top_k=1)  # refreshes by itself
        assert found[0].name == "newcomer" and found[0].similarity == pytest.approx(1.0, abs=1e-6)
        run_writer(store, "remove")
        assert index.refresh() is True
        assert index.search(probe, top_k=1)[0].name != "newcomer" and len(index) == 60


def run_writer(db: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(db), *args], check=True, timeout=60)


def test_writes_that_do_not_touch_templates_keep_the_index(tmp_path):
    path = tmp_path / "facer.db"
    make_store(path, counter=True)
    with GalleryIndex.open(path, MODEL) as index:
        conn = sqlite3.connect(path)
        conn.execute("UPDATE users SET name = 'renamed' WHERE id = 1")  # names are read at answer time
        conn.commit()
        conn.close()
        assert index.refresh() is False
        assert index.search(stored_vectors(path)[0], top_k=1)[0].name == "renamed"


# -- incremental catch-up ---------------------------------------------------------------
def counter_store(tmp_path, people_count=40, per_person=3):
    path = tmp_path / "facer.db"
    make_store(path, people_count, per_person, counter=True)
    return path


def all_rows(path: Path):
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, user_id, vector FROM templates WHERE model = ? ORDER BY id", (MODEL,)).fetchall()
    return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
            np.stack([np.frombuffer(r[2], "<f4") for r in rows]))


def assert_exact(index: GalleryIndex, path: Path, probes: np.ndarray, top_k: int = 5) -> None:
    ids, users, vectors = all_rows(path)
    for probe, found in zip(probes, index.search_batch(probes, top_k), strict=False):
        assert_same(found, exact_search(ids, users, vectors, probe, top_k))


def test_inserts_and_deletes_are_caught_up_exactly_without_a_rebuild(tmp_path):
    path = counter_store(tmp_path)
    rng = np.random.default_rng(21)
    with GalleryIndex.open(path, MODEL) as index:
        assert index.rebuilds == 1
        conn = sqlite3.connect(path)
        conn.executemany("INSERT INTO users (id, name, created, updated) VALUES (?, ?, 'c', 'u')",
                         [(u, f"new {u}") for u in (101, 102)])
        fresh = unit_rows(rng, 3)
        add_templates(conn, [101, 101, 102], fresh)
        conn.execute("DELETE FROM templates WHERE user_id IN (3, 7)")  # six rows of the quantised part
        conn.commit()
        probes = np.concatenate([fresh, stored_vectors(path)[:4], unit_rows(rng, 3)])
        assert_exact(index, path, probes)
        assert (index.rebuilds, index.catch_ups, len(index.delta)) == (1, 1, 3) and len(index) == 117
        conn.execute("DELETE FROM templates WHERE user_id = 102")  # from the delta
        conn.commit()
        conn.close()
        assert_exact(index, path, probes)
        assert (index.rebuilds, index.catch_ups, len(index.delta), len(index)) == (1, 2, 2, 116)
    # A cold open maps the (stale) sidecar and catches up the same way.
    with GalleryIndex.open(path, MODEL) as cold:
        assert (cold.rebuilds, cold.catch_ups, len(cold)) == (0, 1, 116)
        assert_exact(cold, path, probes)


def test_a_reused_id_or_a_large_delta_means_a_rebuild(tmp_path, monkeypatch):
    path = counter_store(tmp_path)
    rng = np.random.default_rng(22)
    with GalleryIndex.open(path, MODEL) as index:
        conn = sqlite3.connect(path)
        (newest,) = conn.execute("SELECT max(id) FROM templates").fetchone()
        conn.execute("DELETE FROM templates WHERE id = ?", (newest,))
        add_templates(conn, [1], unit_rows(rng, 1), ids=[newest])  # the deleted row's id again
        conn.commit()
        assert index.refresh() and index.rebuilds == 2
        monkeypatch.setattr(gallery_index, "DELTA_MIN", 4)
        monkeypatch.setattr(gallery_index, "DELTA_FRACTION", 0.0)
        add_templates(conn, [2] * 5, unit_rows(rng, 5))
        conn.commit()
        conn.close()
        assert index.refresh() and index.rebuilds == 3 and len(index.delta) == 0 and len(index) == 125
        assert_exact(index, path, unit_rows(rng, 4))


def test_many_removed_rows_mean_a_rebuild(tmp_path):
    path = counter_store(tmp_path)
    with GalleryIndex.open(path, MODEL) as index:
        conn = sqlite3.connect(path)
        conn.execute("DELETE FROM templates WHERE user_id <= 10")  # a quarter of the rows
        conn.commit()
        conn.close()
        assert index.refresh() and index.rebuilds == 2 and len(index) == 90


def test_quantised_path_on_a_face_like_gallery_with_a_delta_equals_float32_search():
    template_ids, user_ids, vectors, centres = face_like_gallery(8, 500, 3)
    split = 1200
    gallery = QuantisedGallery.from_vectors(template_ids[:split], user_ids[:split], vectors[:split])
    gallery.alive = np.ones(split, bool)
    gallery.alive[::11] = False
    delta = g.Delta(template_ids[split:], user_ids[split:], vectors[split:])
    keep = np.concatenate([gallery.alive, np.ones(len(vectors) - split, bool)])
    rng = np.random.default_rng(9)
    probes = np.concatenate([centres[rng.integers(500, size=6)] + 0.6 * unit_rows(rng, 6), unit_rows(rng, 3),
                             vectors[rng.integers(len(vectors), size=3)]])
    stats = g.SearchStats()
    for probe, found in zip(probes, g.search_batch(gallery, probes, 5, delta=delta, stats=stats), strict=False):
        assert_same(found, exact_search(template_ids[keep], user_ids[keep], vectors[keep], probe, 5))
    assert stats.rescored < 0.1 * stats.scanned  # the bound keeps few rows


def test_the_hand_made_scan_model_is_the_one_onnx_helper_builds():
    import onnx
    from onnx import TensorProto, helper

    codes = TensorProto(name="codes", data_type=TensorProto.INT8, dims=[512, 1000])
    codes.external_data.add(key="location", value="gallery-codes")
    codes.data_location = TensorProto.EXTERNAL
    zero_point = TensorProto(name="probe_zero_point", data_type=TensorProto.UINT8, raw_data=bytes([g.PROBE_ZERO_POINT]))
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["probe", "codes", "probe_zero_point"], ["dots"])],
        "gallery_scan",
        [helper.make_tensor_value_info("probe", TensorProto.UINT8, ["probes", 512])],
        [helper.make_tensor_value_info("dots", TensorProto.INT32, ["probes", 1000])],
        initializer=[zero_point, codes],
    )
    expected = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    expected.ir_version = 8
    assert onnx.ModelProto.FromString(_matmul_integer_model(512, 1000)) == expected
