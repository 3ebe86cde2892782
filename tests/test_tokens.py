"""The Python API of the original SDK, on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from facer_cli import generate_token_from_directory, generate_token_from_images
from facer_cli.errors import TooFewFramesError
from facer_cli.settings import Settings


def test_token_from_one_person_folder_matches_their_other_photo(faces, engine):
    obama = faces / "people" / "obama"
    token = generate_token_from_directory(obama, max_images=3)
    assert token.shape == (512,) and token.dtype == np.float32
    assert abs(np.linalg.norm(token) - 1) < 1e-6
    fourth = engine.analyze_path(obama / "obama_4.jpg").embedding
    assert float(token @ fourth) >= 0.4
    biden = engine.analyze_path(faces / "people" / "biden" / "biden_1.jpg").embedding
    assert float(token @ biden) < 0.3


def test_token_from_images_accepts_one_photo(faces):
    token = generate_token_from_images([faces / "people" / "biden" / "biden_2.jpg"])
    assert abs(np.linalg.norm(token) - 1) < 1e-6


def test_folder_with_too_few_usable_images_says_why(tmp_path, faces):
    (tmp_path / "a.jpg").symlink_to(faces / "people" / "obama" / "obama_1.jpg")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(TooFewFramesError, match=r"1 of 2 \(need 2\).*b.jpg \(empty file"):
        generate_token_from_directory(tmp_path, settings=Settings.from_values({}))
