"""The training loop every training stage runs: set-up, resume, epochs, per-epoch checkpoints and records.

A stage gives `fit` a `TrainingTask`: its model, trainable parameters, dataset and one optimisation step, plus
the hooks it needs (pretraining's feature queue, fine-tuning's backbone load and confusion matrix). `fit` owns
what all stages share, in this order: argument checks, optimiser, resume from <dump>/checkpoint.safetensors (a
run whose checkpoint already has --epochs epochs is complete and returns at once), the stage's start hook, the
start-of-training broadcast, data and learning-rate schedule, then per epoch the iterations (timing, tqdm, mean
step values), the checkpoint and a record in <dump>/log.jsonl. All data randomness derives from (seed, epoch,
image), so a resumed run equals an uninterrupted one.

What it needs comes as a `TrainingRun` (the training stages make one from their command line,
`uss.options.training_run`).
"""
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
from tqdm import tqdm

from uss import distributed
from uss.data.dataset import BadFileGuard
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.checkpoints.native import checkpoint_path, resume_training_state, save_training_state
from uss.training.optim import Optimisation, build_optimizer, set_lr
from uss.training.runner import StageLog, setup_device
from uss.training.schedule import build_schedule

__all__ = ["TrainingRun", "TrainingTask", "fit", "iterations_per_epoch", "local_batch_size"]


@dataclass(frozen=True)
class TrainingRun:
    """Where a training stage reads and writes, how long it trains and how it optimises.

    data / split: the images (`ImageNetSSplit`); dump_path: the checkpoint, log.jsonl and stage files; epochs: the
    total to reach (0 saves the initial weights); batch_size: global, split across MPI ranks; max_iters_per_epoch:
    cut every epoch short (0 = full; a debug setting); skip_bad_files: count and list undecodable images instead of
    stopping; arguments: saved with every checkpoint (the later stages rebuild the model from them).
    """
    data: str
    split: str
    dump_path: str
    epochs: int
    batch_size: int
    optimisation: Optimisation = field(default_factory=Optimisation)
    max_iters_per_epoch: int = 0
    skip_bad_files: bool = False
    arguments: Mapping[str, Any] = field(default_factory=dict)


class TrainingTask:
    """What a training stage hands the loop. Subclasses implement `dataset`, `step` and `describe`; the other
    hooks do nothing unless overridden."""

    def __init__(self, name: str, model: Any, parameters: Optional[Iterable] = None):
        self.name = name  # log prefix, record "stage" and progress-bar label
        self.model = model
        self.parameters = model.parameters() if parameters is None else parameters

    def dataset(self, split: ImageNetSSplit) -> Any:
        """The epoch-aware loader of the split: `set_epoch(epoch)`; batches whose last element lists bad files."""
        raise NotImplementedError

    def step(self, batch: Sequence, iteration: int, optimizer: Any) -> Dict[str, float]:
        """One optimisation step on a batch (without its bad-file list): {"loss": ..., other parts...}, floats."""
        raise NotImplementedError

    def describe(self, split: ImageNetSSplit) -> str:
        """What trains on what, for the start line (`resnet18 on 32 images of data/train`)."""
        raise NotImplementedError

    def initialise(self) -> None:
        """After the device is chosen, before the optimiser is built (e.g. draw the initial weights)."""

    def start(self, log: StageLog, start_epoch: int) -> None:
        """Once, after resuming, when epochs remain (before the broadcast of the parameters)."""

    def begin_epoch(self, epoch: int) -> None:
        """Before the epoch's first iteration (0-based epoch)."""

    def end_epoch(self, epoch: int, means: Dict[str, float], last_lr: float) -> Dict[str, Any]:
        """After the epoch's iterations, before its checkpoint: extra fields for the epoch's record."""
        return {}

    def saved(self, epoch: int) -> None:
        """After the epoch's checkpoint is written (e.g. state kept in files of its own)."""

    def epoch_note(self, stats: Dict[str, Any]) -> str:
        """The stage's part of the epoch line, right after `loss X`."""
        return ""


def local_batch_size(batch_size: int, world: int) -> int:
    """This rank's share of the global batch; InputError when the ranks cannot split it evenly."""
    if batch_size % world:
        raise InputError(f"--batch-size {batch_size} must be divisible by the number of ranks {world}")
    return batch_size // world


