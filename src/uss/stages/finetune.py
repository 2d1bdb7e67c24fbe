"""PASS pixel-level fine-tuning: train backbone + decode head on the pseudo labels with per-pixel cross-entropy.

The backbone starts from the pretraining checkpoint (`backbone.*`); the head ('linear' = PASS's 1x1 conv on
C5) is new. Logits are upsampled bilinearly to the label size (the crop downsampled by --label-scale, as
PASS) and pixels labelled 1000 are ignored. SGD with momentum and a cosine schedule, PASS's settings for
ImageNet-S50 by default (ResNet-18, 20 epochs, lr 0.6 -> 0.0006, wd 1e-6, batch 256, crop 224).

Resumes automatically from <dump>/checkpoint.safetensors; a run whose checkpoint already has --epochs epochs
is complete and exits at once. All data randomness derives from (seed, epoch, image), so a resumed run
equals an uninterrupted one.
"""
import argparse
import os
import time
from typing import Dict, List, Optional, Tuple

import jittor as jt
import numpy as np
from jittor import nn
from tqdm import tqdm

from uss import distributed, options
from uss.data import layout
from uss.data.dataset import BadFileGuard
from uss.data.label_png import IGNORE
from uss.data.pseudo_labels import PseudoLabelDataset, check_label_ids
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.models.decode_heads import add_head_arguments, head_options
from uss.models.resnet import backbone_options
from uss.models.segmentation import build_segmentation_model, load_pretrained_backbone
from uss.training import runner
from uss.training.optim import build_optimizer
from uss.training.schedule import build_schedule

STAGE = "finetune"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="PASS pixel-level fine-tuning on pseudo labels.", parents=[
        options.dataset(), options.loader(skip_help="train without undecodable images/labels and list them at the "
                                                    "end instead of stopping"),
        options.backbone("resnet18"), options.training(epochs=20)])
    data = parser.add_argument_group("pseudo labels")
    data.add_argument("--pseudo-labels", required=True,
                      help="pseudo-label folder: <labels>/<wnid>/<name>.png (ids 0..K, 1000 = ignore)")
    data.add_argument("--crop-size", type=int, default=224)
    data.add_argument("--min-scale", type=float, default=0.08, help="RandomResizedCrop area scale lower bound")
    data.add_argument("--max-scale", type=float, default=1.0)
    data.add_argument("--label-scale", type=float, default=0.5,
                      help="labels are the crop downsampled by this factor (PASS: 0.5; 0.25 for ImageNet-S919)")
    model = parser.add_argument_group("initialisation and decode head")
    model.add_argument("--pretrained", required=True,
                       help="checkpoint holding backbone.* (<pretrain dump>/checkpoint.safetensors, as PASS; "
                       "or PASS's / SwAV's / DINO's released .pth)")
    add_head_arguments(model)
    model.add_argument("--num-classes", type=int, default=None,
                       help="K, the number of pseudo classes (default: the dataset's categories)")
    return parser


def masked_cross_entropy(logits: jt.Var, labels: jt.Var, ignore_index: int = IGNORE) -> Tuple[jt.Var, jt.Var]:
    """Mean per-pixel cross-entropy over the pixels whose label is not `ignore_index`.

    logits: N x C x H x W; labels: N x H x W integer ids in [0, C) or ignore_index. Ignored pixels add
    nothing to the loss or the gradient. Returns (loss, number of counted pixels); the loss is 0 when
    every pixel is ignored.
    """
    if logits.ndim != 4 or labels.ndim != 3 or tuple(labels.shape) != (logits.shape[0],) + tuple(logits.shape[2:]):
        raise ValueError(f"logits N x C x H x W and labels N x H x W expected, got {logits.shape} and {labels.shape}")
    labels = labels.int32()
    valid = (labels != ignore_index).float32()
    shifted = logits - logits.max(dim=1, keepdims=True).stop_grad()
    log_norm = shifted.exp().sum(dim=1).log()
    picked = (shifted * (jt.index(shifted.shape, 1) == labels.unsqueeze(1))).sum(dim=1)
    count = valid.sum()
    loss = ((log_norm - picked) * valid).sum() / jt.maximum(count, jt.float32(1.0))
    return loss, count


def segmentation_loss(model: jt.nn.Module, images: jt.Var, labels: jt.Var) -> Tuple[jt.Var, jt.Var, jt.Var]:
    """Forward, upsample the logits bilinearly to the label size (as PASS) and apply the masked cross-entropy.
    Returns (loss, counted pixels, predicted ids N x h x w)."""
    logits = model(images)
    logits = nn.interpolate(logits, size=tuple(labels.shape[1:]), mode="bilinear", align_corners=False)
    loss, count = masked_cross_entropy(logits, labels)
    return loss, count, jt.argmax(logits.detach(), dim=1)[0]


def add_confusion(confusion: np.ndarray, prediction: np.ndarray, labels: np.ndarray) -> None:
    """Accumulate a (K+1) x (K+1) confusion matrix (rows: label, columns: prediction); ignore pixels are skipped."""
    size = confusion.shape[0]
    keep = (labels != IGNORE) & (labels >= 0) & (labels < size)
    confusion += np.bincount(labels[keep].astype(np.int64) * size + prediction[keep].astype(np.int64),
                             minlength=size * size).reshape(size, size)


def confusion_scores(confusion: np.ndarray) -> Dict[str, float]:
    """Pixel accuracy, mIoU over the classes present in labels or predictions, and the background share."""
    total = max(float(confusion.sum()), 1.0)
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return {"pixel_acc": float(tp.sum() / total), "miou": float((tp[present] / union[present]).mean()) if present.any()
            else 0.0, "background_share": float(confusion[0].sum() / total)}


