"""The whole-batch objectives of the SwAV-style stages: model forward, codes and losses on one multi-crop batch.

Each takes (args, model, crops, grid_q, grid_k, local_batch, queue) and returns (total loss, dict of float parts);
args carries the SwAV options (--crops-for-assign, --epsilon, --sinkhorn-iterations, --temperature, --weights).
"""
from typing import Dict, Optional, Sequence, Tuple

import jittor as jt
import numpy as np

from uss.losses.pixel import pixel_to_pixel_loss
from uss.losses.swav import (EmbeddingQueue, combine_pass_losses, deep_to_shallow_loss, swapped_prediction_loss,
                             swav_codes)

__all__ = ["pass_objective", "attention_objective"]


def pass_objective(args, model, crops: Sequence[jt.Var], grid_q: jt.Var, grid_k: jt.Var, local_batch: int,
                   queue: Optional[EmbeddingQueue]) -> Tuple[jt.Var, Dict[str, float]]:
    """PASS pretraining: SwAV swapped prediction + deep-to-shallow + pixel-to-pixel, weighted by --weights."""
    out = model(list(crops), grid_q, grid_k)
    codes = swav_codes(out.scores, out.embedding, model.prototypes.weight, local_batch, args.crops_for_assign,
                       queue, args.epsilon, args.sinkhorn_iterations)
    loss_swav = swapped_prediction_loss(out.scores, codes, local_batch, args.crops_for_assign, args.temperature)
    loss_d2s = [deep_to_shallow_loss(s, codes, local_batch, args.crops_for_assign, args.temperature)
                for s in out.shallow_scores]
    loss_p2p = pixel_to_pixel_loss(out.pixel_projection, out.pixel_prediction)
    loss = combine_pass_losses(loss_swav, loss_d2s, loss_p2p, args.weights)
    parts = {"swav": loss_swav.item(), "p2p": loss_p2p.item(),
             "d2s": float(np.mean([x.item() for x in loss_d2s])) if loss_d2s else 0.0}
    return loss, parts


def attention_objective(args, model, crops: Sequence[jt.Var], grid_q: jt.Var, grid_k: jt.Var, local_batch: int,
                        queue: Optional[EmbeddingQueue]) -> Tuple[jt.Var, Dict[str, float]]:
    """Pixel attention: SwAV swapped prediction on the attention-pooled embeddings of every crop (no parts)."""
    embedding, scores = model(list(crops))
    codes = swav_codes(scores, embedding, model.prototypes.weight, local_batch, args.crops_for_assign, queue,
                       args.epsilon, args.sinkhorn_iterations)
    return swapped_prediction_loss(scores, codes, local_batch, args.crops_for_assign, args.temperature), {}
