"""The CLI's one error table: each error class to an exit code and a hint in the CLI's own words.

Resolved by class (the nearest entry along the class's ancestry), so every error —
also one defined later — gets a code. No error ever exits 1, 3, 15 or 16: those are
verdicts ("no match", "uncertain", and `identify`'s "unknown" and "ambiguous"). The exit-code table of docs/exit-codes.md is made from `EXIT_CODES`
(a test keeps them equal).
"""

from __future__ import annotations

import re
from typing import Collection

from facer_cli import errors as e
from facer_cli import interrupts
from facer_cli.server.exposure import ExposureError
from facer_cli.server.listen import ListenError, ServeError

EXIT_OK = 0
EXIT_NO_MATCH = 1
EXIT_USAGE = 2
EXIT_UNCERTAIN = 3
EXIT_CANCELLED = 11
EXIT_IDENTIFIED = 0
EXIT_UNKNOWN_PERSON = 15
EXIT_AMBIGUOUS = 16
EXIT_BATCH_INCOMPLETE = 17
# Verdicts, not errors: no error class may map to these.
VERDICT_CODES = frozenset({EXIT_NO_MATCH, EXIT_UNCERTAIN, EXIT_UNKNOWN_PERSON, EXIT_AMBIGUOUS})
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = interrupts.EXIT_INTERRUPTED  # one value for the console script and the commands

# Every exit code facer uses, with its meaning (docs/exit-codes.md is made from it).
EXIT_CODES: dict[int, str] = {
    0: "success; for `compare` and `verify`: match; for `identify`: identified",
    1: "no match",
    2: "usage error, bad setting (`facer.toml`, `FACER_*`, flag), bad user name, or a missing optional extra",
    3: "uncertain (similarity between the two thresholds)",
    4: "no usable input: unreadable image, no face, bad `.npy`, too few valid frames, a camera, video or stream "
    "that cannot be opened",
    5: "unknown user",
    6: "store error: the database is locked beyond `db_busy_timeout_s`, read-only, corrupt, not a facer database, "
    "or from a newer facer; for `store copy`: either store, or a copy that does not match its source",
    7: "the user is already enrolled: pass `--replace` or `--add`; or their template looks like another enrolled "
    "person's (`identify_threshold`): pass `--allow-lookalike`; for `store copy`: the destination holds a "
    "different user of the same name",
    8: "model pack missing, incomplete or changed",
    9: "model mismatch: the user's templates come from another model (re-enroll), or an imported vector does not "
    "fit its model",
    10: "an output file cannot be written (exists without `--force`, no such folder, disk full)",
    11: "cancelled at a confirmation prompt",
    12: "`facer serve` cannot listen (the port is in use, the address is not this machine's, or not permitted) "
    "or did not start",
    13: "not live: the liveness challenge failed (a print or screen, a move not made as asked in time, or the "
    "face changed); the attempt is recorded",
    14: "the user is locked out after repeated liveness failures (`liveness_max_failures` within "
    "`liveness_window_s`): retry after the time given",
    15: "`identify`: unknown (nobody in the gallery at or above `identify_threshold`)",
    16: "`identify`: ambiguous (another person within `identify_margin` of the best, or camera frames that disagree)",
    17: "`enroll --batch`/`--manifest`: some people were refused (too few usable photos) or look like another "
    "person; the others are enrolled, and the summary (`--json`, `--report`) says who and why",
    70: "internal error (a bug: run with `--debug` for the traceback)",
    130: "interrupted (Ctrl-C)",
}

# Error class -> exit code; looked up along each class's ancestry.
ERROR_EXIT: dict[type[e.FacerError], int] = {
    e.FacerError: EXIT_INTERNAL,
    e.UsageError: EXIT_USAGE,
    e.ConfigError: EXIT_USAGE,
    e.MissingExtraError: EXIT_USAGE,
    e.UserNameError: EXIT_USAGE,
    e.InputError: 4,
    e.TooFewFramesError: 4,
    e.UnknownUserError: 5,
    e.StoreError: 6,
    e.StoreUnavailableError: 6,
    e.UserExistsError: 7,
    e.DifferentFaceError: 7,
    e.StoreConflictError: 7,
    e.CopyStoreError: 6,
    e.ModelPackError: 8,
    e.ModelMismatchError: 9,
    e.OutputError: 10,
    e.CancelledError: 11,
    ServeError: 12,
    e.LivenessError: 13,
    e.LivenessRequiredError: EXIT_USAGE,
    e.UserLockedError: 14,
}

