"""Issue 12's targets in one run, each against a baseline timed in the same run.

    python benchmarks/bench_speed.py [--rounds 5] [--old cc2e7aa] [--only 1,2,4,5,6] [--large 54]

1. `facer verify USER one.jpg`, `facer --help`, `facer config show`: process start to exit,
   this checkout against the old main (`--old`, a commit or a folder; `git archive`d into a
   temporary folder), alternated; wall and CPU time (user + system, less disturbed by other
   work on the machine). Subprocesses run with bytecode caches (a temporary
   PYTHONPYCACHEPREFIX, warmed first), as an installed facer does.
2. `facer inspect FOLDER --json` over large photos (made from the benchmark photos: upscaled to
   1–12 MP, re-encoded as baseline and progressive JPEGs): this checkout with its default
   workers and with `workers = 1`, the old main, and whole `FaceAnalysis` processes (det 640 with
   ONNX Runtime's default threads; det 320 with one thread), all over the same files,
   alternated. Checks that the threaded JSON equals the sequential one.
4. `facer serve`: POST /token/generate, one large photo each, against one process's per-image
   rate (`engine.analyze_path` in one thread, the same photos); p50/p99. Then the machine's
   own ceiling for that ratio: two such one-thread processes at once against one alone (no
   HTTP, no load generator), alternated.
5. The engine's per-frame time against the raw ONNX Runtime time of the same model calls.
6. Reduced JPEG decoding (IMREAD_REDUCED_COLOR_2/4/8): decode time saved and what it changes —
   the cosine between the subject's embedding from the full and the reduced decode, decisions,
   sharpness — by the reduced face size; facer decodes in full (see the printed verdict).

Prints figures and ratios; asserts nothing about time. The machine's load average is printed
with each part: re-run when it is high.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ONE_THREAD, REPO, benchmark_photos, percentile  # noqa: E402

OLD_MAIN = "cc2e7aa"
MEGAPIXELS = (1, 2, 3, 5, 8, 12, 1.5, 4)

FACE_ANALYSIS = r"""
import sys
from pathlib import Path
import cv2, onnxruntime
from insightface.app import FaceAnalysis
det, threads, pack, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
options = onnxruntime.SessionOptions()
if threads:
    options.intra_op_num_threads = threads
app = FaceAnalysis(name=pack, providers=["CPUExecutionProvider"], sess_options=options)
app.prepare(ctx_id=0, det_size=(det, det))
faces = sum(len(app.get(cv2.imread(str(p)))) for p in sorted(folder.iterdir()))
print(faces)
"""


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def header(title: str) -> None:
    print(f"\n== {title}  ({load()})")


class Runner:
    """Fresh processes of one facer checkout (or plain Python), timed in wall and CPU seconds."""

    def __init__(self, workdir: Path, pycache: Path):
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FACER_") and k != "PYTHONDONTWRITEBYTECODE"}
        self.env["PYTHONPYCACHEPREFIX"] = str(pycache)

    def run(self, argv: list[str], path: Path | None, extra_env: dict[str, str] | None = None,
            ok: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
        env = dict(self.env, **(extra_env or {}))
        env["PYTHONPATH"] = str(path) if path else ""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        # cwd outside both checkouts: `python -m facer_cli` would import the current folder's first.
        done = subprocess.run([sys.executable, *argv], env=env, cwd=self.workdir, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode not in ok:
            raise SystemExit(f"{argv} failed ({done.returncode}): {done.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, done.stdout


def alternate(runs: dict[str, object], rounds: int) -> dict[str, list[tuple[float, float, str]]]:
    """Each candidate once per round, in turn (drift hits all alike); the first round warms caches."""
    samples: dict[str, list] = {name: [] for name in runs}
    for index in range(rounds + 1):
        for name, run_once in runs.items():
            result = run_once()  # type: ignore[operator]
            if index:
                samples[name].append(result)
    return samples


def medians(samples: list[tuple[float, float, str]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def ratio_line(label: str, new: list, old: list, target: str = "") -> str:
    """Per-round wall ratio new/old (the runs of a round are side by side), its median and range."""
    values = [n[0] / o[0] for n, o in zip(new, old, strict=True)]
    cpu = statistics.median(n[1] / o[1] for n, o in zip(new, old, strict=True))
    text = f"  {label:<48} {statistics.median(values):5.2f}×  (rounds {min(values):.2f}–{max(values):.2f}; CPU {cpu:.2f}×)"
    return text + (f"  target {target}" if target else "")


def old_checkout(spec: str, folder: Path) -> Path | None:
    if Path(spec).is_dir():
        return Path(spec)
    target = folder / "old"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", spec], capture_output=True)
    if archive.returncode != 0:
        print(f"(no old main: git archive {spec} failed; old columns left out)")
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def large_photos(folder: Path, count: int) -> list[Path]:
    """Benchmark photos upscaled to 1–12 MP, alternately baseline and progressive JPEG (quality 90)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = benchmark_photos()
    made = []
    for n in range(count):
        source = sources[n % len(sources)]
        image = cv2.imread(str(source))
        mp = MEGAPIXELS[n % len(MEGAPIXELS)]
        scale = math.sqrt(mp * 1e6 / (image.shape[0] * image.shape[1]))
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        progressive = n % 2
        ok, data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
        path = folder / f"{n:03d}_{source.stem}_{mp}mp_{'progressive' if progressive else 'baseline'}.jpg"
        path.write_bytes(data.tobytes())
        made.append(path)
    return made


