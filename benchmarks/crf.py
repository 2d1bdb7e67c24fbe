"""What dense-CRF refinement (src/uss/crf.py) does to a folder of label maps, and what it costs per image.

    python benchmarks/crf.py --data data/toy --split validation --pred runs/demo/rows/labels/validation \
        --out runs/demo/crf/labels

Refines every label map of --pred with the image's colours (`DenseCrf.refine_labels`, each map's own label at
confidence 0.7) into --out, then evaluates both folders on the split's ground truth with a Hungarian match of their
own (mIoU, boundary mIoU, F-measure) and prints one table row each with the CRF's seconds per image. Run it on the
per-pixel labels (`scripts/label_rows.sh pixel`), the mask labels and test.py's predictions after demo.sh, and on
the stage-ceiling backbone's labels (benchmarks/stage_ceilings.sh).
"""
import argparse
import os
import time

import numpy as np
from tqdm import tqdm

from uss.crf import DenseCrf
from uss.data import layout
from uss.data.label_png import read_label_png, write_label_png
from uss.data.split import ImageNetSSplit
from uss.evaluation.evaluator import evaluate_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--pred", required=True, help="label maps to refine (ids 0..K)")
    parser.add_argument("--out", required=True, help="folder for the refined maps")
    parser.add_argument("--iterations", type=int, default=DenseCrf.iterations)
    args = parser.parse_args()
    split = ImageNetSSplit(args.data, args.split)
    crf = DenseCrf(iterations=args.iterations)
    seconds = []
    for index, name in enumerate(tqdm(split.names, desc="dense CRF", unit="img")):
        labels = read_label_png(os.path.join(args.pred, layout.label_name(name)))
        image = split.load(index).image
        start = time.perf_counter()
        refined = crf.refine_labels(image, labels, int(labels.max()) + 1 if labels.size else 1)
        seconds.append(time.perf_counter() - start)
        write_label_png(os.path.join(args.out, layout.label_name(name)), refined)
    categories = layout.load_categories(args.data)
    print(f"\n{args.pred} on {args.split}, {len(split)} images:")
    print("| labels | mIoU | boundary mIoU | F-measure | CRF s / image |\n|---|---:|---:|---:|---:|")
    for title, folder, cost in (("as given", args.pred, "-"), ("+ dense CRF", args.out, f"{np.mean(seconds):.3f}")):
        result = evaluate_folder(folder, split.segmentation_dir, categories, match="auto", progress=False,
                                 names=split.names)
        print(f"| {title} | {100 * result['mIoU']:.2f} | {100 * result['mBIoU']:.2f} | "
              f"{100 * result['FMeasure']:.2f} | {cost} |")


if __name__ == "__main__":
    main()
