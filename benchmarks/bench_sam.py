"""Benchmark the Jittor SAM port against the official PyTorch SAM on this machine's CPU (or GPU
for Jittor when jittor has CUDA): image-encoder seconds/image, automatic-mask-generator
seconds/image and peak resident memory, on identical random weights; plus the generator's peak
memory for several points_per_side at a fixed points_per_batch.

Each measurement runs in a fresh worker process so that peak RSS (VmHWM from /proc, reset
through /proc/self/clear_refs before the measured phase) belongs to that phase alone.

    python benchmarks/bench_sam.py --configs small,vit_b --points-per-side 16 --sweep 16,32,64

The official model needs `torch` and `segment-anything` (imported through the torchvision
stand-ins of tests/sam/test_parity.py); with --no-official only the Jittor port runs.
"""
import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_ALIASES = {"small": "vit_tiny"}


# ------------------------------------------------------------------------------ utilities --
def _proc_kib(field: str) -> int:
    """A memory field (VmRSS, VmHWM) of this process from /proc/self/status, in KiB."""
    with open("/proc/self/status") as fh:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", fh.read(), re.MULTILINE)
    return int(match.group(1)) if match else -1


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); ignored where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def bench_image(size: int, seed: int = 0) -> np.ndarray:
    """A size x (3/4 size) RGB test image: coloured shapes on a smooth background, mild noise."""
    import cv2

    h, w = (size * 3) // 4, size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([60 + 80 * xx / w, 80 + 60 * yy / h, np.full_like(xx, 120.0)], -1).astype(np.uint8)
    for _ in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(w // 30, w // 8))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, colour, -1)
        else:
            cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
    noise = rng.integers(-4, 5, img.shape)
    return np.clip(img.astype(np.int32) + noise, 0, 255).astype(np.uint8)


def _reference_helpers():
    """The parity test's helpers for importing / building / randomising the official model."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import test_sam_parity  # noqa: E402

    return test_sam_parity


# -------------------------------------------------------------------------------- workers --
class _Jittor:
    """Jittor side of a worker."""

    def __init__(self, config: str, weights: str) -> None:
        import uss  # noqa: F401
        import jittor as jt

        from uss.sam import SamAutomaticMaskGenerator, SamPredictor, build_sam

        jt.flags.use_cuda = jt.has_cuda
        self.model = build_sam(config, checkpoint=weights)
        self.predictor = SamPredictor(self.model)
        self.generator_cls = SamAutomaticMaskGenerator

    def encode(self, image: np.ndarray) -> None:
        """Embed one image."""
        self.predictor.set_image(image)

    def generate(self, image: np.ndarray, **kwargs) -> int:
        """Run the automatic generator; returns the number of masks."""
        return len(self.generator_cls(self.model, **kwargs).generate(image))


class _Official:
    """PyTorch (segment_anything) side of a worker."""

    def __init__(self, config: str, weights: str) -> None:
        import torch

        from uss.sam import SAM_CONFIGS

        helpers = _reference_helpers()
        self.torch = torch
        self.official = helpers.import_official()
        self.model = helpers.build_official(self.official, SAM_CONFIGS[config])
        self.model.load_state_dict(torch.load(weights))
        self.predictor = self.official.SamPredictor(self.model)

    def encode(self, image: np.ndarray) -> None:
        """Embed one image."""
        with self.torch.no_grad():
            self.predictor.set_image(image)

    def generate(self, image: np.ndarray, **kwargs) -> int:
        """Run the automatic generator; returns the number of masks."""
        with self.torch.no_grad():
            return len(self.official.SamAutomaticMaskGenerator(self.model, **kwargs).generate(image))


def run_worker(args: argparse.Namespace) -> Dict[str, float]:
    """Measure one (implementation, config, task) in this process and return the numbers."""
    impl = (_Jittor if args.impl == "jittor" else _Official)(args.config, args.weights)
    image = bench_image(args.image_size)
    out: Dict[str, float] = {}
    if args.task == "encoder":
        impl.encode(image)  # warm-up (jittor compiles kernels on first use)
        baseline = _proc_kib("VmRSS")
        _reset_peak()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            impl.encode(image)
            times.append(time.perf_counter() - start)
        out["seconds"] = float(np.median(times))
    else:
        kwargs = dict(
            points_per_side=args.points_per_side,
            points_per_batch=args.points_per_batch,
            pred_iou_thresh=args.pred_iou_thresh,
            stability_score_thresh=args.stability_thresh,
        )
        if args.warmup:  # same settings on another image: jittor compiles kernels per shape
            impl.generate(bench_image(args.image_size, seed=1), **kwargs)
        baseline = _proc_kib("VmRSS")
        _reset_peak()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out["masks"] = impl.generate(image, **kwargs)
            times.append(time.perf_counter() - start)
        out["seconds"] = float(np.median(times))
    out["peak_mib"] = _proc_kib("VmHWM") / 1024.0
    out["baseline_mib"] = baseline / 1024.0
    return out


def _spawn(argv: List[str]) -> Optional[Dict[str, float]]:
    """Run a worker subprocess and parse its JSON result (None on failure)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker"] + argv
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.stderr.write(f"worker failed ({' '.join(argv)}):\n{proc.stderr[-3000:]}\n")
    return None


# ---------------------------------------------------------------------------------- main --
def make_weights(config: str, directory: str, official: bool) -> str:
    """Write seeded random weights for config: an official-format .pth (or a jittor pickle)."""
    if official:
        import torch

        from uss.sam import SAM_CONFIGS

        helpers = _reference_helpers()
        model = helpers.build_official(helpers.import_official(), SAM_CONFIGS[config])
        helpers.randomize_weights(model, seed=0)
        path = os.path.join(directory, f"{config}.pth")
        torch.save(model.state_dict(), path)
        return path
    import uss  # noqa: F401
    import jittor as jt

    from uss.sam import build_sam

    jt.set_global_seed(0)
    path = os.path.join(directory, f"{config}.pkl")
    jt.save({k: v.numpy() for k, v in build_sam(config).state_dict().items()}, path)
    return path


def _fmt(res: Optional[Dict[str, float]], key: str, spec: str) -> str:
    """Format one number or a dash."""
    return format(res[key], spec) if res and key in res else "-"


def _ratio(a: Optional[Dict[str, float]], b: Optional[Dict[str, float]], key: str) -> str:
    """b / a formatted, or a dash."""
    if not a or not b or not a.get(key):
        return "-"
    return f"{b[key] / a[key]:.2f}x"


def main(argv: Optional[List[str]] = None) -> None:
    """Parse arguments and run the benchmark (or one worker)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="small", help="comma list of small|vit_tiny|vit_b|vit_l|vit_h")
    p.add_argument("--points-per-side", type=int, default=16)
    p.add_argument("--points-per-batch", type=int, default=64)
    p.add_argument("--pred-iou-thresh", type=float, default=0.0,
                   help="0 (default) makes both implementations upscale every mask")
    p.add_argument("--stability-thresh", type=float, default=0.95)
    p.add_argument("--image-size", type=int, default=1024, help="long side of the test image")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sweep", default="16,32,64", help="points_per_side values for the memory sweep ('' = none)")
    p.add_argument("--sweep-config", default="small")
    p.add_argument("--no-official", action="store_true", help="benchmark the Jittor port only")
    # worker-only arguments
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--impl", default="jittor", help=argparse.SUPPRESS)
    p.add_argument("--config", default="vit_tiny", help=argparse.SUPPRESS)
    p.add_argument("--weights", default="", help=argparse.SUPPRESS)
    p.add_argument("--task", default="encoder", help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(run_worker(args)), flush=True)
        return

    with_official = not args.no_official
    if with_official and any(importlib.util.find_spec(m) is None for m in ("torch", "segment_anything")):
        print("torch / segment-anything not installed: benchmarking the Jittor port only")
        with_official = False

    common = [
        "--image-size", str(args.image_size),
        "--points-per-side", str(args.points_per_side),
        "--points-per-batch", str(args.points_per_batch),
        "--pred-iou-thresh", str(args.pred_iou_thresh),
        "--stability-thresh", str(args.stability_thresh),
        "--repeats", str(args.repeats),
    ]
    configs = [CONFIG_ALIASES.get(c.strip(), c.strip()) for c in args.configs.split(",") if c.strip()]
    sweep_config = CONFIG_ALIASES.get(args.sweep_config, args.sweep_config)
    with tempfile.TemporaryDirectory(prefix="bench_sam_") as tmp:
        print(f"image {args.image_size}x{args.image_size * 3 // 4}, points_per_side {args.points_per_side}, "
              f"points_per_batch {args.points_per_batch}, thresholds iou {args.pred_iou_thresh} / "
              f"stability {args.stability_thresh}, cpu cores {os.cpu_count()}")
        header = f"{'config':9} {'task':8} {'impl':9} {'s/image':>9} {'peak MiB':>9} {'base MiB':>9} {'masks':>6}"
        print(header)
        print("-" * len(header))
        weights_cache: Dict[str, str] = {}
        for config in configs:
            weights_cache[config] = make_weights(config, tmp, with_official)
            for task in ("encoder", "amg"):
                rows = {}
                for impl in ["jittor"] + (["official"] if with_official else []):
                    res = _spawn(common + ["--impl", impl, "--config", config,
                                           "--weights", weights_cache[config], "--task", task])
                    rows[impl] = res
                    print(f"{config:9} {task:8} {impl:9} {_fmt(res, 'seconds', '9.3f')} "
                          f"{_fmt(res, 'peak_mib', '9.0f')} {_fmt(res, 'baseline_mib', '9.0f')} "
                          f"{_fmt(res, 'masks', '6d') if res and 'masks' in res else '     -'}", flush=True)
                if with_official:
                    print(f"{config:9} {task:8} {'ratio':9} official/jittor time "
                          f"{_ratio(rows['jittor'], rows['official'], 'seconds')}, peak memory "
                          f"{_ratio(rows['jittor'], rows['official'], 'peak_mib')}", flush=True)

        sweep = [int(v) for v in args.sweep.split(",") if v.strip()]
        if sweep:
            if sweep_config not in weights_cache:
                weights_cache[sweep_config] = make_weights(sweep_config, tmp, with_official)
            print(f"\nJittor generator peak memory vs points_per_side ({sweep_config}, "
                  f"points_per_batch {args.points_per_batch}):")
            for pps in sweep:
                argv_pps = list(common)
                argv_pps[argv_pps.index("--points-per-side") + 1] = str(pps)
                argv_pps[argv_pps.index("--repeats") + 1] = "1"
                argv_pps += ["--warmup", "0"]
                res = _spawn(argv_pps + ["--impl", "jittor", "--config", sweep_config,
                                         "--weights", weights_cache[sweep_config], "--task", "amg"])
                print(f"  points_per_side {pps:3d} ({pps * pps:5d} points): peak {_fmt(res, 'peak_mib', '.0f')} MiB "
                      f"(baseline {_fmt(res, 'baseline_mib', '.0f')} MiB), {_fmt(res, 'seconds', '.2f')} s, "
                      f"{res.get('masks', '-') if res else '-'} masks", flush=True)


if __name__ == "__main__":
    main()
