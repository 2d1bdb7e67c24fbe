"""PASS pretraining: SwAV multi-crop swapped prediction + deep-to-shallow + pixel-to-pixel losses.

Resumes automatically from <dump>/checkpoint.safetensors (model, optimiser, epochs done, queue); a run
whose checkpoint already has --epochs epochs is complete and exits at once. All randomness after
initialisation is derived from (seed, epoch, image), so a resumed run equals an uninterrupted one.
"""
import argparse
from typing import List, Optional

from uss.losses.objectives import pass_objective
from uss.models import build_model
from uss.models.resnet import add_backbone_arguments, backbone_options
from uss.training import runner
from uss.training.loop import fit
from uss.training.optim import add_optimisation_arguments
from uss.training.swav import SwAVTask


def build_parser(description: str = "PASS pretraining (SwAV + deep-to-shallow + pixel-to-pixel).") -> argparse.ArgumentParser:
    """Arguments of the SwAV-style stages (pretraining; pixel attention adds --pretrained)."""
    parser = argparse.ArgumentParser(description=description)
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, help="ImageNet-S style dataset folder")
    data.add_argument("--split", default="train")
    data.add_argument("--nmb-crops", type=int, nargs="+", default=[2, 6])
    data.add_argument("--size-crops", type=int, nargs="+", default=[224, 96])
    data.add_argument("--min-scale-crops", type=float, nargs="+", default=[0.14, 0.05])
    data.add_argument("--max-scale-crops", type=float, nargs="+", default=[1.0, 0.14])
    data.add_argument("--blur-sigma", type=float, default=2.0,
                      help="largest Gaussian-blur sigma in pixels (SwAV: 2.0 at 224 px; scale it with the crop size)")
    data.add_argument("--color-strength", type=float, default=1.0, help="colour-jitter strength (SwAV: 1.0)")
    data.add_argument("--workers", type=int, default=2, help="loader worker processes per rank")
    data.add_argument("--skip-bad-files", action="store_true",
                      help="replace undecodable images by blanks and list them at the end instead of stopping")
    swav = parser.add_argument_group("SwAV / PASS")
    swav.add_argument("--arch", default="resnet50", help="resnet18 | resnet34 | resnet50 | resnet101")
    add_backbone_arguments(swav)
    swav.add_argument("--hidden-mlp", type=int, default=None, help="projection hidden width (default 512 R18, 2048 R50)")
    swav.add_argument("--feat-dim", type=int, default=128)
    swav.add_argument("--nmb-prototypes", type=int, default=500)
    swav.add_argument("--crops-for-assign", type=int, nargs="+", default=[0, 1])
    swav.add_argument("--temperature", type=float, default=0.1)
    swav.add_argument("--epsilon", type=float, default=0.05)
    swav.add_argument("--sinkhorn-iterations", type=int, default=3)
    swav.add_argument("--queue-length", type=int, default=3840, help="global queue length (0 = no queue)")
    swav.add_argument("--epoch-queue-starts", type=int, default=15)
    swav.add_argument("--freeze-prototypes-niters", type=int, default=1000)
    swav.add_argument("--shallow", type=int, nargs="*", default=[3], help="stages with a deep-to-shallow head")
    swav.add_argument("--weights", type=float, nargs="+", default=[1.0, 1.0],
                      help="loss weights: swav, then one per shallow stage")
    swav.add_argument("--grid-size", type=int, default=7, help="overlap grid for the pixel-to-pixel loss")
    add_optimisation_arguments(parser, epochs=200)
    parser.add_argument("--dump-path", required=True, help="folder for the checkpoint and logs")
    parser.add_argument("--max-iters-per-epoch", type=int, default=0, help="debug: stop each epoch early (0 = full)")
    return parser


def train(args: argparse.Namespace) -> str:
    """Run (or resume) pretraining; returns the checkpoint path."""
    runner.seed_everything(args.seed)
    model = build_model(args.arch, "pretrain", n_prototypes=args.nmb_prototypes, feat_dim=args.feat_dim,
                        hidden_dim=args.hidden_mlp, shallow_stages=tuple(args.shallow), **backbone_options(vars(args)))
    return fit(SwAVTask("pretrain", args, model, model.parameters(), pass_objective), args)


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))
