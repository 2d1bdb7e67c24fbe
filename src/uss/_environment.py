"""Environment defaults that must be in place before jittor is first imported."""
import os
import shutil
import subprocess
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
    # Jittor names its compile cache after the current git branch; one cache for all branches avoids
    # recompiling the core (~2 minutes) whenever the checkout's branch changes.
    os.environ.setdefault("cache_name", "default")
    # Jittor's info lines (compiler paths, cache dirs) go to a file; warnings and errors still print.
    if "log_file" not in os.environ and "log_v" not in os.environ:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
        os.makedirs(os.path.join(cache, "jittor"), exist_ok=True)
        os.environ["log_file"] = os.path.join(cache, "jittor", "uss-jittor.log")
