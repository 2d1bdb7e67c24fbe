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
from typing import List, Optional

from uss import options
from uss.data import class_balance, layout
from uss.data.label_dataset import PseudoLabelDataset
from uss.data.split import ImageNetSSplit
from uss.models.decode_heads import head_options
from uss.models.resnet import backbone_options
from uss.models.segmentation import build_segmentation_model
from uss.training import runner
from uss.training.finetune_task import FinetuneTask
from uss.training.loop import fit


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
    data.add_argument("--class-weights", default=class_balance.NONE, choices=class_balance.SCHEMES,
                      help="per-class loss weights counted on the labels: none (PASS) or median-frequency "
                      "(Eigen & Fergus 2015: median frequency / the class's frequency)")
    model = parser.add_argument_group("initialisation and decode head")
    model.add_argument("--pretrained", required=True,
                       help="checkpoint holding backbone.* (<pretrain dump>/checkpoint.safetensors, as PASS; "
                       "or PASS's / SwAV's / DINO's released .pth)")
    options.decode_head(model)
    model.add_argument("--num-classes", type=int, default=None,
                       help="K, the number of pseudo classes (default: the dataset's categories)")
    return parser


def train(args: argparse.Namespace) -> str:
    """Run (or resume) fine-tuning; returns the checkpoint path."""
    runner.seed_everything(args.seed)
    if args.num_classes is None:
        args.num_classes = len(layout.load_categories(args.data))
    model = build_segmentation_model(args.arch, args.num_classes, args.head, **backbone_options(vars(args)),
                                     **head_options(vars(args)))

    def dataset(split: ImageNetSSplit) -> PseudoLabelDataset:
        return PseudoLabelDataset(split, args.pseudo_labels, args.crop_size, (args.min_scale, args.max_scale),
                                  args.label_scale, seed=args.seed, batch_size=args.batch_size,
                                  num_workers=args.workers, check=not args.skip_bad_files)

    task = FinetuneTask(model, dataset, pretrained=args.pretrained, labels=args.pseudo_labels, arch=args.arch,
                        head=args.head, class_weights=args.class_weights)
    return fit(task, options.training_run(args))


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))
