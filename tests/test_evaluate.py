"""`facer evaluate` on real photos with the real engine: folders, CSV pairs, faceless images, the plot."""

from __future__ import annotations

import json
import re
import shutil
import struct
import sys

import cv2
import numpy as np
import pytest
from helpers import people, run, run_json

from facer_cli.errors import InputError
from facer_cli.evaluation.dataset import load_dataset, parse_same
from facer_cli.evaluation.plot import FIGURE_PIXELS
from facer_cli.evaluation.recommend import SAFE_FLOOR
from facer_cli.evaluation.runner import evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def link(source, target):
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source)
    except OSError:  # no symlinks here: copy
        shutil.copyfile(source, target)
    return target


def blank_image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8))
    return path


@pytest.fixture(scope="session")
def people_result(faces, settings, engine):
    """The people photos through both protocols, in this process (the session's engine)."""
    return evaluate(load_dataset(faces / "people"), settings, protocol="enroll", k=2, workers=1)


# -- identity folders -------------------------------------------------------------------------------


@pytest.mark.slow
def test_people_pairs_are_all_separable(people_result):
    result = people_result
    assert result.images == 15 and result.unusable == []
    pairs = result.protocol("pairs").metrics
    # 15 images: 105 pairs; genuine = C(4,2) + C(2,2) + 2 × C(3,2) + C(2,2) = 6 + 1 + 6 + 1 = 14
    assert (pairs.pairs, pairs.genuine.count, pairs.impostor.count) == (105, 14, 91)
    assert pairs.impostor.max < pairs.genuine.min
    assert pairs.genuine.min > 0.4 and pairs.impostor.max < 0.3  # the default thresholds hold here
    assert pairs.current.accuracy == 1.0 and pairs.current.far == 0.0 and pairs.current.frr == 0.0
    assert pairs.eer.rate == 0.0
    assert pairs.best.accuracy == 1.0
    assert pairs.impostor.max < pairs.best.threshold < pairs.genuine.min


def test_people_tar_at_far_says_when_there_are_too_few_impostor_pairs(people_result):
    pairs = people_result.protocol("pairs").metrics
    at_1e2, at_1e3 = pairs.tar_at_far
    assert not at_1e2.supported and at_1e2.note == "needs ≥ 100 acquired impostor pairs, have 91"
    assert not at_1e3.supported
    recommendation = pairs.recommendation
    # 0 of 91 impostors let in shows FAR ≤ 3.97 % at 95 %, not 0.1 %: nothing to paste.
    assert not recommendation.far_supported and not recommendation.frr_supported
    assert recommendation.toml() == ""
    assert recommendation.far_ci_at_high[1] == pytest.approx(1 - 0.025 ** (1 / 91))
    # Above every impostor pair and never below the model's safe floor.
    assert recommendation.threshold_high == SAFE_FLOOR > pairs.impostor.max
    assert recommendation.far_at_high == 0.0 and recommendation.tar_at_high == 1.0
    assert any("needs ≥ 3688 acquired impostor pairs" in note for note in recommendation.notes)


def test_enroll_protocol_uses_templates_of_k_images(people_result):
    enroll = people_result.protocol("enroll")
    outcome = enroll.enroll
    assert outcome.k == 2
    assert outcome.identities == ["alex_lacamoire", "kit_harington", "obama"]
    assert sorted(outcome.skipped) == ["biden", "lin_manuel_miranda", "rose_leslie"]
    assert outcome.templates == 3 + 3 + 4 and outcome.failures == []
    m = enroll.metrics
    # genuine: alex 3 templates × 1 probe, kit 3 × 1, obama 4 × 2; impostor: every image of the others
    assert m.genuine.count == 3 + 3 + 8
    assert m.impostor.count == 3 * 12 + 3 * 12 + 4 * 11
    assert m.current.accuracy == 1.0 and m.eer.rate == 0.0
    assert m.tar_at_far[0].supported and m.tar_at_far[0].tar == 1.0  # 116 ≥ 100 impostor pairs
    # What multi-frame enrollment buys: genuine scores move up.
    assert m.genuine.mean > people_result.protocol("pairs").metrics.genuine.mean
    assert people_result.recommended_from is enroll


