"""find_outliers against the original cubic implementation: the same rows dropped, in the same order, same cosines."""

from __future__ import annotations

import numpy as np
import pytest

from facer_cli.templates.aggregate import find_outliers


def find_outliers_cubic(embeddings: np.ndarray, weights: np.ndarray, threshold: float) -> dict[int, float]:
    """The original implementation, verbatim: every row's leave-one-out sum re-added each round."""
    kept = list(range(len(embeddings)))
    dropped: dict[int, float] = {}
    while len(kept) > 1:
        cosines = []
        for i in kept:
            others = [j for j in kept if j != i]
            total = (embeddings[others] * weights[others, None]).sum(axis=0)
            norm = np.linalg.norm(total)
            cosines.append(float(embeddings[i] @ total / norm) if norm > 0 else -1.0)
        worst = int(np.argmin(cosines))
        if cosines[worst] >= threshold:
            break
        dropped[kept.pop(worst)] = cosines[worst]
    return dropped


def assert_same(embeddings: np.ndarray, weights: np.ndarray, threshold: float) -> dict[int, float]:
    expected = find_outliers_cubic(embeddings, weights, threshold)
    found = find_outliers(embeddings, weights, threshold)
    assert list(found) == list(expected)  # same rows, same order
    for row, cosine in expected.items():
        assert abs(found[row] - cosine) <= 1e-9 or (np.isnan(cosine) and np.isnan(found[row]))
    return found


def unit_rows(matrix: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(dtype)


def identities(rng: np.random.Generator, n: int, dim: int, people: int, noise: float) -> np.ndarray:
    """n embeddings of `people` identities (the first one most frequent), as float32 unit rows like the engine's."""
    centres = rng.standard_normal((people, dim))
    owner = np.minimum(rng.geometric(0.6, n) - 1, people - 1)
    return unit_rows(centres[owner] + noise * rng.standard_normal((n, dim)))


def random_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.integers(4)
    if kind == 0:
        return np.ones(n)
    if kind == 1:  # qualities, a few repeated exactly
        return rng.choice(np.round(rng.uniform(0.3, 1.0, 4), 2), n)
    weights = rng.uniform(0.0, 1.0, n)
    if kind == 2:  # some frames weigh nothing
        weights[rng.random(n) < 0.3] = 0.0
    else:  # one frame outweighs the rest
        weights[rng.integers(n)] = 50.0
    return weights


@pytest.mark.parametrize("seed", range(300))
def test_random_cases_match_the_cubic_loop(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 3, 4, 7, 15, 40]))
    dim = int(rng.choice([2, 3, 16, 512]))
    embeddings = identities(rng, n, dim, people=int(rng.integers(1, 5)), noise=float(rng.choice([0.2, 0.6, 1.5])))
    if rng.random() < 0.3 and n > 1:  # exact duplicates: tied cosines
        embeddings[rng.integers(n, size=n // 2)] = embeddings[rng.integers(n)]
    elif rng.random() < 0.3 and n > 1:  # near duplicates: cosines closer than the fast formula can tell apart
        picked = rng.integers(n, size=n // 2)
        embeddings[picked] = embeddings[rng.integers(n)] + 1e-7 * rng.standard_normal((len(picked), dim))
    threshold = float(rng.choice([-1.0, 0.0, 0.3, 0.45, 0.7, 0.95, 1.0]))
    assert_same(embeddings, random_weights(rng, n), threshold)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_several_identities_drop_all_but_the_main_one(dtype):
    rng = np.random.default_rng(7)
    main, other, third = (rng.standard_normal(512) for _ in range(3))
    rows = [main + 0.5 * rng.standard_normal(512) for _ in range(20)]
    rows += [other + 0.5 * rng.standard_normal(512) for _ in range(5)]
    rows += [third + 0.5 * rng.standard_normal(512) for _ in range(3)]
    embeddings = unit_rows(np.array(rows), dtype)
    found = assert_same(embeddings, rng.uniform(0.5, 1.0, len(rows)), 0.45)
    assert set(found) == set(range(20, 28))


def test_exact_ties_drop_the_first_row_like_the_cubic_loop():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    embeddings = np.array([a, b, a, b, b])
    for weights in (np.ones(5), np.array([1.0, 2.0, 1.0, 2.0, 2.0]), np.array([1.0, 0.0, 1.0, 0.0, 0.0])):
        assert_same(embeddings, weights, 0.5)
    assert list(assert_same(np.array([a, b]), np.ones(2), 0.5)) == [0]


def test_zero_weights_and_zero_sums():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert assert_same(np.array([a, b, a]), np.zeros(3), 0.0) == {0: -1.0, 1: -1.0}
    assert assert_same(np.array([a, -a, b]), np.ones(3), 0.5)  # a and -a cancel: near-zero sums
    assert assert_same(np.array([a, b]), np.array([1.0, 0.0]), 0.5) == {0: -1.0}
    assert_same(np.array([a, a, b]), np.array([1.0, 1e-300, 1.0]), 0.5)


def test_one_to_three_rows():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3):
        for _ in range(50):
            embeddings = unit_rows(rng.standard_normal((n, 4)))
            assert_same(embeddings, rng.uniform(0.0, 1.0, n), float(rng.uniform(-1.0, 1.0)))
    assert find_outliers(np.zeros((0, 4)), np.zeros(0), 0.5) == {}


def test_long_video_like_run():
    """A video's worth of frames, mostly one person, several dropped (the cubic reference keeps it short)."""
    rng = np.random.default_rng(11)
    embeddings = identities(rng, 90, 512, people=3, noise=0.7)
    assert len(assert_same(embeddings, rng.uniform(0.4, 1.0, 90), 0.45)) >= 10


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_non_finite_values_follow_the_cubic_loop():
    rng = np.random.default_rng(1)
    embeddings = unit_rows(rng.standard_normal((6, 8)))
    embeddings[2, 3] = np.nan
    assert next(iter(assert_same(embeddings, np.ones(6), 0.3))) == 2
    weights = np.ones(6)
    weights[4] = np.inf
    assert_same(unit_rows(rng.standard_normal((6, 8))), weights, 0.3)
