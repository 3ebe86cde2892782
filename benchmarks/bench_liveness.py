"""Liveness: genuine head turns against synthetic prints and screens, the threshold trade-off, and the cost.

    python benchmarks/bench_liveness.py [--attacks 200] [--bent 40] [--steep 0] [--seed 0] [--png FILE]
    python benchmarks/bench_liveness.py --replay 20 --replay-only     # attacks from one recorded turn

--replay N: attacks built from the clip's right turn (`facer_cli.liveness.replay`: mirrored for the left
steps, segments reordered, stills replayed, frames re-stamped; and two turns, one mirrored) against N
seeded random challenges each, played under the HTTP rules (steps revealed one at a time, frames timed by
the server's clock); APCER per kind with every check and without the mirror check, and BPCER of the
clip's real head answering ("straight", "right") the same way.

Genuine: the test clip's main face (lin_manuel_miranda, frames 84-210: he turns from about +11°
to -23°, back to +11° and on to -27°), cut into attempts that start at different frames, under the
challenge his motion follows ("straight", then "right"), at the camera's 100 and 200 ms frame
spacing. Attacks: `facer_cli.liveness.attacks` renders every photo of $FACER_TEST_FACES/people as
a flat print or a phone screen (alternately) turned 25-35° one way then the other, and as a print
bent on a cylinder (--bent); --steep adds flat prints turned 50-70° to see whether a steeper tilt
fools the pose estimator into reading a head turn. Every frame goes through the real engine.

Prints per attack kind: how many the full checker rejects and why (APCER), and the parallax
statistic alone (median residual of the truly turned frames, as if the pose estimator had been
fooled), against the genuine attempts' (BPCER), over a threshold sweep; text histograms; and the
time per frame of the liveness cues against the engine's own.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facer_cli.engine.face_engine import FaceEngine, get_engine
from facer_cli.evaluation.intervals import binomial_ci
from facer_cli.liveness import PARALLAX_MIN_RESIDUAL, Challenge, LivenessChecker, LivenessFrame, observe, replay
from facer_cli.liveness.attacks import AttackVideo, render_attack, turned_parallax
from facer_cli.liveness.checker import BlinkDetector
from facer_cli.liveness.geometry import eye_aspect_ratio, inter_ocular_distance, parallax_residual
from facer_cli.liveness.runner import frame_from_report
from facer_cli.settings import Settings

FACES = Path(os.environ.get("FACER_TEST_FACES", Path(__file__).resolve().parents[2] / "shared" / "faces"))
CLIP = FACES / "video" / "short_hamilton_clip.mp4"
CLIP_FRAMES = range(84, 211)  # the main face, before the scene cut at 211
GENUINE_STARTS = (84, 87, 90, 93, 96, 99, 102, 144, 147, 150, 171, 174, 177, 180)
GENUINE_CHALLENGE = Challenge.of("straight", "right")
SWEEP = (0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.055, 0.06, 0.07)


@dataclass
class Attempt:
    label: str
    live: bool
    reason: str
    parallax: float | None  # the statistic the threshold applies to
    frames: int
    seconds: float
    max_yaw_change: float  # estimated, from the first frame


def clip_images() -> Iterator[tuple[int, np.ndarray, float]]:
    """(index, image, timestamp in ms) of the clip's frames in CLIP_FRAMES, read in order."""
    capture = cv2.VideoCapture(str(CLIP))
    try:
        for index in range(CLIP_FRAMES[-1] + 1):
            ok, image = capture.read()
            if not ok:
                return
            if index in CLIP_FRAMES:
                yield index, image, capture.get(cv2.CAP_PROP_POS_MSEC)
    finally:
        capture.release()


def clip_frames(engine: FaceEngine) -> tuple[dict[int, LivenessFrame], list[float]]:
    """Every clip frame in CLIP_FRAMES observed once (the checker is pure: attempts reuse them)."""
    observed: dict[int, LivenessFrame] = {}
    times = []
    for index, image, timestamp_ms in clip_images():
        started = time.perf_counter()
        observed[index] = observe(engine, image, timestamp_ms, index)
        times.append(time.perf_counter() - started)
    return observed, times


