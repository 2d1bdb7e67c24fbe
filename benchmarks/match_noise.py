"""How far the Hungarian match alone moves a test score: the validation images it is computed on, resampled.

ImageNet-S matches predicted ids to classes once, on validation (image-level co-occurrence,
`uss.evaluation.matching`), and scores test with that match. Where the ids are weak the match is ambiguous and which
validation images it saw moves the test score. This recomputes the match on resampled validation images (a
bootstrap of all of them, and halves drawn without replacement), scores the test split with each, and prints the
spread next to the score under the run's own match and under a match computed on test itself (an upper bound).

    .venv/bin/python benchmarks/match_noise.py --data data/toy --pred runs/demo/test_py [--pred runs/demo/rows/upernet]

Each --pred folder holds validation/ and test/ predictions (raw ids), as test.py and scripts/predict_row.sh write.
"""
import argparse
import os
import sys
from typing import Dict, List, Mapping, Sequence

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from uss.data.layout import load_categories  # noqa: E402
from uss.evaluation.evaluator import check_inputs, collect_stats, match_from_stats  # noqa: E402
from uss.evaluation.metrics import ImageStats, MetricAccumulator  # noqa: E402


def split_stats(data: str, pred: str, split: str) -> List[ImageStats]:
    """Per-image statistics of pred/<split> against the split's ground truth."""
    gt_dir = os.path.join(data, f"{split}-segmentation")
    pred_dir = os.path.join(pred, split)
    return collect_stats(pred_dir, gt_dir, check_inputs(pred_dir, gt_dir), progress=False)


def miou(stats: Sequence[ImageStats], match: Mapping[int, int], num_classes: int) -> float:
    """mIoU in percent of the images under the match."""
    accumulator = MetricAccumulator(num_classes)
    for s in stats:
        accumulator.add(s, match)
    return 100.0 * float(accumulator.result()["mIoU"])


def resampled(val: Sequence[ImageStats], test: Sequence[ImageStats], own: Mapping[int, int], num_classes: int,
              size: int, replace: bool, draws: int, rng: np.random.Generator) -> Dict[str, float]:
    """Test mIoU under matches computed on `draws` resamples of `size` validation images: mean, sd, 5th and 95th
    percentiles, and the mean number of ids mapped otherwise than by `own`, the full validation set's match."""
    scores, moved = [], []
    for _ in range(draws):
        match = match_from_stats([val[i] for i in rng.choice(len(val), size, replace=replace)], num_classes)
        scores.append(miou(test, match, num_classes))
        moved.append(sum(match[i] != own[i] for i in range(1, num_classes + 1)))
    values = np.array(scores)
    return {"mean": values.mean(), "sd": values.std(), "p5": np.percentile(values, 5),
            "p95": np.percentile(values, 95), "ids moved": float(np.mean(moved))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="data/toy")
    parser.add_argument("--pred", action="append", required=True, help="folder with validation/ and test/ (repeat)")
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    num_classes = len(load_categories(args.data))
    for pred in args.pred:
        val, test = split_stats(args.data, pred, "validation"), split_stats(args.data, pred, "test")
        own = match_from_stats(val, num_classes)
        print(f"{pred}: test mIoU {miou(test, own, num_classes):.2f} under its "
              f"validation match, {miou(test, match_from_stats(test, num_classes), num_classes):.2f} under a match "
              f"on test itself")
        rng = np.random.default_rng(args.seed)
        for label, size, replace in [(f"bootstraps of the {len(val)} validation images", len(val), True),
                                     (f"halves ({len(val) // 2} images without replacement)", len(val) // 2, False)]:
            r = resampled(val, test, own, num_classes, size, replace, args.draws, rng)
            print(f"  matches on {label}: test mIoU {r['mean']:.2f} +- {r['sd']:.2f} (5-95 %: {r['p5']:.2f} .. "
                  f"{r['p95']:.2f}), {r['ids moved']:.1f} of {num_classes} ids mapped otherwise")


if __name__ == "__main__":
    main()
