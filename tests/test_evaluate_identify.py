"""`facer evaluate --protocol identify`: NIST FRTE 1:N figures and the identify_* recommendations."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import run, run_json

from facer_cli.evaluation.identify import IdentifyOutcome, Search, _fnir_at, _recommend
from facer_cli.evaluation.intervals import binomial_ci


def outcome_of(mated, non_mated, threshold=0.5, margin=0.1, target=0.01, floor=0.4, allow=False) -> IdentifyOutcome:
    searches = [Search(f"m{i}", mate, best, s1, s2) for i, (mate, best, s1, s2) in enumerate(mated)]
    searches += [Search(f"n{i}", None, best, s1, s2) for i, (best, s1, s2) in enumerate(non_mated)]
    return IdentifyOutcome(
        1, ["a"], ["b"], 1000, [], threshold, margin, target, searches, floor=floor, allow_below_floor=allow
    )


def test_figures_and_supported_recommendations():
    rng = np.random.default_rng(0)
    strangers = [(int(rng.integers(50)), float(s), float(s) - 0.05) for s in rng.normal(0.2, 0.06, 400)]
    strangers[0] = (3, 0.61, 0.20)  # one stranger scores high
    mated = [(i % 50, i % 50, 0.7, 0.2) for i in range(400)]
    mated[0] = (0, 7, 0.66, 0.60)  # named as the wrong person, 0.06 ahead
    mated[1] = (1, 1, 0.45, 0.1)  # the mate, below the threshold
    outcome = outcome_of(mated, strangers)
    assert outcome.rank1 == pytest.approx(399 / 400)
    assert outcome.fnir(0.5) == pytest.approx(2 / 400)
    assert outcome.fpir(0.5) == pytest.approx(1 / 400)
    counts = outcome.counts(0.5, 0.1)
    assert counts["mated"] == {"identified_right": 398, "identified_wrong": 0, "unknown": 1, "ambiguous": 1}
    assert counts["non_mated"]["identified"] == 1
    _recommend(outcome)
    # Above every stranger seen (0.61): 0 of 400 shows FPIR ≤ 0.92 % at 95 %, within 1 %.
    assert outcome.recommended_threshold == 0.6101 and outcome.threshold_supported
    assert outcome.fpir_ci_at_threshold == binomial_ci(0, 400)
    # The wrong name (0.66, 0.06 ahead) is above 0.6101: the current margin 0.1 already makes it ambiguous.
    assert outcome.recommended_margin == 0.1 and outcome.margin_supported and outcome.wrong_at_margin == 0
    assert outcome.toml().splitlines() == [
        "identify_threshold = 0.6101",
        "identify_margin = 0.1000",
        "identify_calibrated_for = 1000",
    ]
    assert _fnir_at(outcome, 0.01).supported
    assert _fnir_at(outcome, 0.001).to_dict()["note"].startswith("needs ≥ 1000 non-mated searches")


def test_the_margin_grows_to_make_wrong_names_ambiguous():
    mated = [(i, i, 0.8, 0.1) for i in range(397)] + [(5, 9, 0.7, 0.45)] * 3  # three named wrongly, 0.25 ahead
    outcome = outcome_of(mated, [(0, 0.1, 0.0)] * 400, margin=0.1, target=0.01)
    _recommend(outcome)
    # 400 mated searches: 0 wrong names left shows ≤ 0.92 %; the margin must pass the 0.25 gap.
    assert outcome.recommended_margin == 0.25 and 0.7 - 0.45 < outcome.recommended_margin  # the gap, rounded up
    assert outcome.margin_supported and outcome.margin_at_threshold == outcome.recommended_threshold
    assert outcome.counts(outcome.margin_at_threshold, outcome.recommended_margin)["mated"]["identified_wrong"] == 0


def test_few_searches_give_no_line_to_paste():
    # The old output: "identify_threshold = 0.1908  # not measured", below cosine_threshold_high.
    outcome = outcome_of([(0, 0, 0.8, 0.1)] * 5, [(0, 0.1907, 0.1)] * 5, floor=0.4)
    _recommend(outcome)
    assert not outcome.threshold_supported and not outcome.margin_supported
    assert outcome.toml() == ""
    assert outcome.recommended_threshold == 0.4 and outcome.raised_to_floor  # never below cosine_threshold_high
    assert outcome.fpir_ci_at_threshold == binomial_ci(0, 5)
    assert any("FPIR ≤ 1% needs ≥ 368 non-mated searches with no error" in n for n in outcome.threshold_notes)
    assert outcome.to_dict()["recommendation"]["identify_calibrated_for"] is None


def test_support_needs_the_95_percent_bound_not_just_1_over_target():
    # 200 strangers, none above: ≥ 1/FPIR (100) searches, but 0 of 200 only shows FPIR ≤ 1.83 %.
    outcome = outcome_of([(0, 0, 0.8, 0.1)] * 400, [(0, 0.1, 0.0)] * 200)
    _recommend(outcome)
    assert not outcome.threshold_supported and "identify_threshold" not in outcome.toml()
    # The margin, measured at the identify_threshold in force (0.5), is supported on its own 400 searches.
    assert outcome.margin_at_threshold == 0.5 and outcome.toml() == "identify_margin = 0.1000"


def test_identify_threshold_never_below_cosine_threshold_high():
    strangers = [(0, s, s - 0.1) for s in np.linspace(-0.1, 0.2, 5000)]
    for allow in (False, True):
        outcome = outcome_of([(0, 0, 0.8, 0.1)] * 400, strangers, floor=0.45, allow=allow)
        _recommend(outcome)
        assert outcome.threshold_supported and outcome.recommended_threshold == 0.45
        assert "identify_threshold = 0.4500" in outcome.toml()
    # Strangers above cosine_threshold_high: just above every one of them, or, with the flag, the lowest
    # threshold whose 95 % bound meets the target (some strangers seen above it), still ≥ the floor.
    strangers = [(0, s, s - 0.1) for s in np.linspace(0.0, 0.7, 5000)]
    plain = outcome_of([(0, 0, 0.8, 0.1)] * 400, strangers, floor=0.45)
    _recommend(plain)
    assert plain.recommended_threshold == 0.7001 and plain.named_at_threshold == 0
    flagged = outcome_of([(0, 0, 0.8, 0.1)] * 400, strangers, floor=0.45, allow=True)
    _recommend(flagged)
    assert 0.45 <= flagged.recommended_threshold < 0.7 and flagged.threshold_supported
    assert (
        binomial_ci(flagged.named_at_threshold, 5000)[1] <= 0.01 < binomial_ci(flagged.named_at_threshold + 1, 5000)[1]
    )


def test_a_search_not_acquired_is_no_evidence():
    strangers = [(0, 0.1, 0.0)] * 100 + [(None, -np.inf, -np.inf)] * 400  # 400 probes without a usable face
    outcome = outcome_of([(0, 0, 0.8, 0.1)] * 10, strangers)
    _recommend(outcome)
    assert len(outcome.non_mated) == 500 and len(outcome.non_mated_acquired) == 100
    assert outcome.fpir_ci_at_threshold == binomial_ci(0, 100) and not outcome.threshold_supported
    assert outcome.fpir(0.5) == 0.0  # nobody named: the missing probes are not false positives either


@pytest.mark.slow
def test_identify_protocol_on_real_photos(faces, tmp_path):
    data = tmp_path / "people"
    shutil.copytree(faces / "people", data)
    result, report = run_json("evaluate", data, "--protocol", "identify", "-k", "1", "--workers", "1")
    assert result.exit_code == 0, result.output
    identify = report["identify"]
    # alex, biden, (kit kept out: every third), obama, rose enrolled; lin_manuel_miranda has one photo.
    assert identify["enrolled_identities"] == ["alex_lacamoire", "biden", "obama", "rose_leslie"]
    assert set(identify["kept_out_identities"]) == {"kit_harington", "lin_manuel_miranda"}
    assert identify["rank1_identification_rate"] == 1.0 and identify["current"]["fpir"] == 0.0
    assert identify["mated_searches"] == 7 and identify["non_mated_searches"] == 4
    recommendation = identify["recommendation"]
    assert recommendation["threshold_supported"] is False and recommendation["toml"] == ""
    # Never below cosine_threshold_high (0.4 by default), supported or not.
    assert recommendation["identify_threshold"] >= report["thresholds"]["cosine_threshold_high"]
    table = run("evaluate", data, "--protocol", "identify", "-k", "1", "--workers", "1")
    assert table.exit_code == 0, table.output
    assert "identify_threshold =" not in table.output
    assert "no identify_threshold to paste" in table.output.replace("\n", " ")
