"""Pretraining resumes exactly: a run killed during epoch 2 and restarted with the same command ends with the same
parameters, optimiser momentum, queue and losses as an uninterrupted run; a finished run is a no-op; a larger
--epochs continues from the last epoch.

Every invocation is its own process (`python main_pretrain.py ...`), as a real restart is. The interruption is
an exception raised at the second optimizer step of epoch 2 (LARC, as the demo trains) (after the epoch-1
checkpoint, before the next; a native crash before it is run once more, resuming, and still stops there):
stopping a `--epochs 2` run, rather than running `--epochs 1` first, keeps the cosine learning-rate schedule of
the uninterrupted run.
"""
import json
import os
import shutil
import sys

import numpy as np
import pytest

from tests.helpers import ROOT, run_resumable
from uss.checkpoints.native import load_checkpoint

pytestmark = pytest.mark.slow  # pretrains in subprocesses

TIMEOUT = 300
ITERS_PER_EPOCH = 4  # 32 training images, batch 8

# Raise at the given optimizer step of the run (counted from its first epoch, as if it had started from scratch),
# then run the stage's main() with the remaining arguments.
CRASH = """
import os, sys
import uss
import jittor as jt
from uss.checkpoints.native import load_checkpoint
from uss.stages import pretrain
crash_at, iterations, dump = int(sys.argv[1]), int(sys.argv[2]), sys.argv[sys.argv.index("--dump-path") + 1]
checkpoint = os.path.join(dump, "checkpoint.safetensors")
done = load_checkpoint(checkpoint)["epoch"] * iterations if os.path.exists(checkpoint) else 0
calls, pre_step = [done], jt.optim.Optimizer.pre_step
def crashing_pre_step(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == crash_at:
        raise RuntimeError("simulated crash at optimizer step %d" % crash_at)
    return pre_step(self, *args, **kwargs)
jt.optim.Optimizer.pre_step = crashing_pre_step
pretrain.main(sys.argv[3:])
"""

def _args(data: str, dump: str, epochs: int) -> list:
    return ["--data", data, "--dump-path", dump, "--epochs", str(epochs), "--seed", "3",
            "--arch", "resnet18", "--size-crops", "32", "16", "--nmb-crops", "2", "2",
            "--min-scale-crops", "0.3", "0.1", "--max-scale-crops", "1.0", "0.3", "--grid-size", "3",
            "--batch-size", "8", "--workers", "2", "--nmb-prototypes", "10", "--hidden-mlp", "32",
            "--freeze-prototypes-niters", "1", "--epoch-queue-starts", "0", "--queue-length", "16",
            "--larc", "0.001", "--base-lr", "0.6"]


def _run(command: list, expect_ok: bool = True) -> str:
    # coreutils `timeout` enforces the limit; a native crash is run once more (the stage resumes), as the scripts'
    # launcher does.
    shown = " ".join(command[:3]) + " ..."
    limiter = shutil.which("timeout")
    if limiter:
        command = [limiter, "--kill-after=20", str(TIMEOUT)] + command
    result = run_resumable(command, timeout=TIMEOUT + 60, cwd=ROOT)
    output = result.stdout
    if limiter and result.returncode in (124, 137):
        pytest.fail(f"{shown} timed out after {TIMEOUT}s\n{output[-6000:]}", pytrace=False)
    if (result.returncode == 0) != expect_ok:
        pytest.fail(f"{shown} exited {result.returncode}\n{output[-6000:]}", pytrace=False)
    return output


def _pretrain(data: str, dump: str, epochs: int) -> str:
    return _run([sys.executable, os.path.join(ROOT, "main_pretrain.py")] + _args(data, dump, epochs))


