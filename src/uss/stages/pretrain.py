"""PASS pretraining: SwAV multi-crop swapped prediction + deep-to-shallow + pixel-to-pixel losses.

Resumes automatically from <dump>/checkpoint.safetensors (model, optimiser, epochs done, queue); a run
whose checkpoint already has --epochs epochs is complete and exits at once. All randomness after
initialisation is derived from (seed, epoch, image), so a resumed run equals an uninterrupted one.
"""
import argparse
import os
import time
from typing import List, Optional

import jittor as jt
import numpy as np
from tqdm import tqdm

from uss import distributed, options
from uss.data.dataset import BadFileGuard
from uss.data.multicrop import MultiCropDataset
from uss.data.split import ImageNetSSplit
from uss.losses import (EmbeddingQueue, combine_pass_losses, deep_to_shallow_loss, pixel_to_pixel_loss,
                        swapped_prediction_loss, swav_codes)
from uss.models import build_model
from uss.models.resnet import backbone_options
from uss.training import runner
from uss.training.optim import build_optimizer
from uss.training.schedule import build_schedule


def build_parser(description: str = "PASS pretraining (SwAV + deep-to-shallow + pixel-to-pixel).") -> argparse.ArgumentParser:
    """Arguments of pretraining (uss.options.swav_training, which pixel attention shares)."""
    return argparse.ArgumentParser(description=description, parents=[options.swav_training(epochs=200)])


def train(args: argparse.Namespace) -> str:
    """Run (or resume) pretraining; returns the checkpoint path."""
    runner.seed_everything(args.seed)
    model = build_model(args.arch, "pretrain", n_prototypes=args.nmb_prototypes, feat_dim=args.feat_dim,
                        hidden_dim=args.hidden_mlp, shallow_stages=tuple(args.shallow), **backbone_options(vars(args)))
    return fit_swav("pretrain", args, model, model.parameters(), pass_losses)


def pass_losses(args, model, crops, grid_q, grid_k, local_batch, queue):
    """PASS objective on one multi-crop batch: (total loss, dict of float parts)."""
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


