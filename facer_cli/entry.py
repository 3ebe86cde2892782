"""The `facer` console script: Ctrl-C is handled from its first line on.

The SIGINT handler (`facer_cli.interrupts`) is installed before anything else is imported, so an
interrupt at any moment prints one line and exits 130.

This module imports nothing heavy: keep it that way.
"""

from __future__ import annotations

import os
import sys

from facer_cli import interrupts

# No `typing` import: it would lengthen the start-up before the handler is installed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def one_blas_thread(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """One BLAS thread unless asked otherwise (before numpy loads): facer runs images in its own
    workers, and OpenBLAS's spinning threads fought them for the cores — ~0.15 s of CPU and ~60 ms
    of wall time on every command that loads numpy, on 2 cores."""
    environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    interrupts.install()
    one_blas_thread()
    try:
        from facer_cli.cli.app import main as run_app

        run_app()
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
    _finish(code)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _finish(code: int) -> NoReturn:
    """Exit without finalising the interpreter, which puts back SIGINT's default action (a late
    Ctrl-C would then kill the process without a word): exit handlers run and output is flushed
    here, under facer's handler, then the process ends."""
    import atexit

    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader of our output went away (`facer users list | head`)
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
