"""Hostile image and .npy input: bombs, lying headers, special files, damage, fuzzing.

Every file is built here from a fixed seed (see hostile_files.py); nothing
hostile is stored in the repository.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import REPO

from facer_cli.errors import ImageError, ImageTooLargeError, VectorError
from facer_cli.files.npy import unit_vector, vector_from_npy_bytes
from facer_cli.files.reading import DEFAULT_MAX_FILE_BYTES, read_regular_file
from facer_cli.sources.images import IMAGE_SUFFIXES, MAX_IMAGE_SIDE, decode_image, load_image, read_header

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_files as hf

LIMIT = 50_000_000
RSS_BUDGET_MB = 100


@pytest.fixture(scope="module")
def photo(bundled_images) -> np.ndarray:
    image = cv2.imread(str(bundled_images / "yaoming.jpg"))
    assert image is not None
    return np.asarray(image)


def finishes_within(seconds: float, action: Callable[[], object]) -> object:
    """Run `action` in a thread; fail (instead of hanging the suite) if it takes longer."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = action()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread, which re-raises it
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome.get("value")


# ---------------------------------------------------------------- header parsers


@pytest.mark.parametrize("fmt", hf.CLAIM_FORMATS)
def test_header_builders_make_real_images(fmt):
    """At their true size the lying-header builders give files that decode, so refusals below are the lie's."""
    image = decode_image(hf.claiming(fmt, hf.SMALL, hf.SMALL), fmt, LIMIT)
    assert image.shape == (hf.SMALL, hf.SMALL, 3)


@pytest.mark.parametrize("fmt", hf.CLAIM_FORMATS)
def test_header_size_is_read_for_every_format(fmt):
    header = read_header(hf.claiming(fmt, 1234, 567), fmt)
    assert (header.width, header.height) == (1234, 567)


def test_bmp_heights_top_down_and_os2_header():
    assert read_header(hf.bmp(10, -20, b"\0" * 800), "x").height == 20
    os2 = b"BM" + b"\0" * 8 + (26).to_bytes(4, "little") + (12).to_bytes(4, "little") + bytes([7, 0, 9, 0, 1, 0, 24, 0])
    assert (read_header(os2, "x").width, read_header(os2, "x").height) == (7, 9)


def test_real_bombs_decode_when_small(photo):
    """The bomb builders make valid files: at 64×64 they decode."""
    assert decode_image(hf.png_zero_bomb(64), "p", LIMIT).shape == (64, 64, 3)
    assert decode_image(hf.tiff_float_bomb(64, 16), "t", LIMIT).shape == (64, 64, 3)


@pytest.mark.parametrize("name", sorted(hf.size_bombs()))
def test_every_bomb_is_refused_from_its_header(name):
    data = hf.size_bombs_cached()[name]
    with pytest.raises(ImageError) as caught:
        finishes_within(5, lambda: decode_image(data, name, LIMIT))
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    assert re.search(
        r"over the max_image_pixels limit|side over|not a supported image format|truncated|claims [\d,]+ bytes|cannot hold|damaged",
        message,
    )


def test_tall_bmp_passes_the_pixel_limit_but_not_the_side_limit():
    data = hf.tall_bmp()
    assert len(data) == 118
    assert 10 * 2_000_000 < LIMIT
    with pytest.raises(ImageTooLargeError, match=f"side over {MAX_IMAGE_SIDE:,} pixels"):
        decode_image(data, "tall.bmp", LIMIT)


def test_a_tiny_file_cannot_claim_a_large_raw_image():
    with pytest.raises(
        ImageError, match=r"truncated image \(the BMP header needs 48,000,054 bytes, the file has 118\)"
    ):
        decode_image(hf.bmp(4000, 4000, b"\0" * 64), "short.bmp", LIMIT)
    with pytest.raises(ImageError, match="truncated image"):
        decode_image(b"P5\n3000 3000\n255\n" + b"\0" * 10, "short.pgm", LIMIT)