def _records(dump: str) -> list:
    with open(os.path.join(dump, "log.jsonl")) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from uss.data.toy import generate

    root = tmp_path_factory.mktemp("resume")
    data = str(root / "toy")
    generate(data, classes=4, size=64, train_per_class=8, val_per_class=1, test_per_class=1, progress=False)
    straight, resumed = str(root / "straight"), str(root / "resumed")
    _pretrain(data, straight, 2)
    crash_at = [str(ITERS_PER_EPOCH + 2), str(ITERS_PER_EPOCH)]
    crash = _run([sys.executable, "-c", CRASH, *crash_at] + _args(data, resumed, 2), expect_ok=False)
    assert "simulated crash" in crash
    assert load_checkpoint(os.path.join(resumed, "checkpoint.safetensors"))["epoch"] == 1
    restart = _pretrain(data, resumed, 2)
    return {"data": data, "straight": straight, "resumed": resumed, "restart_output": restart}


def test_resumed_run_equals_uninterrupted_run(runs):
    assert "epochs 1->2" in runs["restart_output"]
    a = load_checkpoint(os.path.join(runs["straight"], "checkpoint.safetensors"))
    b = load_checkpoint(os.path.join(runs["resumed"], "checkpoint.safetensors"))
    assert a["epoch"] == b["epoch"] == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:  # bit-exact: the computation is deterministic on the CPU
        np.testing.assert_array_equal(a["state_dict"][key], b["state_dict"][key], err_msg=key)
    momenta = [[group["values"] for group in state["optimizer"]["defaults"]["param_groups"]] for state in (a, b)]
    for group_a, group_b in zip(*momenta):
        assert len(group_a) == len(group_b) > 0
        for index, (value_a, value_b) in enumerate(zip(group_a, group_b)):
            np.testing.assert_array_equal(value_a, value_b, err_msg=f"momentum buffer {index}")
    queue_a = load_checkpoint(os.path.join(runs["straight"], "queue_rank0.safetensors"))["queue"]
    queue_b = load_checkpoint(os.path.join(runs["resumed"], "queue_rank0.safetensors"))["queue"]
    assert queue_a.shape == (2, 16, 128) and np.all(np.any(queue_a != 0, axis=-1))  # full, so it was in use
    np.testing.assert_array_equal(queue_a, queue_b)
    losses = [{r["epoch"]: (r["loss"], r["swav"], r["d2s"], r["p2p"]) for r in _records(d)}
              for d in (runs["straight"], runs["resumed"])]
    assert losses[0] == losses[1] and sorted(losses[0]) == [1, 2]


def test_finished_run_is_a_no_op(runs):
    dump = runs["resumed"]
    files = {name: _read(os.path.join(dump, name)) for name in ("checkpoint.safetensors", "queue_rank0.safetensors")}
    stamps = {name: os.stat(os.path.join(dump, name)).st_mtime_ns for name in files}
    output = _pretrain(runs["data"], dump, 2)
    assert "complete" in output and "2/2 epochs" in output
    for name, content in files.items():
        assert _read(os.path.join(dump, name)) == content, f"{name} changed"
        assert os.stat(os.path.join(dump, name)).st_mtime_ns == stamps[name], f"{name} rewritten"
    assert [r["epoch"] for r in _records(dump)] == [1, 2]


def test_more_epochs_continue_from_the_checkpoint(runs):
    dump = runs["resumed"]
    before = load_checkpoint(os.path.join(dump, "checkpoint.safetensors"))
    output = _pretrain(runs["data"], dump, 3)
    assert "epochs 2->3" in output
    after = load_checkpoint(os.path.join(dump, "checkpoint.safetensors"))
    assert after["epoch"] == 3 and after["args"]["epochs"] == 3
    assert [r["epoch"] for r in _records(dump)] == [1, 2, 3]
    assert _records(dump)[-1]["iterations"] == ITERS_PER_EPOCH
    changed = [k for k in before["state_dict"] if not np.array_equal(before["state_dict"][k], after["state_dict"][k])]
    assert changed, "a third epoch left every parameter unchanged"
