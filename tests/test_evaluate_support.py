"""`facer evaluate` prints a paste-ready facer.toml block only when the pairs support the target.

Two pairs and the 15 test photos support no target worth having; a larger folder (the photos
repeated with mild changes that pass every gate, plus a few the gates reject) supports FAR ≤ 1 %
but not FAR ≤ 0.1 %.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import people, run, run_json

from facer_cli.evaluation.dataset import load_dataset
from facer_cli.evaluation.intervals import binomial_ci, pairs_needed
from facer_cli.evaluation.recommend import SAFE_FLOOR, evaluate_scores
from facer_cli.evaluation.runner import evaluate
from facer_cli.sources.images import load_image

MILD = {
    "flip": lambda image: cv2.flip(image, 1),
    "dim": lambda image: (image.astype(np.float32) * 0.8).astype(np.uint8),
    "small": lambda image: cv2.resize(image, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA),
}


@pytest.fixture(scope="module")
def two_pairs(faces, tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    obama, biden = people(faces)["obama"], people(faces)["biden"]
    (root / "pairs.csv").write_text(f"{obama[0]},{obama[1]},1\n{obama[0]},{biden[0]},0\n")
    return root / "pairs.csv"


def test_two_pairs_give_no_thresholds_to_paste(two_pairs):
    result, data = run_json("evaluate", two_pairs, "--workers", "1")
    assert result.exit_code == 0, result.output
    recommended = data["recommended"]
    assert recommended["toml"] == "" and not recommended["far_supported"] and not recommended["frr_supported"]
    # Never below the impostor seen (−0.027) or the safe floor: once this printed -0.0268.
    assert recommended["cosine_threshold_high"] == SAFE_FLOOR and recommended["raised_to_floor"]
    assert recommended["far_ci95_at_high"][1] == pytest.approx(0.975)  # 0 of 1 impostor: FAR ≤ 97.5 %
    table = run("evaluate", two_pairs, "--workers", "1")
    assert "cosine_threshold_high = " not in table.output
    assert "needs ≥ 3688 acquired impostor pairs" in table.output.replace("\n", " ")
    assert "no cosine_threshold_high or cosine_threshold_low to paste" in table.output


@pytest.fixture(scope="module")
def larger(faces, tmp_path_factory):
    """The 15 people photos, each also flipped, dimmed and shrunk (60 images, 6 identities), and an
    identity of 2 images the gates turn away (one blurred, one too dark)."""
    root = tmp_path_factory.mktemp("larger")
    for name, paths in people(faces).items():
        (root / name).mkdir()
        for path in paths:
            image = load_image(path, 50_000_000)
            cv2.imwrite(str(root / name / f"{path.stem}.png"), image)
            for variant, make in MILD.items():
                cv2.imwrite(str(root / name / f"{path.stem}_{variant}.png"), make(image))
    (root / "unusable").mkdir()
    image = load_image(people(faces)["obama"][0], 50_000_000)
    cv2.imwrite(str(root / "unusable" / "blurred.png"), cv2.GaussianBlur(image, (0, 0), 8))
    cv2.imwrite(str(root / "unusable" / "dark.png"), (image * 0.25).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def larger_result(larger, settings, engine):
    return evaluate(load_dataset(larger), settings, target_far=1e-2, target_frr=5e-2, workers=1)


@pytest.mark.slow
def test_larger_folder_lists_why_images_were_unusable(larger_result):
    reasons = {u.path.rsplit("/", 1)[-1]: u.reason for u in larger_result.unusable}
    assert set(reasons) == {"blurred.png", "dark.png"}, reasons
    assert reasons["blurred.png"].startswith("blurred: sharpness")
    assert "too dark: mean level" in reasons["dark.png"]
    # FTA over the 62 distinct images, by reason: dark.png is both blurred and too dark.
    acquisition = larger_result.acquisition
    assert acquisition.fta == pytest.approx(2 / 62)
    assert acquisition.by_reason() == [("blurred", 2), ("too dark", 1)]
    assert acquisition.to_dict()["by_reason"][1] == {"reason": "too dark", "images": 1, "rate": round(1 / 62, 6)}


@pytest.mark.slow
def test_larger_folder_supports_far_1e2_but_not_1e3(larger_result):
    m = larger_result.protocol("pairs").metrics
    # 62 images: 315 genuine pairs (one of them between the two unusable images), 1576 impostor pairs.
    assert (m.genuine.count, m.impostor.count) == (315, 1576)
    # The 2 unusable images: 1 genuine pair (each other) and 2 × 60 impostor pairs are not acquired.
    c = m.current
    assert (c.genuine.no_score, c.impostor.no_score) == (1, 120)
    assert c.fta_impostor == pytest.approx(120 / 1576) and c.fta_genuine == pytest.approx(1 / 315)
    # No impostor pair is an error for failing to acquire: the accuracy is the acquired pairs'.
    assert c.accuracy == pytest.approx(c.correct / (314 + 1456)) and c.accuracy > 0.99
    assert c.frr == pytest.approx(c.fta_genuine + c.fnmr * (1 - c.fta_genuine))
    assert c.far == pytest.approx(c.fmr * (1 - c.fta_impostor))
    r = m.recommendation
    assert r.far_supported and r.frr_supported
    assert r.threshold_high == SAFE_FLOOR > m.impostor.max  # above every impostor, at the safe floor
    assert r.threshold_low <= r.threshold_high
    # Measured on the 1456 acquired impostor pairs, not the 1576.
    assert r.far_ci_at_high == binomial_ci(0, 1456) and r.far_ci_at_high[1] <= 1e-2
    assert r.toml().startswith("cosine_threshold_high = 0.3000")
    # The same scores against FAR ≤ 0.1 %: 1576 impostor pairs are fewer than the 3688 it needs.
    strict = evaluate_scores(m.genuine_scores, m.impostor_scores, 0.4, 0.3, target_far=1e-3, target_frr=5e-2)
    assert not strict.recommendation.far_supported and pairs_needed(1e-3) == 3688
    assert "cosine_threshold_high" not in strict.recommendation.toml()


@pytest.mark.slow
def test_larger_folder_through_the_cli(larger):
    result = run("evaluate", larger, "--workers", "1", "--target-far", "0.01", "--target-frr", "0.05")
    assert result.exit_code == 0, result.output
    assert "facer.toml, from the pairs protocol" in result.output
    assert "cosine_threshold_high = 0.3000  # the model's safe floor (0.3)" in result.output
    assert "95% interval" in result.output
    output = result.output.replace("\n", " ")
    assert "2 image(s) without a usable face" in output
    assert "failure to acquire (FTA): 3.23% of images (2/62)" in output
    assert "an image refused for several reasons counts under each" in output
    assert "FTA: impostor pairs not acquired" in output and "7.61% (120/1576)" in output
