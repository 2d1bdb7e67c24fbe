"""The GPU check's stages (driven by benchmarks/gpu_check.sh, which sets up the environment first).

    python benchmarks/gpu_check.py run --out runs/gpu_check --gpus 1 [--tiny] [--deadline EPOCH] [--stages a,b]

`run` makes a small demo-like dataset and runs every stage of the pipeline for a few iterations, each as its own
process (the same command lines as the train_*.sh scripts, with PASS's paper settings): its own log in
<out>/logs/<stage>.log, its own time limit, and a recorded failure instead of a stop; a stage whose inputs are
missing is skipped. Per stage it reports seconds, images/s and peak memory, and it ends with one line per stage.

- images/s: training stages report the last epoch's steady-state rate from their log.jsonl (the first epoch
  compiles kernels); the other stages report images / wall seconds, start-up and kernel compilation included.
- peak GPU memory: `nvidia-smi --query-gpu=index,memory.used -lms 200` runs in the background; a stage's peak is
  the highest memory.used per GPU while it ran (jittor's allocator keeps freed blocks, so this is jittor's pool).
- peak RSS: the summed resident memory of the stage's processes (its session), sampled every 0.5 s.

The other subcommands are the small helpers the stages call: `probe` (jittor's device, a convolution and a
matrix product checked against numpy, the project's BatchNorm against float64), `cuda-oom` (a real
out-of-memory error must be recognised by uss.sam.oom), `sam-weights` (a random-weight SAM checkpoint with
the official key names), `oom-once` (runs a script with the first SAM point batch failing with a simulated
out-of-memory error, so that the generator's halving is exercised once) and `patch-jittor-cuda13` (set-up
on CUDA 13 toolkits).

This file imports neither jittor nor uss in `run`: jittor ends a process whose child dies of a signal.
"""
import argparse
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.relpath(os.path.abspath(__file__), ROOT)
OOM_RETRY_MARK = "retrying with batch size"  # uss.sam.oom's warning when it halves a batch


