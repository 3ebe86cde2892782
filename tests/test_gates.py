"""The quality gates on real photos and synthetic degradations of them, with the decision expected for each.

Degradations are made here, in memory: Gaussian blur at the 112-px face scale, darkening,
burning out, a one-sided shadow, downscaling, and a second face pasted in at several sizes.
Engine outputs are cached per session so each photo is analysed once per variant.
"""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from helpers import people, photo, run, run_json
from photo_variants import high_key

from facer_cli.cli.output.text import short_reason
from facer_cli.engine.quality import ARCFACE_KEYPOINTS, similarity_transform
from facer_cli.engine.reports import FrameReport
from facer_cli.service.demo import MAIN_FACE_IN_GDP, YAO_IN_PLAYERS
from facer_cli.service.rules import advice
from facer_cli.settings import SETTING_INFOS, Settings
from facer_cli.sources.images import load_image

RESOLUTIONS = ("240p", "480p", "720p", "1080p")


@pytest.fixture(scope="session")
def clean(faces, bundled_images):
    """Every photo that is sharp, lit and alone: name → image (BGR)."""
    images = {}
    for paths in people(faces).values():
        for path in paths:
            images[path.name] = load_image(path, 50_000_000)
    for path in sorted((faces / "resolutions").iterdir()) + sorted((faces / "edge").iterdir()):
        images[path.name] = load_image(path, 50_000_000)
    images["yaoming.jpg"] = load_image(bundled_images / "yaoming.jpg", 50_000_000)
    for name, box in (("gdp.jpg", MAIN_FACE_IN_GDP), ("players.jpg", YAO_IN_PLAYERS)):
        x1, y1, x2, y2 = box
        images[f"{name} (one face cut out)"] = load_image(bundled_images / name, 50_000_000)[y1:y2, x1:x2]
    return images


@pytest.fixture(scope="session")
def analysed(engine, clean):
    """analysed(name, variant, make) → the FrameReport of make(image), analysed once per session."""
    cache: dict[tuple[str, str], FrameReport] = {}

    def get(name: str, variant: str = "original", make=None) -> FrameReport:
        key = (name, variant)
        if key not in cache:
            image = clean[name] if make is None else make(clean[name])
            cache[key] = engine.analyze(image, f"{name} [{variant}]")
        return cache[key]

    return get


def crop_scale(frame: FrameReport) -> float:
    """Image pixels → pixels of the 112 × 112 aligned face."""
    matrix = similarity_transform(np.array(frame.subject.keypoints), ARCFACE_KEYPOINTS)
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def blur_at_face_scale(sigma: float, scale: float):
    return lambda image: cv2.GaussianBlur(image, (0, 0), sigma / scale)


def gain(factor: float):
    return lambda image: np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


# -- nothing clean is turned away -----------------------------------------------------------------


@pytest.mark.slow
def test_no_gate_turns_away_a_clean_photo(clean, analysed):
    for name in clean:
        frame = analysed(name)
        assert frame.accepted, (name, frame.reason)
        face = frame.subject
        assert face.other_face_fraction < 0.7, name  # the cut-outs keep only parts of their neighbours
        assert face.eye_distance >= 16 and face.sharpness >= 80, name
        assert face.brightness >= 60 and face.clipped <= 0.05 and face.light_balance <= 2.4, name


# -- blur -----------------------------------------------------------------------------------------


def test_sharpness_is_scale_independent(analysed):
    values = {r: analysed(f"obama_{r}.jpg").subject.sharpness for r in RESOLUTIONS}
    # The same photo at 240p and 1080p reads the same within 15 % (measured: 597 and 646).
    assert abs(values["240p"] / values["1080p"] - 1) < 0.15, values
    # All four within 20 % of their median (the 480p/720p files themselves carry a little more detail).
    median = float(np.median(list(values.values())))
    assert all(abs(v / median - 1) < 0.2 for v in values.values()), values