def product_path_times(engine: FaceEngine) -> tuple[list[float], list[float]]:
    """What `--liveness` adds per frame in the product: each frame is analysed once (`FaceEngine.analyze`,
    as any camera run does), then `frame_from_report` turns the analysis into the checker's frame (the
    landmarks analyze computed for the pose are reused). Returns (analyze times, frame_from_report times),
    seconds; the checker's own cost per frame is the "liveness cues" figure."""
    analyze_times, extra_times = [], []
    for index, image, timestamp_ms in clip_images():
        started = time.perf_counter()
        report = engine.analyze(image)
        middle = time.perf_counter()
        frame_from_report(engine, image, report, timestamp_ms, index)
        analyze_times.append(middle - started)
        extra_times.append(time.perf_counter() - middle)
    return analyze_times, extra_times


def run_checker(frames: list[LivenessFrame], challenge: Challenge) -> tuple[LivenessChecker, list[float]]:
    checker = LivenessChecker(challenge)
    times = []
    for frame in frames:
        started = time.perf_counter()
        checker.update(frame)
        times.append(time.perf_counter() - started)
        if checker.done:
            break
    return checker, times


def genuine_attempts(observed: dict[int, LivenessFrame]) -> tuple[list[Attempt], list[float], list[float]]:
    attempts, cue_times = [], []
    for spacing in (3, 6):  # 100 and 200 ms at 29.97 fps
        for start in GENUINE_STARTS:
            frames = [observed[i] for i in range(start, CLIP_FRAMES[-1] + 1, spacing) if i in observed]
            checker, times = run_checker(frames, GENUINE_CHALLENGE)
            cue_times += times
            result = checker.result()
            attempts.append(Attempt(
                label=f"clip from #{start} every {spacing * 33.4:.0f} ms", live=result.live, reason=result.reason,
                parallax=result.parallax, frames=len(result.cues), seconds=result.elapsed_ms / 1000,
                max_yaw_change=_max_yaw_change(frames[: len(result.cues)]),
            ))
    return attempts, cue_times, genuine_pair_residuals(observed)


def genuine_pair_residuals(observed: dict[int, LivenessFrame]) -> list[float]:
    """Every (frontal |yaw| ≤ 10°, turned ≥ 15° from it within 4 s) pair of clip frames: per-frame residuals."""
    frames = [observed[i] for i in sorted(observed) if observed[i].landmarks is not None]
    residuals = []
    for ref in frames:
        assert ref.yaw is not None and ref.landmarks is not None
        if abs(ref.yaw) > 10:
            continue
        iod = inter_ocular_distance(ref.landmarks)
        for other in frames:
            assert other.yaw is not None and other.landmarks is not None
            if 0 < other.timestamp_ms - ref.timestamp_ms <= 4000 and abs(other.yaw - ref.yaw) >= 15:
                residuals.append(parallax_residual(ref.landmarks, other.landmarks, iod))
    return residuals


def clip_blinks(observed: dict[int, LivenessFrame]) -> None:
    """The blink cue on the clip at its full 30 fps, and at the camera's 100 and 200 ms spacing."""
    frames = [observed[i] for i in sorted(observed) if observed[i].landmarks is not None]
    ears = [eye_aspect_ratio(f.landmarks) for f in frames if f.landmarks is not None]
    print(f"\nBlink cue on the clip (frames {CLIP_FRAMES[0]}-{CLIP_FRAMES[-1]}): EAR {summary(ears, 3)}")
    for every in (1, 3, 6):
        detector = BlinkDetector()
        found = [frames[k].index for k in range(0, len(frames), every) if detector.update(ears[k])]
        print(f"  every {every * 33.4:.0f} ms: {len(found)} blink(s) detected, ending at frames {found}")


def _max_yaw_change(frames: list[LivenessFrame]) -> float:
    yaws = [f.yaw for f in frames if f.yaw is not None]
    return max((abs(y - yaws[0]) for y in yaws), default=0.0)