# ------------------------------------------------------------------------------------------------ sizes


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and the CPU rehearsal (the flags themselves do not)."""

    image: int
    classes: int
    train_per_class: int
    val_per_class: int
    batch: int
    upernet_batch: int
    iters: int
    workers: int
    r18_crops: Sequence[str]
    r50_crops: Sequence[str]
    attention_crops: Sequence[str]
    cluster: Sequence[str]
    short_side: int
    crop: int
    sam_type: str
    sam_points: Sequence[str]
    limits: Dict[str, int]


# On the GPU: 224-px images and PASS's paper crops (train_1.sh / train_2.sh paper blocks), SAM as the challenge
# entry ran it. The time limits are caps; the overall deadline cuts them further.
FULL = Sizes(
    image=224, classes=4, train_per_class=32, val_per_class=1, batch=32, upernet_batch=16, iters=3, workers=6,
    r18_crops=("--nmb-crops", "2", "6", "--size-crops", "224", "96", "--min-scale-crops", "0.14", "0.05",
               "--max-scale-crops", "1", "0.14"),
    r50_crops=("--nmb-crops", "2", "--size-crops", "224", "--min-scale-crops", "0.08", "--max-scale-crops", "1"),
    attention_crops=("--nmb-crops", "2", "--size-crops", "224", "--min-scale-crops", "0.08", "--max-scale-crops", "1"),
    cluster=("--resize", "256", "--crop", "224", "--batch-size", "64", "--restarts", "30", "--iterations", "20"),
    short_side=256, crop=224, sam_type="vit_b",
    sam_points=("--points-per-side", "64", "--points-per-batch", "64", "--crop-n-layers", "1"),
    limits={"dataset": 60, "probe": 240, "cuda-oom": 60, "pretrain-r18": 180, "pretrain-r50": 150,
            "pixel-attention": 90, "cluster": 90, "pseudo-sweep": 60, "pseudo-labels": 60, "finetune-linear": 90,
            "finetune-upernet": 120, "sam-weights": 60, "test-sam": 180, "mpirun-pretrain": 180})

# The CPU rehearsal: the same commands at sizes two cores finish in minutes (SAM ViT-B at 1024 px costs about 25 s
# per encoder pass here, hence no crop layer and few points).
TINY = Sizes(
    image=64, classes=3, train_per_class=4, val_per_class=1, batch=4, upernet_batch=4, iters=2, workers=2,
    r18_crops=("--nmb-crops", "2", "6", "--size-crops", "64", "48", "--min-scale-crops", "0.14", "0.05",
               "--max-scale-crops", "1", "0.14"),
    r50_crops=("--nmb-crops", "2", "--size-crops", "64", "--min-scale-crops", "0.08", "--max-scale-crops", "1"),
    attention_crops=("--nmb-crops", "2", "--size-crops", "64", "--min-scale-crops", "0.08", "--max-scale-crops", "1"),
    cluster=("--resize", "64", "--crop", "64", "--batch-size", "6", "--restarts", "3", "--iterations", "5"),
    short_side=64, crop=64, sam_type="vit_b",
    sam_points=("--points-per-side", "8", "--points-per-batch", "16", "--crop-n-layers", "0"),
    limits={"dataset": 120, "probe": 600, "cuda-oom": 60, "pretrain-r18": 600, "pretrain-r50": 600,
            "pixel-attention": 600, "cluster": 600, "pseudo-sweep": 600, "pseudo-labels": 600,
            "finetune-linear": 600, "finetune-upernet": 600, "sam-weights": 300, "test-sam": 900,
            "mpirun-pretrain": 600})

EPOCHS = 2  # the first compiles, the last is measured
PRETRAIN_EPOCHS = 3  # the queue starts in the second epoch (it compiles more), the third is measured
# PASS's PyTorch recipe for the SwAV stages (train_1.sh's paper block); the queue starts in the second epoch so
# that its code runs too (PASS: epoch 15).
SWAV = ("--crops-for-assign", "0", "1", "--temperature", "0.1", "--epsilon", "0.05", "--sinkhorn-iterations", "3",
        "--feat-dim", "128", "--larc", "0.001", "--final-lr", "0.0006", "--warmup-epochs", "0", "--wd", "1e-6",
        "--seed", "10010", "--momentum", "0.9", "--schedule", "cosine", "--blur-sigma", "2.0",
        "--color-strength", "1.0", "--epoch-queue-starts", "1")
# The challenge entry's SAM settings (src/uss/regions/settings.py) except the point grid, which Sizes gives.
SAM_FILTERS = ("--pred-iou-thresh", "0.86", "--stability-score-thresh", "0.92", "--crop-n-points-downscale-factor",
               "2", "--min-mask-region-area", "100")


# ------------------------------------------------------------------------------------------------ stages


@dataclass
class Stage:
    """One command, run as its own process with a time limit."""

    name: str
    command: List[str]
    needs: List[str] = field(default_factory=list)  # paths that must exist first (earlier stages' outputs)
    fresh: List[str] = field(default_factory=list)  # outputs removed first, so that nothing resumes
    images: int = 0  # images processed, for images/s (training stages read log.jsonl instead)
    log_jsonl: Optional[str] = None
    check: Optional[Callable[[str], Optional[str]]] = None  # the log's text -> an error, or None
    env: Dict[str, str] = field(default_factory=dict)
    skip: Optional[str] = None  # why it does not run here
    fallback_env: Dict[str, str] = field(default_factory=dict)  # tried once when the stage fails
    gpus_used: int = 0  # GPUs whose memory the stage must have used (the MPI ranks' own GPUs)


@dataclass
class Result:
    name: str
    status: str  # ok | FAILED | skipped
    detail: str = ""
    seconds: float = 0.0
    images_per_s: Optional[float] = None
    gpu_mib: List[int] = field(default_factory=list)
    rss_mib: Optional[int] = None


def training_check(log_jsonl: str, epochs: int) -> Callable[[str], Optional[str]]:
    """The stage must have logged `epochs` epochs."""
    def check(_: str) -> Optional[str]:
        if not os.path.isfile(log_jsonl):
            return f"no {log_jsonl}"
        with open(log_jsonl) as handle:
            done = [json.loads(line) for line in handle if line.strip()]
        return None if len(done) >= epochs else f"{len(done)}/{epochs} epochs logged in {log_jsonl}"
    return check


def count_files(folder: str, suffix: str) -> int:
    return sum(f.endswith(suffix) for _, _, files in os.walk(folder) for f in files) if os.path.isdir(folder) else 0


def build_stages(out: str, sizes: Sizes, py: str, gpus: int, faiss_gpu: bool, cpu: bool) -> List[Stage]:
    """The check's stages in order; each reads only what earlier stages wrote under `out`."""
    data = os.path.join(out, "data")
    n_train = sizes.classes * sizes.train_per_class
    n_val = sizes.classes * sizes.val_per_class
    r18, r50 = os.path.join(out, "r18"), os.path.join(out, "r50")
    ckpt = "checkpoint.safetensors"
    train = ["--max-iters-per-epoch", str(sizes.iters), "--workers", str(sizes.workers)]
    stages: List[Stage] = []

    stages.append(Stage("dataset", [py, "-m", "uss.data.toy", "--out", data, "--size", str(sizes.image),
                                    "--classes", str(sizes.classes), "--train-per-class", str(sizes.train_per_class),
                                    "--val-per-class", str(sizes.val_per_class), "--test-per-class", "1",
                                    "--no-progress"],
                        images=n_train + n_val + sizes.classes))
    # If jittor's CUDA set-up fails as it is, one retry without cuDNN / cuFFT / cuSPARSE (jittor's own
    # convolutions) tells whether the rest can still run; later stages then use that setting.
    stages.append(Stage("probe", [py, HERE, "probe"], fallback_env={"conv_opt": "1"}))
    stages.append(Stage("cuda-oom", [py, HERE, "cuda-oom"], skip="needs CUDA" if cpu else None))

    def pretrain(name: str, arch: str, dump: str, crops: Sequence[str], extra: Sequence[str],
                 launcher: Sequence[str] = (), skip: Optional[str] = None) -> Stage:
        log = os.path.join(dump, "log.jsonl")
        return Stage(name, [*launcher, py, "main_pretrain.py", "--data", data, "--arch", arch, "--dump-path", dump,
                            *crops, *SWAV, *extra, "--base-lr", "0.6", "--batch-size", str(sizes.batch),
                            "--epochs", str(PRETRAIN_EPOCHS), *train],
                     needs=[os.path.join(data, "toy.json")], fresh=[dump], log_jsonl=log,
                     check=training_check(log, PRETRAIN_EPOCHS), skip=skip)

    stages.append(pretrain("pretrain-r18", "resnet18", os.path.join(r18, "pretrain"), sizes.r18_crops,
                           ("--hidden-mlp", "512", "--nmb-prototypes", "500", "--queue-length", "2048",
                            "--freeze-prototypes-niters", "1001", "--shallow", "3", "--weights", "1", "1",
                            "--grid-size", "7")))
    stages.append(pretrain("pretrain-r50", "resnet50", os.path.join(r50, "pretrain"), sizes.r50_crops,
                           ("--hidden-mlp", "2048", "--nmb-prototypes", "3000", "--queue-length", "3840",
                            "--freeze-prototypes-niters", "5005", "--shallow", "3", "--weights", "1", "1",
                            "--grid-size", "7")))

    attention = os.path.join(r18, "pixel_attention")
    stages.append(Stage("pixel-attention",
                        [py, "main_pixel_attention.py", "--data", data, "--arch", "resnet18", "--pretrained",
                         os.path.join(r18, "pretrain", ckpt), "--dump-path", attention, *sizes.attention_crops,
                         *SWAV, "--hidden-mlp", "512", "--nmb-prototypes", "500", "--queue-length", "0",
                         "--freeze-prototypes-niters", "0", "--base-lr", "6.0", "--batch-size", str(sizes.batch),
                         "--epochs", str(EPOCHS), *train],
                        needs=[os.path.join(r18, "pretrain", ckpt)], fresh=[attention],
                        log_jsonl=os.path.join(attention, "log.jsonl"),
                        check=training_check(os.path.join(attention, "log.jsonl"), EPOCHS)))

    cluster = os.path.join(r18, "cluster")

    def cluster_check(_: str) -> Optional[str]:
        with open(os.path.join(cluster, "cluster.json")) as handle:
            device = json.load(handle).get("faiss_device", "unknown")
        if faiss_gpu and device != "gpu":
            return f"k-means ran on the {device}, not the GPU, although faiss-gpu is installed"
        return None
    stages.append(Stage("cluster", [py, "cluster.py", "--data", data, "--pretrained", os.path.join(attention, ckpt),
                                    "--dump-path", cluster, *sizes.cluster, "--workers", str(sizes.workers),
                                    "--seed", "31"],
                        needs=[os.path.join(attention, ckpt)], fresh=[cluster], images=n_train, check=cluster_check))

    labels = os.path.join(r18, "pseudo_labels")
    labeller = ["--data", data, "--pretrained", os.path.join(attention, ckpt), "--cluster-dir", cluster,
                "--short-side", str(sizes.short_side)]
    stages.append(Stage("pseudo-sweep", [py, "pseudo_labels.py", "sweep", *labeller, "--thresholds", "0:0.80:0.01"],
                        needs=[os.path.join(cluster, "centroids.npy")], fresh=[os.path.join(cluster, "threshold.json")],
                        images=n_val))

    def labels_check(_: str) -> Optional[str]:
        found = count_files(labels, ".png")
        return None if found == n_train else f"{found} of {n_train} label PNGs written"
    stages.append(Stage("pseudo-labels", [py, "pseudo_labels.py", "generate", *labeller, "--out", labels],
                        needs=[os.path.join(cluster, "threshold.json")], fresh=[labels], images=n_train,
                        check=labels_check))

    def finetune(name: str, arch: str, dump: str, pretrained: str, batch: int, extra: Sequence[str]) -> Stage:
        log = os.path.join(dump, "log.jsonl")
        return Stage(name, [py, "main_pixel_finetuning.py", "--data", data, "--pseudo-labels", labels,
                            "--pretrained", pretrained, "--dump-path", dump, "--arch", arch,
                            "--crop-size", str(sizes.crop), "--min-scale", "0.08", "--max-scale", "1.0",
                            "--label-scale", "0.5", "--batch-size", str(batch), "--seed", "31", *extra,
                            "--epochs", str(EPOCHS), *train],
                     needs=[labels, pretrained], fresh=[dump], log_jsonl=log, check=training_check(log, EPOCHS))
    # PASS's 1x1 head (scripts/linear_head_row.sh, paper) and mmsegmentation's UPerNet (train_4.sh, paper).
    stages.append(finetune("finetune-linear", "resnet18", os.path.join(r18, "finetune_linear"),
                           os.path.join(r18, "pretrain", ckpt), sizes.batch,
                           ("--head", "linear", "--classifier-init", "kaiming", "--larc", "0.001", "--base-lr", "0.6",
                            "--final-lr", "0.0006", "--wd", "1e-6", "--momentum", "0.9", "--schedule", "cosine")))
    upernet = os.path.join(r50, "finetune_upernet")
    stages.append(finetune("finetune-upernet", "resnet50", upernet, os.path.join(r50, "pretrain", ckpt),
                           sizes.upernet_batch,
                           ("--head", "upernet", "--head-channels", "512", "--pool-scales", "1", "2", "3", "6",
                            "--head-dropout", "0.1", "--classifier-init", "normal", "--schedule", "poly",
                            "--poly-power", "0.9", "--base-lr", "0.01", "--final-lr", "0.0001", "--momentum", "0.9",
                            "--wd", "5e-4")))

    sam = os.path.join(out, "sam", f"sam_{sizes.sam_type}_random.pth")
    stages.append(Stage("sam-weights", [py, HERE, "sam-weights", "--type", sizes.sam_type, "--out", sam]))
    test_out = os.path.join(out, "test_py")

    def test_check(text: str) -> Optional[str]:
        if OOM_RETRY_MARK not in text:
            return "the forced out-of-memory error did not halve a SAM batch (no 'retrying with batch size')"
        if "[test] submission:" not in text:
            return "test.py did not pack the submission"
        return None
    stages.append(Stage("test-sam", [py, HERE, "oom-once", "test.py", "--split", "validation", "--data", data,
                                     "--checkpoint", os.path.join(upernet, ckpt), "--out", test_out,
                                     "--proposer", "sam", "--sam-checkpoint", sam, "--sam-model-type", sizes.sam_type,
                                     *sizes.sam_points, *SAM_FILTERS, "--short-side", str(sizes.short_side),
                                     "--max-pixels", "1000000", "--threads", "4", "--quiet"],
                        needs=[os.path.join(upernet, ckpt), sam], fresh=[test_out], images=n_val, check=test_check))

    # Two ranks: jittor shards each global batch and all-reduces; on the GPU each rank must use its own GPU.
    mpi_dump = os.path.join(out, "mpi", "pretrain")
    launcher = ["mpirun", "-np", "2"] + (["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0
                                         else [])
    skip = None
    if not cpu and gpus < 2:
        skip = f"needs 2 GPUs ({gpus} found)"
    elif shutil.which("mpirun") is None:
        skip = "mpirun not found (Open MPI: apt-get install openmpi-bin libopenmpi-dev)"
    mpi = pretrain("mpirun-pretrain", "resnet18", mpi_dump, sizes.r18_crops,
                   ("--hidden-mlp", "512", "--nmb-prototypes", "500", "--queue-length", "0",
                    "--freeze-prototypes-niters", "1001", "--shallow", "3", "--weights", "1", "1", "--grid-size", "7"),
                   launcher=launcher, skip=skip)
    mpi.env = {"OMPI_MCA_btl_vader_single_copy_mechanism": "none"}  # containers often forbid CMA (ptrace)
    mpi.gpus_used = 0 if cpu else 2
    if cpu:
        mpi.env["OMP_NUM_THREADS"] = "1"
    stages.append(mpi)
    return stages


# ------------------------------------------------------------------------------------------------ monitoring


class GpuMemory:
    """Peak memory.used per GPU since the last reset, from one background `nvidia-smi -lms` process."""

    def __init__(self, gpus: int):
        self.peaks: Dict[int, int] = {}
        self.lock = threading.Lock()
        self.process = None
        if gpus > 0 and shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=index,memory.used", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                index, used = int(parts[0]), int(parts[1])
                with self.lock:
                    self.peaks[index] = max(self.peaks.get(index, 0), used)

    def reset(self) -> None:
        with self.lock:
            self.peaks = {}

    def peak(self) -> List[int]:
        with self.lock:
            return [self.peaks[i] for i in sorted(self.peaks)]

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()


def session_rss_mib(session: int) -> int:
    """Summed resident memory (MiB) of the processes in a session."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
            if int(stat.rsplit(")", 1)[1].split()[3]) != session:  # fields after the name: state ppid pgrp session
                continue
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total // (1 << 20)


# ------------------------------------------------------------------------------------------------ running


def log_lines(text: str) -> List[str]:
    """A log's non-empty lines without colour codes; a message printed after a progress bar keeps only itself."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # jittor colours its messages
    return [re.sub(r"^.*\d+/\d+ \[[^\]]*\]", "", line).strip() or line.strip()
            for line in text.replace("\r", "\n").splitlines() if line.strip()]


def last_line(text: str) -> str:
    lines = log_lines(text)
    return lines[-1][:200] if lines else "none"


def first_error(text: str) -> str:
    """The most telling line of a failed stage's log: the exception of the last traceback, else the first error."""
    lines = log_lines(text)
    crash = r"Fatal Python error|double free|corrupted|Segmentation fault|core dumped|Aborted|Killed|terminate called"
    if any(line.startswith("Traceback") for line in lines):
        for line in reversed(lines):
            if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line):
                return line[:300]
    for pattern in (crash, r"^error:|\bError\b|\[f \d|fatal|out of memory"):
        hits = [line for line in lines if re.search(pattern, line)]
        if hits:
            return " / ".join(hits[:2])[:300]
    return lines[-1][:300] if lines else "no output"