def train(args: argparse.Namespace) -> str:
    """Run (or resume) fine-tuning; returns the checkpoint path."""
    os.makedirs(args.dump_path, exist_ok=True)
    log = runner.StageLog(STAGE, args.dump_path)
    device = runner.setup_device()
    runner.seed_everything(args.seed)
    world = distributed.world_size()
    if args.num_classes is None:
        args.num_classes = len(layout.load_categories(args.data))
    if args.batch_size % world:
        raise InputError(f"--batch-size {args.batch_size} must be divisible by the number of ranks {world}")

    model = build_segmentation_model(args.arch, args.num_classes, args.head, **backbone_options(vars(args)),
                                     **head_options(vars(args)))
    optimizer = build_optimizer(model.parameters(), args)
    start_epoch, _ = runner.resume(args.dump_path, model, optimizer)
    if start_epoch >= args.epochs:
        log.info(f"complete: {runner.checkpoint_path(args.dump_path)} has {start_epoch}/{args.epochs} epochs")
        return runner.checkpoint_path(args.dump_path)
    split = ImageNetSSplit(args.data, args.split)
    dataset = PseudoLabelDataset(split, args.pseudo_labels, args.crop_size, (args.min_scale, args.max_scale),
                                 args.label_scale, seed=args.seed, batch_size=args.batch_size,
                                 num_workers=args.workers)
    if start_epoch == 0:
        loaded = load_pretrained_backbone(model, args.pretrained)
        log.info(f"loaded {loaded} backbone tensors from {args.pretrained}")
    distributed.broadcast_parameters(model)
    iters_per_epoch = len(split) // args.batch_size
    if iters_per_epoch == 0:
        raise InputError(f"{split.image_dir}: {len(split)} images is fewer than one batch of {args.batch_size}")
    if args.max_iters_per_epoch:
        iters_per_epoch = min(iters_per_epoch, args.max_iters_per_epoch)
    lr_schedule = build_schedule(args, iters_per_epoch)
    log.info(f"{args.arch} + {args.head} head, K={args.num_classes}, on {len(split)} images of {split.image_dir} "
             f"with labels {args.pseudo_labels} ({device}, {world} rank(s), batch {args.batch_size}, "
             f"{iters_per_epoch} it/epoch), epochs {start_epoch}->{args.epochs}")

    guard = BadFileGuard(skip_bad=args.skip_bad_files, stage=STAGE)
    for epoch in range(start_epoch, args.epochs):
        dataset.set_epoch(epoch)
        model.train()
        stats = run_epoch(args, model, optimizer, dataset, guard, lr_schedule, epoch, iters_per_epoch)
        runner.save(args.dump_path, epoch + 1, model, optimizer, args)
        log.record({"stage": STAGE, "epoch": epoch + 1, **stats})
        log.info(f"epoch {epoch + 1}/{args.epochs}: loss {stats['loss']:.4f}, train-crop pixel acc "
                 f"{100 * stats['pixel_acc']:.1f}% (background share {100 * stats['background_share']:.1f}%), "
                 f"mIoU {100 * stats['miou']:.1f}%, lr {stats['lr']:.5f}, {stats['images_per_s']:.1f} img/s, "
                 f"data wait {100 * stats['data_wait_share']:.0f}%")
    guard.report()
    log.info(f"done in {log.elapsed():.0f}s: {runner.checkpoint_path(args.dump_path)}")
    return runner.checkpoint_path(args.dump_path)


def run_epoch(args, model, optimizer, dataset, guard, lr_schedule, epoch, iters_per_epoch) -> dict:
    """One pass over the data; returns mean loss, pixel accuracy, throughput and the data-wait share."""
    loss_sum = 0.0
    confusion = np.zeros((args.num_classes + 1,) * 2, dtype=np.int64)
    wait = compute = 0.0
    steps = 0
    bar = tqdm(total=iters_per_epoch, desc=f"{STAGE} epoch {epoch + 1}/{args.epochs}", unit="it",
               disable=not distributed.is_main_process(), leave=False)
    tick = time.time()
    for step, (images, labels, names, max_ids, errors) in enumerate(dataset):
        if step >= iters_per_epoch:
            break
        guard.check(errors)  # bad items carry all-ignored labels, so skipping them needs nothing more
        check_label_ids(names, np.asarray(max_ids.numpy()).reshape(-1), args.num_classes, args.pseudo_labels)
        loaded = time.time()
        iteration = epoch * iters_per_epoch + step
        runner.set_lr(optimizer, lr_schedule[iteration])
        loss, _, prediction = segmentation_loss(model, images, labels)
        optimizer.step(loss)
        value = loss.item()
        loss_sum += value
        add_confusion(confusion, prediction.numpy(), labels.numpy())
        steps += 1
        done = time.time()
        wait += loaded - tick
        compute += done - loaded
        tick = done
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3f}", img_s=f"{steps * args.batch_size / (wait + compute):.1f}")
    bar.close()
    elapsed = max(wait + compute, 1e-9)
    return {"loss": loss_sum / max(steps, 1), **confusion_scores(confusion), "iterations": steps,
            "lr": float(lr_schedule[min(epoch * iters_per_epoch + max(steps - 1, 0), len(lr_schedule) - 1)]),
            "images_per_s": steps * args.batch_size / elapsed, "data_wait_share": wait / elapsed,
            "seconds": elapsed}


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))
