"""benchmarks/gpu_check.sh without a GPU stops at once with one line; how its runner reads a failed stage's log.
(The check itself needs a GPU or minutes of CPU: `GPU_CHECK_ALLOW_CPU=1 bash benchmarks/gpu_check.sh`.)"""
import os
import subprocess
import sys

import pytest

from uss._environment import gpu_usable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from gpu_check import first_error, last_line  # noqa: E402


@pytest.mark.skipif(gpu_usable(), reason="a GPU answers: the script would run the whole check")
def test_without_a_gpu_it_stops_at_once_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK_")}
    env["GPU_CHECK_OUT"] = str(tmp_path / "out")
    done = subprocess.run(["bash", os.path.join(ROOT, "benchmarks", "gpu_check.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no usable NVIDIA GPU" in done.stderr and "GPU_CHECK_ALLOW_CPU=1" in done.stderr
    assert not (tmp_path / "out").exists()


def test_first_error_is_the_telling_line():
    traceback = "[pretrain] start\nTraceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad crop\n"
    assert first_error(traceback) == "ValueError: bad crop"
    crash = ("epoch 1/2:   0%|          | 0/2 [00:00<?, ?it/s]double free or corruption (fasttop)\n"
             "Fatal Python error: x\n")
    assert first_error(crash) == "double free or corruption (fasttop) / Fatal Python error: x"
    jittor = "\x1b[38;5;1m[f 1206 17:20:00.5 log.cc:608] Check failed: Run cmd failed\x1b[m\n"
    assert first_error(jittor) == "[f 1206 17:20:00.5 log.cc:608] Check failed: Run cmd failed"
    assert first_error("error: SAM checkpoint not found: w.pth\n") == "error: SAM checkpoint not found: w.pth"
    assert first_error("") == "no output"
    assert last_line("a\r\nepoch 2/2: 100%|##| 2/2 [00:04<00:00, 2.0s/it]\n\n") == \
        "epoch 2/2: 100%|##| 2/2 [00:04<00:00, 2.0s/it]"