def run_stage(stage: Stage, log_path: str, limit: float, env: Dict[str, str], gpu: GpuMemory) -> Result:
    """Run one stage under its limit; the result has status, timing and peaks (not yet images/s)."""
    for path in stage.fresh:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    gpu.reset()
    start = time.time()
    with open(log_path, "w") as log:
        log.write(f"$ {' '.join(stage.command)}\n")
        if stage.env:
            log.write(f"# env: {' '.join(f'{k}={v}' for k, v in stage.env.items())}\n")
        log.flush()
        process = subprocess.Popen(stage.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env={**env, **stage.env}, start_new_session=True)
        rss = 0
        timed_out = False
        while process.poll() is None:
            rss = max(rss, session_rss_mib(process.pid))
            if time.time() - start > limit:
                timed_out = True
                stop(process)
                break
            time.sleep(0.5)
    seconds = time.time() - start
    try:  # whatever the stage left running (loader workers, ranks) holds memory the next stage needs
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with open(log_path, errors="replace") as handle:
        text = handle.read()
    result = Result(stage.name, "ok", seconds=seconds, gpu_mib=gpu.peak(), rss_mib=rss or None)
    if timed_out:
        result.status, result.detail = "FAILED", f"timed out after {limit:.0f} s (last output: {last_line(text)})"
    elif process.returncode != 0:
        result.status, result.detail = "FAILED", f"exit {process.returncode}: {first_error(text)}"
    elif stage.check is not None:
        try:
            problem = stage.check(text)
        except (OSError, ValueError, KeyError) as exc:
            problem = f"its outputs are missing or unreadable: {exc}"
        if problem:
            result.status, result.detail = "FAILED", problem
    return result


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the stage's process group (mpirun forwards it to the ranks), SIGKILL what is left after 15 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def images_per_s(stage: Stage, result: Result) -> Optional[float]:
    if stage.log_jsonl and os.path.isfile(stage.log_jsonl):
        with open(stage.log_jsonl) as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        return float(records[-1]["images_per_s"]) if records else None
    return stage.images / result.seconds if stage.images and result.seconds > 0 else None


