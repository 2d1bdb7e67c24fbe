"""Helpers shared by tests: running the command-line stages as subprocesses, stand-in checkpoints, and the
shell scripts' preset values."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import warnings
from typing import Sequence

# Runs in a separate interpreter without jittor, whose SIGCHLD handler ends any process whose child dies by a
# signal (tests/conftest.py also undoes it in pytest itself). The run's whole process group goes: a compiler it had
# started would otherwise outlive it (tests/test_ccguard.py covers that case).
KILL_AFTER_FILES = """
import os, signal, subprocess, sys, time
out, needed, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
deadline = time.time() + 240
while time.time() < deadline and process.poll() is None:
    if os.path.isdir(out) and sum(len(f) for _, _, f in os.walk(out)) >= needed:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # finished just now
            pass
        break
    time.sleep(0.02)
print(process.wait())
"""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def preset_block(script: str, preset: str) -> str:
    """The text of the demo (`then`) or paper (`else`) branch of the script's `if [ "$PRESET" = demo ]` block (which
    PRESET=small shares, adjusting some values inside it)."""
    text = open(os.path.join(ROOT, script)).read()
    match = re.search(r'if \[ "\$PRESET" = demo \](?: \|\| \[ "\$PRESET" = small \])?; then\n(.*?)\nelse\n(.*?)\nfi\n',
                      text, re.S)
    assert match, f"{script}: no preset block"
    return match.group({"demo": 1, "paper": 2}[preset])


def preset_arrays(script: str, preset: str, *names: str) -> dict:
    """{array name: list of words} as bash evaluates that preset's block."""
    printer = "; ".join(f'printf "%s\\0" "{name}" "${{#{name}[@]}}" "${{{name}[@]}}"' for name in names)
    done = subprocess.run(["bash", "-c", preset_block(script, preset) + "\n" + printer], capture_output=True,
                          text=True, check=True, env={"PATH": os.environ["PATH"]})
    words = done.stdout.split("\0")[:-1]
    out, i = {}, 0
    while i < len(words):
        name, count = words[i], int(words[i + 1])
        out[name] = words[i + 2:i + 2 + count]
        i += 2 + count
    return out


# How a native crash of a jittor process shows from outside: killed by a signal (or a wrapper reporting 128 + n), or
# one of jittor's own reports, which end the process with status 1: its segfault handler's, the quick exit after a
# loader worker was killed by a signal (in jittor's log file), an internal check tripped by corrupted state.
NATIVE_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL, signal.SIGFPE)
JITTOR_CRASH_REPORTS = ("Caught segfault", "Caught SIGCHLD", "Something wrong... Could you please report this issue")


def native_crash(returncode: int, output: str) -> bool:
    """Whether a process with this exit status and output (stdout, stderr and jittor's log) died of a native crash."""
    signals = {-s for s in NATIVE_SIGNALS} | {128 + s for s in NATIVE_SIGNALS}
    return returncode in signals or (returncode != 0 and any(r in output for r in JITTOR_CRASH_REPORTS))


def run_resumable(command: Sequence[str], timeout: int, **kwargs) -> subprocess.CompletedProcess:
    """Run a stage process that resumes where it stopped; once more, with a warning, if it died of a native crash.

    The pipeline's launcher (scripts/common.sh) does the same: such crashes were seen rarely and in bursts, in the
    first steps of a pass (docs/pipeline.md, Jittor notes), with causes not traced. Returns the last attempt, its
    output including jittor's log."""
    base_env = kwargs.pop("env", os.environ)
    for attempt in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            log = os.path.join(folder, "jittor.log")
            env = {**base_env, "log_file": log}
            result = subprocess.run(list(command), env=env, capture_output=True, text=True, timeout=timeout,
                                    **kwargs)
            jittor_log = open(log, errors="replace").read() if os.path.exists(log) else ""
        output = result.stdout + result.stderr + jittor_log
        if attempt == 2 or not native_crash(result.returncode, output):
            break
        warnings.warn(f"{' '.join(command[:3])} ... died of a native crash (exit status {result.returncode}); "
                      f"running it once more (it resumes):\n{output[-3000:]}")
    return subprocess.CompletedProcess(result.args, result.returncode, output, "")


def kill_after_files(command: Sequence[str], out: str, needed: int) -> int:
    """Start `command`, SIGKILL it once `out` holds `needed` files (from a jittor-free helper interpreter);
    returns its exit status (-9 when it was killed)."""
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_FILES, str(out), str(needed), *command],
                          check=True, capture_output=True, text=True)
    return int(done.stdout.strip())


def random_finetuned_checkpoint(dump: str, num_classes: int, head: str = "linear") -> str:
    """A seeded, randomly initialised ResNet-18 segmentation model saved as <dump>/checkpoint.safetensors, as
    fine-tuning saves it (what inference and test.py load); returns its path."""
    from uss.models.segmentation import build_segmentation_model
    from uss.training import runner
    from uss.checkpoints.native import checkpoint_path, save_training_state

    runner.seed_everything(0)
    save_training_state(dump, 1, build_segmentation_model("resnet18", num_classes, head), None,
                        dict(arch="resnet18", head=head, num_classes=num_classes))
    return checkpoint_path(dump)


def random_pixel_attention_checkpoint(dump: str) -> str:
    """A seeded, randomly initialised ResNet-18 pixel-attention model (8 prototypes, 16-d, hidden 32) saved as
    <dump>/checkpoint.safetensors, as the pixel-attention stage saves it; returns its path."""
    from uss.models import build_model
    from uss.training import runner
    from uss.checkpoints.native import checkpoint_path, save_training_state

    runner.seed_everything(0)
    model = build_model("resnet18", "pixel_attention", n_prototypes=8, feat_dim=16, hidden_dim=32)
    save_training_state(dump, 1, model, None,
                        dict(arch="resnet18", nmb_prototypes=8, feat_dim=16, hidden_mlp=32))
    return checkpoint_path(dump)


def batchnorm_reference(x, weight, bias, dy, eps: float = 1e-5, relu: bool = False) -> dict:
    """Train-mode BatchNorm (then ReLU) in float64 with the output gradient dy: y, dx, dweight, dbias, the batch
    mean and the unbiased batch variance (Ioffe & Szegedy 2015, section 3)."""
    import numpy as np

    x = np.asarray(x, np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    n = x.size // x.shape[1]
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    invstd = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    weight, bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
    y = x_hat * weight.reshape(shape) + bias.reshape(shape)
    g = np.asarray(dy, np.float64) * (y > 0) if relu else np.asarray(dy, np.float64)
    dbias, dweight = g.sum(axis=axes), (g * x_hat).sum(axis=axes)
    dx = (weight * invstd).reshape(shape) / n * (n * g - dbias.reshape(shape) - x_hat * dweight.reshape(shape))
    return {"y": np.maximum(y, 0) if relu else y, "dx": dx, "dweight": dweight, "dbias": dbias, "mean": mean,
            "unbiased_var": var * n / (n - 1)}