def test_compressed_data_must_be_able_to_hold_the_claimed_size():
    """Deflate expands at most 1032 times, LZW and PackBits a bounded number of times too;
    Huffman JPEG spends a bit per 8×8 block at least."""
    with pytest.raises(ImageError, match=r"damaged JPEG data \(927 bytes cannot hold the 765,625 blocks"):
        decode_image(hf.claiming("jpeg", 7000, 7000), "tiny.jpg", LIMIT)
    with pytest.raises(ImageError, match="bytes of compressed pixels cannot hold a 7000×7000 image"):
        decode_image(hf.claiming("png", 7000, 7000), "tiny.png", LIMIT)
    with pytest.raises(ImageError, match="bytes of compressed pixels cannot hold a frame of 49,000,000 pixels"):
        decode_image(hf.claiming("gif", 7000, 7000), "tiny.gif", LIMIT)
    with pytest.raises(ImageError, match="bytes of strips cannot hold a 7000×7000 image"):
        decode_image(hf.claiming("tiff", 7000, 7000), "tiny.tif", LIMIT)
    assert read_header(hf.png_zero_bomb(), "bomb.png").too_little_data == ""  # real bombs are plausible
    assert read_header(hf.tiff_float_bomb(), "bomb.tif").too_little_data == ""


def test_the_most_compressible_real_images_still_pass(tmp_path):
    from PIL import Image

    solid = Image.new("L", (2000, 2000), 128)
    for name, options in (("gray.jpg", {"optimize": True, "quality": 1}), ("prog.jpg", {"progressive": True})):
        solid.save(tmp_path / name, **options)  # optimized gray: 2 bits a block, the least sequential JPEG spends
        assert load_image(tmp_path / name, LIMIT).shape == (2000, 2000, 3)
    solid.convert("1").save(tmp_path / "solid.png", optimize=True)
    solid.save(tmp_path / "solid.gif")
    for compression in ("tiff_lzw", "tiff_adobe_deflate", "packbits"):
        solid.save(tmp_path / f"{compression}.tif", compression=compression)
    for name in ("solid.png", "solid.gif", "tiff_lzw.tif", "tiff_adobe_deflate.tif", "packbits.tif"):
        assert load_image(tmp_path / name, LIMIT).shape == (2000, 2000, 3), name


def test_arithmetic_coded_jpeg_is_refused(photo):
    data = cv2.imencode(".jpg", photo)[1].tobytes().replace(b"\xff\xc0", b"\xff\xc9", 1)
    with pytest.raises(ImageError, match="arithmetic-coded or hierarchical JPEG"):
        decode_image(data, "arith.jpg", LIMIT)


@pytest.mark.parametrize(
    "data, what",
    [
        (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30000 +X 30000\n" + b"\0" * 8, "Radiance HDR"),
        (b"\0\0\0\x0cjP  \r\n\x87\n" + b"\0" * 40, "JPEG 2000"),
        (b"\0\0\0\x1cftypavif" + b"\0" * 40, "AVIF/HEIF"),
        (b"\x76\x2f\x31\x01" + b"\0" * 40, "OpenEXR"),
        (b"PF\n30000 30000\n-1.0\n" + b"\0" * 8, "PFM"),
        (b"II+\0" + b"\0" * 40, "BigTIFF"),
    ],
)
def test_refused_formats_say_so(data, what):
    with pytest.raises(ImageError, match=f"not a supported image format: {re.escape(what)}"):
        decode_image(data, "x.jpg", LIMIT)


def test_refused_suffixes_are_not_image_paths():
    for suffix in (".hdr", ".pic", ".exr", ".jp2", ".avif"):
        assert suffix not in IMAGE_SUFFIXES
    assert {".jpg", ".png", ".gif", ".webp", ".tif", ".bmp", ".pgm", ".ras"} <= IMAGE_SUFFIXES


def test_multi_page_and_odd_tiff_layouts_are_refused():
    strip = b"\0" * 48 * 16
    with pytest.raises(ImageError, match="multi-page TIFF"):
        decode_image(hf.tiff(16, 16, strip, 16, next_ifd=8), "pages.tif", LIMIT)
    with pytest.raises(ImageError, match="compression 34712"):
        decode_image(hf.tiff(16, 16, strip, 16, compression=34712), "j2k.tif", LIMIT)
    with pytest.raises(ImageError, match="tile width"):
        decode_image(hf.tiff(16, 16, strip, 16, extra_tags=((322, 4, 1, 1 << 30), (323, 4, 1, 16))), "t.tif", LIMIT)


def test_exif_orientation_from_jpeg_app1_only(photo):
    from PIL import Image

    rgb = Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = 8
    for fmt, expected in (("JPEG", 8), ("PNG", 1), ("WEBP", 1)):
        buffer = io.BytesIO()
        rgb.save(buffer, format=fmt, exif=exif)
        assert read_header(buffer.getvalue(), fmt).orientation == expected, fmt


def test_broken_exif_does_not_lose_the_image(photo):
    data = bytearray(cv2.imencode(".jpg", photo)[1].tobytes())
    app1 = b"Exif\0\0MM\0*\xff\xff\xff\xff"
    data[2:2] = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    assert decode_image(bytes(data), "x.jpg", LIMIT).shape == photo.shape


# ---------------------------------------------------------------- peak memory


PEAK_SCRIPT = r"""
import json, sys
from pathlib import Path
from facer_cli.sources.images import decode_image
from facer_cli.errors import ImageError

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    raise SystemExit("no " + field)

def control():  # proves the method sees memory: 150 MB touched must show
    block = bytearray(150 * 1024 * 1024)
    return len(block)

results = {}
try:
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
before = status("VmRSS")
control()
results["control-150MB"] = {"outcome": "control", "peak_over_baseline_mb": status("VmHWM") - before}
for path in map(Path, sys.argv[1:]):
    data = path.read_bytes()
    try:
        open("/proc/self/clear_refs", "w").write("5")  # restart the high-water mark here
    except OSError:
        pass  # then each figure includes the ones before: stricter, not looser
    before = status("VmRSS")
    try:
        decode_image(data, path.name, 50_000_000)
        outcome = "accepted"
    except ImageError as exc:
        outcome = type(exc).__name__
    results[path.name] = {"outcome": outcome, "peak_over_baseline_mb": status("VmHWM") - before}
print(json.dumps(results))
"""


def test_peak_memory_of_every_refused_bomb(tmp_path):
    paths = []
    for name, data in hf.size_bombs_cached().items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, *paths],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    results = json.loads(done.stdout)
    print(json.dumps(results, indent=1))
    assert results.pop("control-150MB")["peak_over_baseline_mb"] >= 140
    for name, result in results.items():
        assert result["outcome"] != "accepted", name
        assert result["peak_over_baseline_mb"] < RSS_BUDGET_MB, (name, result)


