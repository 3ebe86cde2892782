"""Cameras through the video file that plays one: warm-up, frame spacing frame by frame,
end of stream, timeout, release, sources that cannot be opened, and the engine driven over
it. A stand-in replaces OpenCV only where a live camera is needed (an index that opens, a
device without timestamps)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facer_cli.errors import SourceError
from facer_cli.service.capture import capture_frames
from facer_cli.settings import Settings
from facer_cli.sources import camera as camera_module
from facer_cli.sources.camera import Camera, parse_source
from facer_cli.tokens import generate_token_from_camera

REAL_VIDEO_CAPTURE = cv2.VideoCapture
FRAME_MS = 1000 / 29.97  # the clip's frame period


@pytest.fixture(scope="session")
def clip(faces):
    return faces / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="session")
def clip_timestamps(clip):
    """Every frame's timestamp as OpenCV reports it, read independently of facer."""
    capture = REAL_VIDEO_CAPTURE(str(clip))
    stamps = []
    while capture.grab():
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    capture.release()
    return stamps


def kept(camera: Camera) -> list[tuple[int, float]]:
    with camera:
        return [(frame.index, frame.timestamp_ms) for frame in camera.frames()]


def test_clip_is_what_the_readme_says(clip_timestamps):
    assert len(clip_timestamps) == 275
    assert clip_timestamps[1] == pytest.approx(FRAME_MS, abs=0.01)


def test_warmup_and_spacing_frame_by_frame(clip, clip_timestamps):
    camera = Camera(str(clip), warmup_frames=5, interval_ms=200)
    frames = kept(camera)
    indexes = [index for index, _ in frames]
    # 6 frames are 200.2 ms apart, 5 only 166.8 ms: every 6th frame from the first after warm-up
    assert indexes == list(range(5, 275, 6))
    for index, timestamp in frames:
        assert timestamp == pytest.approx(clip_timestamps[index])
    # frame by frame: each kept frame is the first one at least 200 ms after the previous kept one
    previous = None
    for index in range(5, 275):
        gap_ok = previous is None or clip_timestamps[index] - clip_timestamps[previous] >= 200
        assert (index in indexes) == gap_ok, index
        if gap_ok:
            previous = index
    stats = camera.stats
    assert (stats.read, stats.warmup, stats.kept, stats.spaced) == (275, 5, 45, 225)
    assert stats.clock == "stream" and stats.stopped == "end of stream"
    # the stream's own clock: the same frames on every run, however fast the computer is
    assert kept(Camera(str(clip), warmup_frames=5, interval_ms=200)) == frames


@pytest.mark.parametrize("warmup, interval, expected", [
    (0, 0, list(range(275))),
    (30, 0, list(range(30, 275))),
    (5, 500, list(range(5, 275, 15))),  # 15 frames = 500.5 ms
    (274, 200, [274]),
    (300, 200, []),  # warm-up longer than the clip
])
def test_other_warmups_and_intervals(clip, warmup, interval, expected):
    assert [index for index, _ in kept(Camera(str(clip), warmup_frames=warmup, interval_ms=interval))] == expected


class FakeClock:
    def __init__(self, step: float = 0.0):
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_timeout_stops_reading(clip):
    clock = FakeClock(step=0.5)  # half a second passes every time the camera looks at the clock
    camera = Camera(str(clip), warmup_frames=0, interval_ms=0, timeout_s=3, clock=clock)
    frames = kept(camera)
    assert 0 < len(frames) < 10
    assert camera.stats.stopped == "timeout after 3 s"
    assert not camera.is_open


class LiveCamera:
    """A stand-in for a webcam: plays the clip, reports no timestamps (POS_MSEC 0, as many
    webcams do), takes 62.5 ms per frame on the given clock, and records what was asked of it."""

    opened: list = []

    def __init__(self, source, clock: FakeClock | None = None, clip=None):
        LiveCamera.opened.append(source)
        self._real = REAL_VIDEO_CAPTURE(str(clip))
        self._clock = clock
        self.released = False

    def isOpened(self):
        return self._real.isOpened()

    def grab(self):
        if self._clock is not None:
            self._clock.now += 0.0625  # 16 fps, exact in binary
        return self._real.grab()

    def retrieve(self):
        return self._real.retrieve()

    def get(self, prop):
        return 0.0 if prop == cv2.CAP_PROP_POS_MSEC else self._real.get(prop)

    def release(self):
        self.released = True
        self._real.release()


