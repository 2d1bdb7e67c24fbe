"""Errors caused by the user's input; command-line entry points print them on one line and exit 2."""
import sys
from typing import Callable, List, Optional


class InputError(Exception):
    """Bad or missing input (a file, a folder, an argument); the message names it and says what to do."""


def run_cli(main: Callable[[Optional[List[str]]], object], argv: Optional[List[str]] = None) -> None:
    """Run a CLI main; an InputError becomes one line on stderr and exit status 2, not a traceback."""
    import faulthandler

    if not faulthandler.is_enabled():  # a crash in native code (jittor, a decoder) prints where it happened
        faulthandler.enable()
    try:
        result = main(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if isinstance(result, int):
        sys.exit(result)
