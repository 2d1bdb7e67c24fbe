"""Predict label PNGs for a split with a fine-tuned segmentation model, then optionally evaluate them.

    python -m uss.stages.inference --checkpoint <finetune dump>/checkpoint.safetensors --data ROOT \
        --split validation --out runs/x/validation --match auto
    python -m uss.stages.inference --checkpoint ... --split test --out runs/x/test --match runs/x/validation/match.json

Per image as PASS's inference.py (uss.prediction): resize the short side to --short-side, normalise, forward,
upsample the logits bilinearly to the image size (PASS's reduced size above --max-pixels), argmax, and write
``<out>/<wnid>/<name>.png`` with uss.writer: atomically; reruns keep outputs that decode and have the right
size and redo missing, truncated or mis-sized ones; images that cannot be read or processed are reported and
skipped, listed at the end and in <out>_failures.txt (exit status 1).
The model (arch, head, K) is read from the checkpoint's saved arguments. With --match the predictions are
evaluated (official protocol): 'auto' computes the Hungarian match on this split and saves <out>/match.json;
a match.json path (e.g. the validation one, for test) is copied to <out>/match.json and applied.
"""
import argparse
import sys
from typing import List, Optional

from uss import options, writer
from uss.data import layout
from uss.data.split import ImageNetSSplit
from uss.errors import run_cli
from uss.evaluation.predictions import choose_match, evaluate_predictions
from uss.models.decode_heads import HEADS
from uss.checkpoints.trained import load_finetuned
from uss.prediction import MAX_PIXELS, predict_split
from uss.training import runner


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m uss.stages.inference", description=__doc__.split("\n")[0],
                                     parents=[options.dataset("validation"), options.prediction(MAX_PIXELS)])
    parser.add_argument("--checkpoint", required=True, help="<finetune dump>/checkpoint.safetensors")
    parser.add_argument("--out", required=True, help="prediction folder (<out>/<wnid>/<name>.png)")
    parser.add_argument("--match", default=None,
                        help="evaluate: 'auto' (Hungarian on this split, saves <out>/match.json) or a match.json")
    parser.add_argument("--result", default=None, help="result JSON (default with --match: <out>_result.json)")
    parser.add_argument("--redo", action="store_true", help="rewrite every prediction, good ones included")
    parser.add_argument("--arch", default=None, help="override the checkpoint's saved --arch")
    parser.add_argument("--head", default=None, choices=sorted(HEADS), help="override the saved --head")
    parser.add_argument("--num-classes", type=int, default=None, help="override the saved --num-classes")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    match = choose_match(args.match, None, layout.segmentation_dir(args.data, args.split))
    device = runner.setup_device()
    model, config = load_finetuned(args.checkpoint, args.arch, args.head, args.num_classes)
    split = ImageNetSSplit(args.data, args.split)
    print(f"[inference] {config['arch']} + {config['head']} head, K={config['num_classes']} "
          f"({args.checkpoint}, epoch {config['epoch']}) on {len(split)} images of {split.image_dir} ({device})",
          flush=True)
    part = writer.this_part()
    summary = predict_split(model, split, args.out, args.short_side, args.max_pixels or None, redo=args.redo,
                            workers=args.threads, progress=not args.quiet, part=part)
    print(f"[inference] {summary.describe()} -> {args.out}", flush=True)
    failed = writer.settle(split, args.out, part, summary, "[inference]")
    if failed is None:
        return 0
    if failed:
        if match:
            print("[inference] not evaluating: predictions are missing", file=sys.stderr)
        return 1
    if match:
        result_path = args.result or args.out.rstrip("/\\") + "_result.json"
        evaluate_predictions(args.out, args.data, args.split, match, result_path, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    run_cli(main)
