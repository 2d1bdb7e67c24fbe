"""The test harness itself: a test's subprocess that dies of a native crash fails that test, not the session; a
resumable stage process that crashes natively is run once more, any other failure is not."""
import signal
import subprocess
import sys

import pytest

from tests.helpers import run_resumable

# Fails its first run as asked (argv[2]), then succeeds; counts its runs in argv[1].
FAIL_ONCE = """
import os, signal, sys
marker, how = sys.argv[1], sys.argv[2]
runs = int(open(marker).read()) + 1 if os.path.exists(marker) else 1
open(marker, "w").write(str(runs))
if runs == 1 and how == "segv":
    os.kill(os.getpid(), signal.SIGSEGV)
if runs == 1 and how == "jittor-report":
    print("Caught segfault at address 0x10, thread_name: '', flush log...", file=sys.stderr)
    sys.exit(1)
if runs == 1 and how == "error":
    sys.exit(1)
print("run", runs)
"""


def test_a_child_killed_by_a_signal_is_reported_not_fatal_to_pytest():
    import jittor  # noqa: F401  (its import installs the SIGCHLD handler that tests/conftest.py undoes)

    # With jittor's handler in place this process quick-exits here (status 1), ending the session with no summary
    # (signal.getsignal cannot tell: it does not see handlers installed from C).
    crashed = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
                             capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGSEGV


@pytest.mark.parametrize("how", ["segv", "jittor-report"])
def test_a_native_crash_of_a_resumable_process_is_run_once_more(tmp_path, how):
    marker = tmp_path / "runs.txt"
    with pytest.warns(UserWarning, match="died of a native crash"):
        done = run_resumable([sys.executable, "-c", FAIL_ONCE, str(marker), how], timeout=60)
    assert done.returncode == 0 and "run 2" in done.stdout


def test_other_failures_are_not_rerun(tmp_path):
    marker = tmp_path / "runs.txt"
    done = run_resumable([sys.executable, "-c", FAIL_ONCE, str(marker), "error"], timeout=60)
    assert done.returncode == 1 and marker.read_text() == "1"
