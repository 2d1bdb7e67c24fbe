"""How well a pixel-attention checkpoint separates objects from background, independent of any threshold.

For every image of a split with ground truth: the channel-mean attention the pseudo-label stages threshold
(uss.labeling.labelers.PixelLabeler, same resizing), against the ground-truth foreground (ignore pixels
dropped). Prints the ROC AUC of attention as a foreground score (0.5 = no information, below 0.5 = inverted),
the attention's range and its mean within-image spread.
    .venv/bin/python benchmarks/attention_quality.py runs/demo/r18/pixel_attention/checkpoint.safetensors
        [--data data/toy]
"""
import argparse
import os

import numpy as np

import uss  # noqa: F401  (jittor environment)
from uss.data.split import ImageNetSSplit
from uss.evaluation.attention import foreground_auc
from uss.labeling.labelers import PixelLabeler
from uss.checkpoints.trained import load_pixel_attention_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="<pixel attention dump>/checkpoint.safetensors")
    parser.add_argument("--data", default="data/toy")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--short-side", type=int, default=64)
    args = parser.parse_args()
    model = load_pixel_attention_model(args.checkpoint)
    channels = model.backbone.out_channels[-1]
    labeler = PixelLabeler(model, np.eye(1, channels, dtype=np.float32), short_side=args.short_side)
    split = ImageNetSSplit(args.data, args.split)
    r = foreground_auc(lambda image: labeler(image)[1], split)
    print(f"{os.path.relpath(args.checkpoint)} on {len(split)} {args.split} images: foreground AUC {r['auc']:.3f}, "
          f"attention {r['min']:.3f}..{r['max']:.3f}, mean within-image std {r['within_image_std']:.4f}, "
          f"mean on objects {r['mean_foreground']:.4f} vs background {r['mean_background']:.4f}")


if __name__ == "__main__":
    main()
