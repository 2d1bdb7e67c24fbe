"""The fine-tuning task: backbone + decode head on pseudo labels with the masked cross-entropy; the backbone
starts from the pretrained checkpoint on a fresh run; each epoch reports train-crop pixel accuracy and mIoU."""
import argparse
from typing import Any, Dict, Sequence

import numpy as np

from uss.data.pseudo_labels import PseudoLabelDataset, check_label_ids
from uss.data.split import ImageNetSSplit
from uss.evaluation.metrics import confusion_matrix, confusion_scores
from uss.losses.segmentation import segmentation_loss
from uss.models.segmentation import SegmentationModel, load_pretrained_backbone
from uss.training.loop import TrainingTask
from uss.training.runner import StageLog

STAGE = "finetune"


class FinetuneTask(TrainingTask):
    """Train all of `model` on --pseudo-labels (ids 0..K, 1000 = ignore) of --data."""

    def __init__(self, args: argparse.Namespace, model: SegmentationModel):
        super().__init__(STAGE, args, model)
        self.confusion = np.zeros((args.num_classes + 1,) * 2, dtype=np.int64)

    def start(self, log: StageLog, start_epoch: int) -> None:
        if start_epoch == 0:
            loaded = load_pretrained_backbone(self.model, self.args.pretrained)
            log.info(f"loaded {loaded} backbone tensors from {self.args.pretrained}")

    def dataset(self, split: ImageNetSSplit) -> PseudoLabelDataset:
        args = self.args
        return PseudoLabelDataset(split, args.pseudo_labels, args.crop_size, (args.min_scale, args.max_scale),
                                  args.label_scale, seed=args.seed, batch_size=args.batch_size,
                                  num_workers=args.workers, check=not args.skip_bad_files)

    def describe(self, split: ImageNetSSplit) -> str:
        args = self.args
        return (f"{args.arch} + {args.head} head, K={args.num_classes}, on {len(split)} images of {split.image_dir} "
                f"with labels {args.pseudo_labels}")

    def begin_epoch(self, epoch: int) -> None:
        self.confusion[:] = 0

    def step(self, batch: Sequence, iteration: int, optimizer: Any) -> Dict[str, float]:
        images, labels, names, max_ids = batch  # bad items carry all-ignored labels, so skipping them needs nothing
        check_label_ids(names, np.asarray(max_ids.numpy()).reshape(-1), self.args.num_classes, self.args.pseudo_labels)
        loss, _, prediction = segmentation_loss(self.model, images, labels)
        optimizer.step(loss)
        value = loss.item()
        predicted = prediction.numpy()
        self.confusion += confusion_matrix(labels.numpy(), predicted, self.args.num_classes)
        return {"loss": value}

    def end_epoch(self, epoch: int, means: Dict[str, float], last_lr: float) -> Dict[str, Any]:
        return {**confusion_scores(self.confusion), "lr": last_lr}

    def epoch_note(self, stats: Dict[str, Any]) -> str:
        return (f", train-crop pixel acc {100 * stats['pixel_acc']:.1f}% (background share "
                f"{100 * stats['background_share']:.1f}%), mIoU {100 * stats['miou']:.1f}%, lr {stats['lr']:.5f}")