# What a person types to fix it, in the CLI's words (library messages are neutral). A hint may come
# in alternatives: the first whose every --option the running command has is shown (`users rename`
# has no --replace), so no hint names an option its command lacks; when none fits, none is shown.
# An option inside a quoted command (`facer enroll NAME --replace …`) belongs to that command.
ERROR_HINTS: dict[type[e.FacerError], str | tuple[str, ...]] = {
    # `users rename` has neither option: its message says what to do (remove the other, or another name).
    e.UserExistsError: "pass --replace to replace their template(s) or --add to add another one",
    e.LookalikeError: "pass --allow-lookalike if they are different people (the pair is recorded)",
    e.DifferentFaceError: "pass --allow-different-face if it is the same person whose face changed (it is recorded)",
    e.LivenessRequiredError: "capture with --camera to answer the challenge, or pass --no-liveness for this run",
    e.ModelMismatchError: "re-enroll with `facer enroll NAME --replace …`",
    e.UnknownUserError: "see `facer users list`",
    e.TooFewFramesError: "or lower --min-valid-frames",
    e.OutputExistsError: "pass --force to overwrite it",
    e.UnverifiedModelError: "pass --trust-fingerprint to store it anyway",
    e.StoreError: ("the store is chosen with --db or FACER_DB", "the store is chosen with the db setting or FACER_DB"),
    # `store copy` is given both stores as arguments, and its message names the one at fault.
    e.CopyStoreError: (),
    e.StoreConflictError: "rename or remove that user in one of the stores (`facer users rename`), or copy into "
    "another database",
    ExposureError: "pass --api-key (better: FACER_API_KEY), or --allow-insecure-remote on a trusted network",
    e.LivenessError: "follow the instructions on the screen, facing the camera in good light",
    ListenError: "choose another --port (setting server_port) or --host, or stop the program that holds it",
}

# After an UNCERTAIN verdict (exit 3): what to do next.
UNCERTAIN_NEXT = (
    "uncertain: the similarity lies between cosine_threshold_low and cosine_threshold_high. Next: try "
    "another photo or frame, the face straight on and evenly lit; the two thresholds are settings "
    "(facer.toml or FACER_COSINE_THRESHOLD_LOW/_HIGH, see `facer config show`; `facer evaluate` "
    "measures them on your own faces)"
)

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
QUOTED_COMMAND = re.compile(r"`facer [^`]*`")


def named_options(hint: str) -> list[str]:
    """The --options a hint tells the running command to take (not those of a quoted `facer …` command)."""
    return OPTION.findall(QUOTED_COMMAND.sub("", hint))


def hint_for(error: e.FacerError, options: Collection[str] | None = None) -> str | None:
    """The hint for this error on a command with these options (None: any command, the first hint)."""
    if isinstance(error, e.TooFewFramesError) and error.needed is not None and error.needed <= 1:
        return None  # lowering min_valid_frames cannot help: one frame is already enough
    hints = e.resolve(ERROR_HINTS, type(error))
    for hint in (hints,) if isinstance(hints, str) else hints or ():
        if options is None or set(named_options(hint)) <= set(options):
            return hint
    return None


def exit_code_for(error: type[BaseException] | BaseException) -> int:
    code = e.resolve(ERROR_EXIT, error)
    return EXIT_INTERNAL if code is None else code


def error_line(error: e.FacerError, options: Collection[str] | None = None) -> str:
    """The one line printed after `error:`: the library's message and the CLI's hint for a command
    with these options (None: not known)."""
    hint = hint_for(error, options)
    message = str(error)
    return message if hint is None else f"{message}; {hint}"