@pytest.fixture
def live_camera(monkeypatch, clip):
    """cv2.VideoCapture(index) gives a LiveCamera; files and URLs still go to OpenCV."""
    made: list[LiveCamera] = []
    clock = FakeClock()

    def video_capture(source, *args):
        if isinstance(source, int):
            made.append(LiveCamera(source, clock, clip))
            return made[-1]
        return REAL_VIDEO_CAPTURE(source, *args)

    LiveCamera.opened = []
    monkeypatch.setattr(camera_module.cv2, "VideoCapture", video_capture)
    return made, clock


def test_a_camera_without_timestamps_is_spaced_on_the_wall_clock(live_camera):
    made, clock = live_camera
    camera = Camera(0, warmup_frames=5, interval_ms=200, clock=clock)
    frames = kept(camera)
    assert camera.stats.clock == "wall"
    # frame k arrives at (k + 1) × 62.5 ms: 3 frames are 187.5 ms apart, 4 are 250 ms
    assert [index for index, _ in frames] == list(range(5, 275, 4))
    assert all(b - a >= 200 - 1e-6 for (_, a), (_, b) in zip(frames, frames[1:], strict=False))
    assert made[0].released


def test_the_device_is_released_on_ctrl_c_and_on_early_exit(live_camera):
    made, clock = live_camera
    camera = Camera(0, warmup_frames=0, interval_ms=0, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        with camera:
            for frame in camera.frames():
                if frame.index == 3:
                    raise KeyboardInterrupt
    assert made[-1].released and not camera.is_open
    camera = Camera(0, warmup_frames=0, interval_ms=0, clock=clock)
    for _ in camera.frames():  # no `with`: leaving the loop releases too
        break
    assert made[-1].released and not camera.is_open
    generator = camera.frames()
    next(generator)
    assert not made[-1].released
    generator.close()
    assert made[-1].released and len(made) == 3


def test_sources_that_cannot_be_opened_give_one_line_naming_them(tmp_path, faces, capfd):
    with pytest.raises(SourceError, match="cannot open camera 97: no such camera"):
        Camera(97).open()
    with pytest.raises(SourceError, match="nothing.mp4: no such video file"):
        Camera(str(tmp_path / "nothing.mp4")).open()
    with pytest.raises(SourceError, match="is a folder"):
        Camera(str(tmp_path)).open()
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(SourceError, match="cannot open video .*notes.mp4"):
        Camera(str(text)).open()
    with pytest.raises(SourceError, match="cannot open stream rtsp://127.0.0.1:1/live: unreachable"):
        Camera("rtsp://127.0.0.1:1/live").open()  # nothing listens on port 1: refused at once
    err = capfd.readouterr().err
    assert "WARN" not in err and "tcp @" not in err  # OpenCV's and FFmpeg's own lines are kept quiet


@pytest.mark.parametrize("raw, parsed", [(None, 2), ("", 2), ("1", 1), (3, 3), ("clip.mp4", "clip.mp4"),
                                         ("rtsp://cam.local/stream", "rtsp://cam.local/stream")])
def test_source_parsing(raw, parsed):
    assert parse_source(raw, default_index=2) == parsed


def test_capture_stops_after_max_frames_accepted_and_reports_progress(engine, clip):
    updates = []
    camera = Camera(str(clip), warmup_frames=5, interval_ms=200)
    capture = capture_frames(engine, camera, max_frames=3, on_progress=updates.append)
    assert capture.accepted == 3 and capture.frames[-1].accepted
    assert len(updates) == len(capture.frames) and updates[-1].accepted == 3
    assert [u.analysed for u in updates] == list(range(1, len(capture.frames) + 1))
    assert updates[-1].stats.read >= 5 + len(capture.frames)
    assert capture.stats.stopped == "3 frame(s) accepted" and not camera.is_open
    assert capture.frames[0].source == "short_hamilton_clip.mp4 #5 @0.17s"
    assert all(u.last_decision in ("accepted", "rejected") for u in updates)


def test_generate_token_from_camera_plays_the_clip(clip, faces, engine, settings):
    token = generate_token_from_camera(max_frames=3, source=str(clip), settings=settings)
    assert token.shape == (512,) and token.dtype == np.float32
    assert np.linalg.norm(token) == pytest.approx(1, abs=1e-6)
    lin = engine.analyze_path(faces / "people" / "lin_manuel_miranda" / "lin_manuel_miranda_1.png")
    assert float(token @ lin.embedding) > 0.3  # the clip's main face is lin_manuel_miranda


def test_generate_token_from_camera_uses_camera_index_by_default(live_camera, monkeypatch):
    made, _ = live_camera
    # this stand-in delivers frames faster than real time: no spacing, or the clip would end first
    settings = Settings.from_values({"camera_index": 4, "camera_warmup_frames": 0, "frame_interval_ms": 0})
    generate_token_from_camera(max_frames=2, settings=settings)
    assert LiveCamera.opened == [4] and made[0].released
