"""Environment defaults that must be in place before jittor is first imported."""
import os
import shutil
import subprocess
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def gpu_usable() -> bool:
    """True when an NVIDIA GPU answers; a CUDA toolkit alone does not count."""
    if not shutil.which("nvidia-smi"):
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def configure_environment() -> None:
    """Set jittor's environment defaults; values the user exported win."""
    # With a CUDA toolkit installed but no usable GPU, jittor's import fails unless nvcc is hidden.
    if "nvcc_path" not in os.environ and not gpu_usable():
        os.environ["nvcc_path"] = ""
    # Jittor imports torch whenever it is installed (its FIX_TORCH_ERROR workaround), which loads torch's own OpenMP
    # and oneDNN into every jittor process, next to jittor's. Nothing here needs that; code that uses torch imports
    # it itself.
    os.environ.setdefault("FIX_TORCH_ERROR", "0")
    guarded = guard_compiler()
    # Jittor names its compile cache after the current git branch; one cache for all branches avoids
    # recompiling the core (~2 minutes) whenever the checkout's branch changes. Guarded and plain compiles keep
    # apart: every kernel's cache key holds the compiler's path, and a changed key for jittor's own utilities makes
    # jittor rebuild them and exit at once ("jit_utils updated, please rerun your command", status 0).
    os.environ.setdefault("cache_name", "ccguard" if guarded else "default")
    # Jittor's info lines (compiler paths, cache dirs) go to a file; Python-level errors still print, jittor's own
    # crash report goes to the file too.
    if "log_file" not in os.environ and "log_v" not in os.environ:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
        os.makedirs(os.path.join(cache, "jittor"), exist_ok=True)
        os.environ["log_file"] = os.path.join(cache, "jittor", "uss-jittor.log")


def guard_compiler() -> bool:
    """Point jittor's cc_path at bin/g++, which runs the real g++ through uss/ccguard.py (USS_CC_GUARD=0 opts out);
    returns whether jittor compiles through it."""
    # A jittor process killed during a compile leaves its compiler writing the kernel unlocked, and the next process
    # to need that kernel can load it half-written (SIGBUS, SIGSEGV): see uss/ccguard.py. Only for CPU jittor on
    # Linux with g++; CUDA kernels are built by nvcc, which this does not reach.
    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "g++")
    current = os.environ.get("cc_path")
    if current == launcher:  # inherited from our parent
        return True
    if os.environ.get("USS_CC_GUARD") == "0" or not sys.platform.startswith("linux"):
        return False
    if os.environ.get("nvcc_path") != "" or not os.access(launcher, os.X_OK):
        return False
    if current and os.path.isfile(os.path.join(os.path.dirname(current), os.pardir, "ccguard.py")):
        current = os.environ.get("USS_CC")  # another checkout's launcher: wrap what it wraps, not itself
    compiler = current or shutil.which("g++")
    if not compiler or "g++" not in os.path.basename(compiler) or "clang" in os.path.basename(compiler):
        return False
    os.environ.update(cc_path=launcher, USS_CC=compiler, USS_PYTHON=sys.executable)
    return True
