"""`facer evaluate --protocol identify`: NIST FRTE 1:N figures and the identify_* recommendations."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from helpers import run_json

from facer_cli.evaluation.identify import IdentifyOutcome, Search, _fnir_at, _recommend


def outcome_of(mated, non_mated, threshold=0.5, margin=0.1, target=0.01) -> IdentifyOutcome:
    searches = [Search(f"m{i}", mate, best, s1, s2) for i, (mate, best, s1, s2) in enumerate(mated)]
    searches += [Search(f"n{i}", None, best, s1, s2) for i, (best, s1, s2) in enumerate(non_mated)]
    return IdentifyOutcome(1, ["a"], ["b"], 1000, [], threshold, margin, target, searches)


def test_figures_and_supported_recommendations():
    rng = np.random.default_rng(0)
    strangers = [(int(rng.integers(50)), float(s), float(s) - 0.05) for s in rng.normal(0.2, 0.06, 200)]
    strangers[0] = (3, 0.61, 0.20)  # one stranger scores high: FPIR 0.01 allows 2 of 200
    mated = [(i % 50, i % 50, 0.7, 0.2) for i in range(150)]
    mated[0] = (0, 7, 0.66, 0.60)  # named as the wrong person, 0.06 ahead
    mated[1] = (1, 1, 0.45, 0.1)  # the mate, below the threshold
    outcome = outcome_of(mated, strangers)
    assert outcome.rank1 == pytest.approx(149 / 150)
    assert outcome.fnir(0.5) == pytest.approx(2 / 150)
    assert outcome.fpir(0.5) == pytest.approx(1 / 200)
    counts = outcome.counts(0.5, 0.1)
    assert counts["mated"] == {"identified_right": 148, "identified_wrong": 0, "unknown": 1, "ambiguous": 1}
    assert counts["non_mated"]["identified"] == 1
    _recommend(outcome)
    assert outcome.threshold_supported and outcome.margin_supported
    third = sorted((s[1] for s in strangers), reverse=True)[2]
    assert third < outcome.recommended_threshold <= third + 1e-4
    assert outcome.recommended_margin == 0.1  # never below the current margin
    assert "identify_calibrated_for = 1000" in outcome.toml()
    point = _fnir_at(outcome, 0.01)
    assert point.supported and point.threshold == outcome.recommended_threshold
    assert _fnir_at(outcome, 0.001).to_dict()["note"].startswith("needs ≥ 1000 non-mated searches")


def test_the_margin_grows_to_make_wrong_names_ambiguous():
    mated = [(i, i, 0.8, 0.1) for i in range(99)] + [(5, 9, 0.7, 0.45)] * 3  # three named wrongly, 0.25 ahead
    outcome = outcome_of(mated, [(0, 0.1, 0.0)] * 120, margin=0.1, target=0.01)
    _recommend(outcome)
    assert outcome.recommended_margin == 0.25 and 0.7 - 0.45 < outcome.recommended_margin  # the gap, rounded up
    assert outcome.counts(outcome.recommended_threshold, outcome.recommended_margin)["mated"]["identified_wrong"] == 0


def test_few_searches_recommend_nothing_measured():
    outcome = outcome_of([(0, 0, 0.8, 0.1)] * 5, [(0, 0.3, 0.1)] * 5)
    _recommend(outcome)
    assert not outcome.threshold_supported and not outcome.margin_supported
    assert "not measured" in outcome.toml() and "identify_calibrated_for" not in outcome.toml()


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
    assert identify["recommendation"]["threshold_supported"] is False
