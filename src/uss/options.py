"""Command-line options shared by the stages, as parent parsers (argparse `parents=`, the style of DINO's mains).

Each function returns a fresh parser made with add_help=False holding one group of options; a stage builds its
parser as ``argparse.ArgumentParser(description=..., parents=[options.dataset(), options.loader(), ...])`` and
adds only what is its own. One meaning per flag name:

  --data      the ImageNet-S style dataset folder          --split    a split folder of it (test.py: also --mode)
  --workers   data-loading worker processes per rank       --threads  image-decoding threads of one process
  --seed      the random seed                              --shard    i/n: do only part i of n
  --short-side  network input short side                   --quiet    no progress bars

Options are added in the order given, so the groups appear in --help as the parents list them.
"""
import argparse
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from uss.regions.settings import SAM_MODEL_TYPE, SAM_POINTS_PER_BATCH, SAM_SETTINGS, SUPERPIXEL_SETTINGS

DATA_HELP = "ImageNet-S style dataset folder"


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def dataset(split: Optional[str] = "train", *, required: bool = True, default: Optional[str] = None,
            help: str = DATA_HELP, split_help: Optional[str] = None, mode_alias: bool = False
            ) -> argparse.ArgumentParser:
    """--data and --split; `mode_alias` also accepts test.py's older spelling --mode."""
    parent = _parent()
    group = parent.add_argument_group("data")
    group.add_argument("--data", required=required, default=default,
                       help=help + (f" (default: {default})" if default else ""))
    flags = ("--split", "--mode") if mode_alias else ("--split",)
    group.add_argument(*flags, dest="split", metavar="SPLIT", default=split,
                       help=split_help or f"split folder of --data (default: {split})")
    return parent


def loader(*, workers: int = 2, skip_help: str = "skip undecodable files and list them at the end instead of stopping"
           ) -> argparse.ArgumentParser:
    """--workers (loader processes) and --skip-bad-files, for the stages that read images through a jittor loader."""
    parent = _parent()
    group = parent.add_argument_group("data")
    group.add_argument("--workers", type=int, default=workers,
                       help="data-loading worker processes per rank (0 = load in the main process; "
                            f"default: {workers})")
    group.add_argument("--skip-bad-files", action="store_true", help=skip_help)
    return parent


def threads(default: Optional[int] = 2, default_text: Optional[str] = None) -> argparse.ArgumentParser:
    """--threads: image-decoding threads of one process (--workers, its former name, still works)."""
    parent = _parent()
    parent.add_argument("--threads", dest="threads", metavar="N", type=int, default=default,
                        help=f"image-decoding threads (default: {default_text or default})")
    parent.add_argument("--workers", dest="threads", type=int, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parent


def quiet() -> argparse.ArgumentParser:
    """--quiet: no progress bars."""
    parent = _parent()
    parent.add_argument("--quiet", action="store_true", help="no progress bars")
    return parent


def short_side(default: int = 256) -> argparse.ArgumentParser:
    """--short-side of the network input (PASS: 256)."""
    parent = _parent()
    parent.add_argument("--short-side", type=int, default=default,
                        help=f"network input short side (default: {default}, as PASS)")
    return parent


def prediction(max_pixels: int) -> argparse.ArgumentParser:
    """Per-image prediction: --short-side, --max-pixels, --threads, --quiet (inference and test.py)."""
    parent = argparse.ArgumentParser(add_help=False, parents=[short_side(), threads(), quiet()])
    parent.add_argument("--max-pixels", type=int, default=max_pixels,
                        help="larger images get logits upsampled to PASS's (sqrt(this), int(sqrt(this) * W / H)) "
                             "and enlarged by nearest neighbour (0 = always full size; default: %(default)s, "
                             "PASS's --max_res 1000)")
    return parent


def shard(help: str = "do only part i of n (i/n)") -> argparse.ArgumentParser:
    """--shard i/n."""
    parent = _parent()
    parent.add_argument("--shard", default=None, help=help)
    return parent


def seed(default: int = 31) -> argparse.ArgumentParser:
    """--seed."""
    parent = _parent()
    parent.add_argument("--seed", type=int, default=default, help=f"random seed (default: {default})")
    return parent


def dump_path(help: str = "folder for the checkpoint and logs") -> argparse.ArgumentParser:
    """--dump-path, a stage's output folder."""
    parent = _parent()
    parent.add_argument("--dump-path", required=True, help=help)
    return parent


def backbone(arch: str) -> argparse.ArgumentParser:
    """--arch and the ResNet's --width / --stem (uss.models.resnet; the defaults are the ImageNet ResNet)."""
    from uss.models.resnet import STEMS

    parent = _parent()
    group = parent.add_argument_group("model")
    group.add_argument("--arch", default=arch, help="resnet18 | resnet34 | resnet50 | resnet101")
    group.add_argument("--width", type=float, default=1.0, help="ResNet channel width multiplier (1 = standard)")
    group.add_argument("--stem", default="imagenet", choices=sorted(STEMS),
                       help="imagenet: 7x7/2 conv + max-pool (output stride 32); small: one 3x3/1 conv (stride 8)")
    return parent


def decode_head(group: Any) -> None:
    """--head, --classifier-init, --head-dropout, --head-channels and --pool-scales (uss.models.decode_heads) on a
    parser or argument group."""
    from uss.models.decode_heads import CLASSIFIER_INITS, HEADS, POOL_SCALES, UPERNET_CHANNELS, UPERNET_DROPOUT

    group.add_argument("--head", default="linear", choices=sorted(HEADS))
    group.add_argument("--classifier-init", default="normal", choices=CLASSIFIER_INITS,
                       help="final 1x1 classifier: normal = N(0, 0.01) (mmsegmentation), kaiming = as PASS")
    group.add_argument("--head-dropout", type=float, default=None,
                       help=f"channel-wise dropout before the classifier (default: the head's; linear 0 as PASS, "
                       f"upernet {UPERNET_DROPOUT} as mmsegmentation)")
    group.add_argument("--head-channels", type=int, default=UPERNET_CHANNELS,
                       help=f"UPerNet inner channels (mmsegmentation: {UPERNET_CHANNELS})")
    group.add_argument("--pool-scales", type=int, nargs="+", default=list(POOL_SCALES),
                       help="UPerNet pyramid pooling bins (PSPNet / mmsegmentation: 1 2 3 6)")


def optimisation(epochs: int) -> argparse.ArgumentParser:
    """Epochs, batch, cosine (or poly) schedule with warm-up, SGD momentum / weight decay, LARC (PASS's defaults)."""
    parent = _parent()
    optim = parent.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=epochs,
                       help="epochs to train; 0 saves the initial (random) weights as an epoch-0 checkpoint")
    optim.add_argument("--batch-size", type=int, default=256, help="global batch size (split across MPI ranks)")
    optim.add_argument("--base-lr", type=float, default=0.6)
    optim.add_argument("--final-lr", type=float, default=0.0006)
    optim.add_argument("--schedule", default="cosine", choices=("cosine", "poly"),
                       help="per-iteration lr from --base-lr to --final-lr after the warm-up: cosine (PASS, SwAV) "
                            "or poly, (base - final) * (1 - t/T)^power + final (mmsegmentation)")
    optim.add_argument("--poly-power", type=float, default=0.9,
                       help="exponent of --schedule poly (mmsegmentation: 0.9)")
    optim.add_argument("--warmup-epochs", type=int, default=0)
    optim.add_argument("--start-warmup", type=float, default=0.0)
    optim.add_argument("--wd", type=float, default=1e-6)
    optim.add_argument("--momentum", type=float, default=0.9)
    optim.add_argument("--larc", type=float, default=0.0,
                       help="LARC trust coefficient (0 = plain momentum SGD, as PASS's Jittor scripts; SwAV and PASS's "
                            "PyTorch code use 0.001): each parameter's step is scaled by larc * |w| / (|g| + wd |w|)")
    return parent


def optimiser_settings(args: argparse.Namespace):
    """The optimiser and schedule settings that the parsed `optimisation()` options give."""
    from uss.training.optim import Optimisation

    return Optimisation(base_lr=args.base_lr, final_lr=args.final_lr, schedule=args.schedule,
                        poly_power=args.poly_power, warmup_epochs=args.warmup_epochs, start_warmup=args.start_warmup,
                        weight_decay=args.wd, momentum=args.momentum, larc=args.larc)


def training(epochs: int) -> argparse.ArgumentParser:
    """What every training stage takes: optimisation, --seed, --dump-path and --max-iters-per-epoch."""
    parent = argparse.ArgumentParser(add_help=False, parents=[optimisation(epochs), seed(), dump_path()])
    parent.add_argument("--max-iters-per-epoch", type=int, default=0, help="debug: stop each epoch early (0 = full)")
    return parent


def multicrop() -> argparse.ArgumentParser:
    """SwAV's multi-crop views (PASS S50's defaults) and their augmentation strengths."""
    parent = _parent()
    data = parent.add_argument_group("multi-crop views")
    data.add_argument("--nmb-crops", type=int, nargs="+", default=[2, 6])
    data.add_argument("--size-crops", type=int, nargs="+", default=[224, 96])
    data.add_argument("--min-scale-crops", type=float, nargs="+", default=[0.14, 0.05])
    data.add_argument("--max-scale-crops", type=float, nargs="+", default=[1.0, 0.14])
    data.add_argument("--blur-sigma", type=float, default=2.0,
                      help="largest Gaussian-blur sigma in pixels (SwAV: 2.0 at 224 px; scale it with the crop size)")
    data.add_argument("--color-strength", type=float, default=1.0, help="colour-jitter strength (SwAV: 1.0)")
    return parent


def swav() -> argparse.ArgumentParser:
    """The SwAV / PASS heads and loss (pretraining and pixel attention)."""
    parent = _parent()
    group = parent.add_argument_group("SwAV / PASS")
    group.add_argument("--hidden-mlp", type=int, default=None,
                       help="projection hidden width (default 512 R18, 2048 R50)")
    group.add_argument("--feat-dim", type=int, default=128)
    group.add_argument("--nmb-prototypes", type=int, default=500)
    group.add_argument("--crops-for-assign", type=int, nargs="+", default=[0, 1])
    group.add_argument("--temperature", type=float, default=0.1)
    group.add_argument("--epsilon", type=float, default=0.05)
    group.add_argument("--sinkhorn-iterations", type=int, default=3)
    group.add_argument("--queue-length", type=int, default=3840, help="global queue length (0 = no queue)")
    group.add_argument("--epoch-queue-starts", type=int, default=15)
    group.add_argument("--freeze-prototypes-niters", type=int, default=1000)
    group.add_argument("--shallow", type=int, nargs="*", default=[3], help="stages with a deep-to-shallow head")
    group.add_argument("--weights", type=float, nargs="+", default=[1.0, 1.0],
                       help="loss weights: swav, then one per shallow stage")
    group.add_argument("--grid-size", type=int, default=7, help="overlap grid for the pixel-to-pixel loss")
    return parent


def swav_loss(args: argparse.Namespace):
    """The SwAV loss settings that the parsed `swav()` options give."""
    from uss.training.swav_task import SwAVLoss

    return SwAVLoss(crops_for_assign=tuple(args.crops_for_assign), epsilon=args.epsilon,
                    sinkhorn_iterations=args.sinkhorn_iterations, temperature=args.temperature,
                    weights=tuple(args.weights))


def multicrop_loader(args: argparse.Namespace):
    """split -> the multi-crop loader that the parsed `multicrop()` and training options describe."""
    from uss.data.multicrop import MultiCropDataset

    def loader(split):
        return MultiCropDataset(split, args.size_crops, args.nmb_crops, args.min_scale_crops, args.max_scale_crops,
                                seed=args.seed, grid_size=args.grid_size, batch_size=args.batch_size,
                                num_workers=args.workers, blur_sigma=args.blur_sigma,
                                color_strength=args.color_strength)
    return loader


def swav_task_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The SwAV task's keyword arguments that the parsed `swav_training()` options give (uss.training.swav_task)."""
    return dict(arch=args.arch, batch_size=args.batch_size, dump_path=args.dump_path, queue_length=args.queue_length,
                epoch_queue_starts=args.epoch_queue_starts, freeze_prototypes_niters=args.freeze_prototypes_niters)


def training_run(args: argparse.Namespace):
    """The training loop's settings that the parsed `training()` and data options give; every argument is saved
    with the checkpoints."""
    from uss.training.loop import TrainingRun

    return TrainingRun(data=args.data, split=args.split, dump_path=args.dump_path, epochs=args.epochs,
                       batch_size=args.batch_size, optimisation=optimiser_settings(args),
                       max_iters_per_epoch=args.max_iters_per_epoch, skip_bad_files=args.skip_bad_files,
                       arguments=vars(args))


def swav_training(epochs: int = 200) -> argparse.ArgumentParser:
    """Everything the SwAV-style stages take (pretraining; pixel attention adds --pretrained and its defaults)."""
    return argparse.ArgumentParser(add_help=False, parents=[
        dataset(),
        loader(skip_help="replace undecodable images by blanks and list them at the end instead of stopping"),
        multicrop(), backbone("resnet50"), swav(), training(epochs)])


def labelling(sides: Sequence[str], cluster_help: str, what: str, source: str) -> argparse.ArgumentParser:
    """What both pseudo-label stages take, in both subcommands (one argument list serves sweep and generate):
    data, pixel attention, centroids, short side, the sweep's --thresholds and generation's --threshold,
    --background and --shard."""
    parent = argparse.ArgumentParser(add_help=False, parents=[
        dataset(None, split_help="default: validation for sweep, train for generate"), short_side(),
        shard("generate: do only part i of n (i/n)")])
    group = parent.add_argument_group("labeller")
    group.add_argument("--pretrained", required=True, help="pixel-attention checkpoint")
    group.add_argument("--cluster-dir", required=True, help=cluster_help)
    group.add_argument("--centroids", default=None, help="default: <cluster-dir>/centroids.npy")
    group = parent.add_argument_group("threshold")
    group.add_argument("--thresholds", default="0:0.9:0.025",
                       help="sweep: 'low:high:step', a comma list, or auto[:N] (N quantiles of the attention)")
    group.add_argument("--threshold", type=float, default=None,
                       help=f"generate: {what} (default: the sweep's, from {source})")
    group.add_argument("--background", default=None, choices=sides,
                       help="generate: which side of the threshold is background (default: the sweep's choice, "
                            "or 'below' as PASS with --threshold)")
    parent.add_argument("--allow-failures", action="store_true",
                        help="generate: exit status 0 even when some images could not be labelled (they are listed "
                             "in <out>_failures.txt)")
    parent.add_argument("--crf", action="store_true",
                        help="generate: refine each label map with a dense CRF on the image's colours (src/uss/crf.py; "
                             "off by default, benchmarks/crf.py measures it)")
    return parent