def attack_photos(engine: FaceEngine) -> list[tuple[str, np.ndarray, tuple[float, float, float, float]]]:
    photos = []
    for path in sorted(p for p in (FACES / "people").rglob("*") if p.is_file()):
        image = cv2.imread(str(path))
        subject = None if image is None else engine.analyze(image).subject
        if image is not None and subject is not None:
            photos.append((path.stem, image, subject.box))
    return photos


def run_attack(engine: FaceEngine, video: AttackVideo) -> tuple[Attempt, list[float]]:
    frames = [observe(engine, image, t, k) for k, (image, t) in enumerate(zip(video.frames, video.timestamps_ms, strict=True))]
    checker, _ = run_checker(frames, Challenge.of(*video.moves))  # the attacker's best case: the order it plays
    result = checker.result()
    label = f"{video.kind} {video.photo}" + (f" r={video.radius:.2f}" if video.radius else "")
    attempt = Attempt(label=label, live=result.live, reason=result.reason,
                      parallax=turned_parallax(frames, video.yaw), frames=len(frames),
                      seconds=video.timestamps_ms[-1] / 1000, max_yaw_change=_max_yaw_change(frames))
    return attempt, [f.landmarks is not None and 1.0 or 0.0 for f in frames]


def attacks(engine: FaceEngine, kinds: list[str], count: int, seed: int, peak_yaw: tuple[float, float]) -> list[Attempt]:
    photos = attack_photos(engine)
    results = []
    for k in range(count):
        name, photo, box = photos[k % len(photos)]
        kind = kinds[k % len(kinds)]
        video = render_attack(photo, box, kind, np.random.default_rng([seed, k]), name, peak_yaw=peak_yaw)
        attempt, _ = run_attack(engine, video)
        results.append(attempt)
    return results


# -- printing -------------------------------------------------------------------------
def summary(values: list[float] | list[int], digits: int = 4) -> str:
    if not values:
        return "n=0"
    return (f"n={len(values)} min {min(values):.{digits}f}  median {statistics.median(values):.{digits}f}  "
            f"max {max(values):.{digits}f}")


def histogram(groups: dict[str, list[float]], bins: list[float]) -> None:
    """One row per bin, one column of counts and bars per group."""
    counts = {name: np.histogram(values, bins=bins)[0] for name, values in groups.items()}
    print("  bin (IOD)    " + "".join(f"{name[:24]:>26s}" for name in groups))
    for k, (lo, hi) in enumerate(itertools.pairwise(bins)):
        cells = "".join(f"{int(c[k]):5d} {'#' * min(20, int(c[k])):<20s}" for c in counts.values())
        print(f"  {lo:5.3f}-{hi:5.3f} {cells}")


REASON_KINDS = {
    "did not": "a step timed out",
    "no parallax:": "flat: no parallax",
    "no parallax measured": "never turned 15° from frontal",
    "face changed": "face changed",
    "face lost": "face lost",
    "turned": "turned the wrong way",
    "stopped": "the video ended before the turns were reached",
}


def reason_kind(reason: str) -> str:
    return next((kind for key, kind in REASON_KINDS.items() if key in reason), reason or "passed")


def report_attacks(name: str, attempts: list[Attempt]) -> None:
    passed = [a for a in attempts if a.live]
    print(f"\n{name}: {len(attempts)} attacks, full checker APCER {100 * len(passed) / max(1, len(attempts)):.1f} % "
          f"({len(passed)} accepted)")
    for kind, n in Counter(reason_kind(a.reason.split(';')[0]) for a in attempts).most_common():
        print(f"  first reason: {kind}: {n}")
    print(f"  estimated |yaw change| from the first frame: {summary([a.max_yaw_change for a in attempts], 1)}°")
    print(f"  parallax statistic (as if pose were fooled): {summary([a.parallax for a in attempts if a.parallax is not None])}")
    for a in passed:
        print(f"  ACCEPTED: {a.label}")


