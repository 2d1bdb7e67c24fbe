"""Run by tests/test_distributed.py under `mpirun -np 2`, and alone with --single for one-process references.

Under MPI every rank writes what it saw into --out; the test compares the ranks' files:
  rank{r}.json            batches of MultiCropDataset over three epochs (sample indices + crop checksums)
  sinkhorn_rank{r}.npz    this rank's score matrix and the Sinkhorn codes computed with the MPI all-reduce
  init_rank{r}.npz        PASS model parameters right after the start-of-training broadcast
  params_rank{r}_e{n}.npz parameters after epoch n of the real pretraining stage (one optimizer step per epoch)
With --single: reference.json (each sample's crop checksum, computed directly) and init_single.npz /
params_single_e{n}.npz from the same training run in one process on the full batch.
"""
import argparse
import json
import os
import sys
import traceback

import uss  # noqa: F401  (jittor environment defaults; before jittor)
import jittor as jt
import numpy as np

from uss import distributed
from uss.data.multicrop import MultiCropDataset
from uss.data.split import ImageNetSSplit
from uss.losses import sinkhorn
from uss.stages import pretrain
from uss.training import loop

BATCH = 8  # global batch; 4 per rank with two ranks
N_PROTOTYPES = 10


class IndexedCrops(MultiCropDataset):
    """MultiCropDataset whose items are (sampler index, float64 checksum of all crops and grids)."""

    def __getitem__(self, index):
        crops, grid_q, grid_k, _ = super().__getitem__(index)
        checksum = sum(float(np.asarray(c, np.float64).sum()) for c in crops)
        checksum += float(np.asarray(grid_q, np.float64).sum()) + 2.0 * float(np.asarray(grid_k, np.float64).sum())
        return np.array([index], np.int64), np.array([checksum], np.float64)


def indexed_crops(data: str, workers: int) -> IndexedCrops:
    return IndexedCrops(ImageNetSSplit(data, "train"), [32, 16], [2, 1], [0.3, 0.1], [1.0, 0.3], seed=11,
                        grid_size=3, batch_size=BATCH, num_workers=workers)


def dataset_batches(data: str, workers: int) -> list:
    """Three epochs of the multi-crop loader, the middle one stopped after one batch."""
    dataset = indexed_crops(data, workers)
    epochs = []
    for epoch, limit in ((0, None), (1, 1), (2, None)):
        dataset.set_epoch(epoch)
        batches = []
        for step, (index, checksum) in enumerate(dataset):
            if limit is not None and step >= limit:
                break
            batches.append({"index": index.numpy().ravel().tolist(), "checksum": checksum.numpy().ravel().tolist()})
        epochs.append({"epoch": epoch, "batches": batches})
    dataset.stop_workers()
    return epochs


def sinkhorn_codes(out: str, rank: int) -> None:
    """Scores whose two halves differ in distribution, so a per-rank (not all-reduced) Sinkhorn would differ."""
    rng = np.random.default_rng(100 + rank)
    scores = rng.uniform(-1.0, 1.0, size=(BATCH // 2, N_PROTOTYPES)).astype(np.float32)
    scores[:, rank * 3: rank * 3 + 3] += 0.5  # rank r's samples favour prototypes 3r..3r+2
    codes = sinkhorn(jt.array(scores), epsilon=0.05, n_iters=3).numpy()
    np.savez(os.path.join(out, f"sinkhorn_rank{rank}.npz"), scores=scores, codes=codes)


def batchnorm_one_sample(out: str, rank: int) -> None:
    """Synchronised BatchNorm with one sample per rank, (1, C) and (1, C, H, W): forward, input and parameter
    gradients and running statistics; the global batch is BATCHNORM_SAMPLES' two rows."""
    from uss.models.batchnorm import BatchNorm

    results = {}
    for name, shape in (("bn1d", (2, 5)), ("bn2d", (2, 3, 2, 2))):
        x, weight, bias, dy = batchnorm_samples(shape)
        bn = BatchNorm(shape[1])
        bn.weight.assign(weight)
        bn.bias.assign(bias)
        xv = jt.array(x[rank:rank + 1])
        y = bn(xv, relu=name == "bn2d")
        dx, dweight, dbias = jt.grad((y * jt.array(dy[rank:rank + 1])).sum(), [xv, bn.weight, bn.bias])
        results.update({f"{name}_y": y.numpy(), f"{name}_dx": dx.numpy(), f"{name}_dweight": dweight.numpy(),
                        f"{name}_dbias": dbias.numpy(), f"{name}_running_var": bn.running_var.numpy()})
    np.savez(os.path.join(out, f"batchnorm_rank{rank}.npz"), **results)


def batchnorm_samples(shape: tuple) -> tuple:
    """x (mean 3), weight, bias and output gradient of the one-sample-per-rank BatchNorm check."""
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) + 3.0).astype(np.float32)
    weight = rng.uniform(0.5, 1.5, shape[1]).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, shape[1]).astype(np.float32)
    return x, weight, bias, rng.standard_normal(shape).astype(np.float32)