@pytest.mark.slow
@pytest.mark.parametrize("resolution", RESOLUTIONS + ("small",))
@pytest.mark.parametrize("sigma", [2, 4, 8])
def test_blur_is_rejected_at_every_resolution(analysed, resolution, sigma):
    """The issue's 15 cases: σ = 2, 4, 8 px at the face's 112-px scale on each file of resolutions/."""
    name = f"obama_{resolution}.jpg"
    scale = crop_scale(analysed(name))
    frame = analysed(name, f"blur {sigma}", blur_at_face_scale(sigma, scale))
    assert not frame.accepted
    assert "blurred: sharpness" in frame.reason, frame.reason
    assert short_reason(frame.reason).startswith("blurred")


@pytest.mark.slow
def test_blur_of_2px_is_rejected_on_every_face(clean, analysed):
    for name in clean:
        scale = crop_scale(analysed(name))
        frame = analysed(name, "blur 2", blur_at_face_scale(2, scale))
        assert not frame.accepted and "blurred" in frame.reason, (name, frame.reason)


def test_low_resolution_faces_of_a_group_photo_pass_and_their_blur_fails(engine, bundled_images):
    """The blur line on real small faces: each face of players.jpg (eyes 17-21 px apart, a soft JPEG) cut out
    with one box of margin reads 74 or more; blurred by σ = 2 px at the 112-px scale, 49 or less (any face)."""
    image = load_image(bundled_images / "players.jpg", 50_000_000)
    height, width = image.shape[:2]
    limit = Settings().min_sharpness
    for face in engine.analyze(image).faces[:4]:  # the largest four: the softest one (74) among them
        x1, y1, x2, y2 = face.box
        w, h = x2 - x1, y2 - y1
        crop = image[int(max(0, y1 - h)) : int(min(height, y2 + h)), int(max(0, x1 - w)) : int(min(width, x2 + w))]
        sharp = engine.analyze(crop).subject
        assert sharp.sharpness >= limit and "blurred" not in sharp.reason, (face.index, sharp.reason)
        blurred = engine.analyze(cv2.GaussianBlur(crop, (0, 0), 2 * sharp.eye_distance / 35.2)).subject
        assert blurred.sharpness < limit and "blurred" in blurred.reason, (face.index, blurred.sharpness)


# -- exposure ---------------------------------------------------------------------------------------

EXPOSURE_PHOTOS = ["obama_1.jpg", "alex_lacamoire_3.png", "rose_leslie_1.jpg", "kit_harington_2.jpg", "yaoming.jpg"]


@pytest.mark.parametrize("name", EXPOSURE_PHOTOS)
def test_darkening_is_rejected_as_too_dark(analysed, name):
    frame = analysed(name, "x0.35", gain(0.35))  # 1.5 stops under
    assert not frame.accepted and "too dark: mean level" in frame.reason, frame.reason


@pytest.mark.parametrize("name", EXPOSURE_PHOTOS)
@pytest.mark.parametrize("factor", [1.8, 2.5])
def test_burning_out_is_rejected(analysed, name, factor):
    frame = analysed(name, f"x{factor}", gain(factor))
    assert not frame.accepted and "burnt out:" in frame.reason, frame.reason
    assert "burnt out" in short_reason(frame.reason)


# × 1.8 turns these darker, low-contrast portraits into what a high-key studio portrait reads: mean level 191-206
# (high-key versions 173-202), at most 24 % of eyes, nose and mouth clipped, identity kept as well as the high-key
# versions keep it (benchmarks/bench_fta.py): brighter, not burnt out. × 2.5 burns out every portrait.
BRIGHT_NOT_BURNT = {"biden_1.jpg", "obama_2.jpg", "obama_3.jpg", "obama_4.jpg"}


@pytest.mark.parametrize("name", ["biden_1.jpg", "obama_3.jpg"])
def test_a_face_burnt_out_with_little_clipping_is_refused_by_its_mean_level(analysed, name):
    """× 2.5 of a low-contrast face clips under 25 % of its eyes, nose and mouth, yet reads 228-230 on average."""
    frame = analysed(name, "x2.5", gain(2.5))
    face = frame.subject
    assert face.clipped <= 0.25 and face.brightness > Settings().max_face_brightness, (face.clipped, face.brightness)
    assert not frame.accepted and re.search(r"burnt out: mean level \d+ > 215", frame.reason), frame.reason
    assert short_reason(frame.reason) == "burnt out"


