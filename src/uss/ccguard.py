"""Jittor's C++ compiler, guarded: an output appears whole or not at all, and a kernel compile whose jittor process
has died installs nothing.

Jittor compiles a kernel under a POSIX lock on its cache's `jittor.lock` and trusts `<kernel>.so` once
`<kernel>.so.key` exists. A jittor process killed during a compile (SIGKILL, the OOM killer, a timeout, jittor's
own quick exit) releases that lock, but its compiler processes live on and keep writing the kernel's `.post.s`,
`.s` and `.so` in place. The next process that needs the kernel finds no `.key`, compiles it as well, and can
load the `.so` the leftover compiler is still writing: dlopen fails ("file too short"), or the first call dies of
SIGBUS or SIGSEGV. Through this guard (jittor's `cc_path`, set by `uss._environment`) every output is written
under a temporary name and renamed into place, and a compile into a kernel folder (`<cache>/jit/`) is installed
only while a process above it still holds the cache's lock: leftover compilers install nothing.

Run as `python ccguard.py COMPILER-ARGS...`; the real compiler is $USS_CC (default g++). Standard library only:
it runs outside the virtual environment (`python -I -S`) for every compile.
"""
import fcntl
import os
import signal
import struct
import subprocess
import sys
from typing import List, Optional, Set

_FLOCK = "hhqqi4x"  # struct flock on 64-bit Linux: type, whence, start, len, pid


def output_index(args: List[str]) -> Optional[int]:
    """Where the file after the only `-o` is in `args`; None for no `-o`, several, stdout or a device."""
    places = [i for i, arg in enumerate(args) if arg == "-o"]
    if len(places) != 1 or places[0] + 1 >= len(args):
        return None
    path = args[places[0] + 1]
    return None if path == "-" or path.startswith("/dev/") else places[0] + 1


def cache_lock(path: str) -> Optional[str]:
    """The jittor.lock guarding a kernel output (`<cache>/jit/<kernel>`): the nearest one above the kernel folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.basename(folder) != "jit":
        return None
    parent = os.path.dirname(folder)
    for _ in range(8):  # cache_name may hold folders: the lock sits one level above the cache folder
        parent = os.path.dirname(parent)
        candidate = os.path.join(parent, "jittor.lock")
        if os.path.isfile(candidate):
            return candidate
    return None


def lock_holder(lock: str) -> Optional[int]:
    """The pid holding a POSIX lock on `lock`, 0 when none; None when this platform cannot tell."""
    if sys.maxsize < 2 ** 32 or struct.calcsize(_FLOCK) != 32:
        return None
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None
    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _, _, _, pid = struct.unpack(_FLOCK, answer)
    return 0 if kind == fcntl.F_UNLCK else pid


def ancestors() -> Optional[Set[int]]:
    """The pids above this process up to init; None without /proc."""
    if not os.path.isdir("/proc/self"):
        return None
    found, pid = set(), os.getppid()
    try:
        while pid > 1 and pid not in found:
            found.add(pid)
            with open(f"/proc/{pid}/stat") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):  # an ancestor exited meanwhile: the chain ends there
        pass
    return found


def requester_alive(lock: str) -> bool:
    """Whether the jittor process that asked for this compile (an ancestor) still holds the cache lock."""
    holder, above = lock_holder(lock), ancestors()
    if holder is None or above is None:
        return True  # cannot tell: behave as the plain compiler
    return holder in above


def main(args: List[str]) -> int:
    """Compile as $USS_CC would, through a temporary output; see the module docstring."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    compiler = os.environ.get("USS_CC") or "g++"
    index = output_index(args)
    if index is None:
        os.execvp(compiler, [compiler] + args)
    out = args[index]
    lock = None if os.environ.get("disable_lock") == "1" else cache_lock(out)
    refusal = f"ccguard: not writing {out}: the jittor process that asked for it has exited\n"
    if lock and not requester_alive(lock):
        sys.stderr.write(refusal)
        return 1
    temporary = f"{out}.{os.getpid()}.tmp"  # beside the output: the rename is atomic
    status = subprocess.call([compiler] + args[:index] + [temporary] + args[index + 1:])
    if status == 0 and lock and not requester_alive(lock):
        sys.stderr.write(refusal)
        status = 1
    if status == 0:
        os.replace(temporary, out)
    elif os.path.exists(temporary):
        os.unlink(temporary)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