def reference_checksums(out: str, data: str, epochs: int = 3) -> None:
    """Every sample's checksum, computed directly in one process (sampler index -> checksum)."""
    dataset = indexed_crops(data, 0)
    size = len(dataset.split)
    sums = {str(i): float(dataset[i][1][0]) for i in range(epochs * size)}
    with open(os.path.join(out, "reference.json"), "w") as handle:
        json.dump({"size": size, "seed": dataset.sampler.seed, "checksum": sums}, handle)


def train(out: str, data: str, epochs: int, workers: int, tag: str) -> None:
    """`epochs` epochs of one optimizer step each of the real pretraining stage; dumps this process's
    parameters after the initial broadcast and whenever the stage saves its checkpoint."""
    def state(model):
        return {k: v.numpy() for k, v in model.state_dict().items()}

    broadcast = distributed.broadcast_parameters
    save = loop.save_training_state

    def broadcast_and_dump(module, root=0):
        broadcast(module, root)
        np.savez(os.path.join(out, f"init_{tag}.npz"), **state(module))

    def dump_and_save(dump_dir, epoch, model, optimizer, args, **extra):
        np.savez(os.path.join(out, f"params_{tag}_e{epoch}.npz"), **state(model))
        save(dump_dir, epoch, model, optimizer, args, **extra)

    distributed.broadcast_parameters = broadcast_and_dump
    loop.save_training_state = dump_and_save
    try:
        pretrain.main([
            "--data", data, "--dump-path", os.path.join(out, f"dump_{'single' if tag == 'single' else 'mpi'}"),
            "--arch", "resnet18", "--size-crops", "32", "16", "--nmb-crops", "2", "2",
            "--min-scale-crops", "0.3", "0.1", "--max-scale-crops", "1.0", "0.3",
            "--batch-size", str(BATCH), "--workers", str(workers), "--epochs", str(epochs),
            "--max-iters-per-epoch", "1", "--nmb-prototypes", str(N_PROTOTYPES), "--hidden-mlp", "32",
            "--freeze-prototypes-niters", "1", "--epoch-queue-starts", "0", "--queue-length", "16",
            "--grid-size", "3", "--seed", "5", "--base-lr", "0.1", "--final-lr", "0.01",
        ])
    finally:
        distributed.broadcast_parameters = broadcast
        loop.save_training_state = save


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of one step each")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--single", action="store_true", help="one process, no MPI: only the training reference")
    args = parser.parse_args()
    if args.single:
        assert not jt.in_mpi, "--single must run without mpirun"
        reference_checksums(args.out, args.data)
        train(args.out, args.data, args.epochs, args.workers, "single")
        return
    rank, world = distributed.rank(), distributed.world_size()
    if not jt.in_mpi or world != 2:
        raise SystemExit(f"expected 2 MPI ranks, got in_mpi={jt.in_mpi} world_size={world}")
    result = {"rank": rank, "world_size": world, "batches": dataset_batches(args.data, args.workers)}
    sinkhorn_codes(args.out, rank)
    batchnorm_one_sample(args.out, rank)
    train(args.out, args.data, args.epochs, args.workers, f"rank{rank}")
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as stop:
        if stop.code not in (0, None):
            print(stop, file=sys.stderr, flush=True)
            os._exit(stop.code if isinstance(stop.code, int) else 1)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        # A plain exit would leave the other rank blocked in a collective; non-zero makes mpirun end the job.
        os._exit(1)
    sys.stdout.flush()
