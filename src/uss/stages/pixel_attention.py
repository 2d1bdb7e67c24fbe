"""PASS pixel attention: on the pretrained backbone (frozen), train the attention head and the prototypes
with the SwAV loss on attention-pooled embeddings. Same checkpoint/resume behaviour as pretraining."""
import argparse
from typing import List, Optional

from uss import options
from uss.models import build_model
from uss.models.resnet import backbone_options
from uss.training import runner
from uss.checkpoints.native import load_pretrained
from uss.training.loop import fit
from uss.training.swav_task import SwAVTask, attention_objective

STAGE = "pixel attention"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="PASS pixel attention on a pretrained backbone.",
                                     parents=[options.swav_training()])
    parser.add_argument("--pretrained", required=True, help="pretraining checkpoint (<pretrain dump>/"
                        "checkpoint.safetensors, or PASS's / SwAV's released .pth.tar)")
    # PASS S50 settings for this stage.
    parser.set_defaults(epochs=20, base_lr=6.0, final_lr=0.0006, shallow=[], queue_length=0)
    return parser


def build(args: argparse.Namespace):
    """The pixel-attention model (backbone, attention head, projection, prototypes) the parsed arguments describe."""
    return build_model(args.arch, "pixel_attention", n_prototypes=args.nmb_prototypes, feat_dim=args.feat_dim,
                       hidden_dim=args.hidden_mlp, **backbone_options(vars(args)))


def swav_task(args: argparse.Namespace, model) -> SwAVTask:
    """Pixel attention's task: the trainable (not frozen) parameters of `model` on the attention objective."""
    return SwAVTask(STAGE, model, model.trainable_parameters(), attention_objective, options.swav_loss(args),
                    options.multicrop_loader(args), **options.swav_task_options(args))


def train(args: argparse.Namespace) -> str:
    """Run (or resume) pixel-attention training; returns the checkpoint path."""
    runner.seed_everything(args.seed)
    model = build(args)
    loaded = load_pretrained(model, args.pretrained, ("backbone.", "projection_head.", "prototypes."))
    runner.StageLog(STAGE, args.dump_path).info(f"loaded {loaded} tensors from {args.pretrained}")
    model.freeze_pretrained()
    return fit(swav_task(args, model), options.training_run(args))


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))