# -- 1. start-up -------------------------------------------------------------------------------------


def target_startup(runner: Runner, new: Path, old: Path | None, rounds: int, folder: Path) -> None:
    header("1. process start to exit")
    faces = Path(os.environ.get("FACER_TEST_FACES", REPO.parent / "shared" / "faces")) / "people" / "obama"
    if faces.is_dir():
        enroll, probe = [faces / f"obama_{i}.jpg" for i in (1, 2, 3)], faces / "obama_4.jpg"
    else:
        from facer_cli.engine.modelpack import bundled_folder

        enroll, probe = [bundled_folder() / "yaoming.jpg"] * 3, bundled_folder() / "yaoming.jpg"
    checkouts = {"new": new, **({"old": old} if old else {})}
    runs = {}
    for name, path in checkouts.items():
        db = folder / f"{name}.db"
        runner.run(["-m", "facer_cli", "enroll", "someone", *map(str, enroll), "--db", str(db)], path)
        commands = {
            "verify": ["verify", "someone", str(probe), "--db", str(db)],
            "--help": ["--help"],
            "config show": ["config", "show"],
        }
        for label, args in commands.items():
            runs[(label, name)] = (lambda a=args, p=path: runner.run(["-m", "facer_cli", *a], p, ok=(0, 1, 3)))
    runs[("python -c pass", "-")] = lambda: runner.run(["-c", "pass"], None)
    samples = alternate(runs, rounds)  # type: ignore[arg-type]
    print(f"  medians of {rounds}, wall (CPU):")
    for (label, name), values in samples.items():
        wall, cpu = medians(values)
        print(f"    {label:<14} {name:<4} {wall:6.3f} s  ({cpu:.3f} s)")
    if old:
        print("  this checkout / old main:")
        print(ratio_line("facer verify USER one.jpg", samples[("verify", "new")], samples[("verify", "old")],
                         "≤ 0.45×, and ≤ 0.6 s"))
        for label in ("--help", "config show"):
            print(ratio_line(f"facer {label}", samples[(label, "new")], samples[(label, "old")], "≤ 0.25 s"))


# -- 2. several images -------------------------------------------------------------------------------


