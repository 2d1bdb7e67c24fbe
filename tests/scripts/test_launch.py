"""scripts/common.sh's launcher and run_python (the sweeps and label rows): a one-process stage that dies of a native
crash is started once more (stages resume), any other failure stops the script with its own status, and the second
crash stops it too; its CRF switch gives the label generators and test.py --crf as asked, and refuses anything else."""
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

CRASH_ONCE = """
import os, sys
marker, crashes = sys.argv[1], int(sys.argv[2])
count = int(open(marker).read()) if os.path.exists(marker) else 0
open(marker, "w").write(str(count + 1))
if count < crashes:
    os.abort()  # SIGABRT: exit status 134 through bash, as a crashing jittor kernel's process
if crashes < 0:
    sys.exit(3)
print("finished on run", count + 1)
"""


def launch(tmp_path, crashes: int, entry: str = "launch") -> subprocess.CompletedProcess:
    data = tmp_path / "toy"
    (data / "train").mkdir(parents=True, exist_ok=True)
    (data / "toy.json").write_text("{}")  # the demo preset, no dataset needed for the launcher
    script = tmp_path / "crash_once.py"
    script.write_text(CRASH_ONCE)
    command = f'source scripts/common.sh; {entry} "{script}" "{tmp_path / "runs.txt"}" {crashes}'
    env = {**os.environ, "DATA": str(data), "RUNS": str(tmp_path / "runs"), "PY": sys.executable}
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry", ["launch", "run_python"])
def test_a_native_crash_is_run_once_more(tmp_path, entry):
    done = launch(tmp_path, crashes=1, entry=entry)
    assert done.returncode == 0, done.stderr
    assert "died of a native crash (exit status 134); running it once more" in done.stderr
    assert "finished on run 2" in done.stdout


def test_a_second_crash_and_other_failures_stop_the_script(tmp_path):
    assert launch(tmp_path, crashes=2).returncode == 134
    (tmp_path / "runs.txt").unlink()
    failed = launch(tmp_path, crashes=-1)
    assert failed.returncode == 3 and "native crash" not in failed.stderr
    assert (tmp_path / "runs.txt").read_text() == "1"  # not retried


def test_crf_switch_reaches_labels_predictions_or_both(tmp_path):
    data = tmp_path / "toy"
    (data / "train").mkdir(parents=True)
    (data / "toy.json").write_text("{}")
    command = 'source scripts/common.sh; echo "labels=${CRF_LABELS[*]} predictions=${CRF_PREDICTIONS[*]}"'
    seen = {}
    for value in ("", "pseudo", "predictions", "both", "yes"):
        env = {**os.environ, "DATA": str(data), "RUNS": str(tmp_path / "runs"), "PY": sys.executable, "CRF": value}
        seen[value] = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                                     timeout=60)
    assert seen[""].stdout.strip() == "labels= predictions="
    assert seen["pseudo"].stdout.strip() == "labels=--crf predictions="
    assert seen["predictions"].stdout.strip() == "labels= predictions=--crf"
    assert seen["both"].stdout.strip() == "labels=--crf predictions=--crf"
    assert seen["yes"].returncode == 2 and "CRF must be pseudo, predictions or both, got 'yes'" in seen["yes"].stderr
