"""The project's error hierarchy; command-line entry points print an InputError on one line and exit 2.

    InputError                bad or missing input (a file, a folder, an argument)
      CheckpointError         a checkpoint that is unreadable, corrupted, unsafe or does not fit the model
        UnsafeCheckpointError (uss.checkpoints.pickle_reader) a pickle naming a global outside the weights-only
                              allow-list
      DatasetNotFoundError, ImageFileError, LabelFileError, PseudoLabelError (uss.data), MatchFileError,
      EvaluationInputError (uss.evaluation), SubmissionError, ToyDatasetError
"""
import sys
from typing import Callable, List, Optional


class InputError(Exception):
    """Bad or missing input (a file, a folder, an argument); the message names it and says what to do."""


class CheckpointError(InputError):
    """A checkpoint that is unreadable, corrupted, unsafe or does not fit the model; the message names the file."""


def one_line(error: BaseException) -> str:
    """The error's message on one line (a multi-line one, e.g. a SAM key listing, joined by spaces)."""
    return " ".join(str(error).split())


def run_cli(main: Callable[[Optional[List[str]]], object], argv: Optional[List[str]] = None) -> None:
    """Run a CLI main; an InputError becomes one line on stderr and exit status 2, not a traceback."""
    import faulthandler
    import signal

    if not faulthandler.is_enabled():  # a crash in native code (jittor, a decoder) prints where it happened
        # ... and then ends the process with its signal. Jittor's own handler (installed when jittor is imported,
        # which every stage module does first) would run next and call exit() inside the handler, which was seen to
        # hang for ever while holding jittor's cache lock, so that every other jittor process waited on it.
        for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        faulthandler.enable()
    try:
        result = main(argv)
    except InputError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    if isinstance(result, int):
        sys.exit(result)


def warn(message: str) -> None:
    """One `warning: ...` line on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
