"""The fine-tuning task: backbone + decode head on pseudo labels with the masked cross-entropy; the backbone
starts from the pretrained checkpoint on a fresh run; each epoch reports train-crop pixel accuracy and mIoU."""
from typing import Any, Callable, Dict, Optional, Sequence

import jittor as jt
import numpy as np

from uss.data import class_balance
from uss.data.label_dataset import PseudoLabelDataset, check_label_ids
from uss.data.split import ImageNetSSplit
from uss.evaluation.metrics import confusion_matrix, confusion_scores
from uss.losses.segmentation import segmentation_loss
from uss.checkpoints.trained import load_pretrained_backbone
from uss.models.segmentation import SegmentationModel
from uss.training.loop import TrainingTask
from uss.training.runner import StageLog

STAGE = "finetune"


class FinetuneTask(TrainingTask):
    """Train all of `model` on the pseudo labels (ids 0..K, 1000 = ignore) that `dataset` pairs with the images."""

    def __init__(self, model: SegmentationModel, dataset: Callable[[ImageNetSSplit], PseudoLabelDataset], *,
                 pretrained: str, labels: str, arch: str, head: str, class_weights: str = class_balance.NONE):
        """pretrained: the checkpoint whose backbone.* starts a fresh run; labels: the pseudo-label folder (named in
        errors and logs); arch and head: for the start line; class_weights: a uss.data.class_balance scheme, its
        weights counted on the labels of the training split at the start."""
        super().__init__(STAGE, model)
        self.make_dataset, self.pretrained, self.labels = dataset, pretrained, labels
        self.arch, self.head, self.num_classes = arch, head, model.num_classes
        self.weighting = class_weights
        self.class_weights: Optional[jt.Var] = None
        self.log: Optional[StageLog] = None
        self.confusion = np.zeros((self.num_classes + 1,) * 2, dtype=np.int64)

    def start(self, log: StageLog, start_epoch: int) -> None:
        self.log = log
        if start_epoch == 0:
            loaded = load_pretrained_backbone(self.model, self.pretrained)
            log.info(f"loaded {loaded} backbone tensors from {self.pretrained}")

    def weigh_classes(self, split: ImageNetSSplit) -> None:
        """Count the labels' class frequencies and set the loss weights (nothing to do for 'none')."""
        if self.weighting == class_balance.NONE:
            return
        counts = class_balance.label_frequencies(self.labels, split.names, self.num_classes)
        weights = class_balance.class_weights(counts, self.weighting)
        self.class_weights = jt.array(weights).stop_grad()
        shares = counts[0] / max(1, counts[0].sum())
        self.log.info(f"class weights ({self.weighting}), id: pixel share -> weight: " + ", ".join(
            f"{i}: {100 * share:.1f}% -> {weight:.2f}" for i, (share, weight) in enumerate(zip(shares, weights))))

    def dataset(self, split: ImageNetSSplit) -> PseudoLabelDataset:
        self.weigh_classes(split)
        return self.make_dataset(split)

    def describe(self, split: ImageNetSSplit) -> str:
        return (f"{self.arch} + {self.head} head, K={self.num_classes}, on {len(split)} images of {split.image_dir} "
                f"with labels {self.labels}")

    def begin_epoch(self, epoch: int) -> None:
        self.confusion[:] = 0

    def step(self, batch: Sequence, iteration: int, optimizer: Any) -> Dict[str, float]:
        images, labels, names, max_ids = batch  # bad items carry all-ignored labels, so skipping them needs nothing
        check_label_ids(names, np.asarray(max_ids.numpy()).reshape(-1), self.num_classes, self.labels)
        loss, _, prediction = segmentation_loss(self.model, images, labels, self.class_weights)
        optimizer.step(loss)
        value = loss.item()
        predicted = prediction.numpy()
        self.confusion += confusion_matrix(labels.numpy(), predicted, self.num_classes)
        return {"loss": value}

    def end_epoch(self, epoch: int, means: Dict[str, float], last_lr: float) -> Dict[str, Any]:
        return {**confusion_scores(self.confusion), "lr": last_lr}

    def epoch_note(self, stats: Dict[str, Any]) -> str:
        return (f", train-crop pixel acc {100 * stats['pixel_acc']:.1f}% (background share "
                f"{100 * stats['background_share']:.1f}%), mIoU {100 * stats['miou']:.1f}%, lr {stats['lr']:.5f}")
