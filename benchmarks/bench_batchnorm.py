"""BatchNorm speed (a benchmark, not a test): the project's BatchNorm against jittor's, and PyTorch's where installed.

  .venv/bin/python benchmarks/bench_batchnorm.py [--arch resnet18] [--batch 16] [--steps 4] [--repeats 2]

Prints
- one BatchNorm2d + ReLU layer, forward and backward, on a 32 x 64 x 56 x 56 batch (ResNet-18's first stage);
- the ResNet backbone alone, forward and backward, on PASS's S50 crops (2 x 224 + 6 x 96 of a batch of 16 by
  default), also in PyTorch (experiments/swav_torch_ref.py's ResNet) where torch is installed;
- one PASS pretraining step (forward, the three losses, LARC step) of the whole model on the same crops, with
  every BatchNorm of the model the project's or jittor's.
Each timing is the median over --steps steps after one warm-up step (which compiles), measured --repeats times
alternating the implementations, so a busy machine slows both alike.
"""
import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Sequence

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import uss  # noqa: E402,F401


def jittor_batchnorm():
    """jittor's BatchNorm, taking the project's `relu=True` as a ReLU after it."""
    from jittor import nn

    class JittorBatchNorm(nn.BatchNorm):
        def execute(self, x, relu: bool = False):
            y = super().execute(x)
            return nn.relu(y) if relu else y
    return JittorBatchNorm


def swap_batchnorms(module, make: Callable) -> int:
    """Replace every project BatchNorm inside `module` by make(num_features, eps, momentum, affine); returns
    how many."""
    from jittor import nn

    from uss.models.batchnorm import BatchNorm

    swapped = 0
    for parent in module.modules():
        children = parent.layers if isinstance(parent, nn.Sequential) else parent.__dict__
        for name, child in list(children.items()):
            if isinstance(child, BatchNorm):
                new = make(child.num_features, eps=child.eps, momentum=child.momentum, affine=child.affine)
                if child.affine:
                    new.weight.assign(child.weight)
                    new.bias.assign(child.bias)
                children[name] = new
                swapped += 1
    return swapped


def median_seconds(step: Callable[[], None], steps: int) -> float:
    step()  # compile
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def layer_step(implementation: str, x: np.ndarray, dy: np.ndarray) -> Callable[[], None]:
    """One BatchNorm2d + ReLU forward and backward (input, weight and bias gradients) in `implementation`."""
    channels = x.shape[1]
    if implementation == "pytorch":
        import torch

        layer = torch.nn.BatchNorm2d(channels)
        xt, dyt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

        def step() -> None:
            xt.grad = None
            torch.relu(layer(xt)).backward(dyt)
        return step
    import jittor as jt

    from uss.models.batchnorm import BatchNorm

    layer = (BatchNorm if implementation == "project" else jittor_batchnorm())(channels)
    xv, dyv = jt.array(x), jt.array(dy)

    def step() -> None:
        out = layer(xv, relu=True)
        jt.sync(jt.grad((out * dyv).sum(), [xv, layer.weight, layer.bias]) + [layer.running_var])
    return step


def pass_step(implementation: str, arch: str, batch: int, sizes: List[int], counts: List[int],
              backbone: Sequence[str] = ()) -> Callable[[], None]:
    """One PASS pretraining step on fixed random crops, the model's BatchNorms from `implementation`."""
    import jittor as jt

    from uss import options
    from uss.data.multicrop import overlap_grids
    from uss.stages.pretrain import build, build_parser
    from uss.training.optim import build_optimizer
    from uss.training.swav_task import pass_objective

    args = build_parser().parse_args(
        ["--data", "-", "--dump-path", "-", "--arch", arch, "--batch-size", str(batch), "--larc", "0.001",
         "--size-crops", *map(str, sizes), "--nmb-crops", *map(str, counts), "--nmb-prototypes", "500", *backbone])
    jt.set_global_seed(0)
    model = build(args)
    if implementation == "jittor":
        swap_batchnorms(model, jittor_batchnorm())
    model.train()
    optimizer = build_optimizer(model.parameters(), options.optimiser_settings(args))
    rng = np.random.default_rng(0)
    crops = [jt.array(rng.normal(size=(batch, 3, size, size)).astype(np.float32))
             for size, count in zip(sizes, counts) for _ in range(count)]
    grids = [overlap_grids((0, 0, 200, 200), False, (40, 30, 180, 160), True, size=args.grid_size)
             for _ in range(batch)]
    grid_q = jt.array(np.stack([g[0] for g in grids]))
    grid_k = jt.array(np.stack([g[1] for g in grids]))

    def step() -> None:
        loss, _ = pass_objective(options.swav_loss(args), model, crops, grid_q, grid_k, batch, None)
        optimizer.step(loss)
        jt.sync_all()
    return step


