"""Evaluation figures on small hand-computed score sets (pure numpy, no engine)."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from facer_cli.evaluation.curves import (
    BandCounts,
    best_accuracy,
    equal_error_rate,
    roc_curve,
    round_down_to,
    round_up_above,
    tar_at_far,
)
from facer_cli.evaluation.intervals import binomial_ci, most_errors_within, needed_pairs, pairs_needed
from facer_cli.evaluation.recommend import SAFE_FLOOR, evaluate_scores, recommend

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


def test_failure_to_acquire_on_both_sides_hand_computed():
    # genuine 0.9 match, 0.35 uncertain, 0.2 no match, one pair not acquired (NaN);
    # impostor 0.5 match, 0.1 and 0.0 no match, two pairs not acquired.
    m = evaluate_scores([0.9, 0.35, 0.2, NAN], [0.5, 0.1, NAN, NAN, 0.0], 0.4, 0.3)
    c = m.current
    assert c.genuine == BandCounts(total=4, match=1, uncertain=1, no_match=2, no_score=1)
    assert c.impostor == BandCounts(total=5, match=1, uncertain=0, no_match=4, no_score=2)
    assert (c.genuine.acquired, c.impostor.acquired) == (3, 3)
    # FTA per kind of pair: either image failing fails the pair.
    assert c.fta_genuine == pytest.approx(1 / 4) and c.fta_impostor == pytest.approx(2 / 5)
    # The model, on acquired pairs only.
    assert c.fmr == pytest.approx(1 / 3)  # 0.5 of the 3 acquired impostor pairs
    assert c.fnmr == pytest.approx(1 / 3)  # 0.2 of the 3 acquired genuine pairs
    assert c.genuine_uncertain == pytest.approx(1 / 3) and c.impostor_uncertain == 0.0
    assert c.accuracy == pytest.approx(3 / 6)  # 0.9 matched, 0.1 and 0.0 rejected, of 6 acquired pairs
    assert c.fmr_ci == binomial_ci(1, 3) and c.fnmr_ci == binomial_ci(1, 3)
    # The system: FAR = FMR × (1 − FTA) = 1/3 × 3/5 = 1/5; FRR = FTA + FNMR × (1 − FTA) = 1/4 + 1/3 × 3/4 = 1/2.
    assert c.far == pytest.approx(1 / 5) == pytest.approx(c.fmr * (1 - c.fta_impostor))
    assert c.frr == pytest.approx(1 / 2) == pytest.approx(c.fta_genuine + c.fnmr * (1 - c.fta_genuine))
    assert c.far_ci == binomial_ci(1, 5) and c.frr_ci == binomial_ci(2, 4)
    data = m.to_dict()["current"]
    assert data["fta_genuine_pairs"] == 0.25 and data["fta_impostor_pairs"] == 0.4
    assert data["fmr"] == pytest.approx(1 / 3, abs=1e-6) and data["fnmr"] == pytest.approx(1 / 3, abs=1e-6)
    assert data["far"] == 0.2 and data["frr"] == 0.5 and data["accuracy"] == 0.5
    assert data["genuine"]["acquired"] == 3 and data["impostor"]["acquired"] == 3


def test_an_impostor_pair_not_acquired_is_an_error_in_no_figure():
    acquired = evaluate_scores([0.9, 0.8, 0.35], [0.1, 0.0, 0.2], 0.4, 0.3)
    with_failed = evaluate_scores([0.9, 0.8, 0.35], [0.1, 0.0, 0.2, NAN, NAN], 0.4, 0.3)
    a, b = acquired.current, with_failed.current
    assert b.accuracy == a.accuracy == pytest.approx(5 / 6)  # the uncertain 0.35 is the only wrong answer
    assert b.fta_impostor == pytest.approx(2 / 5) and a.fta_impostor == 0.0  # reported as FTA, nothing else
    assert b.fmr == a.fmr == 0.0 and b.far == a.far == 0.0 and b.impostor.match == 0
    assert b.fnmr == a.fnmr and b.frr == a.frr and b.fta_genuine == 0.0
    assert with_failed.best.accuracy == acquired.best.accuracy == 1.0
    assert with_failed.eer.rate == acquired.eer.rate == 0.0
    # FTA is no evidence for a threshold: the recommended high is measured on the 3 acquired pairs.
    assert with_failed.recommendation.far_ci_at_high == binomial_ci(0, 3)


def test_a_genuine_pair_not_acquired_is_a_reject_of_the_system_not_of_the_model():
    m = evaluate_scores([0.9, NAN], [0.1, 0.05], 0.4, 0.3)
    assert m.current.frr == 0.5 and m.current.fta_genuine == 0.5  # turned away: no face to compare
    assert m.current.fnmr == 0.0 and m.current.accuracy == 1.0  # the model got every compared pair right
    assert m.eer.rate == 0.0  # the curves are the model's: acquired pairs only


def test_no_acquired_pairs_of_a_kind():
    m = evaluate_scores([0.9, 0.8], [NAN, NAN], 0.4, 0.3)
    assert m.current.fmr is None and m.current.far == 0.0 and m.current.fta_impostor == 1.0
    assert m.eer.rate is None and m.curve() is None
    assert m.recommendation.threshold_high is None
    assert any("no impostor pair was acquired" in note for note in m.recommendation.high_notes)


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
    assert few.note == "needs ≥ 100 acquired impostor pairs, have 99"
    # Impostor pairs not acquired do not count towards the 100.
    assert not tar_at_far(genuine, np.concatenate([impostor[:99], [NAN]]), 1e-2).supported
    assert not tar_at_far(genuine, impostor, 1e-3).supported


def test_tar_at_far_counts_genuine_below_the_threshold():
    impostor = np.concatenate([np.full(98, 0.1), [0.5, 0.6]])  # 100 pairs; allowed 1 above → threshold > 0.5
    genuine = np.array([0.45, 0.55, 0.7, 0.8])
    point = tar_at_far(genuine, impostor, 1e-2)
    assert point.threshold == pytest.approx(0.5001)
    assert point.tar == pytest.approx(3 / 4)


# -- confidence intervals ---------------------------------------------------------------------------


def test_clopper_pearson_against_hand_computed_values():
    # k = 0: (1 − p)^n = 0.025 → p = 1 − 0.025^(1/n); k = n mirrors it.
    assert binomial_ci(0, 10) == (0.0, pytest.approx(1 - 0.025**0.1))
    assert binomial_ci(0, 10)[1] == pytest.approx(0.308497, abs=1e-6)
    assert binomial_ci(10, 10) == (pytest.approx(0.025**0.1), 1.0)
    # k = 1, n = 2: P(X ≥ 1) = 1 − (1 − p)² = 0.025 → p = 1 − √0.975; the upper end mirrors it.
    low, high = binomial_ci(1, 2)
    assert low == pytest.approx(1 - math.sqrt(0.975), abs=1e-9) and high == pytest.approx(math.sqrt(0.975), abs=1e-9)
    # k = 1, n = 10: lower 1 − 0.975^(1/10); upper solves (1 − p)^10 + 10 p (1 − p)^9 = 0.025.
    low, high = binomial_ci(1, 10)
    assert low == pytest.approx(1 - 0.975**0.1, abs=1e-9)
    assert (1 - high) ** 10 + 10 * high * (1 - high) ** 9 == pytest.approx(0.025, abs=1e-9)
    assert high == pytest.approx(0.445016, abs=1e-6)
    assert binomial_ci(5, 10) == (pytest.approx(0.187086, abs=1e-6), pytest.approx(0.812914, abs=1e-6))
    assert binomial_ci(0, 0) == (0.0, 1.0)
    # The rule of three's neighbour: with no error the upper end is ln(40)/n ≈ 3.69/n for large n.
    assert binomial_ci(0, 100_000)[1] * 100_000 == pytest.approx(math.log(40), rel=1e-3)


@pytest.mark.slow
def test_clopper_pearson_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(1, 3), (3, 1000), (17, 91), (250, 5000), (999, 1000)]:
        low, high = binomial_ci(k, n)
        assert low == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1), abs=1e-9)
        assert high == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k), abs=1e-9)


def test_pairs_a_target_needs():
    # n ≥ ln(0.025) / ln(1 − target): 3688 for 1e-3, 368 for 1e-2, 17 for 0.2.
    assert (pairs_needed(1e-3), pairs_needed(1e-2), pairs_needed(0.2)) == (3688, 368, 17)
    assert binomial_ci(0, 3688)[1] <= 1e-3 < binomial_ci(0, 3687)[1]
    assert pairs_needed(0) == math.inf
    # 1000 pairs: 3 errors keep the upper end at 0.87 %, 4 reach 1.02 %.
    assert most_errors_within(0.01, 1000) == 3
    assert binomial_ci(3, 1000)[1] <= 0.01 < binomial_ci(4, 1000)[1]
    assert most_errors_within(0.01, 367) is None


def test_operating_point_intervals():
    m = evaluate_scores(GENUINE, IMPOSTOR, threshold_high=0.4, threshold_low=0.3)
    assert m.current.far_ci == binomial_ci(1, 5)  # 0.7 of 5 impostors is let in
    assert m.current.frr_ci == binomial_ci(0, 4)
    data = m.to_dict()["current"]
    assert data["far_ci95"] == [pytest.approx(v, abs=1e-6) for v in binomial_ci(1, 5)]
    assert data["frr_ci95"][0] == 0.0


# -- recommendations ------------------------------------------------------------------------------


def test_too_few_pairs_give_no_paste_ready_line():
    r = recommend(np.array(GENUINE), np.array(IMPOSTOR), target_far=0.2, target_frr=0.25)
    # Above every impostor (0.7): no impostor gets in, but 0 of 5 only shows FAR ≤ 52 %.
    assert r.threshold_high == 0.7001 and r.far_at_high == 0.0 and r.tar_at_high == 0.5
    assert r.far_ci_at_high[1] == pytest.approx(1 - 0.025**0.2)
    assert not r.far_supported and not r.frr_supported
    assert r.toml() == ""
    assert any(
        "FAR ≤ 20% needs ≥ 17 acquired impostor pairs with no error; these 5 support FAR ≤ 52.18%" in n
        for n in r.high_notes
    )
    assert any("FRR ≤ 25% needs ≥ 13 genuine pairs" in n for n in r.low_notes)
    assert r.to_dict()["needed_impostor_pairs"] == 17 and r.to_dict()["toml"] == ""


def test_two_pairs_recommend_nothing():
    # The example: one genuine and one impostor pair once gave cosine_threshold_high = -0.0268.
    r = recommend(np.array([0.72]), np.array([-0.0269]), target_far=1e-3, target_frr=1e-2)
    assert r.toml() == "" and not r.far_supported and not r.frr_supported
    assert r.threshold_high == SAFE_FLOOR and r.raised_to_floor
    assert any("needs ≥ 3688 acquired impostor pairs" in n and "support FAR ≤ 97.50%" in n for n in r.notes)


LOW_IMPOSTORS = np.linspace(-0.2, 0.1, 5000)
HIGH_GENUINE = np.linspace(0.5, 0.9, 1000)


def test_enough_pairs_give_paste_ready_lines_at_the_safe_floor():
    r = recommend(HIGH_GENUINE, LOW_IMPOSTORS, target_far=1e-3, target_frr=1e-2)
    # 0 of 5000 impostors above 0.1001 shows FAR ≤ 0.074 % ≤ 0.1 %; 0.1001 is below the floor: raised to 0.30.
    assert r.far_supported and r.raised_to_floor and r.threshold_high == SAFE_FLOOR
    assert r.far_ci_at_high == binomial_ci(0, 5000)
    # FRR: up to 3 of 1000 genuine pairs may fall below low; 0.5012 is above high, so low = high.
    assert r.frr_supported and r.threshold_low == SAFE_FLOOR and r.low_clamped
    assert r.toml().splitlines() == [
        "cosine_threshold_high = 0.3000  # the model's safe floor (0.3)",
        "cosine_threshold_low = 0.3000  # set to high: no uncertain band needed",
    ]
    assert tomllib.loads(r.toml()) == {"cosine_threshold_high": 0.3, "cosine_threshold_low": 0.3}


def test_high_is_never_at_or_below_an_impostor_seen_without_the_flag():
    impostor = np.concatenate([LOW_IMPOSTORS, [0.55]])  # one impostor scores high
    r = recommend(HIGH_GENUINE, impostor, target_far=1e-2, target_frr=1e-2)
    assert r.threshold_high == 0.5501 > impostor.max() and r.far_supported
    flagged = recommend(HIGH_GENUINE, impostor, target_far=1e-2, target_frr=1e-2, allow_below_floor=True)
    # The flag: the lowest threshold whose 95 % FAR bound is still ≤ 1 %: 36 of 5001 impostors may be above it.
    assert flagged.far_supported and flagged.threshold_high < SAFE_FLOOR < impostor.max()
    accepted = int(np.sum(impostor >= flagged.threshold_high))
    assert accepted == most_errors_within(1e-2, 5001) == 36
    assert binomial_ci(accepted, 5001)[1] <= 1e-2


def test_recommended_low_is_clamped_to_high():
    genuine = np.concatenate([np.full(990, 0.8), np.linspace(0.2, 0.35, 10)])
    r = recommend(genuine, LOW_IMPOSTORS, target_far=1e-3, target_frr=1e-2)
    # 1000 genuine pairs allow 3 below low: low = the 4th lowest (0.2500); under high 0.30, kept.
    assert r.threshold_low == 0.25 and not r.low_clamped and r.frr_supported
    assert r.frr_at_low == pytest.approx(3 / 1000)
    assert tomllib.loads(r.toml()) == {"cosine_threshold_high": 0.3, "cosine_threshold_low": 0.25}


def test_low_alone_is_pasted_only_under_the_high_in_force():
    # High unsupported (5 impostors), low supported (1000 genuine): the low line fits under the current high.
    r = recommend(HIGH_GENUINE, np.array(IMPOSTOR), 1e-3, 1e-2, current_high=0.4)
    assert not r.far_supported and r.frr_supported
    assert r.threshold_low == 0.4 and r.low_clamped
    assert r.toml() == "cosine_threshold_low = 0.4000  # set to high: no uncertain band needed"
    assert recommend(HIGH_GENUINE, np.array(IMPOSTOR), 1e-3, 1e-2).toml() == ""


def test_low_is_never_above_the_high_shown():
    # Two impostors (FAR not supported, high raised to the floor 0.30) and 1000 genuine pairs whose FRR
    # target allows a low of 0.3573: under the 0.40 in force, but above the 0.30 shown as high.
    genuine = np.concatenate([np.full(4, 0.3573), np.full(996, 0.8)])
    r = recommend(genuine, np.array([0.1, 0.05]), 1e-3, 1e-2, current_high=0.4)
    assert r.threshold_high == SAFE_FLOOR and not r.far_supported
    assert r.threshold_low == SAFE_FLOOR <= r.threshold_high and r.low_clamped
    assert any("above the recommended cosine_threshold_high 0.3000" in note for note in r.low_notes)
    # Pasted alone, it still fits under the high in force, and says it is not set to a pasted high.
    assert r.toml() == (
        "cosine_threshold_low = 0.3000  # no higher than the recommended high, which these pairs do not support"
    )
    # On the people photos' scores the table once showed high 0.3000 above low 0.4000 (the high in force).
    people = recommend(np.linspace(0.52, 0.79, 14), np.linspace(-0.13, 0.13, 91), 1e-3, 1e-2, current_high=0.4)
    assert people.threshold_low <= people.threshold_high == SAFE_FLOOR


@pytest.mark.slow
def test_low_never_above_high_on_random_scores():
    rng = np.random.default_rng(1)
    for _ in range(300):
        genuine = rng.normal(rng.uniform(0.2, 0.8), 0.1, int(rng.integers(1, 400)))
        impostor = rng.normal(rng.uniform(-0.1, 0.5), 0.1, int(rng.integers(1, 400)))
        genuine[rng.random(len(genuine)) < 0.05] = NAN
        impostor[rng.random(len(impostor)) < 0.05] = NAN
        r = recommend(
            genuine,
            impostor,
            float(rng.choice([1e-3, 1e-2, 0.05, 0.2])),
            float(rng.choice([1e-2, 0.05, 0.2])),
            allow_below_floor=bool(rng.integers(2)),
            current_high=float(rng.choice([0.3, 0.4, 0.5])),
        )
        if r.threshold_low is not None and r.threshold_high is not None:
            assert r.threshold_low <= r.threshold_high
        if r.low_line and not r.high_line:
            assert r.threshold_low <= r.current_high


def test_recommended_high_counts_only_acquired_impostor_pairs():
    # 100 acquired impostor pairs and 400 not acquired: 0 of 500 would show FAR ≤ 0.74 %, but the
    # threshold only ever met the 100 (≤ 3.6 %): FAR ≤ 1 % is not supported.
    impostor = np.concatenate([np.linspace(-0.2, 0.1, 100), np.full(400, NAN)])
    r = recommend(HIGH_GENUINE, impostor, 1e-2, 1e-2)
    assert r.impostor_acquired == 100 and r.impostor_pairs == 500
    assert r.far_ci_at_high == binomial_ci(0, 100) and not r.far_supported
    assert "cosine_threshold_high" not in r.toml()


def test_recommendation_notes_when_a_kind_is_missing():
    r = recommend(np.array(GENUINE), np.empty(0), target_far=1e-3, target_frr=1e-2)
    assert r.threshold_high is None and any("no impostor pairs" in note for note in r.notes)
    r = recommend(np.empty(0), np.array(IMPOSTOR), target_far=1e-3, target_frr=1e-2)
    assert r.threshold_low is None and r.threshold_high == 0.7001


def test_no_recommended_low_when_no_genuine_pair_has_a_score():
    r = recommend(np.array([NAN, NAN]), np.array(IMPOSTOR), target_far=0.2, target_frr=0.5)
    assert r.threshold_low is None and r.threshold_high == 0.7001
    assert any("no genuine pair was acquired" in note for note in r.notes)
    genuine = np.concatenate([np.full(990, 0.8), np.full(10, NAN)])
    r = recommend(genuine, LOW_IMPOSTORS, target_far=1e-3, target_frr=1e-2)
    # 10 pairs without a score are 10 certain rejections: more than the 3 that FRR 1 % allows.
    assert any("more genuine pairs not acquired (10)" in note for note in r.notes)
    assert r.frr_at_low == pytest.approx(0.01) and not r.frr_supported


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


# -- failure to acquire, by reason ----------------------------------------------------------------


def test_gate_reasons_grouped_by_their_leading_words():
    from facer_cli.evaluation.runner import Acquisition, UnusableImage, reason_group, reason_groups

    assert reason_group("blurred: sharpness 13 < 80") == "blurred"
    assert reason_group("too dark: mean level 45 < 60") == "too dark"
    assert reason_group("3 people in view: one person at a time") == "N people in view"
    assert reason_group("face too small: eyes 20.5 px apart < 40") == "face too small"
    assert reason_group("detector score 0.41 < 0.50") == "detector score"
    assert reason_group("yaw +31° beyond ±25°") == "yaw"
    assert reason_group("quality 0.21 < 0.30") == "quality"
    assert reason_group("no face") == "no face"
    assert reason_groups("blurred: sharpness 68 < 80; too dark: mean level 45 < 60") == ["blurred", "too dark"]
    # 4 images of 10 refused; one for two reasons counts under both.
    failed = [
        UnusableImage("a", "blurred: sharpness 13 < 80", ["blurred"]),
        UnusableImage("b", "blurred: sharpness 68 < 80; too dark: mean level 45 < 60", ["blurred", "too dark"]),
        UnusableImage("c", "2 people in view: one person at a time", ["N people in view"]),
        UnusableImage("d", "no face", ["no face"]),
    ]
    acquisition = Acquisition(10, failed)
    assert acquisition.fta == 0.4 and acquisition.acquired == 6
    assert acquisition.by_reason() == [("blurred", 2), ("N people in view", 1), ("no face", 1), ("too dark", 1)]
    data = acquisition.to_dict()
    assert data["fta"] == 0.4 and data["fta_ci95"] == [pytest.approx(v, abs=1e-6) for v in binomial_ci(4, 10)]
    assert data["by_reason"][0] == {"reason": "blurred", "images": 2, "rate": 0.2}
