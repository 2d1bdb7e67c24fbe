"""test.py speed and memory on this machine (a benchmark, not a test): prints numbers, asserts nothing.

  .venv/bin/python benchmarks/bench_test_py.py [--data data/toy] [--heads linear upernet] [--proposers superpixel sam]

For every (head, proposer) pair, in a fresh process: a randomly initialised fine-tuned model (ResNet-18 by
default, K = the dataset's classes) runs `python test.py --mode validation` on the demo dataset (generated into
data/toy when missing). A warm-up pass over a few images comes first (jittor compiles its kernels then), so
the throughput is the steady-state prediction loop's (images/s as test.py reports it); the wall time is the
whole measured test.py call (predictions, match, evaluation and zip). Peak memory is the process's VmHWM
(/proc/self/status; resource.getrusage's ru_maxrss where /proc is missing). The SAM proposer is the small
`vit_tiny` config with random weights (its generator settings: --points-per-side, one crop layer).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r"""
import argparse, contextlib, io, json, os, re, resource, sys, time
import uss
import jittor as jt
from uss.data import layout
from uss.models.segmentation import build_segmentation_model
from uss.sam import build_sam
from uss.stages.refined_inference import main
from uss.training import runner
from uss.checkpoints.native import save_training_state

config = json.loads(sys.argv[1])
work = config["work"]
runner.seed_everything(0)
model = build_segmentation_model(config["arch"], len(layout.load_categories(config["data"])), config["head"])
save_training_state(os.path.join(work, "ft"), 1, model, None, dict(
    arch=config["arch"], head=config["head"], num_classes=len(layout.load_categories(config["data"]))))
del model
argv = ["--data", config["data"], "--checkpoint", os.path.join(work, "ft", "checkpoint.safetensors"),
        "--short-side", str(config["short_side"]), "--quiet", "--proposer", config["proposer"]]
if config["proposer"] == "sam":
    jt.set_global_seed(0)
    jt.save(build_sam("vit_tiny").state_dict(), os.path.join(work, "sam.pth"))
    argv += ["--sam-checkpoint", os.path.join(work, "sam.pth"), "--sam-model-type", "vit_tiny",
             "--points-per-side", str(config["points_per_side"])]
main(argv + ["--out", os.path.join(work, "warmup"), "--shard", "0/%d" % config["warmup_every"]])
printed = io.StringIO()
start = time.time()
with contextlib.redirect_stdout(printed):
    status = main(argv + ["--out", os.path.join(work, "out")])
wall = time.time() - start
rate = re.search(r"([0-9.]+) images/s;", printed.getvalue())
peak_kib = -1
try:
    with open("/proc/self/status") as handle:
        peak_kib = int(re.search(r"^VmHWM:\s+(\d+) kB", handle.read(), re.M).group(1))
except (OSError, AttributeError):
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = len(open(os.path.join(config["data"], "names", "validation.txt")).read().split())
print("RESULT " + json.dumps({"status": status, "images_per_s": float(rate.group(1)) if rate else None,
                              "wall_s": wall, "images": images, "peak_mib": peak_kib / 1024,
                              "device": "cuda" if jt.flags.use_cuda else "cpu"}))
"""


def measure(config: Dict[str, object]) -> Dict[str, object]:
    """Run one configuration in a fresh interpreter; returns its RESULT record."""
    with tempfile.TemporaryDirectory() as work:
        done = subprocess.run([sys.executable, "-c", WORKER, json.dumps({**config, "work": work})],
                              capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"benchmark run {config} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv: List[str] = None) -> None:
    """Print one row per (head, proposer)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "data", "toy"), help="demo dataset (made if missing)")
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--heads", nargs="+", default=["linear", "upernet"])
    parser.add_argument("--proposers", nargs="+", default=["superpixel", "sam"], choices=["superpixel", "sam"])
    parser.add_argument("--short-side", type=int, default=96, help="network input short side (the demo's)")
    parser.add_argument("--points-per-side", type=int, default=16, help="SAM generator grid (test.py's default: 64)")
    parser.add_argument("--warmup-every", type=int, default=20, help="warm-up on every n-th image (--shard 0/n)")
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(args.data, "toy.json")):
        subprocess.run([sys.executable, "-m", "uss.data.toy", "--out", args.data], check=True, cwd=ROOT)
    print(f"test.py on {args.data} validation, {args.arch}, short side {args.short_side}, random weights "
          f"(SAM: vit_tiny, points per side {args.points_per_side}); {os.cpu_count()} CPU core(s) visible")
    print(f"{'head':<8} {'proposer':<10} {'device':<6} {'images':>6} {'images/s':>9} {'wall s':>7} "
          f"{'peak RSS MiB':>13}")
    for head in args.heads:
        for proposer in args.proposers:
            start = time.time()
            row = measure({"data": os.path.abspath(args.data), "arch": args.arch, "head": head, "proposer": proposer,
                           "short_side": args.short_side, "points_per_side": args.points_per_side,
                           "warmup_every": args.warmup_every})
            rate = f"{row['images_per_s']:.2f}" if row["images_per_s"] is not None else "?"
            print(f"{head:<8} {proposer:<10} {row['device']:<6} {row['images']:>6} {rate:>9} {row['wall_s']:>7.1f} "
                  f"{row['peak_mib']:>13.0f}   (status {row['status']}, {time.time() - start:.0f}s with set-up)",
                  flush=True)


if __name__ == "__main__":
    main()
