"""User names may not hold invisible or text-direction characters: two names that look the same
must never be two users. The rule lives in `validate_user_name`, so the CLI and HTTP share it."""

from __future__ import annotations

import pytest
from helpers import run

from facer_cli.errors import UserNameError
from facer_cli.store import validate_user_name

REFUSED = {
    "\u202e": "text-direction control",  # RIGHT-TO-LEFT OVERRIDE: "alice\u202eecila" shows as "aliceecila"
    "\u202a": "text-direction control",  # LEFT-TO-RIGHT EMBEDDING
    "\u2066": "text-direction control",  # LEFT-TO-RIGHT ISOLATE
    "\u2069": "text-direction control",  # POP DIRECTIONAL ISOLATE
    "\u200e": "text-direction control",  # LEFT-TO-RIGHT MARK
    "\u200f": "text-direction control",  # RIGHT-TO-LEFT MARK
    "\u061c": "text-direction control",  # ARABIC LETTER MARK
    "\u200b": "invisible character",  # ZERO WIDTH SPACE
    "\u200c": "invisible character",  # ZERO WIDTH NON-JOINER
    "\u200d": "invisible character",  # ZERO WIDTH JOINER
    "\u2060": "invisible character",  # WORD JOINER
    "\ufeff": "invisible character",  # ZERO WIDTH NO-BREAK SPACE (BOM)
    "\u00ad": "invisible character",  # SOFT HYPHEN
    "\u3164": "invisible character",  # HANGUL FILLER (a letter that renders as nothing)
    "\u034f": "invisible character",  # COMBINING GRAPHEME JOINER
}


@pytest.mark.parametrize("char", list(REFUSED))
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_invisible_and_direction_characters_are_refused_anywhere(char, where):
    name = {"start": char + "alice", "middle": "ali" + char + "ce", "end": "alice" + char}[where]
    with pytest.raises(UserNameError, match=REFUSED[char]) as caught:
        validate_user_name(name)
    assert f"U+{ord(char):04X}" in str(caught.value)
    assert "--" not in str(caught.value)


def test_a_lone_surrogate_is_not_text():
    # What Python makes of bytes that are not UTF-8 on a command line (surrogateescape).
    with pytest.raises(UserNameError, match="not valid Unicode"):
        validate_user_name("bob\udcff")


@pytest.mark.parametrize("name", ["Zoë Ødegård", "李小龍", "محمد", "שרה", "a/b", "50% off", "o'brien", "❤️ fan", "Ǆemal"])
def test_visible_text_in_any_script_is_still_accepted(name):
    assert validate_user_name(name) == name


@pytest.mark.slow
def test_the_cli_refuses_the_same_names_with_exit_2(tmp_path, bundled_images):
    result = run("enroll", "alice\u202eecila", bundled_images / "yaoming.jpg", "--db", tmp_path / "facer.db")
    assert result.exit_code == 2, result.output
    assert "text-direction control (U+202E)" in result.output
    assert not (tmp_path / "facer.db").exists() or "alice" not in run("users", "list", "--db", tmp_path / "facer.db").output
