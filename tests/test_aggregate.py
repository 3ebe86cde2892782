"""Aggregation maths: norm, weights, outliers, too few frames."""

from __future__ import annotations

import numpy as np
import pytest

from facer_cli.engine.reports import FaceReport, FrameReport
from facer_cli.errors import TooFewFramesError, VectorError
from facer_cli.templates.aggregate import build_template, template_from_embeddings
from facer_cli.tokens import generate_token_from_embeddings


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


def frame(name, embedding, quality=1.0, accepted=True, reason=""):
    face = FaceReport(1, (0, 0, 10, 10), 0.9, [(0, 0)] * 5, True, embedding=embedding, quality=quality,
                      accepted=accepted, reason=reason)
    return FrameReport(source=name, faces=[face], width=10, height=10)


def person(rng, base, n, noise=0.4):
    return [unit(base + noise * rng.standard_normal(base.shape)) for _ in range(n)]


def test_weighted_mean_is_renormalised():
    a, b = unit([1, 0, 0]), unit([0, 1, 0])
    token = generate_token_from_embeddings([a, b], weights=[3.0, 1.0])
    assert abs(np.linalg.norm(token) - 1) < 1e-6
    np.testing.assert_allclose(token, unit([3, 1, 0]), atol=1e-6)
    assert token.dtype == np.float32


def test_embeddings_are_unit_normalised_before_weighting():
    token = generate_token_from_embeddings([np.array([10.0, 0]), np.array([0, 1.0])])
    np.testing.assert_allclose(token, unit([1, 1]), atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((0, 4)), np.zeros(4), np.array([[1.0, np.nan]]), np.zeros((2, 3))])
def test_bad_embeddings_are_refused(bad):
    with pytest.raises(VectorError):
        template_from_embeddings(bad)


def test_bad_weights_are_refused():
    with pytest.raises(VectorError):
        generate_token_from_embeddings([unit([1, 0]), unit([0, 1])], weights=[1.0])
    with pytest.raises(VectorError):
        generate_token_from_embeddings([unit([1, 0]), unit([0, 1])], weights=[0.0, 0.0])


def test_quality_weights_the_template():
    rng = np.random.default_rng(0)
    a, b = unit(rng.standard_normal(64)), unit(rng.standard_normal(64))
    mix = unit(a + 0.8 * b)  # related frames: no outlier
    frames = [frame("1", a, 0.9), frame("2", mix, 0.3)]
    template = build_template(frames, min_valid_frames=2, outlier_cosine_threshold=0.3)
    expected = unit(0.9 * a + 0.3 * mix)
    np.testing.assert_allclose(template.vector, expected, atol=1e-6)
    assert template.used == [0, 1] and template.mean_quality == pytest.approx(0.6)


def test_an_impostor_frame_is_dropped_as_outlier():
    rng = np.random.default_rng(1)
    base, other = rng.standard_normal(512), rng.standard_normal(512)
    frames = [frame(f"a{i}", e) for i, e in enumerate(person(rng, base, 4, noise=0.05))]
    frames.insert(2, frame("intruder", unit(other)))
    template = build_template(frames, min_valid_frames=3, outlier_cosine_threshold=0.45)
    assert template.outliers == [2] and template.used == [0, 1, 3, 4]
    assert template.outlier_cosines[2] < 0.45
    clean = build_template([f for i, f in enumerate(frames) if i != 2], 3, 0.45)
    np.testing.assert_allclose(template.vector, clean.vector, atol=1e-6)


def test_two_different_faces_both_fail_and_say_so():
    rng = np.random.default_rng(2)
    frames = [frame("a.jpg", unit(rng.standard_normal(512))), frame("b.jpg", unit(rng.standard_normal(512)))]
    with pytest.raises(TooFewFramesError) as info:
        build_template(frames, min_valid_frames=2, outlier_cosine_threshold=0.45)
    assert "outliers" in str(info.value)


def test_too_few_frames_says_seen_accepted_and_why():
    rng = np.random.default_rng(3)
    good = person(rng, rng.standard_normal(512), 2, noise=0.05)
    frames = [
        frame("/x/1.jpg", good[0]),
        frame("/x/2.jpg", good[1]),
        frame("/x/3.jpg", None, accepted=False, reason="yaw +31° beyond ±25°"),
        FrameReport(source="/x/4.jpg"),
        FrameReport(source="/x/5.jpg", error="/x/5.jpg: truncated image"),
    ]
    with pytest.raises(TooFewFramesError) as info:
        build_template(frames, min_valid_frames=3, outlier_cosine_threshold=0.45)
    message = str(info.value)
    assert "2 of 5 (need 3)" in message and "5 seen, 2 accepted" in message
    assert "3.jpg (yaw +31° beyond ±25°)" in message and "4.jpg (no face)" in message
    assert "5.jpg (truncated image)" in message and "\n" not in message