# ---------------------------------------------------------------- special files


def test_fifo_named_jpg_does_not_hang(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match=r"pipe.jpg: not a regular file \(a FIFO"):
        finishes_within(5, lambda: load_image(fifo, LIMIT))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_symlink_to_a_device_is_refused_unread(tmp_path, device):
    link = tmp_path / "face.jpg"
    link.symlink_to(device)
    with pytest.raises(ImageError, match=r"not a regular file \(a character device\)"):
        finishes_within(5, lambda: load_image(link, LIMIT))


def test_socket_and_folder_are_refused(tmp_path):
    short_dir = Path(tempfile.mkdtemp(prefix="facer-sock-"))  # AF_UNIX paths must be short
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(short_dir / "s.jpg"))
        with pytest.raises(ImageError, match=r"not a regular file \(a socket\)"):
            load_image(short_dir / "s.jpg", LIMIT)
    finally:
        server.close()
        (short_dir / "s.jpg").unlink()
        short_dir.rmdir()
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path, LIMIT)


def test_symlink_to_a_regular_file_is_fine(tmp_path, photo):
    cv2.imwrite(str(tmp_path / "real.png"), photo)
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")
    assert load_image(tmp_path / "link.png", LIMIT).shape == photo.shape


def test_file_size_limit_from_fstat_and_while_reading(tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 101)
    with pytest.raises(ImageError, match="101 bytes, over the max_file_bytes limit of 100 bytes"):
        load_image(big, LIMIT, max_bytes=100)
    # /proc files say 0 bytes in fstat: the read itself must stop at the limit.
    with pytest.raises(ImageError, match="larger than that, over the max_file_bytes limit of 100 bytes"):
        read_regular_file("/proc/self/maps", 100, ImageError)
    assert read_regular_file(big, 101, ImageError) == b"\xff" * 101
    assert DEFAULT_MAX_FILE_BYTES == 64 * 1024 * 1024


def test_missing_file(tmp_path):
    with pytest.raises(VectorError, match="nope.npy: no such file"):
        read_regular_file(tmp_path / "nope.npy", 100, VectorError)