def missing_input(stage: Stage) -> Optional[str]:
    for need in stage.needs:
        if not os.path.exists(need):
            return f"input missing: {need}"
    return None


def read_setup(path: Optional[str]) -> List[Result]:
    """The set-up rows gpu_check.sh recorded (name, status, seconds, detail; tab-separated)."""
    rows: List[Result] = []
    if path and os.path.isfile(path):
        with open(path) as handle:
            for line in handle:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    rows.append(Result(f"setup: {parts[0]}", parts[1], parts[3] if len(parts) > 3 else "",
                                       float(parts[2])))
    return rows


def format_row(r: Result) -> str:
    speed = f"{r.images_per_s:.3g}" if r.images_per_s else "-"
    gpu = "/".join(str(m) for m in r.gpu_mib) if r.gpu_mib else "-"
    rss = str(r.rss_mib) if r.rss_mib else "-"
    status = r.status if not r.detail else f"{r.status}: {r.detail}"
    return f"{r.name:<22} {r.seconds:8.1f} {speed:>9} {gpu:>13} {rss:>9}  {status}"


HEADER = f"{'stage':<22} {'seconds':>8} {'images/s':>9} {'peak GPU MiB':>13} {'RSS MiB':>9}  status"


def run(args: argparse.Namespace) -> int:
    """Run the stages; print a line after each and the summary table at the end; 0 when none failed or ran out of
    time."""
    sizes = TINY if args.tiny else FULL
    out = os.path.abspath(args.out)
    os.chdir(ROOT)
    if not os.path.relpath(out, ROOT).startswith(".."):
        out = os.path.relpath(out, ROOT)  # the stages run in ROOT: their command lines stay short
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "src"), env.get("PYTHONPATH")]))
    setup = read_setup(args.setup)
    stages = build_stages(out, sizes, args.python, args.gpus, args.faiss_gpu, cpu=args.gpus == 0)
    wanted = set(args.stages.split(",")) if args.stages else None
    unknown = wanted - {s.name for s in stages} if wanted else set()
    if unknown:
        print(f"gpu_check: unknown stage(s) {', '.join(sorted(unknown))}; stages: {', '.join(s.name for s in stages)}",
              file=sys.stderr)
        return 2
    gpu = GpuMemory(args.gpus)
    results: List[Result] = []
    broken_setup = next((r for r in setup if r.status == "FAILED" and r.name == "setup: environment"), None)
    device = f"{args.gpus} GPU(s)" if args.gpus else "CPU only (rehearsal)"
    print(f"[gpu_check] {len(stages)} stages, {'tiny' if args.tiny else 'full'} sizes, {device}; logs in {logs}/",
          flush=True)
    try:
        for stage in stages:
            if wanted and stage.name not in wanted:
                continue
            remaining = args.deadline - time.time() - 10 if args.deadline else float("inf")
            limit = min(sizes.limits.get(stage.name, 120), remaining)
            reason = ("set-up failed" if broken_setup else stage.skip or missing_input(stage)
                      or ("out of time (GPU_CHECK_BUDGET)" if limit < 20 else None))
            if reason:
                results.append(Result(stage.name, "skipped", reason))
                print(f"[gpu_check] {stage.name}: skipped ({reason})", flush=True)
                continue
            print(f"[gpu_check] {stage.name}: running (limit {limit:.0f} s)", flush=True)
            log_path = os.path.join(logs, f"{stage.name}.log")
            result = run_stage(stage, log_path, limit, env, gpu)
            if result.status == "FAILED" and stage.fallback_env:
                first = result.detail
                setting = " ".join(f"{k}={v}" for k, v in stage.fallback_env.items())
                print(f"[gpu_check] {stage.name}: FAILED ({first}); trying again with {setting}", flush=True)
                stage.env.update(stage.fallback_env)
                log_path = os.path.join(logs, f"{stage.name}-fallback.log")
                remaining = args.deadline - time.time() - 10 if args.deadline else float("inf")
                result = run_stage(stage, log_path, min(limit, remaining), env, gpu)
                if result.status == "ok":
                    env.update(stage.fallback_env)  # the later stages run with the setting that worked
                    result.detail = f"failed as it is ({first}); ok with {setting}, used from here on"
                else:
                    result.detail = f"{first}; with {setting} too: {result.detail}"
            busy = sum(m > 256 for m in result.gpu_mib)
            if result.status == "ok" and busy < stage.gpus_used:
                result.status, result.detail = "FAILED", (f"{busy} GPU(s) used, {stage.gpus_used} expected "
                                                          f"(peaks {result.gpu_mib} MiB)")
            try:
                result.images_per_s = images_per_s(stage, result) if result.status == "ok" else None
            except (OSError, ValueError, KeyError):
                result.images_per_s = None
            results.append(result)
            print(f"[gpu_check] {format_row(result)}", flush=True)
            if result.status != "ok":
                with open(log_path, errors="replace") as handle:
                    tail = log_lines(handle.read())[-12:]
                print("\n".join(f"    | {line[:300]}" for line in tail), flush=True)
    finally:
        gpu.close()
    rows = setup + results
    table = [HEADER] + [format_row(r) for r in rows]
    notes = ["images/s: training stages = last epoch from log.jsonl; others = images / wall time incl. start-up "
             "and compilation. peak GPU MiB: nvidia-smi memory.used per GPU; RSS: the stage's processes."]
    if not args.gpus:
        notes.append("CPU rehearsal: skipped by design are what needs CUDA (faiss-gpu install, the CUDA "
                     "out-of-memory probe, mpirun on 2 GPUs; mpirun runs with 2 CPU ranks instead).")
    with open(os.path.join(out, "summary.md"), "w") as handle:
        handle.write("```\n" + "\n".join(table + [""] + notes) + "\n```\n")
    with open(os.path.join(out, "summary.json"), "w") as handle:
        json.dump([r.__dict__ for r in rows], handle, indent=1)
    print(f"\n=== gpu_check summary ({os.path.join(out, 'summary.md')}; logs: {logs}/<stage>.log)")
    print("\n".join(table + notes), flush=True)
    return 1 if any(r.status == "FAILED" or r.detail.startswith("out of time") for r in rows) else 0


