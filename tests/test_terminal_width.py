"""Every table and message line at 60, 80, 100 and 160 columns, on a terminal and piped.

At each width: the key column's value (the user name, the file, the camera frame's label) shows
whole on one line, the decision words show whole, and no word, path or number of the output is
split across two lines (the words are those of the same view drawn 1000 columns wide).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import people, photo, run
from rich.cells import cell_len

from facer_cli.cli.app import console
from facer_cli.cli.output.evaluate import print_all
from facer_cli.cli.output.frames import frames_table, frames_view, liveness_line, rejections_table
from facer_cli.cli.output.text import message_line
from facer_cli.cli.output.users import user_view, users_view
from facer_cli.cli.output.views import doctor_view, enroll_view, identify_view, inspect_view, verify_view
from facer_cli.engine.reports import FaceReport, FrameReport
from facer_cli.liveness import Challenge, FrameCue, LivenessResult
from facer_cli.service import Facer, Frames
from facer_cli.service.results import DoctorInfo
from facer_cli.settings import Settings

WIDTHS = (60, 80, 100, 160)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile(r"[─━│┃┏┓┗┛┡┩╇┳┻╋┃┣┫╭╮╰╯┌┐└┘├┤┬┴┼]")
LONG_NAME = "alexandra_lacamoire_moire"
CLIP = "short_hamilton_clip.mp4"


def draw(renderable: Any, width: int | None, terminal: bool, printer: Callable | None = None) -> list[str]:
    """The lines `renderable` prints at this width, on a terminal or piped (width None: Rich's own choice)."""
    out = io.StringIO()
    target = rich_console(out, width, terminal)
    if printer is not None:
        printer(target, renderable)
    else:
        target.print(renderable)
    return [ANSI.sub("", line).rstrip() for line in out.getvalue().splitlines()]


def rich_console(out: io.StringIO, width: int | None, terminal: bool):
    from rich.console import Console

    return Console(file=out, width=width, force_terminal=terminal, highlight=False, color_system="standard")


def words(lines: list[str]) -> set[str]:
    return {word for line in lines for word in BOX.sub(" ", line).split()}


def split_tokens(lines: list[str], tokens: set[str]) -> list[str]:
    """Tokens that end one line and go on in the next (at the same column, or where that line's text starts).

    Both parts at least 2 characters: a 1-character part matches too much by chance (`3` above `0.0`)."""
    found = []
    for token in tokens:
        for k in range(2, len(token) - 1):
            head, tail = token[:k], token[k:]
            for line, below in zip(lines, lines[1:], strict=False):
                for match in re.finditer(re.escape(head), line):
                    start, end = match.span()
                    if (start and line[start - 1] != " ") or (end < len(line) and line[end] not in " │┃"):
                        continue
                    indent = len(below) - len(below.lstrip())
                    for at in {start, indent}:
                        rest = below[at:]
                        if rest.startswith(tail) and (len(rest) == len(tail) or rest[len(tail)] in " │┃"):
                            found.append(f"{head}|{tail}")
    return found


@dataclass
class Case:
    name: str
    renderable: Any
    keys: list[str]  # whole, on one line
    decisions: list[str] = field(default_factory=list)  # each word whole
    printer: Callable | None = None


def check(case: Case, width: int | None, terminal: bool) -> None:
    lines = draw(case.renderable, width, terminal, case.printer)
    wide = draw(case.renderable, 1000, terminal, case.printer)
    shown = "\n".join(lines)
    limit = width or 80
    for key in case.keys:
        assert any(key in line for line in lines), f"{case.name} at {width}: key {key!r} not whole\n{shown}"
    for word in case.decisions:
        assert word in words(lines), f"{case.name} at {width}: decision word {word!r} not whole\n{shown}"
    tokens = {token for token in words(wide) if 1 < len(token) <= limit - 10}
    split = split_tokens(lines, tokens)
    assert not split, f"{case.name} at {width}: split across lines: {split}\n{shown}"
    if terminal:  # a longer line the terminal itself would break, wherever its edge falls
        long = [line for line in lines if cell_len(line) > limit]
        assert not long, f"{case.name} at {width}: lines wider than the terminal: {long}"


# -- results from real runs --------------------------------------------------------------------
@pytest.fixture(scope="module")
def results(faces, engine, tmp_path_factory):
    settings = Settings.from_values({"db": str(tmp_path_factory.mktemp("width") / "a-store-with-a-long-name.db")})
    facer = Facer(settings, engine=engine)
    photos = people(faces)
    enrolled = facer.enroll(LONG_NAME, photos["alex_lacamoire"])
    facer.enroll("obama", photos["obama"][:3])
    verified = facer.verify("obama", [photo(faces, "obama_4")])
    identified = facer.identify([photo(faces, "obama_4")])
    return {
        "settings": settings,
        "users": facer.users(),
        "obama": facer.user("obama"),
        "enrolled": enrolled,
        "verified": verified,
        "identified": identified,
        "inspected": facer.inspect([faces / "scenes", faces / "people" / "alex_lacamoire"]),
    }


def camera_frames() -> Frames:
    """A liveness enrollment from a clip: frames labelled `clip #N @T s`, accepted and rejected ones."""
    frames = []
    for index in range(1, 7):
        accepted = index % 3 != 0
        face = FaceReport(
            index=1,
            box=(0, 0, 100, 100),
            det_score=0.81,
            keypoints=[(0.0, 0.0)] * 5,
            is_subject=True,
            yaw=-12.5 * index,
            pitch=3.25,
            roll=-1.5,
            sharpness=412.0,
            quality=0.72,
            accepted=accepted,
            reason="" if accepted else "too dark: brightness 31 < 40; blurred: sharpness 12 < 80",
        )
        frames.append(FrameReport(source=f"{CLIP} #{index * 17} @{index * 1.17:.2f}s", faces=[face]))
    challenge = Challenge.of("straight", "left", "right")
    cues = [FrameCue(index=i, timestamp_ms=i * 100.0, step=1 + i % 3, yaw=-10.0, residual=0.0612) for i in range(6)]
    liveness = LivenessResult(
        live=False,
        reasons=["the face changed between steps"],
        challenge=challenge,
        steps_done=2,
        parallax=0.0412,
        blinked=False,
        elapsed_ms=4210.0,
        cues=cues,
    )
    return Frames(frames=frames, source=CLIP, liveness=liveness)


def doctor_info(engine) -> DoctorInfo:
    from facer_cli.service.doctor import package_versions

    return DoctorInfo(
        engine.info.to_dict(),
        ["CPUExecutionProvider"],
        package_versions(),
        1.234,
        {
            "db": "/home/someone/.local/share/facer/facer.db",
            "templates": 12,
            "identify_threshold": 0.42,
            "calibrated_for": 100,
            "warning": None,
        },
    )


TOML = [
    "cosine_threshold_high = 0.3000  # the model's safe floor (0.3)",
    "identify_threshold = 0.4200  # not measured: FPIR 0.001 needs ≥ 2996 non-mated searches, and a gallery",
]


@pytest.fixture(scope="module")
def cases(results, engine) -> dict[str, Case]:
    camera = camera_frames()
    inspected = results["inspected"]
    files = sorted({Path(frame.source).name for frame in inspected.frames})
    labels = [frame.source for frame in camera.frames]
    every = [
        Case("users list", users_view(results["users"], results["settings"].db_path), [LONG_NAME, "obama"]),
        Case("users show", user_view(results["obama"]), ["obama_1.jpg,"], ["match"]),
        Case("inspect", inspect_view(inspected), files, ["accepted", "ignored:", "kept"]),
        Case("enroll", enroll_view(results["enrolled"], "/tmp/facer.db"), [LONG_NAME], ["accepted"]),
        Case("verify", verify_view(results["verified"]), ["obama_4.jpg"], ["accepted", "MATCH"]),
        Case("identify", identify_view(results["identified"]), ["obama_4.jpg", "obama"], ["accepted"]),
        Case(
            "camera liveness frames",
            frames_table(camera.frames, liveness=camera.liveness, title=f"enroll {LONG_NAME}"),
            labels,
            ["accepted", "rejected:", "dark,"],
        ),
        Case("camera verbose", frames_table(camera.frames, verbose=True), labels, ["rejected:", "brightness"]),
        Case("camera summary", rejections_table(camera.frames), [], ["accepted", "dark,", "blurred"]),
        Case("frames view", frames_view(camera), labels, ["NOT", "LIVE:"]),
        Case("liveness line", liveness_line(camera.liveness), [], ["NOT", "LIVE:"]),
        Case(
            "doctor", doctor_info(engine), ["detection", "fingerprint"], [], lambda c, info: c.print(doctor_view(info))
        ),
        Case("evaluate toml", TOML, ["cosine_threshold_high = 0.3000", "identify_threshold = 0.4200"], [], print_all),
    ]
    assert [case.name for case in every] == VIEWS
    return {case.name: case for case in every}


VIEWS = [
    "users list",
    "users show",
    "inspect",
    "enroll",
    "verify",
    "identify",
    "camera liveness frames",
    "camera verbose",
    "camera summary",
    "frames view",
    "liveness line",
    "doctor",
    "evaluate toml",
]


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("view", VIEWS)
def test_views_keep_keys_and_decisions_whole(cases, view, width, terminal):
    check(cases[view], width, terminal)


@pytest.mark.slow
@pytest.mark.parametrize("view", VIEWS)
def test_piped_output_at_rich_default_width_keeps_keys_whole(cases, view, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    check(cases[view], None, False)


MESSAGE = (
    "too few usable frames: 1 of 2 (need 3); 2 seen, 1 accepted; rejected: stuart5.png (2 people in view: "
    "one person at a time); to fix: one person at a time: nobody else close to the camera, add more photos or "
    "frames; or lower --min-valid-frames; install the extra with `pip install 'facer-cli[server]'`"
)


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
@pytest.mark.parametrize("width", WIDTHS)
def test_error_line_wraps_at_spaces_or_not_at_all(width, terminal):
    from rich.text import Text

    lines = draw(MESSAGE, width, terminal, lambda c, message: message_line(c, Text("error:", "bold red"), message))
    text = "\n".join(lines)
    assert " ".join(text.split()) == "error: " + " ".join(MESSAGE.split())  # every word, in order
    if terminal:
        assert all(len(line) <= width for line in lines), text
    else:
        assert len(lines) == 1, text  # piped: one line, for grep
    assert not split_tokens(lines, set(("error: " + MESSAGE).split()))


def test_cli_error_line_is_one_line_when_piped(results, faces):
    db = results["settings"].db_path
    result = run("verify", "nobody_with_a_rather_long_name", photo(faces, "obama_4"), "--db", db)
    assert result.exit_code == 5, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
@pytest.mark.parametrize("width", WIDTHS)
def test_config_show_keeps_settings_and_origins_whole(width, terminal, monkeypatch):
    monkeypatch.setenv("FACER_MIN_VALID_FRAMES", "2")
    monkeypatch.setattr(console, "width", width)
    monkeypatch.setattr(console, "_force_terminal", terminal)
    result = run("config", "show")
    assert result.exit_code == 0, result.output
    lines = [ANSI.sub("", line).rstrip() for line in result.stdout.splitlines()]
    shown = "\n".join(lines)
    assert any("min_valid_frames" in line and "FACER_MIN_VALID_FRAMES" in line for line in lines), shown
    monkeypatch.setattr(console, "width", 1000)
    wide = [ANSI.sub("", line) for line in run("config", "show").stdout.splitlines()]
    tokens = {token for token in words(wide) if 1 < len(token) <= width - 10}
    assert not split_tokens(lines, tokens), shown
