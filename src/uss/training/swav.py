"""The SwAV-style training task of pretraining and pixel attention: multi-crop data, the feature queue (kept
in <dump>/queue_rank<r>.safetensors) and prototypes frozen for the first iterations; the objective is the stage's."""
import argparse
import os
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import jittor as jt

from uss import distributed
from uss.data.multicrop import MultiCropDataset
from uss.data.split import ImageNetSSplit
from uss.losses.swav import EmbeddingQueue
from uss.training.checkpoint import existing_checkpoint, load_checkpoint, save_checkpoint
from uss.training.loop import TrainingTask
from uss.training.runner import StageLog

# (args, model, crops, grid_q, grid_k, local batch, queue) -> (loss, float parts): see uss.losses.objectives
Objective = Callable[..., Tuple[jt.Var, Dict[str, float]]]


def set_trainable(params: Iterable[jt.Var], trainable: bool) -> None:
    """start_grad() / stop_grad() the parameters whose state differs (start_grad detaches: call it only on a change)."""
    for p in params:
        if trainable and p.is_stop_grad():
            p.start_grad()
        elif not trainable and not p.is_stop_grad():
            p.stop_grad()


class SwAVTask(TrainingTask):
    """Multi-crop SwAV training of `parameters` of `model` (a PASSModel or PixelAttentionModel) on `objective`."""

    def __init__(self, name: str, args: argparse.Namespace, model: Any, parameters: Iterable, objective: Objective):
        super().__init__(name, args, model, parameters)
        self.objective = objective
        self.world = distributed.world_size()
        self.queue: Optional[EmbeddingQueue] = None
        self.queue_length = args.queue_length - args.queue_length % args.batch_size
        self.queue_file = os.path.join(args.dump_path, f"queue_rank{distributed.rank()}.safetensors")
        self.prototype_params: list = []

    def initialise(self) -> None:
        # Draw the initial weights before the broadcast joins the graph: jittor's random init is lazy and draws in
        # execution order, so an MPI run would otherwise start from other weights than a one-process run.
        jt.sync(self.model.parameters())

    def _new_queue(self) -> EmbeddingQueue:
        return EmbeddingQueue(len(self.args.crops_for_assign), self.queue_length // self.world, self.args.feat_dim)

    def start(self, log: StageLog, start_epoch: int) -> None:
        saved_queue = existing_checkpoint(self.queue_file)
        if self.queue_length > 0 and saved_queue is not None and start_epoch > 0:
            self.queue = self._new_queue()
            self.queue.load_state_dict(load_checkpoint(saved_queue))
        self.prototype_params = [p for name, p in self.model.named_parameters() if name.startswith("prototypes")]

    def dataset(self, split: ImageNetSSplit) -> MultiCropDataset:
        args = self.args
        return MultiCropDataset(split, args.size_crops, args.nmb_crops, args.min_scale_crops, args.max_scale_crops,
                                seed=args.seed, grid_size=args.grid_size, batch_size=args.batch_size,
                                num_workers=args.workers, blur_sigma=args.blur_sigma,
                                color_strength=args.color_strength)

    def describe(self, split: ImageNetSSplit) -> str:
        return f"{self.args.arch} on {len(split)} images of {split.image_dir}"

    def begin_epoch(self, epoch: int) -> None:
        if self.queue is None and self.queue_length > 0 and epoch >= self.args.epoch_queue_starts:
            self.queue = self._new_queue()

    def step(self, batch: Sequence, iteration: int, optimizer: Any) -> Dict[str, float]:
        crops, grid_q, grid_k = batch
        # Prototypes stay fixed for the first iterations (SwAV), then train with the rest. Set this before the
        # forward pass and only on a change: jittor's start_grad() swaps in a detached copy of the variable, so
        # after the forward (or on every step) the graph keeps the old one and the prototypes get no gradient.
        set_trainable(self.prototype_params, iteration >= self.args.freeze_prototypes_niters)
        self.model.prototypes.normalize_prototypes()
        # Evaluate the normalised prototypes now: left lazy, jittor fuses the normalisation into the forward
        # differently after a resume than mid-run (rounding then differs), breaking exact resumption.
        self.model.prototypes.weight.sync()
        loss, parts = self.objective(self.args, self.model, crops, grid_q, grid_k,
                                     self.args.batch_size // self.world, self.queue)
        optimizer.step(loss)
        return {"loss": loss.item(), **parts}

    def end_epoch(self, epoch: int, means: Dict[str, float], last_lr: float) -> Dict[str, Any]:
        set_trainable(self.prototype_params, True)
        return {"parts": sorted(k for k in means if k != "loss")}

    def saved(self, epoch: int) -> None:
        if self.queue is not None:
            save_checkpoint(self.queue_file, self.queue.state_dict())

    def epoch_note(self, stats: Dict[str, Any]) -> str:
        return " (" + ", ".join(f"{k} {v:.4f}" for k, v in stats.items() if k in stats["parts"]) + ")"
