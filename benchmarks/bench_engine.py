"""Per-frame time of the engine against insightface's FaceAnalysis and the raw ONNX Runtime floor.

    python benchmarks/bench_engine.py [--rounds 5]

(a) FaceAnalysis as people commonly use it: its default modules (every model in
    the pack), det_size 640 and ONNX Runtime's default threads, on the same three
    bundled ONNX files; and once more with one thread, as facer's default
    `onnx_threads = 1`, to show what is not due to the thread count.
(b) The floor: only `session.run` of the very models the engine runs on each
    frame (detector at 320, landmarks and recognition for the subject), with the
    inputs prepared beforehand.
Images are decoded before timing. Prints milliseconds per frame and the ratios;
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facer_cli.engine.face_engine import FaceEngine
from facer_cli.engine.modelpack import BUNDLED_FILES, bundled_folder
from facer_cli.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import benchmark_photos  # noqa: E402


def benchmark_images() -> list[tuple[str, np.ndarray]]:
    return [(p.name, cv2.imread(str(p))) for p in benchmark_photos()]


def floor_inputs(engine: FaceEngine, image: np.ndarray) -> list[tuple[object, list, dict]]:
    """The exact model calls the engine makes on this frame, inputs ready."""
    det = engine.detector
    size = engine.settings.det_size
    scale = size / max(image.shape[:2])
    resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    det_blob = cv2.dnn.blobFromImage(canvas, 1.0 / det.input_std, (size, size), (det.input_mean,) * 3, swapRB=True)
    det_session = det._session_for_input_size((size, size))
    calls = [(det_session, det.output_names, {det.input_name: det_blob})]
    frame = engine.analyze(image)
    subject = frame.subject
    if subject is None:
        return calls
    lmk, rec = engine.landmarker, engine.recognizer
    lmk_blob, _ = engine.landmark_input(image, subject.box)
    calls.append((lmk.session, lmk.output_names, {lmk.input_name: lmk_blob}))
    rec_blob = engine.embedding_input(image, np.array(subject.keypoints))
    calls.append((rec.session, rec.output_names, {rec.input_name: rec_blob}))
    return calls


def face_analysis_app(folder: Path, threads: int | None = None):
    """FaceAnalysis over the bundled files; `threads` as facer's onnx_threads (None: ORT's default)."""
    import onnxruntime
    from insightface.app import FaceAnalysis

    if not folder.exists():
        folder.mkdir()
        for name, _ in BUNDLED_FILES.values():
            (folder / name).symlink_to(bundled_folder() / name)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    app = FaceAnalysis(name=str(folder), providers=["CPUExecutionProvider"], sess_options=options)
    app.prepare(ctx_id=0, det_size=(640, 640))
    return app


def time_per_frame(run, images, repeats) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        for item in images:
            run(item)
    return (time.perf_counter() - started) / (repeats * len(images)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--onnx-threads", type=int, default=1, help="facer's onnx_threads (0: ONNX Runtime's default)")
    args = parser.parse_args()

    images = benchmark_images()
    engine = FaceEngine(Settings.from_values({"det_size": 320, "onnx_threads": args.onnx_threads}))
    floors = [floor_inputs(engine, image) for _, image in images]
    with tempfile.TemporaryDirectory() as tmp:
        app = face_analysis_app(Path(tmp) / "pack")
        app_one_thread = face_analysis_app(Path(tmp) / "pack", threads=1)
        runs = {
            "facer engine (det 320)": (lambda image: engine.analyze(image), [image for _, image in images]),
            "ONNX Runtime floor": (lambda calls: [s.run(o, f) for s, o, f in calls], floors),
            "FaceAnalysis (default modules, det 640)": (lambda image: app.get(image), [image for _, image in images]),
            "  the same with 1 ONNX Runtime thread": (lambda image: app_one_thread.get(image), [image for _, image in images]),
        }
        for run, items in runs.values():  # warm-up
            time_per_frame(run, items, 1)
        samples = {name: [] for name in runs}
        for _ in range(args.rounds):  # interleaved, so drift hits all alike
            for name, (run, items) in runs.items():
                samples[name].append(time_per_frame(run, items, args.repeats))

    ms = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{len(images)} images, {args.rounds} rounds × {args.repeats} repeats, facer onnx_threads "
          f"{args.onnx_threads}, median ms per frame")
    for name, value in ms.items():
        print(f"  {name:<42} {value:8.2f} ms")
    engine, floor = samples["facer engine (det 320)"], samples["ONNX Runtime floor"]
    face_analysis = samples["FaceAnalysis (default modules, det 640)"]
    one_thread = samples["  the same with 1 ONNX Runtime thread"]

    def ratio(a, b):  # per round (the runs of a round are side by side), then the median
        values = [x / y for x, y in zip(a, b, strict=True)]
        return f"{statistics.median(values):.3f}× (rounds: {min(values):.3f}–{max(values):.3f})"

    print(f"engine / floor:           {ratio(engine, floor)}  target ≤ 1.15")
    print(f"FaceAnalysis / engine:    {ratio(face_analysis, engine)}  target ≥ 1.5")
    print(f"  with 1 thread / engine: {ratio(one_thread, engine)}  (the part not due to thread count)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
