"""Helpers shared by tests that run the command-line stages as subprocesses."""
import subprocess
import sys
from typing import Sequence

# Runs in a separate interpreter without jittor: jittor's SIGCHLD handler ends any process whose child
# dies by a signal, so the test process itself must not be the one that SIGKILLs the run.
KILL_AFTER_FILES = """
import os, signal, subprocess, sys, time
out, needed, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 240
while time.time() < deadline and process.poll() is None:
    if os.path.isdir(out) and sum(len(f) for _, _, f in os.walk(out)) >= needed:
        process.send_signal(signal.SIGKILL)
        break
    time.sleep(0.02)
print(process.wait())
"""


def kill_after_files(command: Sequence[str], out: str, needed: int) -> int:
    """Start `command`, SIGKILL it once `out` holds `needed` files (from a jittor-free helper interpreter);
    returns its exit status (-9 when it was killed)."""
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_FILES, str(out), str(needed), *command],
                          check=True, capture_output=True, text=True)
    return int(done.stdout.strip())
