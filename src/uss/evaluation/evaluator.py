"""Evaluate a folder of predicted label PNGs against ImageNet-S GT PNGs (official protocol, pure numpy).

GT: ``<gt_dir>/<wnid>/<name>.png``; predictions: the same relative paths under ``pred_dir``. Inputs are
checked before anything is computed (missing predictions, size mismatches, stray files). Each image
is decoded once (a thread pool over PIL + numpy + OpenCV); per-image statistics are independent of
the match, so 'auto' matching needs no second pass. All scores are fractions in [0, 1]; the table in
results.py shows percent.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from tqdm import tqdm

from uss.data.layout import relative_files
from uss.data.label_png import IGNORE, LabelFileError, label_png_size, read_label_png
from uss.errors import InputError
from uss.evaluation.matching import hungarian_match, load_match, save_match, unmapped_ids
from uss.evaluation.metrics import BOUNDARY_RATIO, ImageStats, MetricAccumulator, image_stats

ALLOWED_EXTRA = ("match.json", "method.txt")
MAX_LISTED = 10

MatchArg = Union[None, str, Mapping[int, int]]


class EvaluationInputError(InputError, ValueError):
    """Bad evaluation input (missing, mis-sized, stray or undecodable files); the message names them."""


def list_names(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    """'a, b, c (and 12 more)' for error messages."""
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def list_gt(gt_dir: str) -> List[str]:
    """Relative paths of the GT label PNGs under gt_dir."""
    if not os.path.isdir(gt_dir):
        raise EvaluationInputError(f"GT folder not found: {gt_dir}")
    names = [n for n in relative_files(gt_dir)
             if n.lower().endswith(".png") and not os.path.basename(n).startswith(".")]
    if not names:
        raise EvaluationInputError(f"no GT label PNGs under {gt_dir}")
    return names


def check_inputs(pred_dir: str, gt_dir: str, names: Optional[Iterable[str]] = None) -> List[str]:
    """Validate the prediction folder against the GT; return the relative names to evaluate.

    Raises EvaluationInputError listing missing predictions, predictions whose HxW differs from the
    GT, unreadable headers, and stray files in pred_dir (a PNG without GT, or any other file except
    top-level match.json / method.txt).
    """
    if not os.path.isdir(pred_dir):
        raise EvaluationInputError(f"prediction folder not found: {pred_dir}")
    gt_names = list_gt(gt_dir)
    gt_set = set(gt_names)
    if names is not None:
        wanted = sorted({os.path.splitext(n.replace(os.sep, "/"))[0] + ".png" for n in names})
        no_gt = [n for n in wanted if n not in gt_set]
        if no_gt:
            raise EvaluationInputError(f"{len(no_gt)} listed names have no GT in {gt_dir}: {list_names(no_gt)}")
    else:
        wanted = gt_names
    pred_files = relative_files(pred_dir)
    pred_set = set(pred_files)
    stray = [n for n in pred_files if n not in gt_set and n not in ALLOWED_EXTRA]
    missing = [n for n in wanted if n not in pred_set]
    problems = []
    if missing:
        problems.append(f"{len(missing)} predictions missing: {list_names(missing)}")
    if stray:
        problems.append(f"{len(stray)} stray files in the prediction folder (no GT; only PNGs with GT, "
                        f"match.json and method.txt are allowed): {list_names(stray)}")
    if not problems:
        mismatched, unreadable = [], []
        for name in wanted:
            try:
                gt_size = label_png_size(os.path.join(gt_dir, name))
                pred_size = label_png_size(os.path.join(pred_dir, name))
            except LabelFileError as error:
                unreadable.append(str(error))
                continue
            if gt_size != pred_size:
                mismatched.append(f"{name} (prediction {pred_size[0]}x{pred_size[1]}, GT {gt_size[0]}x{gt_size[1]})")
        if mismatched:
            problems.append(f"{len(mismatched)} predictions differ in size from the GT: {list_names(mismatched)}")
        if unreadable:
            problems.append(f"{len(unreadable)} unreadable PNGs: {list_names(unreadable)}")
    if problems:
        raise EvaluationInputError(f"bad prediction folder {pred_dir}: " + "; ".join(problems))
    return wanted


def _load_pair(gt_path: str, pred_path: str, ratio: float) -> Tuple[Optional[ImageStats], Optional[str]]:
    """Decode one pair and compute its statistics; (None, message) when a file cannot be decoded."""
    try:
        gt = read_label_png(gt_path)
        pred = read_label_png(pred_path)
    except LabelFileError as error:
        return None, str(error)
    if gt.shape != pred.shape:
        return None, f"{pred_path}: prediction {pred.shape} differs in size from GT {gt.shape}"
    return image_stats(gt, pred, ratio), None


def collect_stats(pred_dir: str, gt_dir: str, names: Sequence[str], workers: Optional[int] = None,
                  progress: bool = True, ratio: float = BOUNDARY_RATIO) -> List[ImageStats]:
    """Per-image statistics for every name, decoded in a thread pool; undecodable files raise at the end."""
    workers = workers or min(8, os.cpu_count() or 1)
    jobs = [(os.path.join(gt_dir, n), os.path.join(pred_dir, n)) for n in names]
    stats: List[ImageStats] = []
    errors: List[str] = []
    bar = tqdm(total=len(jobs), desc="evaluate", unit="img", disable=not progress, leave=False)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item, error in pool.map(lambda job: _load_pair(job[0], job[1], ratio), jobs):
            if error is not None:
                errors.append(error)
            else:
                stats.append(item)
            bar.update(1)
    bar.close()
    if errors:
        raise EvaluationInputError(f"{len(errors)} label PNGs could not be decoded: {list_names(errors)}")
    return stats


def resolve_match(match: MatchArg) -> Union[None, str, Dict[int, int]]:
    """None, 'auto', a dict (keys/values made int) or a path to match.json (loaded)."""
    if match is None or match == "auto":
        return match
    if isinstance(match, str):
        return load_match(match)
    return {int(k): int(v) for k, v in match.items()}


def match_from_stats(stats: Sequence[ImageStats], num_classes: int) -> Dict[int, int]:
    """Hungarian match computed on the image-level presence recorded in `stats`."""
    return hungarian_match([s.gt_presence() for s in stats], [s.pred_presence() for s in stats], num_classes)


def check_prediction_ids(names: Sequence[str], id_sets: Sequence[Iterable[int]], match: Optional[Mapping[int, int]],
                         num_classes: int, where: str, match_name: str = "the match") -> None:
    """EvaluationInputError naming the ids and files when a prediction holds an id the official evaluator
    cannot score: one `match` does not map, or one above K (see matching.unmapped_ids)."""
    bad = [(name, unmapped_ids(ids, match, num_classes)) for name, ids in zip(names, id_sets)]
    bad = [(name, ids) for name, ids in bad if ids]
    if bad:
        ids = sorted(set().union(*(set(i) for _, i in bad)))
        rule = f"not mapped by {match_name} or above K={num_classes}" if match is not None else f"above K={num_classes}"
        raise EvaluationInputError(
            f"{len(bad)} predictions in {where} hold ids {rule}: ids {list_names([str(i) for i in ids])} in "
            f"{list_names([name for name, _ in bad])}")


def infer_num_classes(stats: Sequence[ImageStats]) -> int:
    """Largest GT class id (1000 excluded) over the dataset."""
    top = 0
    for s in stats:
        valid = s.gt_ids[s.gt_ids != IGNORE]
        if valid.size:
            top = max(top, int(valid.max()))
    return top


def evaluate_folder(pred_dir: str, gt_dir: str, categories: Optional[Sequence[str]] = None,
                    match: MatchArg = None, names: Optional[Iterable[str]] = None,
                    workers: Optional[int] = None, progress: bool = True,
                    save_match_to: Optional[str] = None) -> Dict[str, object]:
    """Evaluate predictions against GT; fractions in [0, 1].

    categories: class names in id order (K = len); None -> K = largest GT id (1000 excluded).
    match: None (predictions already hold class ids), 'auto' (Hungarian on this folder), a dict
    {predicted id: class} or a path to match.json ('auto' is square: every id 1..K mapped). A prediction
    holding an id the match does not map, or an id above K, is refused (the official evaluator fails on it).
    names: optional relative label paths (or image names) restricting the evaluated set.
    save_match_to: write the match used (e.g. the 'auto' one) to this match.json.
    Returns mIoU, IoUs, classes, Acc, FMeasure, mBIoU, BIoUs, S, MS, ML, L, BS, BMS, BML, BL, num_classes, num_images,
    images_per_s, seconds and match (the dict used, or None).
    """
    resolved = resolve_match(match)
    selected = check_inputs(pred_dir, gt_dir, names)
    start = time.perf_counter()
    stats = collect_stats(pred_dir, gt_dir, selected, workers=workers, progress=progress)
    num_classes = len(categories) if categories is not None else infer_num_classes(stats)
    too_big = [n for n, s in zip(selected, stats)
               if any(v > num_classes and v != IGNORE for v in s.gt_ids.tolist())]
    if too_big:
        raise EvaluationInputError(f"{len(too_big)} GT files hold class ids above K={num_classes} "
                                   f"(the number of categories): {list_names(too_big)}")
    if resolved == "auto":
        resolved = match_from_stats(stats, num_classes)
    check_prediction_ids(selected, [s.pred_presence() for s in stats], resolved, num_classes, pred_dir,
                         match if isinstance(match, str) and match != "auto" else "the match")
    if save_match_to and resolved is not None:
        save_match(save_match_to, resolved)
    accumulator = MetricAccumulator(num_classes)
    for s in stats:
        accumulator.add(s, resolved)
    seconds = time.perf_counter() - start
    result = accumulator.result()
    class_names = ["background"] + (list(categories) if categories is not None
                                    else [str(i) for i in range(1, num_classes + 1)])
    result.update({
        "classes": class_names,
        "num_classes": num_classes,
        "num_images": accumulator.num_images,
        "seconds": seconds,
        "images_per_s": accumulator.num_images / seconds if seconds > 0 else float("inf"),
        "match": resolved,
    })
    if progress:
        print(f"evaluated {accumulator.num_images} images in {seconds:.1f}s "
              f"({result['images_per_s']:.1f} images/s)")
    return result
