"""The test harness itself: a test's subprocess that dies of a native crash fails that test, not the session."""
import signal
import subprocess
import sys


def test_a_child_killed_by_a_signal_is_reported_not_fatal_to_pytest():
    import jittor  # noqa: F401  (its import installs the SIGCHLD handler that tests/conftest.py undoes)

    # With jittor's handler in place this process quick-exits here (status 1), ending the session with no summary
    # (signal.getsignal cannot tell: it does not see handlers installed from C).
    crashed = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                             capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGSEGV
