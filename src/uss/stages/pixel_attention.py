"""PASS pixel attention: on the pretrained backbone (frozen), train the attention head and the prototypes
with the SwAV loss on attention-pooled embeddings. Same checkpoint/resume behaviour as pretraining."""
import argparse
from typing import List, Optional

from uss.losses import swapped_prediction_loss, swav_codes
from uss.models import build_model
from uss.models.resnet import backbone_options
from uss.stages.pretrain import build_parser as swav_parser
from uss.stages.pretrain import fit_swav
from uss.training import runner


def build_parser() -> argparse.ArgumentParser:
    parser = swav_parser("PASS pixel attention on a pretrained backbone.")
    parser.add_argument("--pretrained", required=True, help="pretraining checkpoint (<pretrain dump>/checkpoint.safetensors, "
                        "or PASS's / SwAV's released .pth.tar)")
    # PASS S50 settings for this stage.
    parser.set_defaults(epochs=20, base_lr=6.0, final_lr=0.0006, shallow=[], queue_length=0)
    return parser


def attention_losses(args, model, crops, grid_q, grid_k, local_batch, queue):
    """SwAV swapped prediction on the attention-pooled embeddings of every crop."""
    embedding, scores = model(list(crops))
    codes = swav_codes(scores, embedding, model.prototypes.weight, local_batch, args.crops_for_assign, queue,
                       args.epsilon, args.sinkhorn_iterations)
    return swapped_prediction_loss(scores, codes, local_batch, args.crops_for_assign, args.temperature), {}


def train(args: argparse.Namespace) -> str:
    """Run (or resume) pixel-attention training; returns the checkpoint path."""
    runner.seed_everything(args.seed)
    model = build_model(args.arch, "pixel_attention", n_prototypes=args.nmb_prototypes, feat_dim=args.feat_dim,
                        hidden_dim=args.hidden_mlp, **backbone_options(vars(args)))
    loaded = runner.load_pretrained(model, args.pretrained, ("backbone.", "projection_head.", "prototypes."))
    runner.StageLog("pixel attention", args.dump_path).info(f"loaded {loaded} tensors from {args.pretrained}")
    model.freeze_pretrained()
    return fit_swav("pixel attention", args, model, model.trainable_parameters(), attention_losses)


def main(argv: Optional[List[str]] = None) -> None:
    train(build_parser().parse_args(argv))

