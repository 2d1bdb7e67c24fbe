"""Test-time segmentation (test.py): the fine-tuned model's predictions refined with region masks, the match
and evaluation, and the benchmark zip.

    python test.py --mode validation --checkpoint weights/finetune/checkpoint.safetensors \
        --proposer sam --sam-checkpoint weights/sam_vit_b_01ec64.pth --data data/ImageNetS50 --out result
    python test.py --mode test ...   (uses <out>/validation/match.json unless --match is given)

The method (PASS inference, majority vote inside region masks, the all-background fallbacks) is
uss.test_time_refinement's.

Outputs: ``<out>/<mode>/<wnid>/<name>.png``, written by uss.writer: atomically; a rerun first removes temporary
files that killed writes left, keeps outputs that decode and have the image's size, and redoes the others. An
image that cannot be read or processed is reported and skipped without stopping the split; all of them are
listed at the end and in ``<out>/<mode>_failures.txt`` (they have no output file). The work is split across MPI
ranks (``mpirun -np N``) or, with ``--shard i/n``, between independent processes; a sharded run only predicts:
run once more without --shard to check completeness, evaluate and pack.

After all images: on validation the Hungarian match is computed and saved as ``<out>/validation/match.json``
and the predictions are evaluated (mIoU table, ``<out>/<mode>_result.json``); a test split uses --match
(default ``<out>/validation/match.json``), copied to ``<out>/<mode>/match.json``, and is evaluated when it has
ground truth. ``method.txt`` is written beside them, so ``<out>/<mode>/`` is the benchmark's submission tree,
and the zip (--zip, default ``<out>/<mode>.zip``: class folders of PNGs, match.json, method.txt at the root)
is packed with uss.submission. With any failed image nothing is evaluated or packed and the exit status is 1,
so a partial result is never zipped silently; --allow-failures evaluates and packs the images that succeeded.
"""
import argparse
import os
import sys
from typing import Any, Dict, List, Optional

from uss import distributed, options, writer
from uss.atomic import atomic_write_text
from uss.data import layout
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.evaluation.predictions import choose_match, evaluate_predictions
from uss.prediction import MAX_PIXELS

DEFAULT_DATA = "data/ImageNetS50"
DEFAULT_CHECKPOINT = "weights/finetune/checkpoint.safetensors"
DEFAULT_SAM = "weights/sam_vit_b_01ec64.pth"
TAG = "[test]"
NO_MATCH = "none"


def build_parser() -> argparse.ArgumentParser:
    """test.py's arguments (data, prediction, shard and region-proposer options from uss.options)."""
    parser = argparse.ArgumentParser(
        prog="python test.py", description="Fine-tuned model + region-mask refinement -> label PNGs, match.json, "
        "evaluation and the benchmark zip (method: see src/uss/test_time_refinement.py).", parents=[
            options.dataset("validation", required=False, default=DEFAULT_DATA, mode_alias=True,
                            split_help="split folder to segment: validation, test, testA, testB or any other folder "
                                       "of --data (default: validation; --mode is the same option)"),
            options.prediction(MAX_PIXELS), options.shard("predict only part i of n (i/n); skips evaluation and zip"),
            options.regions(default="sam", sam_checkpoint=DEFAULT_SAM)])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                        help="fine-tuned model: <finetune dump>/checkpoint.safetensors of main_pixel_finetuning.py "
                             f"(default: {DEFAULT_CHECKPOINT})")
    parser.add_argument("--out", default="result",
                        help="output folder: <out>/<split>/<wnid>/<name>.png and reports (default: result)")
    parser.add_argument("--match", default=None,
                        help="match.json to apply (default: 'auto' = Hungarian on validation; "
                             "<out>/validation/match.json for a test split); 'none' for images without any ground "
                             "truth (a plain image folder): the predictions keep the model's ids, nothing is "
                             "evaluated or packed")
    parser.add_argument("--zip", default=None, help="benchmark zip to write (default: <out>/<split>.zip)")
    parser.add_argument("--method-text", default=None, help="method.txt text (default: describes this run)")
    parser.add_argument("--allow-failures", action="store_true",
                        help="evaluate and pack the images that succeeded even if some failed (exit status 0)")
    parser.add_argument("--crf", action="store_true",
                        help="dense-CRF refinement (src/uss/crf.py, pydensecrf's example settings) of the model's "
                             "prediction before the region vote; off by default (benchmarks/crf.py measures it)")
    parser.add_argument("--decode-truncated", action="store_true",
                        help="decode truncated JPEGs as far as their data goes (a warning per file, listed in "
                             "<out>/<split>_truncated.txt) instead of reporting them as failed")
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    """Cheap checks before anything heavy: one-line InputErrors saying what to pass."""
    if not os.path.isdir(args.data):
        raise InputError(f"dataset folder not found: {args.data}; pass --data <ImageNet-S folder with "
                         f"{args.split}/ inside> (the demo dataset: python -m uss.data.toy --out data/toy)")
    if not os.path.isfile(args.checkpoint):
        raise InputError(f"fine-tuned checkpoint not found: {args.checkpoint}; pass --checkpoint "
                         f"<finetune dump>/checkpoint.safetensors (written by main_pixel_finetuning.py / train_3.sh)")
    if args.proposer == "sam" and not os.path.isfile(args.sam_checkpoint or ""):
        raise InputError(f"SAM checkpoint not found: {args.sam_checkpoint}; download the official "
                         f"sam_{args.sam_model_type}_*.pth into weights/ and pass --sam-checkpoint, "
                         f"or use --proposer superpixel")


