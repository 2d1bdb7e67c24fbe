import os
import signal
import sys

import pytest

import uss  # noqa: F401  (sets jittor's environment before any test imports it)
import jittor  # noqa: F401,E402

# Jittor's import installs a SIGCHLD handler that quick-exits the process (status 1, no report) whenever any child
# dies of a signal. In pytest that child is a test's subprocess (a stage run, mpirun, the CPU rehearsal of
# gpu_check), so one native crash there ended the whole session with no summary and no failing test named (seen
# once: a pretraining subprocess of tests/training/test_resume.py). With the default disposition the test that
# ran the child sees its exit status and fails on its own. The tests run jittor's data loaders in-process only with
# --workers 0, so no jittor worker is a child of this process.
signal.signal(signal.SIGCHLD, signal.SIG_DFL)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def project_root() -> str:
    return ROOT


@pytest.fixture
def python() -> str:
    return sys.executable