def label_folder(required: bool = True, help: str = "pseudo-label folder (<out>/<wnid>/<name>.png)"
                 ) -> argparse.ArgumentParser:
    """--out of a generation: the pseudo-label folder."""
    parent = _parent()
    parent.add_argument("--out", required=required, default=None, help=help)
    return parent


def regions(*, default: Optional[str] = None, sam_checkpoint: Optional[str] = None) -> argparse.ArgumentParser:
    """--proposer (required unless given a default) and the SAM / superpixel settings."""
    parent = _parent()
    group = parent.add_argument_group("region proposer")
    group.add_argument("--proposer", choices=["sam", "superpixel"], required=default is None, default=default,
                       help="region proposer" + (f" (default: {default})" if default else ""))
    group.add_argument("--sam-checkpoint", default=sam_checkpoint,
                       help=f"official SAM weights (default: {sam_checkpoint})" if sam_checkpoint
                       else "official SAM weights, e.g. weights/sam_vit_b_01ec64.pth")
    group.add_argument("--sam-model-type", default=SAM_MODEL_TYPE, help="vit_b | vit_l | vit_h")
    group.add_argument("--points-per-side", type=int, default=SAM_SETTINGS["points_per_side"])
    group.add_argument("--points-per-batch", type=int, default=SAM_POINTS_PER_BATCH)
    group.add_argument("--pred-iou-thresh", type=float, default=SAM_SETTINGS["pred_iou_thresh"])
    group.add_argument("--stability-score-thresh", type=float, default=SAM_SETTINGS["stability_score_thresh"])
    group.add_argument("--crop-n-layers", type=int, default=SAM_SETTINGS["crop_n_layers"])
    group.add_argument("--crop-n-points-downscale-factor", type=int,
                       default=SAM_SETTINGS["crop_n_points_downscale_factor"])
    group.add_argument("--min-mask-region-area", type=int, default=SAM_SETTINGS["min_mask_region_area"])
    group.add_argument("--superpixel-method", default=SUPERPIXEL_SETTINGS["method"], choices=["felzenszwalb", "slic"])
    group.add_argument("--superpixel-scale", type=float, default=SUPERPIXEL_SETTINGS["scale"],
                       help="felzenszwalb scale")
    group.add_argument("--superpixel-sigma", type=float, default=SUPERPIXEL_SETTINGS["sigma"])
    group.add_argument("--superpixel-min-size", type=int, default=SUPERPIXEL_SETTINGS["min_size"])
    group.add_argument("--superpixel-segments", type=int, default=SUPERPIXEL_SETTINGS["n_segments"],
                       help="slic n_segments")
    return parent


def region_proposer(args: argparse.Namespace):
    """The region proposer that the parsed `regions()` options describe, its settings passed as keyword arguments."""
    from uss.regions import build_proposer

    if args.proposer == "sam":
        settings = dict(points_per_side=args.points_per_side, points_per_batch=args.points_per_batch,
                        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_score_thresh,
                        crop_n_layers=args.crop_n_layers,
                        crop_n_points_downscale_factor=args.crop_n_points_downscale_factor,
                        min_mask_region_area=args.min_mask_region_area)
    else:
        settings = dict(method=args.superpixel_method, scale=args.superpixel_scale, sigma=args.superpixel_sigma,
                        min_size=args.superpixel_min_size, n_segments=args.superpixel_segments)
    return build_proposer(args.proposer, args.sam_checkpoint, args.sam_model_type, settings)


def subcommands(parser: argparse.ArgumentParser,
                commands: Mapping[str, Tuple[str, Iterable[argparse.ArgumentParser]]],
                dest: str = "command") -> Dict[str, argparse.ArgumentParser]:
    """One subcommand per entry {name: (help, parents)}, the chosen name stored as `dest`; returns the subparsers."""
    choices = parser.add_subparsers(dest=dest, required=True, metavar="{" + ",".join(commands) + "}")
    return {name: choices.add_parser(name, help=help, description=help, parents=list(parents))
            for name, (help, parents) in commands.items()}