# ------------------------------------------------------------------------------------------------ helpers


def probe() -> int:
    """jittor's device and CUDA libraries, and a convolution (forward + backward) and a matrix product checked
    against numpy on that device."""
    import numpy as np
    import uss  # noqa: F401  (jittor environment defaults)
    import jittor as jt
    from jittor import compile_extern, nn

    jt.flags.use_cuda = jt.has_cuda
    libs = {name: getattr(compile_extern, name, None) is not None
            for name in ("cudnn", "cublas", "curand", "cufft", "mpi")}
    print(f"jittor {jt.__version__}: has_cuda {jt.has_cuda}, use_cuda {jt.flags.use_cuda}, "
          f"nvcc {jt.flags.nvcc_path!r}, libraries {libs}, numpy {np.__version__}", flush=True)
    if jt.flags.use_cuda:
        print(f"cuda_archs {list(jt.flags.cuda_archs)}", flush=True)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(256, 384)).astype(np.float32), rng.normal(size=(384, 128)).astype(np.float32)
    product = jt.matmul(jt.array(a), jt.array(b)).numpy()
    error = float(np.abs(product - a @ b).max())
    conv = nn.Conv2d(3, 16, 3, padding=1)
    images = jt.array(rng.normal(size=(4, 3, 64, 64)).astype(np.float32))
    loss = (conv(images) ** 2).mean()
    grads = jt.grad(loss, conv.parameters())
    norms = [float(np.sqrt((g.numpy().astype(np.float64) ** 2).sum())) for g in grads]
    print(f"matmul max |error| vs numpy {error:.2e}; conv loss {loss.item():.4f}, grad norms "
          f"{', '.join(f'{n:.4f}' for n in norms)}", flush=True)
    if not error < 1e-2 or not all(np.isfinite(norms)):
        print("error: jittor's results are wrong on this device", file=sys.stderr)
        return 1
    return batchnorm_probe()