def target_inspect(runner: Runner, new: Path, old: Path | None, rounds: int, photos: list[Path], pack: Path) -> None:
    header(f"2. `facer inspect FOLDER` over {len(photos)} large photos")
    folder = photos[0].parent
    pixels = [cv2.imread(str(p), cv2.IMREAD_REDUCED_GRAYSCALE_8).size * 64 / 1e6 for p in photos]
    print(f"  {min(pixels):.1f}–{max(pixels):.1f} MP (mean {statistics.mean(pixels):.1f}), "
          f"{sum(p.stat().st_size for p in photos) / 1e6:.0f} MB of JPEG; {os.cpu_count()} core(s)")
    inspect = ["-m", "facer_cli", "inspect", str(folder), "--json"]
    runs = {
        "facer, default workers": lambda: runner.run(inspect, new),
        "facer, workers = 1": lambda: runner.run(inspect, new, {"FACER_WORKERS": "1"}),
        "FaceAnalysis det 640, default threads": lambda: runner.run(
            ["-c", FACE_ANALYSIS, "640", "0", str(pack), str(folder)], None),
        "FaceAnalysis det 320, 1 thread": lambda: runner.run(
            ["-c", FACE_ANALYSIS, "320", "1", str(pack), str(folder)], None),
    }
    if old:
        runs["old main"] = lambda: runner.run(inspect, old)
    samples = alternate(runs, rounds)
    for name, values in samples.items():
        wall, cpu = medians(values)
        print(f"    {name:<40} {wall:6.2f} s  ({wall / len(photos) * 1000:5.1f} ms per photo; CPU {cpu:.2f} s)")
    same = all(json.loads(a[2]) == json.loads(b[2]) for a, b in
               zip(samples["facer, default workers"], samples["facer, workers = 1"], strict=True))
    print(f"  threaded JSON equals the sequential JSON (every number, same order): {same}")
    new_runs = samples["facer, default workers"]
    if old:
        print(ratio_line("default workers / old main", new_runs, samples["old main"], "≤ 0.6×"))
    print(ratio_line("default workers / workers = 1", new_runs, samples["facer, workers = 1"]))
    print(ratio_line("default workers / FaceAnalysis det 640", new_runs,
                     samples["FaceAnalysis det 640, default threads"], "≤ 0.5×"))
    print(ratio_line("default workers / FaceAnalysis det 320 1 thread", new_runs,
                     samples["FaceAnalysis det 320, 1 thread"], "≤ 0.75×"))


# -- 4. the server -------------------------------------------------------------------------------------


def target_server(runner: Runner, new: Path, photos: list[Path], requests: int, parallel: int, folder: Path,
                  rounds: int) -> None:
    from bench_server import cli_in_process, free_port, load_run, running_server

    header(f"4. `facer serve`: POST /token/generate, one large photo each, {parallel} at a time")
    bodies = [(p.name, p.read_bytes()) for p in photos]
    port = free_port()
    env = dict(runner.env, PYTHONPATH=str(new))
    command = [sys.executable, "-m", "facer_cli", "serve", "--port", str(port), "--db", str(folder / "serve.db"),
               "--log-level", "warning"]
    # The machine's speed drifts by ±10 % over a minute: one process's rate is measured before and
    # after each load run, and each run is compared with the mean of the two around it.
    ratios, latencies = [], []
    with running_server(command, env, folder, port) as (base, health, _):
        # First touch of every photo, as one process's measurement does before its clock starts.
        asyncio.run(load_run(base, bodies, len(bodies), parallel, 120))
        one_ms = [cli_in_process(photos, 1)]
        for _ in range(rounds):
            times, statuses, wall = asyncio.run(load_run(base, bodies, requests, parallel, 300))
            one_ms.append(cli_in_process(photos, 1))
            rate, per_photo = len(times) / wall, (one_ms[-2] + one_ms[-1]) / 2
            ratios.append(rate * per_photo / 1000)
            latencies += times
            print(f"  {rate:.1f} requests/s (statuses {statuses}); one process {per_photo:.1f} ms per photo "
                  f"= {1000 / per_photo:.1f} photos/s; ratio {ratios[-1]:.2f}×")
    print(f"  {health['models']['slots']} model slot(s) on {health['provider']}; latency over {len(latencies)} "
          f"requests: p50 {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms")
    print(f"  throughput / one process's rate (one process, one thread, engine.analyze_path): median "
          f"{statistics.median(ratios):.2f}× over {rounds} runs ({min(ratios):.2f}–{max(ratios):.2f})  target ≥ 1.8×")
    ceilings = [two_processes_at_once(env, photos) for _ in range(rounds)]
    ceiling = statistics.median(ceilings)
    print(f"  the machine's ceiling: two one-thread processes at once do {ceiling:.2f}× one alone's photos/s (median "
          f"over {rounds} rounds, {min(ceilings):.2f}–{max(ceilings):.2f}; no HTTP, no load generator); the server "
          f"reaches {statistics.median(ratios) / ceiling:.0%} of it")


