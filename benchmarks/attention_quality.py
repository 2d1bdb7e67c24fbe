"""How well a pixel-attention checkpoint separates objects from background, independent of any threshold.

For every image of a split with ground truth: the channel-mean attention the pseudo-label stages threshold
(uss.stages.pseudo_labels.PixelLabeler, same resizing), against the ground-truth foreground (ignore pixels
dropped). Prints the ROC AUC of attention as a foreground score (0.5 = no information, below 0.5 = inverted),
the attention's range and its mean within-image spread.
    .venv/bin/python benchmarks/attention_quality.py runs/demo/r18/pixel_attention/checkpoint.safetensors [--data data/toy]
"""
import argparse
import os

import numpy as np
from sklearn.metrics import roc_auc_score

import uss  # noqa: F401  (jittor environment)
from uss.data.label_png import IGNORE
from uss.data.split import ImageNetSSplit
from uss.stages.pixel_attention import load_pixel_attention_model
from uss.stages.pseudo_labels import PixelLabeler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="<pixel attention dump>/checkpoint.safetensors")
    parser.add_argument("--data", default="data/toy")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--short-side", type=int, default=96)
    args = parser.parse_args()
    model = load_pixel_attention_model(args.checkpoint)
    channels = model.backbone.out_channels[-1]
    labeler = PixelLabeler(model, np.eye(1, channels, dtype=np.float32), short_side=args.short_side)
    split = ImageNetSSplit(args.data, args.split)
    foreground, scores, spreads = [], [], []
    for index in range(len(split)):
        gt = split.load_label(index)
        _, attention = labeler(split.load(index).image)
        keep = gt != IGNORE
        foreground.append(gt[keep] > 0)
        scores.append(attention[keep])
        spreads.append(float(attention.std()))
    foreground, scores = np.concatenate(foreground), np.concatenate(scores)
    print(f"{os.path.relpath(args.checkpoint)} on {len(split)} {args.split} images: foreground AUC "
          f"{roc_auc_score(foreground, scores):.3f}, attention {scores.min():.3f}..{scores.max():.3f}, "
          f"mean within-image std {np.mean(spreads):.4f}, mean on objects {scores[foreground].mean():.4f} "
          f"vs background {scores[~foreground].mean():.4f}")


if __name__ == "__main__":
    main()
