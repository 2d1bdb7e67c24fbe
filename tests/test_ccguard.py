"""Jittor's kernel cache survives a jittor process killed during a compile (uss/ccguard.py): its leftover compiler
installs nothing, every output is replaced whole, and the next process compiles and runs the kernel."""
import fcntl
import glob
import json
import os
import subprocess
import sys

import pytest

import uss  # noqa: F401  (jittor environment first)
from uss import ccguard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUARD = ccguard.__file__
# The kernel of the last test: y = 3 x + C on 1000 int32 numbers, C (%d) unique to the test run.
KERNEL = """
import uss
import jittor as jt
x = jt.arange(1000).int32()
y = jt.code(x.shape, x.dtype, [x], cpu_src="for (int i=0; i<in0_shape0; i++) @out(i) = @in0(i) * 3 + %d;")
print(int(y.sum().item()))
"""

# Runs in a jittor-free interpreter (jittor ends a process whose child dies of a signal): start the kernel's
# process, SIGKILL that process alone once its compiler runs, as the OOM killer or `kill -9 PID` does, and wait
# until the compiler processes it left behind have exited.
KILL_DURING_COMPILE = """
import json, os, signal, subprocess, sys, time

def children():
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as handle:
                    fields = handle.read().rsplit(")", 1)
                found.setdefault(int(fields[1].split()[1]), []).append((int(name), fields[0].split("(", 1)[1]))
            except (OSError, IndexError):
                pass
    return found

def descendants(pid):
    tree, todo, found = children(), [pid], []
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found

process = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline, left = time.time() + 600, []
while time.time() < deadline and process.poll() is None:
    below = descendants(process.pid)
    if any(name == "cc1plus" for _, name in below):
        process.send_signal(signal.SIGKILL)
        left = [pid for pid, _ in below]
        break
    time.sleep(0.005)
killed = process.wait() == -signal.SIGKILL
while time.time() < deadline and any(os.path.exists("/proc/%d" % pid) for pid in left):
    time.sleep(0.05)
print(json.dumps({"killed": killed, "left": len(left)}))
"""


def _compile(args: list, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, GUARD, *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, USS_CC="g++"), timeout=120)


@pytest.fixture
def fake_cache(tmp_path):
    """A cache layout as jittor's (<root>/jittor.lock, <root>/default/jit/) and a tiny C++ source."""
    jit = tmp_path / "default" / "jit"
    jit.mkdir(parents=True)
    (tmp_path / "jittor.lock").touch()
    (tmp_path / "kernel.cc").write_text("extern \"C\" int entry() { return 7; }\n")
    return tmp_path


def test_kernel_output_needs_a_live_requester_holding_the_cache_lock(fake_cache):
    out = fake_cache / "default" / "jit" / "k_op.so"
    args = ["-shared", "-fPIC", str(fake_cache / "kernel.cc"), "-o", str(out)]
    # Nobody holds the lock: what a compiler left by a killed jittor process sees.
    refused = _compile(args, str(fake_cache))
    assert refused.returncode != 0 and "has exited" in refused.stderr
    assert not out.exists()
    with open(fake_cache / "jittor.lock", "w") as lock:  # this process (the compiler's parent) holds it
        fcntl.lockf(lock, fcntl.LOCK_EX)
        done = _compile(args, str(fake_cache))
    assert done.returncode == 0, done.stderr
    assert out.is_file() and sorted(os.listdir(out.parent)) == ["k_op.so"]  # no temporary left


def test_outputs_are_replaced_whole(fake_cache):
    out = fake_cache / "default" / "jit" / "k_op.post.s"  # g++ -S alone rewrites this file in place
    out.write_text("old assembly\n")
    with open(fake_cache / "jittor.lock", "w") as lock, open(out) as reader:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        done = _compile(["-S", str(fake_cache / "kernel.cc"), "-o", str(out)], str(fake_cache))
        assert done.returncode == 0, done.stderr
        assert reader.read() == "old assembly\n"  # a process reading the old file keeps it whole
    assert "entry" in out.read_text()
    assert sorted(os.listdir(out.parent)) == ["k_op.post.s"]


def test_jittor_compiles_through_the_guard():
    if not sys.platform.startswith("linux") or os.environ.get("nvcc_path") != "":
        pytest.skip("the guard covers CPU jittor on Linux")
    assert os.environ["cc_path"] == os.path.join(os.path.dirname(GUARD), "bin", "g++")
    assert "g++" in os.path.basename(os.environ["USS_CC"])


def _kernel_files(jit: str, constant: int) -> list:
    """The cache files of the kernel with this constant."""
    stems = []
    for source in glob.glob(os.path.join(jit, "*_op.cc")):
        with open(source, errors="replace") as handle:
            if f"* 3 + {constant};" in handle.read():
                stems.append(source[:-len(".cc")])
    return [path for stem in stems for path in glob.glob(glob.escape(stem) + ".*")]


def test_compiler_left_by_a_killed_jittor_process_installs_nothing():
    import jittor_utils

    jit, constant = os.path.join(jittor_utils.cache_path, "jit"), 1000 + os.getpid() % 100000
    kernel = KERNEL % constant
    try:
        report = subprocess.run([sys.executable, "-c", KILL_DURING_COMPILE, kernel], capture_output=True, text=True,
                                timeout=900, cwd=ROOT)
        assert report.returncode == 0, report.stderr
        state = json.loads(report.stdout)
        assert state["killed"] and state["left"], f"the kernel's process was not killed during its compile: {state}"
        libraries = [path for path in _kernel_files(jit, constant) if path.endswith(".so") or ".so." in path]
        assert libraries == [], f"a compiler left by the killed process wrote {libraries}"
        rerun = subprocess.run([sys.executable, "-c", kernel], capture_output=True, text=True, timeout=600, cwd=ROOT)
        printed = rerun.stdout.split()
        assert rerun.returncode == 0 and printed, rerun.stderr[-3000:]
        assert int(printed[-1]) == 3 * 999 * 1000 // 2 + constant * 1000
    finally:  # a kernel of its own per run: nothing for later runs to find
        for path in _kernel_files(jit, constant):
            os.unlink(path)