@pytest.mark.slow
def test_over_exposing_any_portrait_burns_it_out(faces, analysed):
    """Every people photo × 1.8 and × 2.5: burnt out, but for the four that × 1.8 makes only as bright as high key."""
    for name in [path.name for paths in people(faces).values() for path in paths]:
        for factor in (1.8, 2.5):
            frame = analysed(name, f"x{factor}", gain(factor))
            if factor == 1.8 and name in BRIGHT_NOT_BURNT:
                face = frame.subject
                assert frame.accepted, (name, frame.reason)
                assert face.brightness <= 210 and face.clipped <= 0.25, (name, face.brightness, face.clipped)
            else:
                assert not frame.accepted and "burnt out:" in frame.reason, (name, factor, frame.reason)


@pytest.mark.parametrize("name", EXPOSURE_PHOTOS)
def test_one_sided_shadow_is_rejected_as_uneven_light(analysed, clean, name):
    face = analysed(name).subject
    centre = float(np.mean([x for x, _ in face.keypoints]))
    width = face.box[2] - face.box[0]
    # Shade the side that is already the darker one (harsh light from the other side), to 25 %.
    image = clean[name]
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    left = gray[max(y1, 0) : y2, max(x1, 0) : int(centre)].mean()
    right = gray[max(y1, 0) : y2, int(centre) : x2].mean()
    x = np.arange(image.shape[1], dtype=np.float32)
    ramp = np.clip((x - (centre - 0.1 * width)) / (0.2 * width), 0, 1)  # 0 on the left, 1 on the right
    if right < left:
        ramp = 1 - ramp
    mask = 0.25 + 0.75 * ramp

    def shade(img):
        return (img.astype(np.float32) * mask[None, :, None]).astype(np.uint8)

    frame = analysed(name, "shadow", shade)
    assert not frame.accepted and "uneven light: one side" in frame.reason, frame.reason


# -- face size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["obama_1.jpg", "biden_2.jpg", "rose_leslie_2.jpg"])
def test_downscaled_faces_are_too_small_below_16px(analysed, name):
    eyes = analysed(name).subject.eye_distance

    def to(pixels):
        return lambda image: cv2.resize(image, None, fx=pixels / eyes, fy=pixels / eyes, interpolation=cv2.INTER_AREA)

    small = analysed(name, "eyes 12", to(12))
    assert not small.accepted and re.search(r"face too small: eyes 1[123]\.\d px apart < 16", small.reason), (
        small.reason
    )
    assert short_reason(small.reason).startswith("face too small")
    fine = analysed(name, "eyes 24", to(24))
    assert fine.accepted, fine.reason


# -- several people in view ----------------------------------------------------------------------------


