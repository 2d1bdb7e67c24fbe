"""PASS speed on this machine (a benchmark, not a test): prints numbers, asserts nothing.

  .venv/bin/python benchmarks/bench_pass.py [--archs resnet18 resnet50] [--iters 6] [--runs runs/demo]

- pretraining throughput (images/s) at the demo's multi-crop setting, per architecture;
- inference throughput (images/s) of the pixel-attention labeler at the demo's short side;
- loader throughput: how many images/s the multi-crop loader delivers alone, vs what training consumes;
- the share of training time spent waiting for data;
- each demo stage's wall time, read from <runs>/timings.tsv when the demo has run.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import uss  # noqa: E402,F401

ARGS_DEMO = ["--nmb-crops", "2", "4", "--size-crops", "96", "48", "--min-scale-crops", "0.3", "0.1",
             "--max-scale-crops", "1", "0.3", "--nmb-prototypes", "50", "--queue-length", "0",
             "--freeze-prototypes-niters", "0", "--batch-size", "32", "--workers", "2", "--hidden-mlp", "512"]


def loader_throughput(data: str, batches: int) -> float:
    """Images/s the multi-crop loader delivers with 2 workers and nothing else running."""
    from uss.data.multicrop import MultiCropDataset
    from uss.data.split import ImageNetSSplit

    dataset = MultiCropDataset(ImageNetSSplit(data, "train"), [96, 48], [2, 4], [0.3, 0.1], [1, 0.3],
                               batch_size=32, num_workers=2)
    iterator = iter(dataset)
    next(iterator)  # worker start-up
    start = time.time()
    for _ in range(batches):
        next(iterator)
    return batches * 32 / (time.time() - start)


def train_throughput(data: str, arch: str, iters: int) -> dict:
    """Steady-state pretraining images/s and data-wait share (first epoch = compile, measured on the second)."""
    import json

    from uss.stages.pretrain import main

    with tempfile.TemporaryDirectory() as dump:
        common = ["--data", data, "--arch", arch, "--dump-path", dump, "--max-iters-per-epoch", str(iters)]
        main(common + ARGS_DEMO + ["--epochs", "2"])
        with open(os.path.join(dump, "log.jsonl")) as handle:
            last = [json.loads(line) for line in handle][-1]
    return {"images_per_s": last["images_per_s"], "data_wait_share": last["data_wait_share"]}


def inference_throughput(arch: str, short_side: int, images: int) -> float:
    """Images/s of the per-pixel labeler (forward + cosine to centroids + upsampling) on 96 px images."""
    from uss.models import build_model
    from uss.labeling.labelers import PixelLabeler

    model = build_model(arch, "pixel_attention", n_prototypes=50, hidden_dim=512)
    model.eval()
    labeler = PixelLabeler(model, np.random.default_rng(0).normal(size=(10, model.backbone.out_channels[-1])),
                           short_side)
    image = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    labeler(image)
    start = time.time()
    for _ in range(images):
        labeler(image)
    return images / (time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/toy")
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    parser.add_argument("--iters", type=int, default=6, help="training iterations measured per architecture")
    parser.add_argument("--runs", default="runs/demo", help="demo output folder with timings.tsv")
    args = parser.parse_args()
    from uss.data.toy import generate

    if not os.path.isfile(os.path.join(args.data, "toy.json")) and not os.path.isdir(args.data):
        generate(args.data, progress=False)
    import jittor as jt

    jt.flags.use_cuda = jt.has_cuda
    print(f"device: {'cuda' if jt.flags.use_cuda else 'cpu'}, {os.cpu_count()} cores")
    loader = loader_throughput(args.data, 8)
    print(f"multi-crop loader alone (2 workers, 2x96 + 4x48 crops): {loader:.1f} images/s")
    for arch in args.archs:
        stats = train_throughput(args.data, arch, args.iters)
        print(f"{arch} pretraining (2x96 + 4x48 crops, batch 32): {stats['images_per_s']:.1f} images/s, "
              f"data wait {100 * stats['data_wait_share']:.1f}% of step time, "
              f"loader / training = {loader / stats['images_per_s']:.1f}x")
        print(f"{arch} per-pixel labelling at short side 96: {inference_throughput(arch, 96, 40):.1f} images/s")
    timings = os.path.join(args.runs, "timings.tsv")
    if os.path.isfile(timings):
        print(f"demo stage wall times ({timings}):")
        with open(timings) as handle:
            for line in handle:
                name, seconds = line.rstrip("\n").split("\t")
                print(f"  {name:<28} {float(seconds) / 60:6.1f} min")
    else:
        print(f"(no {timings}: run bash demo.sh for the per-stage wall times)")


if __name__ == "__main__":
    main()
