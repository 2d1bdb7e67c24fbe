"""Run the official LUSSeg/ImageNet-S evaluation code next to this project's evaluator on protocol cases.

    git clone https://github.com/LUSSeg/ImageNet-S /path/to/ImageNet-S        (or a bare mirror of it)
    pip install --target build/official_deps munkres==1.1.4                    (the official matching needs munkres)
    .venv/bin/python benchmarks/official_eval_check.py --official /path/to/ImageNet-S --deps build/official_deps

The official code is copied into a temporary folder (never into this repository) and run on the CPU:
`Tensor.cuda` is made a no-op, torchvision's ImageFolder (only its constructor is used) and prettytable
(display only) are stubbed. Cases, on synthetic ImageNet-S-style label PNGs written by this project:

1. validation: this project's `--match auto` against the official match.py (same total co-occurrence; the
   mappings printed), then every metric of the official evaluator.py with this project's match.json
   against uss.evaluation (mIoU, per-class IoU, Acc, F, mBIoU, S/MS/ML/L, BS/BMS/BML/BL);
2. test: predictions holding an id never predicted on validation, scored with the validation match.json;
3. a subset missing two classes (mBIoU over all K + 1 classes);
4. a partial match.json (the old, non-square one): the official evaluator raises KeyError, uss refuses.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import types

import cv2
import numpy as np

from uss.data.label_png import IGNORE, write_label_png
from uss.errors import InputError
from uss.evaluation import evaluate_folder, save_match

K = 6
KEYS = ("mIoU", "Acc", "FMeasure", "mBIoU", "S", "MS", "ML", "L", "BS", "BMS", "BML", "BL")


def synthetic_split(root: str, split: str, seed: int, never: int = 0, drop=()) -> list:
    """GT and raw-id predictions (permuted ids, shifted, noisy) for K classes; id `never` is not predicted."""
    rng = np.random.default_rng(seed)
    permutation = {c: (c % K) + 1 for c in range(1, K + 1)}  # class c is predicted as id c+1
    names = []
    for c in range(1, K + 1):
        if c in drop:
            continue
        for i in range(4):
            h, w = int(rng.integers(40, 90)), int(rng.integers(40, 90))
            gt = np.zeros((h, w), np.int32)
            classes = [c] + ([int(rng.integers(1, K + 1))] if i % 2 else [])
            for j, cls in enumerate(classes):
                if cls in drop:
                    continue
                big = i == 3 and j == 0
                axes = (int(w * 0.45), int(h * 0.45)) if big else (int(rng.integers(3, w // 3)),
                                                                   int(rng.integers(3, h // 3)))
                centre = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
                cv2.ellipse(gt, centre, axes, float(rng.uniform(0, 180)), 0, 360, cls, -1)
            pred = np.roll(gt, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
            pred = np.vectorize(lambda v: permutation.get(int(v), 0))(pred)
            noise = rng.random(gt.shape) < 0.03
            pred[noise] = rng.integers(0, K + 1, size=int(noise.sum()))
            if never:
                pred[pred == never] = 0
            rim = cv2.morphologyEx((gt > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
            gt[rim & (rng.random(gt.shape) < 0.5)] = IGNORE
            name = f"n{c:08d}/{split}_{c}_{i}.png"
            write_label_png(os.path.join(root, split + "-segmentation", name), gt)
            write_label_png(os.path.join(root, "pred", split, name), pred)
            names.append(name)
    with open(os.path.join(root, f"{split}_names.txt"), "w") as handle:
        handle.write("".join(f"x {n}\n" for n in names))
    return names


def load_official(source: str, deps: str, work: str):
    """(match module, evaluator module, tools module) of the official code copied into `work`, CPU-patched."""
    target = os.path.join(work, "official")
    if os.path.isdir(os.path.join(source, "evaluation")):
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"))
    else:  # a bare git mirror
        os.makedirs(target)
        archive = subprocess.run(["git", "--git-dir", source, "archive", "HEAD", "evaluation", "data"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", target], input=archive, check=True)
    import torch

    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    vision = types.ModuleType("torchvision")
    datasets = types.ModuleType("torchvision.datasets")

    class ImageFolder:  # only the constructor is used by EvalDataset
        def __init__(self, root, *args, **kwargs):
            self.root = root

    datasets.ImageFolder = ImageFolder
    vision.datasets = datasets
    sys.modules.setdefault("torchvision", vision)
    sys.modules["torchvision.datasets"] = datasets
    if "prettytable" not in sys.modules:
        try:
            import prettytable  # noqa: F401
        except ImportError:
            table = types.ModuleType("prettytable")
            table.PrettyTable = object
            sys.modules["prettytable"] = table
    if deps:
        sys.path.insert(0, deps)
    sys.path[:0] = [os.path.join(target, "evaluation"), target]
    import evaluator as official_evaluator
    import match as official_match
    import tools as official_tools
    return official_match, official_evaluator, official_tools


def official_scores(modules, pred_dir, gt_dir, names_file, match_path):
    _, evaluator, tools = modules
    loader = tools.get_loader(pred_dir, gt_dir, name_list=names_file, match=match_path, workers=0)
    log = evaluator.evaluator(loader, num_classes=K)
    return {k: log[k] / 100.0 for k in KEYS} | {"IoUs": [v / 100.0 for v in log["IoUs"]]}


def compare(title: str, ours: dict, official: dict) -> float:
    print(f"\n{title}")
    print(f"  {'metric':<8} {'uss':>10} {'official':>10} {'|diff| pts':>11}")
    worst = 0.0
    for key in KEYS:
        a, b = ours[key], official[key]
        a = float("nan") if a is None else a
        diff = abs(a - b) * 100 if not (np.isnan(a) and np.isnan(b)) else 0.0
        worst = max(worst, diff)
        print(f"  {key:<8} {100 * a:>10.4f} {100 * b:>10.4f} {diff:>11.2e}")
    per_class = max(abs(a - b) for a, b in zip(ours["IoUs"], official["IoUs"])) * 100
    print(f"  per-class IoU: max |diff| {per_class:.2e} points")
    return max(worst, per_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, help="LUSSeg/ImageNet-S checkout or bare git mirror")
    parser.add_argument("--deps", default=None, help="folder with munkres (pip install --target DIR munkres==1.1.4)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        modules = load_official(args.official, args.deps, work)
        root = os.path.join(work, "data")
        categories = [f"n{c:08d}" for c in range(1, K + 1)]
        never = 4
        synthetic_split(root, "validation", seed=0, never=never)
        synthetic_split(root, "test", seed=1)
        gt_val, pred_val = os.path.join(root, "validation-segmentation"), os.path.join(root, "pred", "validation")
        gt_test, pred_test = os.path.join(root, "test-segmentation"), os.path.join(root, "pred", "test")
        match_path = os.path.join(work, "match.json")
        ours = evaluate_folder(pred_val, gt_val, categories, match="auto", save_match_to=match_path, progress=False)

        # 1. matching
        loader = modules[2].get_loader(pred_val, gt_val, name_list=os.path.join(root, "validation_names.txt"),
                                       workers=0)
        official_match = modules[0].matching(loader, num_classes=K)
        official_match[0] = 0
        from uss.evaluation import cooccurrence
        from uss.evaluation.evaluator import check_inputs, collect_stats

        stats = collect_stats(pred_val, gt_val, check_inputs(pred_val, gt_val), progress=False)
        counts = cooccurrence([s.gt_presence() for s in stats], [s.pred_presence() for s in stats], K)
        total = lambda m: int(sum(counts[i - 1, m[i] - 1] for i in range(1, K + 1)))  # noqa: E731
        print(f"validation match (id {never} never predicted):\n  uss      {dict(sorted(ours['match'].items()))}"
              f"\n  official {dict(sorted(official_match.items()))}"
              f"\n  total co-occurrence: uss {total(ours['match'])}, "
              f"official {total(official_match)}; identical: {dict(ours['match']) == dict(official_match)}")
        worst = compare("validation, uss match.json", ours,
                        official_scores(modules, pred_val, gt_val, os.path.join(root, "validation_names.txt"),
                                        match_path))
        # 2. test with the validation match
        ours_test = evaluate_folder(pred_test, gt_test, categories, match=match_path, progress=False)
        worst = max(worst, compare(f"test (holds id {never}), validation match.json", ours_test,
                                   official_scores(modules, pred_test, gt_test, os.path.join(root, "test_names.txt"),
                                                   match_path)))
        # 3. a subset missing two classes
        sub = os.path.join(work, "subset")
        synthetic_split(sub, "validation", seed=2, drop=(2, 5))
        sub_match = os.path.join(work, "sub_match.json")
        ours_sub = evaluate_folder(os.path.join(sub, "pred", "validation"),
                                   os.path.join(sub, "validation-segmentation"),
                                   categories, match="auto", save_match_to=sub_match, progress=False)
        worst = max(worst, compare("subset without classes 2 and 5", ours_sub,
                                   official_scores(modules, os.path.join(sub, "pred", "validation"),
                                                   os.path.join(sub, "validation-segmentation"),
                                                   os.path.join(sub, "validation_names.txt"), sub_match)))
        # 4. a partial match
        partial = os.path.join(work, "partial.json")
        save_match(partial, {k: v for k, v in ours["match"].items() if k != never})
        try:
            official_scores(modules, pred_test, gt_test, os.path.join(root, "test_names.txt"), partial)
            official_result = "scored"
        except KeyError as error:
            official_result = f"KeyError {error}"
        try:
            evaluate_folder(pred_test, gt_test, categories, match=partial, progress=False)
            ours_result = "scored"
        except InputError as error:
            ours_result = "refused: " + str(error)[:120] + "..."
        print(f"\npartial match.json without id {never} on test:\n  official: {official_result}"
              f"\n  uss:      {ours_result}")
        print(f"\nlargest difference over all cases: {worst:.2e} points")


if __name__ == "__main__":
    main()
