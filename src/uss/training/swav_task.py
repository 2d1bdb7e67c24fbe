"""The SwAV-style training of pretraining and pixel attention, one batch read top to bottom here: `SwAVTask.step`
calls the stage's objective, `pass_objective` (PASS's three losses: SwAV swapped prediction, deep-to-shallow,
pixel-to-pixel) or `attention_objective` (SwAV on attention-pooled embeddings). The task also holds the
multi-crop data, the feature queue (kept in <dump>/queue_rank<r>.safetensors) and the prototypes frozen for the
first iterations. The loss terms themselves: uss.losses.swav and uss.losses.pixel."""
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import jittor as jt
import numpy as np

from uss import distributed
from uss.checkpoints.native import existing_checkpoint, load_checkpoint, save_checkpoint
from uss.data.multicrop import MultiCropDataset
from uss.data.split import ImageNetSSplit
from uss.losses.pixel import pixel_to_pixel_loss
from uss.losses.swav import (EmbeddingQueue, combine_pass_losses, deep_to_shallow_loss, swapped_prediction_loss,
                             swav_codes)
from uss.training.loop import TrainingTask
from uss.training.runner import StageLog


@dataclass(frozen=True)
class SwAVLoss:
    """The SwAV loss settings (defaults: PASS's main_pretrain.py, as uss.options.swav).

    crops_for_assign: crops whose codes are computed and predicted from every other crop; epsilon and
    sinkhorn_iterations: Sinkhorn-Knopp's entropy weight and iterations; temperature: of the prototype scores;
    weights: loss weights of the SwAV term, then one per deep-to-shallow head (pretraining only).
    """
    crops_for_assign: Tuple[int, ...] = (0, 1)
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3
    temperature: float = 0.1
    weights: Tuple[float, ...] = (1.0, 1.0)


def pass_objective(loss: SwAVLoss, model, crops: Sequence[jt.Var], grid_q: jt.Var, grid_k: jt.Var, local_batch: int,
                   queue: Optional[EmbeddingQueue]) -> Tuple[jt.Var, Dict[str, float]]:
    """PASS pretraining on one multi-crop batch: SwAV swapped prediction + deep-to-shallow + pixel-to-pixel, weighted
    by loss.weights. Returns the total and its parts as floats."""
    out = model(list(crops), grid_q, grid_k)
    codes = swav_codes(out.scores, out.embedding, model.prototypes.weight, local_batch, loss.crops_for_assign,
                       queue, loss.epsilon, loss.sinkhorn_iterations)
    loss_swav = swapped_prediction_loss(out.scores, codes, local_batch, loss.crops_for_assign, loss.temperature)
    loss_d2s = [deep_to_shallow_loss(s, codes, local_batch, loss.crops_for_assign, loss.temperature)
                for s in out.shallow_scores]
    loss_p2p = pixel_to_pixel_loss(out.pixel_projection, out.pixel_prediction)
    total = combine_pass_losses(loss_swav, loss_d2s, loss_p2p, loss.weights)
    parts = {"swav": loss_swav.item(), "p2p": loss_p2p.item(),
             "d2s": float(np.mean([x.item() for x in loss_d2s])) if loss_d2s else 0.0}
    return total, parts


def attention_objective(loss: SwAVLoss, model, crops: Sequence[jt.Var], grid_q: jt.Var, grid_k: jt.Var,
                        local_batch: int, queue: Optional[EmbeddingQueue]) -> Tuple[jt.Var, Dict[str, float]]:
    """Pixel attention on one multi-crop batch: SwAV swapped prediction on the attention-pooled embeddings of every
    crop (no parts)."""
    embedding, scores = model(list(crops))
    codes = swav_codes(scores, embedding, model.prototypes.weight, local_batch, loss.crops_for_assign, queue,
                       loss.epsilon, loss.sinkhorn_iterations)
    return swapped_prediction_loss(scores, codes, local_batch, loss.crops_for_assign, loss.temperature), {}


# (loss settings, model, crops, grid_q, grid_k, local batch, queue) -> (loss, float parts)
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

    def __init__(self, name: str, model: Any, parameters: Iterable, objective: Objective, loss: SwAVLoss,
                 dataset: Callable[[ImageNetSSplit], MultiCropDataset], *, arch: str, batch_size: int, dump_path: str,
                 queue_length: int = 3840, epoch_queue_starts: int = 15, freeze_prototypes_niters: int = 1000):
        """dataset: the split's multi-crop loader; batch_size: global (the objective gets this rank's share);
        queue_length: global feature-queue length (0 = none), rounded down to whole batches, from epoch
        epoch_queue_starts on (SwAV); the prototypes stay fixed for the first freeze_prototypes_niters iterations."""
        super().__init__(name, model, parameters)
        self.objective, self.loss, self.make_dataset, self.arch = objective, loss, dataset, arch
        self.world = distributed.world_size()
        self.local_batch = batch_size // self.world
        self.queue: Optional[EmbeddingQueue] = None
        self.queue_length = queue_length - queue_length % batch_size
        self.epoch_queue_starts, self.freeze_prototypes_niters = epoch_queue_starts, freeze_prototypes_niters
        self.queue_file = os.path.join(dump_path, f"queue_rank{distributed.rank()}.safetensors")
        self.prototype_params: list = []

    def initialise(self) -> None:
        # Draw the initial weights before the broadcast joins the graph: jittor's random init is lazy and draws in
        # execution order, so an MPI run would otherwise start from other weights than a one-process run.
        jt.sync(self.model.parameters())

    def _new_queue(self) -> EmbeddingQueue:
        feat_dim = self.model.prototypes.weight.shape[1]
        return EmbeddingQueue(len(self.loss.crops_for_assign), self.queue_length // self.world, feat_dim)

    def start(self, log: StageLog, start_epoch: int) -> None:
        saved_queue = existing_checkpoint(self.queue_file)
        if self.queue_length > 0 and saved_queue is not None and start_epoch > 0:
            self.queue = self._new_queue()
            self.queue.load_state_dict(load_checkpoint(saved_queue))
        self.prototype_params = [p for name, p in self.model.named_parameters() if name.startswith("prototypes")]

    def dataset(self, split: ImageNetSSplit) -> MultiCropDataset:
        return self.make_dataset(split)

    def describe(self, split: ImageNetSSplit) -> str:
        return f"{self.arch} on {len(split)} images of {split.image_dir}"

    def begin_epoch(self, epoch: int) -> None:
        if self.queue is None and self.queue_length > 0 and epoch >= self.epoch_queue_starts:
            self.queue = self._new_queue()

    def step(self, batch: Sequence, iteration: int, optimizer: Any) -> Dict[str, float]:
        crops, grid_q, grid_k = batch
        # Prototypes stay fixed for the first iterations (SwAV), then train with the rest. Set this before the
        # forward pass and only on a change: jittor's start_grad() swaps in a detached copy of the variable, so
        # after the forward (or on every step) the graph keeps the old one and the prototypes get no gradient.
        set_trainable(self.prototype_params, iteration >= self.freeze_prototypes_niters)
        self.model.prototypes.normalize_prototypes()
        # Evaluate the normalised prototypes now: left lazy, jittor fuses the normalisation into the forward
        # differently after a resume than mid-run (rounding then differs), breaking exact resumption.
        self.model.prototypes.weight.sync()
        loss, parts = self.objective(self.loss, self.model, crops, grid_q, grid_k, self.local_batch, self.queue)
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