def two_processes_at_once(env: dict, photos: list[Path]) -> float:
    """Photos/s of two one-thread processes timed together, over photos/s of one alone (timed before
    and after the pair, drift cancelling): what two cores give two independent workers here."""

    def timed(count: int) -> list[float]:
        children = [subprocess.Popen([sys.executable, "-c", ONE_THREAD, *map(str, photos)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(count)]
        for child in children:  # models loaded and every photo touched once before any clock starts
            if child.stdout.readline().strip() != "ready":
                raise SystemExit(f"a timing process failed (exit {child.wait()})")
        for child in children:
            child.stdin.write("\n")
            child.stdin.flush()
        ms = [json.loads(child.stdout.readline())["wall"] for child in children]
        for child in children:
            child.wait()
        return ms

    alone_before, pair, alone_after = timed(1)[0], timed(2), timed(1)[0]
    return sum(1000 / ms for ms in pair) / (2000 / (alone_before + alone_after))


# -- 5. engine against the ONNX Runtime floor ------------------------------------------------------------


def target_engine(rounds: int) -> None:
    from bench_engine import benchmark_images, floor_inputs, time_per_frame

    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.settings import Settings

    header("5. engine per frame against the raw ONNX Runtime calls")
    images = [image for _, image in benchmark_images()]
    engine = FaceEngine(Settings().engine)
    print(f"  provider: {engine.models.providers} (available: {__import__('onnxruntime').get_available_providers()})")
    floors = [floor_inputs(engine, image) for image in images]
    runs = {
        "engine": (lambda image: engine.analyze(image), images),
        "floor": (lambda calls: [s.run(o, f) for s, o, f in calls], floors),
    }
    for run, items in runs.values():
        time_per_frame(run, items, 1)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (run, items) in runs.items():
            samples[name].append(time_per_frame(run, items, 3))
    ratios = [e / f for e, f in zip(samples["engine"], samples["floor"], strict=True)]
    print(f"  {len(images)} photos, medians of {rounds}: engine {statistics.median(samples['engine']):.2f} ms, "
          f"floor {statistics.median(samples['floor']):.2f} ms per frame")
    print(f"  engine / floor: {statistics.median(ratios):.3f}× (rounds {min(ratios):.3f}–{max(ratios):.3f})  "
          "target ≤ 1.10×")


# -- 6. reduced decoding ------------------------------------------------------------------------------------

REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def target_reduced(photos: list[Path]) -> None:
    from facer_cli.engine.face_engine import FaceEngine
    from facer_cli.settings import Settings

    header("6. reduced JPEG decoding: what it saves and what it changes")
    engine = FaceEngine(Settings().engine)
    shared = Path(os.environ.get("FACER_TEST_FACES", REPO.parent / "shared" / "faces"))
    files = photos + benchmark_photos() + sorted(shared.glob("resolutions/*.jpg")) + sorted(shared.glob("scenes/*.jpg"))
    decode_ms: dict[tuple[str, int], list[float]] = {}
    rows = []  # (factor, subject's shorter side after reduction, cosine, decision equal, sharpness full, reduced)
    for path in files:
        data = np.frombuffer(path.read_bytes(), np.uint8)
        kind = "progressive" if "progressive" in path.name else "baseline"
        started = time.process_time()
        full = cv2.imdecode(data, cv2.IMREAD_COLOR)
        decode_ms.setdefault((kind, 1), []).append((time.process_time() - started) * 1000)
        subject = engine.analyze(full).subject
        for factor, flag in REDUCED.items():
            started = time.process_time()
            reduced = cv2.imdecode(data, flag)
            decode_ms.setdefault((kind, factor), []).append((time.process_time() - started) * 1000)
            if subject is None or subject.embedding is None:
                continue
            other = engine.analyze(reduced).subject
            side = min(subject.box[2] - subject.box[0], subject.box[3] - subject.box[1]) / factor
            if other is None or other.embedding is None:
                rows.append((factor, side, -1.0, False, subject.sharpness, None))
                continue
            cosine = float(np.dot(subject.embedding, other.embedding))
            same = (subject.accepted, subject.reason) == (other.accepted, other.reason)
            rows.append((factor, side, cosine, same, subject.sharpness, other.sharpness))
    print("  decode CPU ms per photo (large photos):")
    for kind in ("baseline", "progressive"):
        cells = [f"1/{f}: {statistics.median(decode_ms[(kind, f)]):5.1f}" for f in (1, 2, 4, 8) if (kind, f) in decode_ms]
        print(f"    {kind:<12} " + "   ".join(cells).replace("1/1:", "full:"))
    print(f"  {len(files)} photos; subject's embedding, full decode against reduced, by the face's shorter side "
          "after reduction:")
    worst = 1.0
    for floor in (112, 168, 224, 336, 448):
        chosen = [r for r in rows if r[1] >= floor]
        if not chosen:
            continue
        cosines = [r[2] for r in chosen]
        flips = sum(not r[3] for r in chosen)
        growth = statistics.median(r[5] / r[4] for r in chosen if r[4] and r[5])
        worst = min(worst, *cosines)
        print(f"    ≥ {floor:3d} px: {len(chosen):3d} decodes, min cosine {min(cosines):.4f}, median "
              f"{statistics.median(cosines):.4f}; decisions changed {flips}; sharpness × {growth:.1f} (median)")
    print(f"  verdict: even where the face stays large after reduction the embedding moves (min cosine "
          f"{worst:.3f}) and the Laplacian sharpness, which the quality score reads, changes with scale:")
    print("  no reduction rule keeps every crop at full quality, so facer decodes in full.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--old", default=OLD_MAIN, help="the baseline: a commit of this repository or a checkout folder")
    parser.add_argument("--only", default="1,2,4,5,6", help="which targets to run, comma-separated")
    parser.add_argument("--large", type=int, default=54, help="large photos to make")
    parser.add_argument("--requests", type=int, default=162)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",")}
    import onnxruntime

    print(f"facer at {REPO}; Python {sys.version.split()[0]}; ONNX Runtime {onnxruntime.__version__} "
          f"{onnxruntime.get_available_providers()}; {os.cpu_count()} core(s); {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        runner = Runner(folder, folder / "pycache")
        old = old_checkout(args.old, folder) if only & {1, 2} else None
        photos = large_photos(folder / "large", args.large) if only & {2, 4, 6} else []
        pack = folder / "pack"
        pack.mkdir()
        from facer_cli.engine.modelpack import BUNDLED_FILES, bundled_folder

        for name, _ in BUNDLED_FILES.values():
            (pack / name).symlink_to(bundled_folder() / name)
        if 1 in only:
            target_startup(runner, REPO, old, args.rounds, folder)
        if 2 in only:
            target_inspect(runner, REPO, old, max(1, args.rounds // 2), photos, pack)
        if 4 in only:
            target_server(runner, REPO, photos, args.requests, args.parallel, folder, max(3, args.rounds // 2))
        if 5 in only:
            target_engine(args.rounds)
        if 6 in only:
            target_reduced(photos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