def fit_swav(stage: str, args: argparse.Namespace, model, parameters, compute_losses,
             before_resume=None) -> str:
    """The SwAV-style training loop shared by pretraining and pixel attention: data, optimiser, schedule,
    queue, resume and per-epoch checkpoints. `compute_losses(args, model, crops, grid_q, grid_k, local_batch,
    queue)` returns (loss, parts)."""
    os.makedirs(args.dump_path, exist_ok=True)
    log = runner.StageLog(stage, args.dump_path)
    device = runner.setup_device()
    world = distributed.world_size()

    split = ImageNetSSplit(args.data, args.split)
    if args.batch_size % world:
        raise ValueError(f"--batch-size {args.batch_size} must be divisible by the number of ranks {world}")
    local_batch = args.batch_size // world
    dataset = MultiCropDataset(split, args.size_crops, args.nmb_crops, args.min_scale_crops, args.max_scale_crops,
                               seed=args.seed, grid_size=args.grid_size, batch_size=args.batch_size,
                               num_workers=args.workers, blur_sigma=args.blur_sigma,
                               color_strength=args.color_strength)
    iters_per_epoch = len(split) // args.batch_size
    if iters_per_epoch == 0:
        raise ValueError(f"{split.image_dir}: {len(split)} images is fewer than one batch of {args.batch_size}")
    if args.max_iters_per_epoch:
        iters_per_epoch = min(iters_per_epoch, args.max_iters_per_epoch)

    # Draw the initial weights before the broadcast joins the graph: jittor's random init is lazy and draws in
    # execution order, so an MPI run would otherwise start from other weights than a one-process run.
    jt.sync(model.parameters())
    distributed.broadcast_parameters(model)
    optimizer = build_optimizer(parameters, args)
    lr_schedule = build_schedule(args, iters_per_epoch)

    start_epoch, _ = runner.resume(args.dump_path, model, optimizer)
    if start_epoch >= args.epochs:
        log.info(f"complete: {runner.checkpoint_path(args.dump_path)} has {start_epoch}/{args.epochs} epochs")
        return runner.checkpoint_path(args.dump_path)
    queue_length = args.queue_length - args.queue_length % args.batch_size
    queue: Optional[EmbeddingQueue] = None
    queue_file = os.path.join(args.dump_path, f"queue_rank{distributed.rank()}.safetensors")
    saved_queue = runner.existing_checkpoint(queue_file)
    if queue_length > 0 and saved_queue is not None and start_epoch > 0:
        queue = EmbeddingQueue(len(args.crops_for_assign), queue_length // world, args.feat_dim)
        queue.load_state_dict(runner.load_checkpoint(saved_queue))
    log.info(f"{args.arch} on {len(split)} images of {split.image_dir} ({device}, {world} rank(s), "
             f"batch {args.batch_size}, {iters_per_epoch} it/epoch), epochs {start_epoch}->{args.epochs}")

    guard = BadFileGuard(skip_bad=args.skip_bad_files, stage=stage)
    prototype_params = [p for name, p in model.named_parameters() if name.startswith("prototypes")]
    for epoch in range(start_epoch, args.epochs):
        if queue is None and queue_length > 0 and epoch >= args.epoch_queue_starts:
            queue = EmbeddingQueue(len(args.crops_for_assign), queue_length // world, args.feat_dim)
        dataset.set_epoch(epoch)
        model.train()
        stats = run_epoch(stage, args, model, optimizer, dataset, guard, lr_schedule, epoch, iters_per_epoch,
                          local_batch, queue, prototype_params, compute_losses)
        runner.save(args.dump_path, epoch + 1, model, optimizer, args)
        if queue is not None:
            runner.save_checkpoint(queue_file, queue.state_dict())
        log.record({"stage": stage, "epoch": epoch + 1, **stats})
        parts = ", ".join(f"{k} {v:.4f}" for k, v in stats.items() if k in stats["parts"])
        log.info(f"epoch {epoch + 1}/{args.epochs}: loss {stats['loss']:.4f} ({parts}), "
                 f"{stats['images_per_s']:.1f} img/s, data wait {100 * stats['data_wait_share']:.0f}%")
    guard.report()
    log.info(f"done in {log.elapsed():.0f}s: {runner.checkpoint_path(args.dump_path)}")
    return runner.checkpoint_path(args.dump_path)


def _set_trainable(params, trainable: bool) -> None:
    """start_grad() / stop_grad() the parameters whose state differs (start_grad detaches: call it only on a change)."""
    for p in params:
        if trainable and p.is_stop_grad():
            p.start_grad()
        elif not trainable and not p.is_stop_grad():
            p.stop_grad()


def run_epoch(stage, args, model, optimizer, dataset, guard, lr_schedule, epoch, iters_per_epoch, local_batch,
              queue, prototype_params, compute_losses) -> dict:
    """One pass over the data; returns mean losses, throughput and the share of time spent waiting for data."""
    totals: dict = {"loss": 0.0}
    wait = compute = 0.0
    steps = 0
    bar = tqdm(total=iters_per_epoch, desc=f"{stage} epoch {epoch + 1}/{args.epochs}", unit="it",
               disable=not distributed.is_main_process(), leave=False)
    tick = time.time()
    for step, (crops, grid_q, grid_k, errors) in enumerate(dataset):
        if step >= iters_per_epoch:
            break
        guard.check(errors)
        loaded = time.time()
        iteration = epoch * iters_per_epoch + step
        runner.set_lr(optimizer, lr_schedule[iteration])
        # Prototypes stay fixed for the first iterations (SwAV), then train with the rest. Set this before the
        # forward pass and only on a change: jittor's start_grad() swaps in a detached copy of the variable, so
        # after the forward (or on every step) the graph keeps the old one and the prototypes get no gradient.
        _set_trainable(prototype_params, iteration >= args.freeze_prototypes_niters)
        model.prototypes.normalize_prototypes()
        # Evaluate the normalised prototypes now: left lazy, jittor fuses the normalisation into the forward
        # differently after a resume than mid-run (rounding then differs), breaking exact resumption.
        model.prototypes.weight.sync()
        loss, parts = compute_losses(args, model, crops, grid_q, grid_k, local_batch, queue)
        optimizer.step(loss)
        for key, value in {"loss": loss.item(), **parts}.items():
            totals[key] = totals.get(key, 0.0) + value
        steps += 1
        done = time.time()
        wait += loaded - tick
        compute += done - loaded
        tick = done
        bar.update(1)
        bar.set_postfix(loss=f"{totals['loss'] / steps:.3f}", img_s=f"{steps * args.batch_size / (wait + compute):.1f}")
    bar.close()
    _set_trainable(prototype_params, True)
    elapsed = max(wait + compute, 1e-9)
    means = {k: v / max(steps, 1) for k, v in totals.items()}
    return {**means, "parts": sorted(k for k in means if k != "loss"), "iterations": steps,
            "images_per_s": steps * args.batch_size / elapsed, "data_wait_share": wait / elapsed,
            "seconds": elapsed}


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))