def test_unreadable_file_says_permission_denied(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="facer-perm-"))  # pytest's tmp_path is closed to other users
    try:
        folder.chmod(0o755)
        locked = folder / "locked.jpg"
        locked.write_bytes(b"\xff\xd8\xff")
        locked.chmod(0)
        message = _load_as_unprivileged_user(locked) if os.geteuid() == 0 else _load_error(locked)
    finally:
        (folder / "locked.jpg").unlink()
        folder.rmdir()
    assert message == f"{locked}: cannot read (permission denied)"


def _load_error(path: Path) -> str:
    try:
        load_image(path, LIMIT)
    except ImageError as exc:
        return str(exc)
    return "loaded"


def _load_as_unprivileged_user(path: Path) -> str:
    """Root reads anything: check from a forked child that drops to 'nobody' first."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(writer, _load_error(path).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(child, 0)
    return message


# ---------------------------------------------------------------- damage and chatter


def test_jpeg_cut_short_with_end_marker_is_damaged_and_silent(capfd, faces):
    data = (faces / "resolutions" / "obama_1080p.jpg").read_bytes()
    with pytest.raises(ImageError, match=r"damaged JPEG data \(Corrupt JPEG data: premature end of data segment\)"):
        decode_image(hf.jpeg_cut_with_end_marker(data), "cut.jpg", LIMIT)
    assert capfd.readouterr().err == ""


def test_damaged_png_is_an_error_and_silent(capfd, photo):
    data = cv2.imencode(".png", photo)[1].tobytes()
    with pytest.raises(ImageError, match="damaged PNG data"):
        decode_image(hf.png_with_bad_idat_crc(data), "crc.png", LIMIT)
    assert capfd.readouterr().err == ""


def test_extraneous_bytes_in_a_jpeg_are_damage(capfd, photo):
    data = cv2.imencode(".jpg", photo)[1].tobytes()
    middle = (data.index(b"\xff\xda") + data.index(b"\xff\xd9")) // 2
    damaged = data[:middle] + b"\x01\x02\x03\x04\x05" + data[middle:]  # five stray bytes inside the scan
    with pytest.raises(ImageError, match=r"damaged JPEG data \(Corrupt JPEG data: \d+ extraneous bytes"):
        decode_image(damaged, "x.jpg", LIMIT)
    assert capfd.readouterr().err == ""


def test_good_images_decode_silently(capfd, faces):
    for path in sorted((faces / "people").glob("*/*")):
        assert load_image(path, LIMIT).ndim == 3
    assert capfd.readouterr().err == ""


def test_other_output_on_fd2_during_a_decode_is_kept(capfd, photo):
    """Only decoder chatter is swallowed; a line another thread writes meanwhile still appears."""
    from facer_cli.sources.decoder_chatter import run_captured

    def decode() -> int:
        os.write(2, b"Corrupt JPEG data: 3 extraneous bytes before marker 0xd9\nserver: a log line\n")
        return 7

    assert run_captured(decode) == (7, ["Corrupt JPEG data: 3 extraneous bytes before marker 0xd9"])
    assert capfd.readouterr().err == "server: a log line\n"


def test_decodes_run_side_by_side_and_keep_their_own_chatter(capfd):
    """Two decodes are inside the capture at once (a barrier both must reach); chatter written while
    both ran is not guessed at: each runs again alone, so each keeps only its own words."""
    from facer_cli.sources import decoder_chatter
    together = threading.Barrier(2, timeout=10)
    runs = {"noisy": 0, "quiet": 0}

    def work(name: str) -> str:
        runs[name] += 1
        if runs[name] == 1:
            together.wait()  # both first runs overlap, or this raises BrokenBarrierError
        if name == "noisy":
            os.write(2, b"Corrupt JPEG data: premature end of data segment\n")
        if runs[name] == 1:
            together.wait()
        return name

    results: dict[str, tuple[str, list[str]]] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, decoder_chatter.run_captured(
        lambda: work(n)))) for n in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results["noisy"] == ("noisy", ["Corrupt JPEG data: premature end of data segment"])
    assert results["quiet"] == ("quiet", [])
    assert runs == {"noisy": 2, "quiet": 2}  # both were unsure after the shared run, both ran alone
    assert decoder_chatter.original_stderr_fd() == 2 and capfd.readouterr().err == ""


def test_concurrent_decodes_keep_their_own_verdicts(capfd, faces):
    good = (faces / "resolutions" / "obama_480p.jpg").read_bytes()
    bad = hf.jpeg_cut_with_end_marker(good)
    verdicts: list[tuple[bool, bool]] = []

    def work(index: int) -> None:
        data = bad if index % 2 else good
        try:
            decode_image(data, "x.jpg", LIMIT)
            verdicts.append((data is bad, True))
        except ImageError:
            verdicts.append((data is bad, False))

    threads = [threading.Thread(target=work, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(verdicts) == [(False, True)] * 8 + [(True, False)] * 8
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- fuzzing

FUZZ_CASES = 1200
FUZZ_SCRIPT = r"""
import sys, time, json
from pathlib import Path
from facer_cli.sources.images import decode_image
from facer_cli.errors import ImageError
slowest, counts = (0.0, ""), {"accepted": 0, "refused": 0}
for path in sorted(Path(sys.argv[1]).iterdir()):
    print(path.name, file=sys.stdout, flush=True)  # the last name printed is the culprit of a crash
    started = time.perf_counter()
    try:
        decode_image(path.read_bytes(), path.name, 50_000_000)
        counts["accepted"] += 1
    except ImageError as exc:
        assert str(exc).startswith(path.name + ": ") and "\n" not in str(exc), repr(exc)
        counts["refused"] += 1
    slowest = max(slowest, (time.perf_counter() - started, path.name))