def paste_second_face(subject: np.ndarray, subject_size: float, other: np.ndarray, other_box, fraction: float):
    """The subject's photo with `other`'s face (its box, with a margin) beside it at `fraction` of its size."""
    x1, y1, x2, y2 = other_box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    part = other[int(max(cy - h, 0)) : int(cy + h), int(max(cx - w, 0)) : int(cx + w)]
    factor = fraction * subject_size / np.sqrt(w * h)
    part = cv2.resize(part, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    height = max(subject.shape[0], part.shape[0])
    canvas = np.full((height, subject.shape[1] + part.shape[1], 3), 127, np.uint8)
    canvas[: subject.shape[0], : subject.shape[1]] = subject
    canvas[: part.shape[0], subject.shape[1] :] = part
    return canvas


@pytest.mark.parametrize(("fraction", "rejected"), [(0.95, True), (0.8, True), (0.55, False), (0.4, False)])
def test_a_second_face_pasted_in(analysed, clean, fraction, rejected):
    subject = analysed("obama_1.jpg").subject
    other = analysed("biden_2.jpg").subject
    own = np.sqrt(subject.area)

    def make(image):
        return paste_second_face(image, own, clean["biden_2.jpg"], other.box, fraction)

    frame = analysed("obama_1.jpg", f"with biden at {fraction}", make)
    assert len(frame.faces) == 2
    assert frame.subject.other_face_fraction == pytest.approx(fraction, abs=0.1)
    if rejected:
        assert not frame.accepted and frame.reason == "2 people in view: one person at a time"
        assert short_reason(frame.reason) == "2 people in view"
    else:
        assert frame.accepted, frame.reason


@pytest.mark.parametrize(
    ("scene", "count"), [("two_people.jpg", 2), ("obama_and_biden.jpg", 3), ("kit_with_rose.jpg", 2)]
)
def test_scenes_are_one_person_too_many(engine, faces, scene, count):
    frame = engine.analyze_path(faces / "scenes" / scene)
    assert not frame.accepted
    assert f"{count} people in view: one person at a time" in frame.reason
    # Their other faces are 0.79-1.0 of the subject's size; the default fraction is 0.7.
    assert frame.subject.other_face_fraction >= 0.78


def test_distant_faces_in_the_video_do_not_count(engine, faces):
    capture = cv2.VideoCapture(str(faces / "video" / "short_hamilton_clip.mp4"))
    frames = []
    try:
        for index in range(241):
            ok, image = capture.read()
            assert ok
            if index in (0, 10, 240):
                frames.append(engine.analyze(image, f"frame {index}"))
    finally:
        capture.release()
    for frame in frames[:2]:  # the lead and one distant face (0.55-0.62 of his size) behind him
        assert len(frame.faces) == 2
        assert frame.subject.other_face_fraction < 0.7
        assert "people in view" not in frame.reason
    assert "people in view" in frames[2].reason  # frame 240: five people on stage, of about one size


def test_verify_against_a_group_photo_is_refused(faces, tmp_path):
    db = tmp_path / "facer.db"
    assert run("enroll", "obama", *(photo(faces, f"obama_{i}") for i in (1, 2, 3)), "--db", db).exit_code == 0
    result = run("verify", "obama", faces / "scenes" / "obama_and_biden.jpg", "--db", db)
    assert result.exit_code == 4, result.output  # not a MATCH: too few usable frames
    assert "3 people in view" in result.output
    assert "one person at a time: nobody else close to the camera" in result.output


# -- every gate in the JSON, the tables and the advice ---------------------------------------------------


def test_inspect_json_has_every_gate(faces):
    result, data = run_json("inspect", faces / "scenes" / "two_people.jpg", photo(faces, "obama_1"))
    assert result.exit_code == 0, result.output
    scene, alone = data["frames"] if "frames" in data else data["images"]
    subject = scene["faces"][0]
    for key in ("sharpness", "eye_distance", "brightness", "clipped", "light_balance", "other_face_fraction"):
        assert subject[key] is not None, key
    assert subject["other_face_fraction"] > 0.9 and scene["reason"] == "2 people in view: one person at a time"
    assert alone["faces"][0]["other_face_fraction"] == 0.0 and alone["accepted"]
    json.dumps(data)


def test_advice_for_every_gate():
    def frame(reason):
        return FrameReport(source="x.jpg", error=reason)  # only .reason and .accepted are read

    tips = advice(
        [
            frame(r)
            for r in (
                "2 people in view: one person at a time",
                "face too small: eyes 12.0 px apart < 16",
                "blurred: sharpness 20 < 80",
                "too dark: mean level 31 < 60",
                "burnt out: 40% of the face clipped > 5%",
                "uneven light: one side 3.1× brighter > 2×",
            )
        ]
    )
    for text in (
        "one person at a time",
        "come closer",
        "hold still",
        "add light",
        "avoid direct light",
        "light the face evenly",
    ):
        assert text in tips, text


def test_gate_settings_have_bounds_and_change_decisions(analysed):
    face = analysed("obama_1.jpg").subject
    from facer_cli.engine.face_engine import decide

    assert decide(face, Settings().engine)[0]
    assert not decide(face, Settings(min_sharpness=face.sharpness + 1).engine)[0]
    assert not decide(face, Settings(max_clipped_fraction=0.0, min_face_brightness=0).engine)[0] or face.clipped == 0
    for name in (
        "min_sharpness",
        "min_face_size",
        "other_face_fraction",
        "min_face_brightness",
        "max_face_brightness",
        "max_clipped_fraction",
        "max_light_imbalance",
    ):
        bounds = SETTING_INFOS[name].bounds
        assert bounds.ge is not None and bounds.le is not None, name


# -- another person at the kiosk, not a bystander --------------------------------------------------------


def scene(faces, name: str) -> np.ndarray:
    return load_image(faces / "scenes" / name, 50_000_000)


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("two_people.jpg", lambda image: image[:, : 792 + int(0.8 * 148)]),  # biden 80 % inside, at the right edge
        ("two_people.jpg", lambda image: image[:, : 792 + int(0.7 * 148)]),  # 70 %
        ("kit_with_rose.jpg", lambda image: image[:, 156 - int(0.6 * 76) :]),  # rose 60 % inside, at the left edge
    ],
)
def test_a_real_photo_with_a_face_cut_by_the_frame_edge_passes(engine, faces, name, cut):
    from facer_cli.engine.face_engine import decide

    frame = engine.analyze(cut(scene(faces, name)), f"{name} cut")
    assert frame.accepted, frame.reason
    cut_off = min(frame.subject.crowd, key=lambda other: other.inside)
    # The cut face is large enough to count and sharp: the share of it inside the frame decides.
    assert cut_off.inside < 0.75 and cut_off.size >= 0.7 and cut_off.sharpness >= 0.3, cut_off
    assert not decide(frame.subject, Settings(other_face_inside=0).engine)[0]
    # The same photo uncut: two whole, sharp faces of about one size.
    assert "people in view" in engine.analyze(scene(faces, name), name).reason


