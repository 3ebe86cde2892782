"""Every hint names an option that exists on the command that prints it.

The error table's hints (`facer_cli.cli.errors`) are checked against every command's parameters, as
the commands are built (`facer_cli.cli.commands`); every other string of the package that names an
`--option` (outside docstrings, help texts and option declarations) is listed below with the commands
that can print it, and checked against those; a `facer CMD … --option` it quotes is checked against CMD.
No model is loaded.
"""

from __future__ import annotations

import ast
import re

import pytest
from helpers import REPO

from facer_cli import errors as e
from facer_cli.cli import errors as cli_errors
from facer_cli.cli.app import ALLOW_PATH_NAME
from facer_cli.cli.commands import COMMANDS

PACKAGE = REPO / "facer_cli"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# A quoted command (`facer users show NAME`), or one written out (to the end of its clause).
QUOTED = re.compile(r"`facer [^`]*`|(?<![\w`-])facer (?:" + "|".join(c.name for c in COMMANDS) + r")\b[^;`()]*")
PIP = re.compile(r"pip install [^)]*")


def leaf_commands() -> dict[str, object]:
    """Every command as Click runs it, by its path without `facer`: "enroll", "users rename" …"""
    found: dict[str, object] = {}

    def walk(path: str, command: object) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(f"{path} {name}", sub)
        else:
            found[path] = command

    for lazy in COMMANDS:
        walk(lazy.name, lazy.build())
    return found


COMMANDS_BY_PATH = leaf_commands()


def options_of(command: object) -> set[str]:
    return {name for param in command.params for name in param.opts + param.secondary_opts if name.startswith("--")}


ROOT_OPTIONS = {"--config", "--debug", "--version", "--help"}
OPTIONS = {path: options_of(command) | {"--help"} for path, command in COMMANDS_BY_PATH.items()}


def quoted_commands(text: str) -> list[tuple[str, list[str]]]:
    """Each `facer CMD …` in a text: the command (the longest known path of its words) and the options after it."""
    found = []
    for match in QUOTED.finditer(text):
        words = match.group().strip("`").split()[1:]
        path = next(
            (" ".join(words[:n]) for n in range(len(words), 0, -1) if " ".join(words[:n]) in COMMANDS_BY_PATH), None
        )
        assert path is not None, f"{match.group()!r} quotes no facer command"
        found.append((path, OPTION.findall(match.group())))
    return found


def check_quoted(text: str) -> None:
    for path, options in quoted_commands(text):
        unknown = set(options) - OPTIONS[path] - ROOT_OPTIONS
        assert not unknown, f"{text!r}: `facer {path}` has no {sorted(unknown)}"


def an_error(cls: type, **attributes: object) -> e.FacerError:
    error = cls.__new__(cls)  # the hint depends on the class (and TooFewFramesError's `needed`) only
    for name, value in attributes.items():
        setattr(error, name, value)
    return error


def errors_of_the_table() -> list[e.FacerError]:
    found = [an_error(cls) for cls in cli_errors.ERROR_HINTS if cls is not e.TooFewFramesError]
    return found + [an_error(e.TooFewFramesError, needed=needed) for needed in (None, 1, 3)]


@pytest.mark.parametrize("path", sorted(COMMANDS_BY_PATH))
def test_each_hint_a_command_prints_names_only_its_own_options(path):
    for error in errors_of_the_table():
        hint = cli_errors.hint_for(error, OPTIONS[path])
        if hint is None:
            continue
        unknown = set(cli_errors.named_options(hint)) - OPTIONS[path] - ROOT_OPTIONS
        assert not unknown, f"facer {path} would say {hint!r} for {type(error).__name__}, without {sorted(unknown)}"
        check_quoted(hint)


def test_every_hint_of_the_table_is_shown_by_some_command_and_quotes_real_commands():
    for cls, hints in cli_errors.ERROR_HINTS.items():
        for hint in (hints,) if isinstance(hints, str) else hints:
            check_quoted(hint)
            assert any(set(cli_errors.named_options(hint)) <= OPTIONS[path] for path in OPTIONS), (cls, hint)
    check_quoted(cli_errors.UNCERTAIN_NEXT)
    for meaning in cli_errors.EXIT_CODES.values():  # the exit-code table: options of some command
        check_quoted(meaning)
        for option in OPTION.findall(meaning):
            assert option in ROOT_OPTIONS or any(option in OPTIONS[path] for path in OPTIONS), (option, meaning)


def test_users_rename_is_not_told_to_pass_replace_or_add():
    message = "'obama' already exists; remove it first or choose another name"
    assert cli_errors.error_line(e.UserExistsError(message), OPTIONS["users rename"]) == message  # no hint fits
    line = cli_errors.error_line(e.UserExistsError(message), OPTIONS["enroll"])
    assert "--replace" in line and "--add" in line


def test_lowering_min_valid_frames_is_offered_only_when_more_than_one_frame_was_needed():
    options = OPTIONS["verify"]
    assert cli_errors.hint_for(an_error(e.TooFewFramesError, needed=1), options) is None
    assert "--min-valid-frames" in (cli_errors.hint_for(an_error(e.TooFewFramesError, needed=3), options) or "")