def test_result_json_has_every_figure(people_result):
    data = json.loads(json.dumps(people_result.to_dict()))
    assert set(data["protocols"]) == {"pairs", "enroll"}
    figures = data["protocols"]["pairs"]
    for key in ("pairs", "genuine_pairs", "impostor_pairs", "current", "eer", "tar_at_far", "best_accuracy", "recommendation"):
        assert key in figures
    assert set(figures["current"]) >= {"accuracy", "far", "frr", "genuine_uncertain", "impostor_uncertain"}
    assert data["recommended"]["protocol"] == "enroll"
    assert data["recommended"]["toml"] == ""  # 15 photos support no target: nothing to paste
    assert data["recommended"]["needed_impostor_pairs"] == 3688
    assert data["protocols"]["pairs"]["current"]["far_ci95"][1] == pytest.approx(1 - 0.025 ** (1 / 91), abs=1e-6)
    assert data["dataset"]["identities"]["obama"] == 4
    assert data["timing"]["workers"] == 1 and data["timing"]["images_per_second"] > 0


# -- CSV of pairs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pairs_csv(faces, tmp_path_factory):
    """A CSV with relative paths, a header, a comment and every spelling of `same`."""
    root = tmp_path_factory.mktemp("csv")
    photos = people(faces)
    images = root / "images"
    for name in ("obama", "biden", "kit_harington"):
        for path in photos[name]:
            link(path, images / name / path.name)
    rows = [
        ("images/obama/obama_1.jpg", "images/obama/obama_2.jpg", "1"),
        ("images/obama/obama_1.jpg", "images/biden/biden_1.jpg", "0"),
        ("images/biden/biden_1.jpg", "images/biden/biden_2.jpg", "yes"),
        ("images/biden/biden_2.jpg", "images/kit_harington/kit_harington_1.jpg", "no"),
        ("images/kit_harington/kit_harington_1.jpg", "images/kit_harington/kit_harington_2.jpg", "true"),
        ("images/kit_harington/kit_harington_3.jpg", "images/obama/obama_3.jpg", "false"),
        ("images/obama/obama_3.jpg", "images/obama/obama_4.jpg", " YES "),
        ("images/obama/obama_4.jpg", "images/biden/biden_2.jpg", "False"),
        ("./images/kit_harington/kit_harington_2.jpg", "images/kit_harington/kit_harington_3.jpg", "TRUE"),
    ]
    text = "path_a,path_b,same\n# a comment\n\n" + "\n".join(",".join(row) for row in rows) + "\n"
    (root / "pairs.csv").write_text(text)
    return root / "pairs.csv"


def test_parse_same_spellings():
    for word in ("1", "yes", "true", "YES", " True "):
        assert parse_same(word) is True
    for word in ("0", "no", "false", "NO", "False"):
        assert parse_same(word) is False
    for word in ("", "2", "maybe", "y", "t"):
        assert parse_same(word) is None


def test_csv_pairs_with_relative_paths(pairs_csv, settings, engine):
    dataset = load_dataset(pairs_csv)
    assert dataset.kind == "csv" and dataset.pair_counts == (5, 4)
    assert len(dataset.images) == 9  # distinct images (4 obama, 2 biden, 3 kit), each embedded once
    assert all(path.is_file() for path in dataset.images)
    result = evaluate(dataset, settings, workers=1)
    m = result.protocol("pairs").metrics
    assert (m.genuine.count, m.impostor.count) == (5, 4)
    assert m.current.accuracy == 1.0 and m.eer.rate == 0.0
    assert result.unusable == []


