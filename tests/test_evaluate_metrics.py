"""Evaluation figures on small hand-computed score sets (pure numpy, no engine)."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from facer_cli.evaluation.metrics import (
    BandCounts,
    best_accuracy,
    equal_error_rate,
    evaluate_scores,
    needed_pairs,
    recommend,
    roc_curve,
    round_down_to,
    round_up_above,
    tar_at_far,
)

NAN = float("nan")

# The hand-computed example: 4 genuine and 5 impostor pairs.
GENUINE = [0.9, 0.8, 0.6, 0.3]
IMPOSTOR = [0.7, 0.2, 0.1, 0.05, 0.0]


def test_hand_computed_example_at_the_configured_thresholds():
    m = evaluate_scores(GENUINE, IMPOSTOR, threshold_high=0.4, threshold_low=0.3)
    # genuine: 0.9 0.8 0.6 match, 0.3 uncertain (0.3 ≤ s < 0.4); impostor: 0.7 match, the rest no match
    assert m.current.genuine == BandCounts(total=4, match=3, uncertain=1, no_match=0, no_score=0)
    assert m.current.impostor == BandCounts(total=5, match=1, uncertain=0, no_match=4, no_score=0)
    assert m.current.far == pytest.approx(1 / 5)
    assert m.current.frr == 0.0
    assert m.current.genuine_uncertain == pytest.approx(1 / 4)
    assert m.current.impostor_uncertain == 0.0
    assert m.current.accuracy == pytest.approx(7 / 9)  # 3 genuine matches + 4 impostor no-matches
    assert m.pairs == 9


def test_hand_computed_equal_error_rate_is_interpolated():
    # Vertices (FAR, FRR): t=0.6 → (1/5, 1/4): FAR−FRR = −0.05; t=0.3 → (1/5, 0): +0.2.
    # α = 0.05 / 0.25 = 0.2: EER = 0.2, threshold = 0.6 + 0.2 × (0.3 − 0.6) = 0.54.
    eer = equal_error_rate(roc_curve(np.array(GENUINE), np.array(IMPOSTOR)))
    assert eer.rate == pytest.approx(0.2)
    assert eer.threshold == pytest.approx(0.54)


def test_hand_computed_best_accuracy_threshold():
    # Accept iff score ≥ t: t in (0.2, 0.3] gets 4 genuine + 4 impostor right = 8/9; the gap's middle is 0.25.
    best = best_accuracy(np.array(GENUINE), np.array(IMPOSTOR))
    assert best.threshold == pytest.approx(0.25)
    assert best.accuracy == pytest.approx(8 / 9)
    assert best.far == pytest.approx(1 / 5)
    assert best.frr == 0.0


def test_roc_vertices():
    curve = roc_curve(np.array(GENUINE), np.array(IMPOSTOR))
    assert curve.thresholds[0] == np.inf
    np.testing.assert_allclose(curve.thresholds[1:], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05, 0.0])
    np.testing.assert_allclose(curve.far, [0, 0, 0, 0.2, 0.2, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(curve.frr, [1, 0.75, 0.5, 0.5, 0.25, 0, 0, 0, 0, 0])


def test_band_edges_follow_verify():
    # Match iff score ≥ high; no match iff score < low; uncertain in [low, high).
    counts = BandCounts.of(np.array([0.40, 0.3999, 0.30, 0.2999]), high=0.40, low=0.30)
    assert (counts.match, counts.uncertain, counts.no_match) == (1, 2, 1)


def test_separable_scores():
    m = evaluate_scores([0.9, 0.8, 0.7], [0.1, 0.2], 0.4, 0.3)
    assert m.eer.rate == 0.0
    assert m.eer.threshold == pytest.approx(0.7)  # the highest threshold with no error
    assert m.best.accuracy == 1.0
    assert m.best.threshold == pytest.approx(0.45)  # middle of the gap 0.2 … 0.7
    assert m.current.accuracy == 1.0 and m.current.far == 0.0 and m.current.frr == 0.0


def test_pairs_without_a_score_count_as_rejections():
    # Genuine NaN: a false reject. Impostor NaN: not a false accept, but never a correct answer.
    m = evaluate_scores([0.9, NAN], [0.1, NAN], 0.4, 0.3)
    assert m.current.genuine == BandCounts(total=2, match=1, uncertain=0, no_match=1, no_score=1)
    assert m.current.impostor == BandCounts(total=2, match=0, uncertain=0, no_match=2, no_score=1)
    assert m.current.frr == 0.5
    assert m.current.far == 0.0
    assert m.current.accuracy == pytest.approx(2 / 4)  # 0.9 matched, 0.1 rejected; the NaN pairs are errors
    # FRR never drops below the failed share: at t = 0.1 FAR = 1/2, FRR = 1/2 → EER 0.5.
    assert m.eer.rate == pytest.approx(0.5)
    assert m.best.accuracy == pytest.approx(2 / 4)
    assert m.genuine.no_score == 1 and m.impostor.no_score == 1


def test_eer_undefined_when_failures_dominate():
    m = evaluate_scores([0.9, NAN, NAN], [0.1, NAN, NAN], 0.4, 0.3)
    # FAR ≤ 1/3 everywhere, FRR ≥ 2/3 everywhere: they never meet.
    assert m.eer.rate is None and "FRR stays above FAR" in m.eer.note


def test_tar_at_far_needs_enough_impostor_pairs():
    assert needed_pairs(1e-2) == 100 and needed_pairs(1e-3) == 1000
    impostor = np.linspace(0.0, 0.3, 100)  # 100 impostor pairs: FAR 1e-2 allows one false accept
    genuine = np.array([0.2995, 0.31, 0.5, 0.9])
    point = tar_at_far(genuine, impostor, 1e-2)
    assert point.supported
    # The second-highest impostor (0.29697) must be rejected: threshold 0.2970, one impostor (0.3) above it.
    assert point.threshold == pytest.approx(0.2970)
    assert point.tar == 1.0
    few = tar_at_far(genuine, impostor[:99], 1e-2)
    assert not few.supported and few.tar is None
    assert few.note == "needs ≥ 100 impostor pairs, have 99"
    assert not tar_at_far(genuine, impostor, 1e-3).supported


def test_tar_at_far_counts_genuine_below_the_threshold():
    impostor = np.concatenate([np.full(98, 0.1), [0.5, 0.6]])  # 100 pairs; allowed 1 above → threshold > 0.5
    genuine = np.array([0.45, 0.55, 0.7, 0.8])
    point = tar_at_far(genuine, impostor, 1e-2)
    assert point.threshold == pytest.approx(0.5001)
    assert point.tar == pytest.approx(3 / 4)


def test_recommended_thresholds():
    r = recommend(np.array(GENUINE), np.array(IMPOSTOR), target_far=0.2, target_frr=0.25)
    # FAR ≤ 0.2 with 5 impostors allows 1 at or above: just above the second highest, 0.2.
    assert r.threshold_high == 0.2001
    assert r.far_at_high == pytest.approx(0.2) and r.tar_at_high == 1.0
    r = recommend(np.array(GENUINE), np.array(IMPOSTOR), target_far=0.1, target_frr=0.0)
    assert r.threshold_high == 0.7001  # no impostor allowed: above 0.7
    assert r.far_at_high == 0.0 and r.tar_at_high == 0.5
    # FRR 0 allows no genuine pair below: the lowest genuine score, 0.3.
    assert r.threshold_low == 0.3 and r.frr_at_low == 0.0
    assert r.toml().splitlines() == [
        "cosine_threshold_high = 0.7001  # not measured: FAR 0.1 needs ≥ 10 impostor pairs, have 5",
        "cosine_threshold_low = 0.3000  # not measured: FRR 0 cannot be measured with any number of genuine pairs",
    ]
    assert tomllib.loads(r.toml()) == {"cosine_threshold_high": 0.7001, "cosine_threshold_low": 0.3}


def test_recommended_low_is_clamped_to_high():
    r = recommend(np.array(GENUINE), np.array(IMPOSTOR), target_far=0.1, target_frr=0.25)
    # FRR 0.25 allows one genuine pair below: up to 0.6, under high 0.7001, kept as it is.
    assert r.threshold_low == 0.6 and r.frr_at_low == 0.25
    assert not r.notes[1:]
    r = recommend(np.array([0.9, 0.8]), np.array([0.1, 0.2]), target_far=0.4, target_frr=0.4)
    assert r.threshold_high == 0.2001
    assert r.threshold_low == 0.2001  # 0.8 would exceed high: clamped
    assert any("low set to high" in note for note in r.notes)
    assert r.low_clamped
    assert tomllib.loads(r.toml()) == {"cosine_threshold_high": 0.2001, "cosine_threshold_low": 0.2001}
    assert "set to high: no uncertain band needed" in r.toml().splitlines()[1]


def test_recommendation_notes_when_the_data_are_too_few():
    r = recommend(np.array(GENUINE), np.array(IMPOSTOR), target_far=1e-3, target_frr=1e-2)
    assert not r.far_supported and not r.frr_supported
    assert any("needs ≥ 1000 impostor pairs, have 5" in note for note in r.notes)
    r = recommend(np.array(GENUINE), np.empty(0), target_far=1e-3, target_frr=1e-2)
    assert r.threshold_high is None and r.threshold_low == 0.3
    r = recommend(np.empty(0), np.array(IMPOSTOR), target_far=1e-3, target_frr=1e-2)
    assert r.threshold_low is None and r.threshold_high == 0.7001


def test_no_recommended_low_when_no_genuine_pair_has_a_score():
    r = recommend(np.array([NAN, NAN]), np.array(IMPOSTOR), target_far=0.2, target_frr=0.5)
    assert r.threshold_low is None and r.threshold_high == 0.2001
    assert any("no genuine pair has a score" in note for note in r.notes)
    r = recommend(np.array([0.9, NAN, NAN]), np.array(IMPOSTOR), target_far=0.2, target_frr=0.34)
    assert r.threshold_low == 0.2001  # 0.9 clamped to high; 2 of 3 rejected whatever the threshold
    assert r.frr_at_low == pytest.approx(2 / 3)
    assert any("more genuine pairs without a score (2)" in note for note in r.notes)


def test_budget_is_safe_from_float_error():
    # 0.29 × 100 = 28.999999999999996 in floating point: 29 impostors may still be accepted.
    impostor = np.arange(100) / 100.0
    r = recommend(np.array([0.99]), impostor, target_far=0.29, target_frr=0.5)
    assert r.far_at_high == pytest.approx(0.29)


def test_rounding_of_thresholds():
    assert round_up_above(0.2) == 0.2001
    assert round_up_above(0.12345) == 0.1235
    assert round_up_above(-0.05) == -0.0499
    assert round_up_above(0.99999) == 1.0
    assert round_down_to(0.3) == 0.3
    assert round_down_to(0.12345) == 0.1234
    assert round_down_to(-0.12345) == -0.1235
    for value in np.random.default_rng(0).uniform(-1, 1, 200):
        assert round_up_above(value) > value and round_up_above(value) - value <= 1e-4 + 1e-12
        assert round_down_to(value) <= value and value - round_down_to(value) < 1e-4 + 1e-12


def test_empty_kinds_and_json():
    m = evaluate_scores([0.9, 0.8], [], 0.4, 0.3)
    assert m.current.far is None and m.eer.rate is None and m.curve() is None
    data = m.to_dict()
    assert data["impostor_pairs"] == 0 and data["current"]["far"] is None
    assert data["best_accuracy"]["accuracy"] == 1.0
    assert all(not math.isnan(v) for v in data["scores"]["genuine"].values() if isinstance(v, float))


def test_infinite_scores_are_refused():
    with pytest.raises(ValueError):
        evaluate_scores([np.inf], [0.1], 0.4, 0.3)
