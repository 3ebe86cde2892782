"""`facer demo`: the main story, on photos that ship with the bundled model pack.

Enroll Yao Ming from `yaoming.jpg` into a temporary store, verify him in a second
photo — his face cut out of the team photo `players.jpg` — (a match), then verify
the main face of `gdp.jpg`, someone else, cut out of that group photo (no match: facer
verifies one person at a time, so the whole group photo would be refused). Nothing is written outside
the temporary folder the caller gives.
"""

from __future__ import annotations

from pathlib import Path

from facer_cli.service.facer import Facer
from facer_cli.service.inputs import InputFile
from facer_cli.service.results import DemoCheck, DemoResult
from facer_cli.settings import Settings

USER = "Yao Ming"
# Where Yao Ming stands in players.jpg (x1, y1, x2, y2), with room around his face.
YAO_IN_PLAYERS = (670, 90, 815, 245)
CROP_NAME = "players-crop.jpg"
# The main face of gdp.jpg, without the two people beside it.
MAIN_FACE_IN_GDP = (332, 70, 480, 260)
GDP_CROP_NAME = "gdp-crop.jpg"


def photo_crop(folder: Path, photo: str, box: tuple[int, int, int, int], name: str) -> InputFile:
    """A part of a bundled photo, as a JPEG held in memory."""
    import cv2

    from facer_cli.sources.images import load_image

    image = load_image(folder / photo, 50_000_000)
    x1, y1, x2, y2 = box
    ok, encoded = cv2.imencode(".jpg", image[y1:y2, x1:x2], [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise RuntimeError("cannot encode the demo photo")
    return InputFile(name, data=encoded.tobytes())


def team_photo_crop(folder: Path) -> InputFile:
    """Yao Ming's part of the team photo."""
    return photo_crop(folder, "players.jpg", YAO_IN_PLAYERS, CROP_NAME)


def run_demo(settings: Settings, workdir: Path) -> DemoResult:
    """Enroll, verify a match and an impostor, in a store inside `workdir`.

    One photo enrolls here (`min_valid_frames` 1): a real enrollment takes three or more."""
    from facer_cli.engine.modelpack import bundled_folder
    from facer_cli.settings import with_overrides

    folder = bundled_folder()
    demo_settings = with_overrides(settings, db=str(workdir / "demo.db"), min_valid_frames=1)
    facer = Facer(demo_settings)
    with facer.open_store() as store:
        enrolled = facer.enroll(USER, [folder / "yaoming.jpg"], store=store)
        second = facer.verify(USER, facer.frames_from_uploads([team_photo_crop(folder)]), store=store)
        gdp = photo_crop(folder, "gdp.jpg", MAIN_FACE_IN_GDP, GDP_CROP_NAME)
        impostor = facer.verify(USER, facer.frames_from_uploads([gdp]), store=store)
    checks = [DemoCheck(CROP_NAME, "match", second), DemoCheck(GDP_CROP_NAME, "no_match", impostor)]
    next_steps = [
        ("facer inspect photos/alice/", "what facer sees in each photo, and why"),
        ("facer enroll alice photos/alice/", "enroll from 3 or more photos"),
        ("facer verify alice door.jpg", "exit 0 match, 1 no match, 3 uncertain"),
        ("facer enroll alice --camera --replace", "or from a camera (or a video file)"),
        ("facer users list", "who is enrolled"),
        ("facer serve", "the same over HTTP (needs the server extra: pip install 'facer[server]')"),
    ]
    return DemoResult(USER, enrolled, checks, str(workdir / "demo.db"), next_steps)