print(json.dumps({**counts, "slowest_s": round(slowest[0], 3), "slowest": slowest[1]}))
"""


@pytest.mark.slow
def test_fuzzed_images_give_image_errors_only(tmp_path, photo):
    """Seeded mutations of real photos in six formats: only ImageError, no crash, no chatter, bounded time.

    Run in a child process so that a crash in a C decoder fails this test instead of killing pytest.
    """
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in hf.mutations(hf.fuzz_seeds(photo), FUZZ_CASES):
        (corpus / name).write_bytes(data)
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", FUZZ_SCRIPT, str(corpus)],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
    )
    elapsed = time.perf_counter() - started
    last_line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"child died ({done.returncode}) at {last_line}: {done.stderr[-2000:]}"
    assert done.stderr == "", done.stderr[-2000:]
    summary = json.loads(last_line)
    print(f"{FUZZ_CASES} cases in {elapsed:.1f} s: {summary}")
    assert summary["accepted"] + summary["refused"] == FUZZ_CASES
    assert summary["slowest_s"] < 2.0, summary


# ---------------------------------------------------------------- .npy vectors


def npy_bytes(array: np.ndarray, version: tuple[int, int] | None = None, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array, allow_pickle=allow_pickle)
    else:
        np.lib.format.write_array(buffer, array, version=version, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_with_header(header: str, payload: bytes = b"", version: int = 1) -> bytes:
    text = header.encode("latin-1")
    length = len(text).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + length + text + payload


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<f2", "|i1", "<u2", ">i8"])
def test_numeric_vectors_of_any_byte_order_load(dtype):
    values = np.arange(1, 9).astype(dtype)
    vector = vector_from_npy_bytes(npy_bytes(values), "v.npy")
    expected = np.arange(1, 9) / np.linalg.norm(np.arange(1, 9))
    assert vector.dtype == np.float32 and np.allclose(vector, expected, atol=1e-6)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_versions(version):
    vector = vector_from_npy_bytes(npy_bytes(np.ones(512, np.float32), version), "v.npy")
    assert np.allclose(vector, 1 / np.sqrt(512))


def test_header_claiming_a_huge_shape_is_refused_before_allocating():
    data = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }".ljust(117) + "\n")
    assert len(data) == 128
    with pytest.raises(VectorError, match="10,000,000,000,000 values, over the 65,536 a template may hold"):
        vector_from_npy_bytes(data, "huge.npy")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file (0 bytes)"),
        (b"0.1, 0.2, 0.3\n0.4, 0.5\n", "a text file, not a .npy array"),
        (b"\x80\x04\x95" + b"\0" * 20, "a Python pickle, which facer never loads"),
        (b"\x93NUM", "the file is cut short"),
        (b"\x00\x01\x02\x03garbage\xff", "it does not start with the .npy signature"),
    ],
)
def test_files_that_are_not_npy_say_what_they_are(data, message):
    with pytest.raises(VectorError, match=re.escape(message)):
        vector_from_npy_bytes(data, "v.npy")


def test_npz_and_real_pickles_and_object_arrays():
    npz = io.BytesIO()
    np.savez(npz, a=np.ones(4), b=np.ones(4))
    assert zipfile.is_zipfile(io.BytesIO(npz.getvalue()))
    with pytest.raises(VectorError, match=re.escape("an .npz archive of several arrays; give one vector as .npy")):
        vector_from_npy_bytes(npz.getvalue(), "v.npy")
    with pytest.raises(VectorError, match="a Python pickle, which facer never loads"):
        vector_from_npy_bytes(pickle.dumps(np.ones(4)), "v.npy")
    objects = npy_bytes(np.array([1.0, "x", None], dtype=object), allow_pickle=True)
    with pytest.raises(VectorError, match=re.escape("holds Python objects (pickled), which facer never loads")):
        vector_from_npy_bytes(objects, "v.npy")
    structured = npy_bytes(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    with pytest.raises(VectorError, match="holds Python objects"):
        vector_from_npy_bytes(structured, "v.npy")


@pytest.mark.parametrize(
    "data, message",
    [
        (npy_bytes(np.ones((2, 256))), r"shape \(2, 256\) is not a 1-D vector"),
        (npy_bytes(np.ones(4, bool)), "holds |b1 values, not plain numbers"),
        (npy_bytes(np.ones(4, complex)), "holds <c16 values, not plain numbers"),
        (npy_bytes(np.array(["a", "b"])), "not plain numbers"),
        (npy_bytes(np.ones(4))[:-1], r"promises 4 values \(32 bytes\), the file holds 31 bytes"),
        (npy_bytes(np.ones(4)) + b"\0", "the file holds 33 bytes"),
        (npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (-4,), }\n"), "damaged .npy header"),
        (npy_with_header("[1, 2, 3]\n"), "damaged .npy header"),
        (npy_with_header("__import__('os')\n"), "damaged .npy header"),
        (npy_with_header("{'descr': '<f8', 'fortran_order': 0, 'shape': (4,), }\n"), "fortran_order"),
        (npy_with_header("x" * 10, version=2)[:8] + (10**6).to_bytes(4, "little"), "header of 1,000,000 bytes"),
        (b"\x93NUMPY\x09\x00" + b"\0" * 100, "format version 9.0"),
        (npy_bytes(np.array([1.0, np.nan])), "contains NaN or infinite values"),
        (npy_bytes(np.array([1.0, np.inf])), "contains NaN or infinite values"),
        (npy_bytes(np.zeros(512)), r"zero vector \(norm 0\)"),
        (npy_bytes(np.ones(1)), r"a vector of 1 value\(s\) is not a template"),
    ],
)
def test_bad_vectors(data, message):
    with pytest.raises(VectorError, match=message):
        vector_from_npy_bytes(data, "v.npy")


@pytest.mark.parametrize(
    "values",
    [
        np.full(512, 1e200),
        np.array([1e308, -1e308, 1e308]),
        np.full(512, 1e-310),  # subnormal: squares underflow to zero
        np.array([np.finfo(np.float64).max, 1.0]),
        np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min]),
    ],
)
def test_huge_and_tiny_values_normalise(values):
    vector = unit_vector(values, "v")
    assert vector.dtype == np.float32 and np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1) < 1e-5
    json.dumps(vector.tolist(), allow_nan=False)  # never NaN in a JSON answer


def test_max_dimension_is_a_parameter():
    data = npy_bytes(np.ones(600, np.float32))
    assert vector_from_npy_bytes(data, "v", max_dimension=600).shape == (600,)
    with pytest.raises(VectorError, match="600 values, over the 512"):
        vector_from_npy_bytes(data, "v", max_dimension=512)


def test_load_npy_vector_reads_safely(tmp_path):
    from facer_cli.files.npy import load_npy_vector

    np.save(tmp_path / "v.npy", np.arange(1, 5, dtype=np.float32))
    assert load_npy_vector(tmp_path / "v.npy").shape == (4,)
    (tmp_path / "zero.npy").symlink_to("/dev/zero")
    with pytest.raises(VectorError, match="not a regular file"):
        load_npy_vector(tmp_path / "zero.npy")
    big = tmp_path / "big.npy"
    big.write_bytes(b"\x93NUMPY" + b"\0" * (2 * 1024 * 1024))
    with pytest.raises(VectorError, match="over the max_file_bytes limit"):
        load_npy_vector(big)
    assert stat.S_ISREG(big.stat().st_mode)