def resolve_match(args: argparse.Namespace, split: ImageNetSSplit) -> Optional[str]:
    """'auto', the path of the match.json this run applies (checked before predicting), or None (--match none)."""
    if args.match == NO_MATCH:
        return None
    default = "auto" if args.split == "validation" else os.path.join(args.out, "validation", "match.json")
    return choose_match(args.match, default, split.segmentation_dir,
                        "; run `python test.py --mode validation` first (it writes <out>/validation/match.json) or "
                        "pass --match <match.json>")


def default_method_text(config: Dict[str, Any], args: argparse.Namespace) -> str:
    """method.txt describing this run."""
    regions = (f"SAM {args.sam_model_type} automatic masks, SAM point-prompt fallback" if args.proposer == "sam"
               else f"{args.superpixel_method} superpixels")
    return (f"PASS-style large-scale unsupervised semantic segmentation (Jittor, uss): {config['arch']} + "
            f"{config['head']} head fine-tuned on pseudo labels (K={config['num_classes']}); test-time refinement "
            f"by majority vote of the prediction inside region masks ({regions}); short side {args.short_side}.")


def run(args: argparse.Namespace) -> int:
    """test.py: predict, refine, report failures, then (rank 0, unsharded) match, evaluate and pack."""
    from uss.crf import DenseCrf
    from uss.checkpoints.trained import load_finetuned
    from uss.test_time_refinement import RefinedSegmenter, segment_split
    from uss.training import runner

    check_inputs(args)
    split = ImageNetSSplit(args.data, args.split)
    part = writer.this_part(args.shard)
    match = resolve_match(args, split) if not part.independent else None
    pred_dir = os.path.join(args.out, args.split)
    device = runner.setup_device()
    model, config = load_finetuned(args.checkpoint)
    try:
        proposer = options.region_proposer(args)
        predictor = None
        if args.proposer == "sam":
            from uss.sam import SamPredictor

            predictor = SamPredictor(proposer.model)
    except (RuntimeError, ValueError) as error:  # bad SAM options (a bad checkpoint is an InputError already)
        raise InputError(" ".join(str(error).split())) from None
    segmenter = RefinedSegmenter(model, proposer, args.short_side, args.max_pixels or None, predictor,
                                 crf=DenseCrf() if args.crf else None)
    if distributed.is_main_process():
        where = f"shard {part.index}/{part.count}" if part.independent else f"{part.count} rank(s)"
        print(f"{TAG} {config['arch']} + {config['head']} head, K={config['num_classes']} ({args.checkpoint}, epoch "
              f"{config['epoch']}); regions: {proposer.describe()}; {len(split)} images of {split.image_dir} "
              f"({device}, {where}) -> {pred_dir}", flush=True)
    summary, fallbacks = segment_split(segmenter, split, pred_dir, part, args.threads, desc=f"test {args.split}",
                                       progress=not args.quiet, decode_truncated=args.decode_truncated)
    fallback = ", ".join(f"{v} {k}" for k, v in sorted(fallbacks.items())) or "none"
    print(f"{TAG} part {part.index}/{part.count}: {summary.describe()}; all-background fallbacks: {fallback}",
          flush=True)
    failed = writer.settle(split, pred_dir, part, summary, TAG)
    if part.independent:
        print(f"{TAG} --shard: evaluation and zip skipped; after all shards, run once more without --shard "
              f"to check, evaluate and pack", flush=True)
        return 1 if failed else 0
    if failed is None:
        return 0
    return finish(args, split, pred_dir, match, config, failed)


def finish(args: argparse.Namespace, split: ImageNetSSplit, pred_dir: str, match: Optional[str],
           config: Dict[str, Any], failed: List[writer.Failure]) -> int:
    """Rank 0 after every rank is done and failures are reported: match and evaluation, method.txt and the zip."""
    expected = {layout.label_name(n).replace(os.sep, "/") for n in split.names}
    stray = [f for f in layout.relative_files(pred_dir) if f.lower().endswith(".png") and f not in expected]
    if stray:
        raise InputError(f"{pred_dir} holds {len(stray)} PNG(s) of images not in the '{args.split}' split "
                         f"(e.g. {stray[0]}); remove them or use another --out")
    if failed and not args.allow_failures:
        print(f"{TAG} not evaluating or packing a partial result; fix or remove the failed images, or pass "
              f"--allow-failures", file=sys.stderr)
        return 1
    good = [n for n in split.names if os.path.isfile(writer.output_path(pred_dir, n))] if failed else None
    if failed and not good:
        return 1
    if match is None:
        print(f"{TAG} --match none: {pred_dir} holds the model's own ids (1..K, 0 background); nothing evaluated "
              f"or packed", flush=True)
        return 0
    result_path = os.path.join(args.out, f"{args.split}_result.json")
    result = evaluate_predictions(pred_dir, args.data, args.split, match, result_path,
                                  progress=not args.quiet, names=good)
    if result is not None:
        print(f"{TAG} {args.split}: mIoU {100 * result['mIoU']:.2f} on {result['num_images']} images "
              f"(match {os.path.join(pred_dir, 'match.json')})", flush=True)
    from uss.submission import pack_submission

    method = args.method_text or default_method_text(config, args)
    atomic_write_text(os.path.join(pred_dir, "method.txt"), method.rstrip("\n") + "\n")
    zip_path = args.zip or os.path.join(args.out, f"{args.split}.zip")
    packed = pack_submission(pred_dir, zip_path, os.path.join(pred_dir, "match.json"), method,
                             num_classes=int(config["num_classes"]))
    print(f"{TAG} submission: {pred_dir} (class folders, match.json, method.txt) -> {zip_path} "
          f"({packed['num_pngs']} PNGs in {packed['classes']} class folders)", flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of test.py; returns the exit status (1 when images failed)."""
    return run(build_parser().parse_args(argv))