def iterations_per_epoch(batch_size: int, split: ImageNetSSplit, max_iters: int = 0) -> int:
    """Full batches per epoch (at most max_iters when set); InputError below one batch."""
    iterations = len(split) // batch_size
    if iterations == 0:
        raise InputError(f"{split.image_dir}: {len(split)} images is fewer than one batch of {batch_size}")
    if max_iters:
        iterations = min(iterations, max_iters)
    return iterations


def fit(task: TrainingTask, run: TrainingRun) -> str:
    """Run (or resume) the task's training to run.epochs epochs; returns the checkpoint path."""
    os.makedirs(run.dump_path, exist_ok=True)
    log = StageLog(task.name, run.dump_path)
    device = setup_device()
    world = distributed.world_size()
    local_batch_size(run.batch_size, world)
    path = checkpoint_path(run.dump_path)

    task.initialise()
    optimizer = build_optimizer(task.parameters, run.optimisation)
    start_epoch, _ = resume_training_state(run.dump_path, task.model, optimizer)
    if run.epochs == 0 and not os.path.isfile(path):  # the initial weights: the random-init reference rows
        distributed.broadcast_parameters(task.model)
        save_training_state(run.dump_path, 0, task.model, optimizer, run.arguments)
        log.info(f"--epochs 0: saved the initial weights to {path}")
        return path
    if start_epoch >= run.epochs:
        log.info(f"complete: {path} has {start_epoch}/{run.epochs} epochs")
        return path
    task.start(log, start_epoch)
    distributed.broadcast_parameters(task.model)

    split = ImageNetSSplit(run.data, run.split)
    iterations = iterations_per_epoch(run.batch_size, split, run.max_iters_per_epoch)
    dataset = task.dataset(split)
    lr_schedule = build_schedule(run.optimisation, run.epochs, iterations)
    log.info(f"{task.describe(split)} ({device}, {world} rank(s), batch {run.batch_size}, {iterations} it/epoch), "
             f"epochs {start_epoch}->{run.epochs}")

    guard = BadFileGuard(skip_bad=run.skip_bad_files, stage=task.name)
    for epoch in range(start_epoch, run.epochs):
        task.begin_epoch(epoch)
        dataset.set_epoch(epoch)
        task.model.train()
        stats = run_epoch(task, run, optimizer, dataset, guard, lr_schedule, epoch, iterations)
        save_training_state(run.dump_path, epoch + 1, task.model, optimizer, run.arguments)
        task.saved(epoch)
        log.record({"stage": task.name, "epoch": epoch + 1, **stats})
        log.info(f"epoch {epoch + 1}/{run.epochs}: loss {stats['loss']:.4f}{task.epoch_note(stats)}, "
                 f"{stats['images_per_s']:.1f} img/s, data wait {100 * stats['data_wait_share']:.0f}%")
    guard.report()
    log.info(f"done in {log.elapsed():.0f}s: {path}")
    return path


def run_epoch(task: TrainingTask, run: TrainingRun, optimizer: Any, dataset: Any, guard: BadFileGuard,
              lr_schedule: np.ndarray, epoch: int, iterations: int) -> Dict[str, Any]:
    """One pass over the data: mean step values, the task's extras, throughput and the share of time waiting for
    data."""
    totals: Dict[str, float] = {"loss": 0.0}
    wait = compute = 0.0
    steps = 0
    bar = tqdm(total=iterations, desc=f"{task.name} epoch {epoch + 1}/{run.epochs}", unit="it",
               disable=not distributed.is_main_process(), leave=False)
    tick = time.time()
    for index, batch in enumerate(dataset):
        if index >= iterations:
            break
        guard.check(batch[-1])
        loaded = time.time()
        iteration = epoch * iterations + index
        set_lr(optimizer, lr_schedule[iteration])
        for key, value in task.step(batch[:-1], iteration, optimizer).items():
            totals[key] = totals.get(key, 0.0) + value
        steps += 1
        done = time.time()
        wait += loaded - tick
        compute += done - loaded
        tick = done
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss'] / steps:.3f}", img_s=f"{steps * run.batch_size / (wait + compute):.1f}")
    bar.close()
    means = {key: value / max(steps, 1) for key, value in totals.items()}
    last_lr = float(lr_schedule[min(epoch * iterations + max(steps - 1, 0), len(lr_schedule) - 1)])
    extra = task.end_epoch(epoch, means, last_lr)
    elapsed = max(wait + compute, 1e-9)
    return {**means, **extra, "iterations": steps, "images_per_s": steps * run.batch_size / elapsed,
            "data_wait_share": wait / elapsed, "seconds": elapsed}