def test_csv_from_another_working_directory(pairs_csv, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert load_dataset(pairs_csv).pair_counts == (5, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.jpg,b.jpg\n", "line 1: expected 3 columns path_a,path_b,same, got 2"),
        ("path_a,path_b,same\nimages/obama/obama_1.jpg,images/obama/obama_2.jpg,maybe\n",
         "line 2: same = 'maybe' is not one of 1/0, yes/no, true/false"),
        ("images/obama/obama_1.jpg,images/obama/missing.jpg,1\n", "line 1: images/obama/missing.jpg: no such file"),
        ("images/obama/obama_1.jpg,,1\n", "line 1: an image path is empty"),
        ("path_a,path_b,same\n", "no pairs"),
    ],
)
def test_malformed_csv_names_the_row(pairs_csv, text, message):
    bad = pairs_csv.parent / "bad.csv"
    bad.write_text(text)
    with pytest.raises(InputError) as caught:
        load_dataset(bad)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_malformed_csv_through_the_cli(pairs_csv):
    bad = pairs_csv.parent / "bad_cli.csv"
    bad.write_text("images/obama/obama_1.jpg,images/obama/obama_2.jpg,1\nimages/obama/obama_1.jpg,x.jpg,0,extra\n")
    result = run("evaluate", bad)
    assert result.exit_code == 4
    assert "line 2: expected 3 columns" in result.output
    assert "Traceback" not in result.output


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder or CSV file"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "empty_identity").mkdir()
    (tmp_path / "loose.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="no identity folders with images"):
        load_dataset(tmp_path)


# -- images without a usable face ------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_blank(faces, tmp_path_factory):
    root = tmp_path_factory.mktemp("blank")
    photos = people(faces)
    for path in photos["obama"][:2] + photos["biden"]:
        link(path, root / path.parent.name / path.name)
    blank_image(root / "obama" / "obama_blank.png")
    return root


def test_images_without_a_face_fail_to_acquire(with_blank, settings, engine):
    result = evaluate(load_dataset(with_blank), settings, workers=1)
    assert [u.path.endswith("obama_blank.png") for u in result.unusable] == [True]
    assert result.unusable[0].reason == "no face" and result.unusable[0].groups == ["no face"]
    # FTA over the distinct images: 1 of 5, by reason.
    assert result.acquisition.fta == pytest.approx(1 / 5)
    assert result.acquisition.by_reason() == [("no face", 1)]
    m = result.protocol("pairs").metrics
    # 5 images: 10 pairs; genuine = C(3,2) + C(2,2) = 4, two with the blank image; impostor = 6, two with it.
    assert (m.genuine.count, m.impostor.count) == (4, 6)
    assert (m.genuine.no_score, m.impostor.no_score) == (2, 2)
    c = m.current
    assert c.fta_genuine == pytest.approx(2 / 4) and c.fta_impostor == pytest.approx(2 / 6)
    assert c.frr == pytest.approx(2 / 4)  # a genuine pair without a face turns its person away…
    assert c.fnmr == 0.0  # …though the model rejected none it compared
    assert c.far == 0.0 and c.fmr == 0.0  # an impostor pair without a face lets nobody in…
    assert c.accuracy == 1.0  # …and is no error: the 6 acquired pairs are all right
    assert m.eer.rate == 0.0


def test_enroll_protocol_with_a_faceless_image(with_blank, settings, engine):
    result = evaluate(load_dataset(with_blank), settings, protocol="enroll", k=2, workers=1)
    outcome = result.protocol("enroll").enroll
    # obama has 3 images: templates {1,2}, {2,blank}, {blank,1}; min(min_valid_frames, 2) = 2 frames needed
    assert outcome.templates == 3
    assert len(outcome.failures) == 2
    assert all("too few usable frames" in f.reason for f in outcome.failures)
    m = result.protocol("enroll").metrics
    assert m.genuine.count == 3 and m.genuine.no_score == 3  # two failed templates, and the blank probe
    assert m.current.frr == 1.0 and m.current.fta_genuine == 1.0 and m.current.fnmr is None


def test_cli_lists_faceless_images(with_blank):
    result = run("evaluate", with_blank, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "1 image(s) without a usable face" in result.output
    assert "obama_blank.png" in result.output and "no face" in result.output


# -- the command line --------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_json_with_two_worker_processes(faces):
    result = run("evaluate", faces / "people", "--json", "--protocol", "enroll", "-k", "2",
                 "--workers", "2", "--target-far", "0.01")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["timing"]["workers"] == 2
    assert data["dataset"]["images"] == 15 and data["unusable_images"] == []
    pairs, enroll = data["protocols"]["pairs"], data["protocols"]["enroll"]
    assert (pairs["genuine_pairs"], pairs["impostor_pairs"]) == (14, 91)
    assert pairs["current"]["accuracy"] == 1.0 and enroll["current"]["accuracy"] == 1.0
    assert enroll["enroll"]["templates"] == 10
    # 0 of 116 enroll-protocol impostors shows FAR ≤ 3.1 %, not 1 %: not supported (368 pairs needed).
    assert data["recommended"]["target_far"] == 0.01 and data["recommended"]["far_supported"] is False
    assert data["recommended"]["needed_impostor_pairs"] == 368 and data["recommended"]["toml"] == ""
    assert data["plot"] is None


@pytest.mark.slow
def test_cli_plot_is_a_png_of_the_expected_size(faces, tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra")
    plot = tmp_path / "roc.png"
    result = run("evaluate", faces / "people", "--protocol", "enroll", "-k", "2", "--workers", "1", "--plot", plot)
    assert result.exit_code == 0, result.output
    assert f"plot saved to {plot}" in result.output.replace("\n", "")
    assert png_size(plot) == FIGURE_PIXELS == (1200, 500)


@pytest.mark.slow
def test_cli_table(faces):
    result = run("evaluate", faces / "people", "--workers", "1")
    assert result.exit_code == 0, result.output
    output = result.output.replace("\n", " ")
    for text in ("failure to acquire (FTA): 0.00% of images (0/15)", "FTA: genuine pairs not acquired",
                 "FAR = FMR × (1 − FTA)", "FRR = FTA + FNMR × (1 − FTA)", "FMR: impostor ≥ high",
                 "FNMR: genuine < low", "accuracy", "95% interval", "EER", "TAR @ FMR 1%",
                 "needs ≥ 100", "best-accuracy threshold",
                 "needs ≥ 3688 acquired impostor pairs",
                 "no cosine_threshold_high or cosine_threshold_low to paste", "images/s"):
        assert text in output, text
    # The table says which figures are the system's and which the model's.
    lines = result.output.splitlines()
    system = next(i for i, line in enumerate(lines) if "│ system " in line)
    model = next(i for i, line in enumerate(lines) if "│ model " in line)
    assert system < next(i for i, line in enumerate(lines) if "FAR = FMR" in line) < model
    assert model < next(i for i, line in enumerate(lines) if "FMR: impostor" in line)
    # Every rate is a percentage with its counts: no bare fraction such as 0.001 or 0.0397.
    assert "≤ 0.001" not in output and "0.03973" not in output and "TAR @ FAR 0.01" not in output
    # Each footnote marker in the table has its note below, and each note its marker.
    marks = set(re.findall(r"\[(\d+)\]", "\n".join(line for line in lines if line.startswith("│"))))
    notes = {m.group(1) for line in lines if (m := re.match(r"\[(\d+)\] ", line))}
    assert marks == notes == {"1", "2", "3", "4"}
    high_row = next(line for line in lines if "high for FAR ≤ 0.1%" in line)
    low_row = next(line for line in lines if "low for FRR ≤ 1%" in line)
    assert "[1][2]" in " ".join(lines[lines.index(high_row) : lines.index(low_row)])
    assert "[3][4]" in " ".join(lines[lines.index(low_row) : lines.index(low_row) + 3])


@pytest.mark.slow
def test_cli_json_on_the_people_photos(faces):
    result, data = run_json("evaluate", faces / "people", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert data["acquisition"] == {
        "images": 15, "acquired": 15, "not_acquired": 0, "fta": 0.0,
        "fta_ci95": [0.0, pytest.approx(1 - 0.025 ** (1 / 15), abs=1e-6)], "by_reason": [],
    }
    current = data["protocols"]["pairs"]["current"]
    assert current["fta_genuine_pairs"] == 0.0 and current["fta_impostor_pairs"] == 0.0
    assert current["fmr"] == current["far"] == 0.0 and current["fnmr"] == current["frr"] == 0.0
    assert current["accuracy"] == 1.0
    recommended = data["recommended"]
    # Once high 0.3000 and low 0.4000 (the high in force): low is never above the high shown.
    assert recommended["cosine_threshold_high"] == SAFE_FLOOR
    assert recommended["cosine_threshold_low"] <= recommended["cosine_threshold_high"]
    assert recommended["toml"] == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--target-far", "1.5"], 2, "target FAR must be at least 0 and below 1"),
        (["--workers", "0"], 2, "workers must be at least 1"),
        (["--plot", "curve.svg"], 2, "give a file name ending in .png"),
        (["--protocol", "enroll", "-k", "0"], 2, "images per enrolled template must be at least 1"),
    ],
)
def test_cli_bad_flags(faces, args, code, message):
    result = run("evaluate", faces / "people", *args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_cli_enroll_needs_identity_folders(pairs_csv):
    result = run("evaluate", pairs_csv, "--protocol", "enroll")
    assert result.exit_code == 2
    assert "needs identity folders" in result.output


def test_cli_plot_without_matplotlib(faces, tmp_path, monkeypatch):
    # As if it were not installed (None in sys.modules makes an import fail), even if a test imported it.
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    result = run("evaluate", faces / "people", "--plot", tmp_path / "x.png")
    assert result.exit_code == 2
    assert "pip install 'facer[plot]'" in result.output
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("width", [60, 80, 100])
def test_the_view_fits_the_terminal_without_cutting_a_word(people_result, with_blank, settings, engine, width):
    import io

    from rich.cells import cell_len
    from rich.console import Console

    from facer_cli.cli.output.evaluate import evaluation_view, print_all

    blank = evaluate(load_dataset(with_blank), settings, workers=1)
    for result in (people_result, blank):
        out = io.StringIO()
        print_all(Console(file=out, width=width, force_terminal=True, color_system=None), evaluation_view(result))
        lines = out.getvalue().splitlines()
        assert all(cell_len(line) <= width for line in lines), "\n".join(lines)
        # No figure cut (a path wider than the line itself folds, as every KEY column does).
        assert not [line for line in lines if "│" in line and "…" in line], "\n".join(lines)
        labels = ("FTA: impostor pairs not acquired", "FRR = FTA + FNMR × (1 − FTA)", "FAR = FMR × (1 − FTA)")
        for label in labels if width >= 80 else ():  # at 60, two protocols' columns wrap the names
            assert any(label in line for line in lines), (label, "\n".join(lines))