def test_the_path_name_way_through_exists_on_each_command_that_refuses_such_a_name():
    refusing = [
        path for path, command in COMMANDS_BY_PATH.items() if "allow_path_name" in {p.name for p in command.params}
    ]
    assert sorted(refusing) == ["enroll", "users import", "users rename"]
    for path in refusing:
        assert ALLOW_PATH_NAME in OPTIONS[path]


# -- every other string naming an --option, and the commands that can print it ---------------------------
PRINTED_BY: dict[tuple[str, str], tuple[str, ...]] = {
    ("cli/app.py", "--debug"): tuple(COMMANDS_BY_PATH),  # a global option: taken after any command
    ("cli/app.py", "--config"): tuple(COMMANDS_BY_PATH),
    ("cli/app.py", "--help"): tuple(COMMANDS_BY_PATH),
    ("cli/app.py", "--allow-path-name"): ("enroll", "users import", "users rename"),
    ("cli/enroll_cmd.py", "--camera"): ("enroll", "verify", "capture", "identify"),  # camera_source
    ("cli/enroll_cmd.py", "--liveness"): ("enroll", "verify", "capture"),  # liveness_wanted
    ("cli/enroll_cmd.py", "--no-liveness"): ("enroll", "verify", "capture"),
    ("cli/enroll_cmd.py", "--batch"): ("enroll",),  # the batch's usage errors
    ("cli/enroll_cmd.py", "--manifest"): ("enroll",),
    ("cli/enroll_cmd.py", "--add"): ("enroll",),
    ("cli/enroll_cmd.py", "--dry-run"): ("enroll",),
    ("cli/enroll_cmd.py", "--report"): ("enroll",),
    ("cli/identify_cmd.py", "--each"): ("identify",),
    ("cli/identify_cmd.py", "--all-faces"): ("identify",),
    ("cli/identify_cmd.py", "--camera"): ("identify",),
    ("cli/identify_cmd.py", "--csv"): ("identify",),
    ("cli/evaluate_cmd.py", "--plot"): ("evaluate",),
    ("cli/evaluate_cmd.py", "--liveness"): ("evaluate",),
    ("cli/options.py", "--replace"): ("enroll", "users import"),  # enroll_mode
    ("cli/options.py", "--add"): ("enroll", "users import"),
    ("cli/options.py", "--help-settings"): (),  # its declaration
    ("cli/output/evaluate.py", "--json"): ("evaluate",),
    ("cli/output/frames.py", "--verbose"): ("inspect", "enroll", "verify", "capture", "identify"),
    ("cli/serve_cmd.py", "--log-level"): ("serve",),
    ("cli/serve_cmd.py", "--allow-insecure-remote"): ("serve",),
    ("cli/users_cmd.py", "--yes"): ("users remove",),
    ("cli/users_cmd.py", "--fingerprint"): ("users import",),
    ("cli/users_cmd.py", "--current-model"): ("users import",),
    ("evaluation/recommend.py", "--allow-below-floor"): ("evaluate",),
    # Setting descriptions (`facer config show`, facer.toml): the option that overrides the setting.
    ("settings/layers.py", "--config"): ("config show", "config init"),
    ("settings/schema.py", "--top"): ("identify",),
    ("settings/schema.py", "--liveness"): ("enroll", "verify", "capture"),
    ("settings/schema.py", "--allow-insecure-remote"): ("serve",),
}
SKIPPED_MODULES = {"cli/errors.py"}  # the error table: the tests above


def strings_naming_options() -> list[tuple[str, int, str]]:
    """(module, line, text) of each string naming an --option: f-strings with their fields as X; not
    docstrings, help texts, option declarations or exact option names (constants used in declarations)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in SKIPPED_MODULES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped: set[int] = set()
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
                skipped.add(id(body[0].value))  # a docstring
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                declared = node.args if name in ("Option", "Argument", "setting_option") else []
                for part in [kw.value for kw in node.keywords if kw.arg == "help"] + list(declared):
                    skipped.update(id(sub) for sub in ast.walk(part))
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.JoinedStr):
                skipped.update(id(value) for value in node.values)
                text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)  # type: ignore[misc]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            if OPTION.search(text) and not re.fullmatch(r"--[a-z][a-z0-9-]*", text):
                found.append((module, node.lineno, text))
    return found


@pytest.mark.slow
def test_every_other_string_naming_an_option_names_one_its_commands_have():
    for module, line, text in strings_naming_options():
        check_quoted(text)
        outside = PIP.sub("", QUOTED.sub("", text))
        for option in OPTION.findall(outside):
            assert (module, option) in PRINTED_BY, (
                f"facer_cli/{module}:{line} names {option} in {text!r}: list the commands that print it in PRINTED_BY"
            )
            for path in PRINTED_BY[module, option]:
                assert option in OPTIONS[path] | ROOT_OPTIONS, (
                    f"facer_cli/{module}:{line}: `facer {path}` has no {option}"
                )


def test_the_walk_finds_the_strings_it_is_meant_to():
    texts = [text for _module, _line, text in strings_naming_options()]
    assert any("give images or folders, or --camera" in text for text in texts)
    assert any("facer users import NAME X --fingerprint X" in text for text in texts)  # an f-string
    assert not any(text.startswith("Show tracebacks") for text in texts)  # help texts are the help's business
