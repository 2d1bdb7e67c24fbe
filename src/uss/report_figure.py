"""The demo's report image: test images with ground-truth and prediction overlays, the threshold curves
and the per-class IoU bars, in one PNG.

    python -m uss.report_figure --data data/toy --split test --pred runs/demo/test_py/test \
        --result runs/demo/rows/refined/test.json --curve runs/demo/r18/cluster/threshold_curve.png \
        --curve runs/demo/r18/mask_sweep/threshold_curve.png --out runs/demo/report.png
"""
import argparse
import json
import os
from typing import List, Optional, Sequence

import cv2
import numpy as np

from uss import options
from uss.data import layout
from uss.data.label_png import read_label_png
from uss.data.split import ImageNetSSplit
from uss.evaluation.matching import apply_match, load_match
from uss.plots import bar_chart, save_png
from uss.visualize import overlay


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)


def example_grid(split: ImageNetSSplit, pred_dir: str, count: int = 8, tile: int = 160,
                 match: Optional[dict] = None) -> np.ndarray:
    """Rows of (image, ground-truth overlay, prediction overlay) for `count` images spread over the split."""
    rows = []
    for index in np.linspace(0, len(split) - 1, num=min(count, len(split))).astype(int):
        item = split.load(int(index))
        gt = split.load_label(int(index)) if split.has_segmentation else np.zeros(item.size, np.int32)
        pred = read_label_png(os.path.join(pred_dir, layout.label_name(item.name)))
        if match:
            pred = apply_match(pred, match)
        rows.append(np.concatenate([_tile(item.image, tile), _tile(overlay(item.image, gt, 0.55), tile),
                                    _tile(overlay(item.image, pred, 0.55), tile)], axis=1))
    grid = np.concatenate(rows, axis=0)
    header = np.full((28, grid.shape[1], 3), 255, np.uint8)
    for col, text in enumerate(("image", "ground truth", "prediction")):
        cv2.putText(header, text, (col * tile + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, grid], axis=0)


def make_report(split: ImageNetSSplit, pred_dir: str, result_json: str, curves: Sequence[str], out: str,
                match_json: Optional[str] = None) -> str:
    """Compose and write the report PNG; returns its path."""
    match = load_match(match_json) if match_json else None
    grid = example_grid(split, pred_dir, match=match)
    with open(result_json) as handle:
        result = json.load(handle)
    bars = bar_chart(result.get("classes", [str(i) for i in range(len(result["IoUs"]))]), result["IoUs"],
                     f"per-class IoU on {split.split} (mIoU {100 * result['mIoU']:.1f})",
                     size=(640, max(240, 24 * len(result["IoUs"]) + 50)))
    panels = [cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB) for path in curves if os.path.isfile(path)]
    right = np.concatenate([bars] + panels, axis=0) if panels else bars
    height = max(grid.shape[0], right.shape[0])

    def pad_height(image):
        extra = height - image.shape[0]
        return np.concatenate([image, np.full((extra, image.shape[1], 3), 255, np.uint8)], axis=0) if extra else image

    report = np.concatenate([pad_height(grid), pad_height(right)], axis=1)
    save_png(out, report)
    return out


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Compose the demo report image.", parents=[options.dataset("test")])
    parser.add_argument("--pred", required=True, help="prediction folder (raw ids)")
    parser.add_argument("--match", default=None, help="match.json mapping the prediction ids to classes")
    parser.add_argument("--result", required=True, help="evaluator result JSON of these predictions")
    parser.add_argument("--curve", action="append", default=[], help="threshold-curve PNGs to include")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    report = make_report(ImageNetSSplit(args.data, args.split), args.pred, args.result, args.curve, args.out,
                         args.match)
    print(f"report: {report}")


if __name__ == "__main__":
    from uss.errors import run_cli

    run_cli(main)