def test_a_blurred_face_behind_passes_and_the_same_face_sharp_refuses(analysed, clean):
    subject = analysed("obama_1.jpg").subject
    other = analysed("biden_2.jpg").subject
    own = np.sqrt(subject.area)

    def pasted(image):
        return paste_second_face(image, own, clean["biden_2.jpg"], other.box, 0.75)

    sharp = analysed("obama_1.jpg", "with biden at 0.75", pasted)
    assert not sharp.accepted and sharp.reason == "2 people in view: one person at a time"
    behind = sharp.subject.crowd[0]
    assert behind.size >= 0.7 and behind.inside >= 0.99 and behind.sharpness >= 0.3, behind
    # Out of focus: the pasted face blurred by σ = 2 px at its own 112-px scale (the blur gate's bar).
    biden = next(face for face in sharp.faces if not face.is_subject)
    sigma = 2 * biden.eye_distance / 35.2
    width = clean["obama_1.jpg"].shape[1]

    def blurred(image):
        out = pasted(image)
        out[:, width:] = cv2.GaussianBlur(out[:, width:], (0, 0), sigma)
        return out

    frame = analysed("obama_1.jpg", "with biden at 0.75, out of focus", blurred)
    assert len(frame.faces) == 2 and frame.accepted, frame.reason
    assert frame.subject.crowd[0].sharpness < 0.2 and frame.subject.other_face_fraction >= 0.7


def test_two_whole_sharp_faces_of_similar_size_refuse(analysed, engine, faces):
    for name in ("two_people.jpg", "kit_with_rose.jpg"):
        frame = engine.analyze(scene(faces, name), name)
        other = frame.subject.crowd[0]
        assert other.size >= 0.85 and other.inside >= 0.99 and other.sharpness >= 0.9, (name, other)
        assert frame.reason == "2 people in view: one person at a time"