def backbone_step(implementation: str, arch: str, batch: int, sizes: List[int],
                  counts: List[int]) -> Callable[[], None]:
    """Forward and backward of the ResNet backbone alone on the crops (one batch per resolution, as PASS groups
    them), loss the mean of C5: the part of the PASS step that PyTorch can run without the PASS heads."""
    rng = np.random.default_rng(0)
    groups = [rng.normal(size=(batch * count, 3, size, size)).astype(np.float32) for size, count in zip(sizes, counts)]
    if implementation == "pytorch":
        import importlib.util

        import torch

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments", "swav_torch_ref.py")
        spec = importlib.util.spec_from_file_location("swav_torch_ref", path)
        reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference)
        depth = {"resnet18": (reference.BasicBlock, [2, 2, 2, 2]), "resnet50": (reference.Bottleneck, [3, 4, 6, 3])}
        model = reference.ResNet(*depth[arch]).train()
        tensors = [torch.from_numpy(g) for g in groups]

        def step() -> None:
            model.zero_grad()
            sum(model(t).mean() for t in tensors).backward()
        return step
    import jittor as jt

    from uss.models import build_resnet
    from uss.models.pass_model import arch_depth

    model = build_resnet(arch_depth(arch))
    if implementation == "jittor":
        swap_batchnorms(model, jittor_batchnorm())
    model.train()
    params = model.parameters()
    arrays = [jt.array(g) for g in groups]

    def step() -> None:
        loss = sum(model(a)[-1].mean() for a in arrays)
        jt.sync(jt.grad(loss, params))
    return step


def compare(name: str, builders: Dict[str, Callable[[], Callable[[], None]]], steps: int, repeats: int) -> None:
    steppers = {impl: build() for impl, build in builders.items()}
    times: Dict[str, List[float]] = {impl: [] for impl in steppers}
    for _ in range(repeats):
        for impl, step in steppers.items():
            times[impl].append(median_seconds(step, steps))
    best = {impl: min(t) for impl, t in times.items()}
    cells = ", ".join(f"{impl} {1000 * s:.0f} ms" for impl, s in best.items())
    ratio = best["jittor"] / best["project"]
    print(f"{name}: {cells}; the project's is {ratio:.2f}x jittor's speed"
          + (f", {best['pytorch'] / best['project']:.2f}x PyTorch's" if "pytorch" in best else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--batch", type=int, default=16, help="images per PASS step")
    parser.add_argument("--size-crops", type=int, nargs="+", default=[224, 96])
    parser.add_argument("--nmb-crops", type=int, nargs="+", default=[2, 6])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--backbone", nargs=argparse.REMAINDER, default=[],
                        help="backbone flags of the PASS step, last (e.g. --backbone --width 0.25 --stem small)")
    parser.add_argument("--skip-layer", action="store_true", help="only the model-level comparisons")
    args = parser.parse_args()
    import jittor as jt

    jt.flags.use_cuda = jt.has_cuda
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        implementations = ["project", "jittor"] + ([] if jt.flags.use_cuda else ["pytorch"])
    except ImportError:
        implementations = ["project", "jittor"]
    print(f"device: {'cuda' if jt.flags.use_cuda else 'cpu'}, {os.cpu_count()} cores", flush=True)
    if not args.skip_layer:
        rng = np.random.default_rng(0)
        x = (rng.normal(size=(32, 64, 56, 56)) + 2.0).astype(np.float32)
        dy = rng.normal(size=x.shape).astype(np.float32)
        compare("BatchNorm2d + ReLU forward and backward, 32 x 64 x 56 x 56",
                {impl: (lambda impl=impl: layer_step(impl, x, dy)) for impl in implementations},
                args.steps, args.repeats)
    crops = " + ".join(f"{n} x {s}" for n, s in zip(args.nmb_crops, args.size_crops))
    if args.backbone:  # the backbone-only comparison has PyTorch's ImageNet ResNet only
        compare(f"PASS step, {args.arch} {' '.join(args.backbone)}, batch {args.batch}, crops {crops}",
                {impl: (lambda impl=impl: pass_step(impl, args.arch, args.batch, args.size_crops, args.nmb_crops,
                                                    args.backbone)) for impl in ("project", "jittor")},
                args.steps, args.repeats)
        return
    compare(f"{args.arch} backbone forward + backward, crops {crops} of batch {args.batch}",
            {impl: (lambda impl=impl: backbone_step(impl, args.arch, args.batch, args.size_crops, args.nmb_crops))
             for impl in implementations}, args.steps, args.repeats)
    compare(f"PASS step, {args.arch}, batch {args.batch}, crops {crops}",
            {impl: (lambda impl=impl: pass_step(impl, args.arch, args.batch, args.size_crops, args.nmb_crops))
             for impl in ("project", "jittor")}, args.steps, args.repeats)


if __name__ == "__main__":
    main()
