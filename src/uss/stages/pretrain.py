"""PASS pretraining: SwAV multi-crop swapped prediction + deep-to-shallow + pixel-to-pixel losses.

Resumes automatically from <dump>/checkpoint.safetensors (model, optimiser, epochs done, queue); a run
whose checkpoint already has --epochs epochs is complete and exits at once. All randomness after
initialisation is derived from (seed, epoch, image), so a resumed run equals an uninterrupted one.
"""
import argparse
from typing import List, Optional

from uss import options
from uss.models import build_model
from uss.models.resnet import backbone_options
from uss.training import runner
from uss.training.loop import fit
from uss.training.swav_task import Objective, SwAVTask, pass_objective


def build_parser(description: str = "PASS pretraining (SwAV + deep-to-shallow + pixel-to-pixel)."
                 ) -> argparse.ArgumentParser:
    """Arguments of pretraining (uss.options.swav_training, which pixel attention shares)."""
    return argparse.ArgumentParser(description=description, parents=[options.swav_training(epochs=200)])


def build(args: argparse.Namespace):
    """The PASS model (backbone, projection, prototypes, shallow and pixel heads) the parsed arguments describe."""
    return build_model(args.arch, "pretrain", n_prototypes=args.nmb_prototypes, feat_dim=args.feat_dim,
                       hidden_dim=args.hidden_mlp, shallow_stages=tuple(args.shallow), **backbone_options(vars(args)))


def swav_task(args: argparse.Namespace, model, objective: Objective = pass_objective) -> SwAVTask:
    """Pretraining's task: every parameter of `model` trained on `objective` (PASS's three losses)."""
    return SwAVTask("pretrain", model, model.parameters(), objective, options.swav_loss(args),
                    options.multicrop_loader(args), **options.swav_task_options(args))


def train(args: argparse.Namespace) -> str:
    """Run (or resume) pretraining; returns the checkpoint path."""
    runner.seed_everything(args.seed)
    return fit(swav_task(args, build(args)), options.training_run(args))


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))