def test_each_condition_of_a_competitor_has_its_setting(analysed):
    from facer_cli.engine.face_engine import decide
    from facer_cli.engine.reports import OtherFace

    face = analysed("obama_1.jpg").subject
    defaults = Settings().engine
    assert (defaults.other_face_fraction, defaults.other_face_inside, defaults.other_face_sharpness) == (0.6, 0.75, 0.2)
    cases = [
        (OtherFace(size=0.95, inside=1.0, sharpness=0.9), True),
        (OtherFace(size=0.55, inside=1.0, sharpness=0.9), False),  # behind
        (OtherFace(size=0.95, inside=0.6, sharpness=0.9), False),  # cut by the frame's edge
        (OtherFace(size=0.95, inside=1.0, sharpness=0.1), False),  # out of focus
        (OtherFace(size=0.95, inside=1.0, sharpness=None), True),  # not measured: size and share decide
    ]
    for other, refused in cases:
        face.crowd, face.other_faces = (other,), (other.size,)
        accepted, reason = decide(face, defaults)
        assert accepted is not refused and ("2 people in view" in reason) is refused, other
    face.crowd, face.other_faces = (OtherFace(size=0.95, inside=0.6, sharpness=0.1),), (0.95,)
    assert not decide(face, Settings(other_face_inside=0.5, other_face_sharpness=0.05).engine)[0]
    face.crowd = None  # sizes only (as an engine that measures no more reports them): size alone decides
    assert not decide(face, defaults)[0]
    for name in ("other_face_inside", "other_face_sharpness"):
        bounds = SETTING_INFOS[name].bounds
        assert bounds.ge == 0 and bounds.le == 1, name


# -- exposure where it hides identity -----------------------------------------------------------------------

HIGH_KEY_SEED = 29794


@pytest.fixture(scope="session")
def high_key_frames(engine, faces, clean, analysed):
    """Each people photo and yaoming.jpg as a studio high-key portrait (white background, exposure raised until
    the face reads 170-195, a shine on the forehead), three variants each, from one fixed seed."""
    rng = np.random.default_rng(HIGH_KEY_SEED)
    frames = []
    for name in [path.name for paths in people(faces).values() for path in paths] + ["yaoming.jpg"]:
        keypoints = analysed(name).subject.keypoints
        for k in range(3):
            image = high_key(clean[name], keypoints, rng)
            frames.append((name, image, engine.analyze(image, f"{name} [high key {k}]")))
    return frames


@pytest.mark.slow
def test_high_key_portraits_pass(high_key_frames):
    assert len(high_key_frames) >= 45
    for name, _image, frame in high_key_frames:
        assert frame.accepted, (name, frame.reason)
        face = frame.subject
        assert 150 <= face.brightness <= 215 and face.clipped <= 0.25, (name, face.brightness, face.clipped)


@pytest.mark.slow
def test_an_over_exposed_high_key_face_fails(high_key_frames, engine):
    for name, image, _frame in high_key_frames[::3]:
        frame = engine.analyze(gain(1.8)(image), f"{name} [high key, x1.8]")
        assert not frame.accepted and "burnt out:" in frame.reason, (name, frame.reason)
        assert re.search(r"burnt out: \d+% of eyes, nose and mouth clipped > 25%", frame.reason), frame.reason


def test_clipping_is_counted_around_the_eyes_nose_and_mouth_only(analysed, clean):
    """A white frame around the face and a shine on the forehead leave the count at zero; the same white on
    the cheeks and the mouth is counted."""
    face = analysed("obama_1.jpg").subject
    matrix = cv2.invertAffineTransform(similarity_transform(np.array(face.keypoints), ARCFACE_KEYPOINTS))

    def whiten(x1, y1, x2, y2):
        corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], np.float64) @ matrix.T

        def make(image):
            out = image.copy()
            cv2.fillConvexPoly(out, corners.astype(np.int32), (255, 255, 255))
            return out

        return make

    forehead = analysed("obama_1.jpg", "white forehead", whiten(20, 0, 92, 36))
    assert forehead.accepted and forehead.subject.clipped == 0, forehead.reason
    mouth = analysed("obama_1.jpg", "white mouth", whiten(28, 80, 84, 112))
    assert not mouth.accepted and "burnt out" in mouth.reason and mouth.subject.clipped > 0.25