def sweep(genuine: list[Attempt], groups: dict[str, list[Attempt]]) -> None:
    print("\nThreshold sweep on the parallax statistic (median residual of the turned frames, IOD):")
    header = "  threshold  BPCER(clip)  " + "  ".join(f"APCER({name})" for name in groups)
    print(header)
    for threshold in SWEEP:
        bpcer = sum(a.parallax is None or a.parallax < threshold for a in genuine) / len(genuine)
        cells = []
        for attempts in groups.values():
            scored = [a for a in attempts if a.parallax is not None]
            apcer = sum(a.parallax >= threshold for a in scored) / max(1, len(scored))  # type: ignore[operator]
            cells.append(f"{100 * apcer:12.1f} %")
        mark = "  <- chosen" if abs(threshold - PARALLAX_MIN_RESIDUAL) < 1e-9 else ""
        print(f"  {threshold:9.3f}  {100 * bpcer:9.1f} %  " + "  ".join(cells) + mark)


def plot(path: str, groups: dict[str, list[float]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    figure, axes = plt.subplots(figsize=(7, 3.5))
    bins = [0.005 * k for k in range(41)]
    for name, values in groups.items():
        axes.hist(values, bins=bins, alpha=0.55, label=f"{name} (n={len(values)})")
    axes.axvline(PARALLAX_MIN_RESIDUAL, color="k", linestyle="--", label=f"threshold {PARALLAX_MIN_RESIDUAL}")
    axes.set_xlabel("parallax residual (inter-ocular distances)")
    axes.set_ylabel("count")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"plot written to {path}")


def check_name(reason: str) -> str:
    """Which check refused: the words before the first colon or parenthesis, shortened."""
    for prefix, name in (
        ("mirror image", "mirror"),
        ("motion not continuous", "continuity"),
        ("face changed", "same face"),
        ("too few frames", "server clock"),
        ("frames faster", "server clock"),
        ("no parallax", "parallax"),
        ("turned ", "wrong way"),
        ("did not ", "time limit"),
    ):
        if reason.startswith(prefix):
            return name
    return reason[:30] or "LIVE"


def replay_table(engine: FaceEngine, count: int) -> None:
    """APCER per attack kind from one recorded turn, and BPCER of the real head, under the HTTP rules."""
    started = time.perf_counter()
    shots = replay.observe_clip(engine, str(CLIP))
    observed_s = time.perf_counter() - started
    genuine = [
        replay.play(GENUINE_CHALLENGE, replay.genuine_client(shots, first, every, chunk))
        for first in range(84, 98)
        for every, chunk in ((3, 5), (6, 3), (3, 10))
    ]
    refused = sum(not result.live for result in genuine)
    low, high = binomial_ci(refused, len(genuine))
    mirrors = [r.mirror for r in genuine if r.mirror is not None]
    print(f"\nReplay of one recorded head turn, HTTP rules ({len(shots)} clip frames observed in {observed_s:.0f} s)")
    print(f"  genuine (clip, straight+right; 14 starts x 3 ways of sending): BPCER {refused}/{len(genuine)} = "
          f"{100 * refused / len(genuine):.1f} % (95 % CI {100 * low:.1f}-{100 * high:.1f} %); "
          f"mirror statistic where measured {summary(mirrors, 3) if mirrors else '-'}")
    print(f"  {'attack':10s} {'n':>3s}  {'APCER, all checks':22s} {'APCER without mirror':22s} refused by (all checks); (≤: 95 % upper bound)")
    for kind in (*replay.KINDS, replay.TWO_TURNS):
        full = [replay.attack(kind, shots, seed)[1] for seed in range(count)]
        bare = [
            replay.attack(kind, shots, seed, lambda c: LivenessChecker(c, mirror_min_difference=0.0))[1]
            for seed in range(count)
        ]
        cells = []
        for results in (full, bare):
            accepted = sum(r.live for r in results)
            low, high = binomial_ci(accepted, len(results))
            cells.append(f"{accepted}/{len(results)} {100 * accepted / len(results):4.0f} % (≤{100 * high:.0f} %)")
        by = Counter(check_name(r.reason) for r in full)
        mirrors = [r.mirror for r in full if r.mirror is not None]
        print(f"  {kind:10s} {len(full):3d}  {cells[0]:22s} {cells[1]:22s} "
              + ", ".join(f"{name} {n}" for name, n in by.most_common())
              + (f"; mirror statistic {summary(mirrors, 3)}" if mirrors else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attacks", type=int, default=200, help="flat prints and screens (alternately)")
    parser.add_argument("--bent", type=int, default=40, help="prints bent on a cylinder")
    parser.add_argument("--steep", type=int, default=0, help="flat prints turned 50-70°")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", help="write a histogram plot here (needs matplotlib)")
    parser.add_argument("--replay", type=int, default=20, help="seeded challenges per attack from one recorded turn")
    parser.add_argument("--replay-only", action="store_true", help="only the replay attacks' table")
    args = parser.parse_args()
    if not CLIP.is_file() or not (FACES / "people").is_dir():
        print(f"test faces not found at {FACES} (set FACER_TEST_FACES)")
        return 2
    engine = get_engine(Settings.from_values({}))
    if args.replay:
        replay_table(engine, args.replay)
    if args.replay_only:
        return 0

    observed, observe_times = clip_frames(engine)
    genuine, cue_times, pair_residuals = genuine_attempts(observed)
    print(f"Genuine: {len(genuine)} attempts on the clip, challenge {GENUINE_CHALLENGE.moves}")
    for a in genuine:
        shown = "-" if a.parallax is None else f"{a.parallax:.3f}"
        print(f"  {a.label:28s} {'LIVE' if a.live else 'not live':8s} parallax {shown:>6s}  "
              f"{a.frames:2d} frames  {a.seconds:4.1f} s  {a.reason}")
    passed = [a for a in genuine if a.live]
    print(f"  BPCER {100 * (1 - len(passed) / len(genuine)):.1f} %; to pass: frames {summary([a.frames for a in passed], 1)}; "
          f"seconds {summary([a.seconds for a in passed], 1)}")
    print(f"  per-frame residuals, every frontal/turned pair: {summary(pair_residuals)}")
    clip_blinks(observed)

    started = time.perf_counter()
    flat = attacks(engine, ["print", "screen"], args.attacks, args.seed, (25.0, 35.0))
    groups = {"print": [a for a in flat if a.label.startswith("print")],
              "screen": [a for a in flat if a.label.startswith("screen")]}
    if args.bent:
        groups["bent"] = attacks(engine, ["bent"], args.bent, args.seed + 1, (25.0, 35.0))
    if args.steep:
        groups["steep"] = attacks(engine, ["print"], args.steep, args.seed + 2, (50.0, 70.0))
    attack_seconds = time.perf_counter() - started
    for name, attempts in groups.items():
        report_attacks(name, attempts)
    all_flat = groups["print"] + groups["screen"]
    print(f"\nAll flat (print + screen): full checker APCER {100 * sum(a.live for a in all_flat) / len(all_flat):.1f} % "
          f"of {len(all_flat)}; rendered and checked in {attack_seconds:.0f} s")

    sweep(genuine, groups)
    scores: dict[str, list[float]] = {"genuine": [a.parallax for a in genuine if a.parallax is not None]}
    scores |= {name: [a.parallax for a in attempts if a.parallax is not None] for name, attempts in groups.items()}
    print("\nHistogram of the parallax statistic:")
    histogram(scores, [round(0.01 * k, 2) for k in range(17)])
    print(f"\nPer-frame genuine residuals (frontal/turned pairs): {summary(pair_residuals)}")

    engine_ms = 1000 * statistics.median(observe_times)
    cue_ms = 1000 * statistics.median(cue_times)
    print(f"\nTime per frame: engine (detector + landmarks + pose + embedding) {engine_ms:.1f} ms median; "
          f"liveness cues (tracking + homography fit + residual + EAR + state) {cue_ms:.3f} ms median "
          f"({100 * cue_ms / engine_ms:.1f} % extra)")
    analyze_times, extra_times = product_path_times(engine)
    analyze_ms, extra_ms = 1000 * statistics.median(analyze_times), 1000 * statistics.median(extra_times)
    added = extra_ms + cue_ms
    print(f"In the product (--liveness on a camera run): FaceEngine.analyze {analyze_ms:.1f} ms median; liveness adds "
          f"{extra_ms:.3f} ms (frame_from_report) + {cue_ms:.3f} ms (cues) = {added:.2f} ms "
          f"({100 * added / analyze_ms:.1f} % extra)")
    if args.png:
        plot(args.png, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