def batchnorm_probe() -> int:
    """The project's BatchNorm + ReLU (on CUDA: its float64-reduction path) against tests/helpers.py's float64
    reference, forward and backward, on a batch of mean 2 (where jittor's own is 35 % off)."""
    import numpy as np
    import jittor as jt

    from uss.models.batchnorm import BatchNorm
    sys.path.insert(0, ROOT)
    from tests.helpers import batchnorm_reference

    rng = np.random.default_rng(1)
    x = (rng.normal(size=(16, 32, 28, 28)) + 2.0).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    kink = np.abs(batchnorm_reference(x, np.ones(32), np.zeros(32), dy)["y"]) < 1e-4  # float32 may flip the ReLU there
    dy = np.where(kink, 0, dy).astype(np.float32)
    bn = BatchNorm(32)
    xv = jt.array(x)
    y = bn(xv, relu=True)
    dx, dweight = jt.grad((y * jt.array(dy)).sum(), [xv, bn.weight])
    ref = batchnorm_reference(x, np.ones(32), np.zeros(32), dy, relu=True)
    errors = {name: float(np.abs(value.numpy() - ref[name]).max() / np.abs(ref[name]).max())
              for name, value in (("y", y), ("dx", dx), ("dweight", dweight))}
    print("BatchNorm + ReLU vs float64, relative: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()), flush=True)
    if not max(errors.values()) < 1e-4:
        print("error: the project's BatchNorm is off float64 on this device", file=sys.stderr)
        return 1
    return 0


def cuda_oom() -> int:
    """Allocate far more than any GPU holds: jittor must raise an error that uss.sam.oom recognises."""
    import uss  # noqa: F401
    import jittor as jt
    from uss.sam.oom import is_oom_error

    jt.flags.use_cuda = jt.has_cuda
    if not jt.flags.use_cuda:
        print("error: jittor has no CUDA here", file=sys.stderr)
        return 1
    try:
        huge = jt.zeros((1 << 37,), "float32")  # 512 GiB
        huge.sync()
    except (RuntimeError, MemoryError) as exc:
        head = " ".join(str(exc).split())[:300]
        print(f"{type(exc).__name__}: {head}", flush=True)
        if not is_oom_error(exc):
            print("error: uss.sam.oom.is_oom_error does not recognise jittor's out-of-memory error; add a marker "
                  "from the message above to OOM_MARKERS", file=sys.stderr)
            return 1
        print("recognised by uss.sam.oom.is_oom_error: the SAM generator would halve its batch", flush=True)
        small = jt.ones((1024,), "float32").sum().item()  # the device still works after the failure
        print(f"allocation after the error: ok ({small:.0f})", flush=True)
        return 0
    print("error: a 512 GiB allocation did not fail", file=sys.stderr)
    return 1


def sam_weights(model_type: str, path: str) -> int:
    """Random-weight SAM saved as a plain state dict with the official key names (what sam_vit_b_01ec64.pth is)."""
    if os.path.isfile(path):
        print(f"{path} exists; reused", flush=True)
        return 0
    import uss  # noqa: F401
    import jittor as jt
    from uss.sam import build_sam

    jt.flags.use_cuda = 0  # written once on the CPU; test.py moves it where it runs
    jt.set_global_seed(0)
    state = {key: value.numpy() for key, value in build_sam(model_type).state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    jt.save(state, path + ".tmp")
    os.replace(path + ".tmp", path)
    print(f"wrote {path}: {len(state)} tensors, {sum(v.size for v in state.values()) / 1e6:.1f} M parameters, "
          f"random weights ({model_type})", flush=True)
    return 0


def oom_once(script: str, argv: List[str]) -> None:
    """Run `script` with the first multi-point SAM batch failing as if CUDA ran out of memory; the generator's
    back-off (uss.sam.oom) must halve the batch and finish. On the CPU the back-off is off by default, so it is
    switched on here for the rehearsal."""
    import uss  # noqa: F401
    import jittor as jt
    from uss.sam import automatic_mask_generator as amg

    original = amg.iter_batches_with_oom_backoff
    armed = [True]

    def backoff(process, total, batch_size, enabled=None, min_batch_size=1):
        def failing_once(start: int, stop: int):
            if armed[0] and stop - start > 1:
                armed[0] = False
                print(f"[gpu_check] forcing an out-of-memory error on SAM points {start}:{stop} "
                      f"(batch {stop - start})", file=sys.stderr, flush=True)
                raise RuntimeError("[gpu_check] simulated: CUDA out of memory (cudaErrorMemoryAllocation)")
            return process(start, stop)
        if enabled is None and not jt.flags.use_cuda:
            enabled = True
        return original(failing_once, total, batch_size, enabled, min_batch_size)

    amg.iter_batches_with_oom_backoff = backoff
    sys.argv = [script, *argv]
    runpy.run_path(os.path.join(ROOT, script), run_name="__main__")


def patch_jittor_cuda13() -> int:
    """Make jittor 1.3.11's CUDA core compile with CUDA 13, which removed cudaDeviceProp::computeMode and ::clockRate
    (its helper_cuda.h reads them): read both through cudaDeviceGetAttribute. Idempotent; jittor is not imported."""
    import importlib.util

    spec = importlib.util.find_spec("jittor")
    if spec is None or not spec.submodule_search_locations:
        print("error: jittor is not installed", file=sys.stderr)
        return 1
    path = os.path.join(spec.submodule_search_locations[0], "extern", "cuda", "inc", "helper_cuda.h")
    with open(path) as handle:
        text = handle.read()
    if "jt_device_attribute" in text or "deviceProp.computeMode" not in text:
        print(f"{path}: nothing to patch", flush=True)
        return 0
    helper = ("// CUDA 13 removed cudaDeviceProp::computeMode and ::clockRate (patched by benchmarks/gpu_check.py).\n"
              "inline int jt_device_attribute(cudaDeviceAttr attribute, int device) {\n"
              "  int value = 0;\n  cudaDeviceGetAttribute(&value, attribute, device);\n  return value;\n}\n\n")
    text = (text.replace("deviceProp.computeMode == cudaComputeModeProhibited",
                         "jt_device_attribute(cudaDevAttrComputeMode, devID) == cudaComputeModeProhibited")
            .replace("deviceProp.computeMode != cudaComputeModeProhibited",
                     "jt_device_attribute(cudaDevAttrComputeMode, current_device) != cudaComputeModeProhibited")
            .replace("deviceProp.clockRate", "jt_device_attribute(cudaDevAttrClockRate, current_device)"))
    anchor = text.index("inline int gpuDeviceInit")
    with open(path, "w") as handle:
        handle.write(text[:anchor] + helper + text[anchor:])
    print(f"patched {path}: computeMode / clockRate read with cudaDeviceGetAttribute (CUDA 13)", flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="run the stages and print the summary")
    runner.add_argument("--out", default="runs/gpu_check")
    runner.add_argument("--python", default=sys.executable, help="interpreter of the stages")
    runner.add_argument("--gpus", type=int, default=0, help="GPUs present (0 = CPU rehearsal)")
    runner.add_argument("--tiny", action="store_true", help="the CPU rehearsal's sizes")
    runner.add_argument("--faiss-gpu", action="store_true", help="a GPU build of faiss is installed")
    runner.add_argument("--deadline", type=float, default=0.0, help="epoch seconds by which everything must end")
    runner.add_argument("--setup", default=None, help="set-up rows written by gpu_check.sh")
    runner.add_argument("--stages", default=None, help="comma list: run only these")
    commands.add_parser("probe", help="jittor's device and a numerical check")
    commands.add_parser("cuda-oom", help="a real CUDA out-of-memory error must be recognised")
    weights = commands.add_parser("sam-weights", help="write a random-weight SAM checkpoint")
    weights.add_argument("--type", default="vit_b")
    weights.add_argument("--out", required=True)
    commands.add_parser("patch-jittor-cuda13", help="let jittor 1.3.11's CUDA core compile with CUDA 13")
    once = commands.add_parser("oom-once", help="run SCRIPT ARGS with one simulated SAM out-of-memory error")
    once.add_argument("script")
    once.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "probe":
        return probe()
    if args.command == "cuda-oom":
        return cuda_oom()
    if args.command == "sam-weights":
        return sam_weights(args.type, args.out)
    if args.command == "patch-jittor-cuda13":
        return patch_jittor_cuda13()
    oom_once(args.script, args.args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
