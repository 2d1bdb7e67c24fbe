"""Test-time segmentation (test.py): the fine-tuned model's predictions refined with region masks, the match
and evaluation, and the benchmark zip.

    python test.py --mode validation --checkpoint weights/finetune/checkpoint.safetensors \
        --proposer sam --sam-checkpoint weights/sam_vit_b_01ec64.pth --data data/ImageNetS50 --out result
    python test.py --mode test ...   (uses <out>/validation/match.json unless --match is given)

Per image: the fine-tuned model's prediction exactly as PASS inference (uss.stages.inference: short side
--short-side, logits upsampled bilinearly to the image size, argmax; an image of more than --max-pixels pixels
is processed at PASS's reduced size (1000, int(1000 * W / H)), its inference.py rule, and its label map enlarged
by nearest neighbour at the end). The region proposer (SAM's automatic masks, or superpixels) runs on the image
at that same working size (an image with a side under 32 px is enlarged for it by an integer factor). Its
masks are painted largest first, so smaller masks overwrite larger ones; each mask gets the majority vote of
the model's prediction inside it (the most frequent predicted id, background included; ties go to the smaller
id). Pixels no mask covers keep the model's prediction.

When the refined map is all background, the image gets one object anyway (every ImageNet-S image holds one):
the dominant class is the foreground class with the largest total softmax probability over the logit map;
  - SAM proposer: SAM is prompted with 5 positive points (the 5 logit cells where that class is most
    probable) and 5 negative points (the 5 where it is least probable), chosen greedily in that order with a
    minimum spacing of max(1, min(h, w) // 8) cells (relaxed when too few cells qualify) and placed at the
    cell centres; SAM's best mask (highest predicted IoU of its 3 outputs) is labelled with the class
    ("sam-points" in the summary; an empty mask leaves the image background: "sam-points-empty").
  - superpixel proposer (no promptable model): the region with the highest mean probability of that class
    (the class's softmax map bilinearly upsampled to the working size; ties go to the larger region) is
    labelled with the class ("best-region").

Outputs: ``<out>/<mode>/<wnid>/<name>.png`` (written atomically). A rerun first removes temporary files that
killed writes left, keeps outputs that decode and have the image's size, and redoes the others. An image that
cannot be read or processed is reported and skipped without stopping the split; all of them are listed at the
end and in ``<out>/<mode>_failures.txt`` (they have no output file). The work is split across MPI ranks
(``mpirun -np N``) or, with ``--shard i/n``, between independent processes; a sharded run only predicts: run
once more without --shard to check completeness, evaluate and pack.

After all images: on validation the Hungarian match is computed and saved as ``<out>/validation/match.json``
and the predictions are evaluated (mIoU table, ``<out>/<mode>_result.json``); a test split uses --match
(default ``<out>/validation/match.json``), copied to ``<out>/<mode>/match.json``, and is evaluated when it has
ground truth. ``method.txt`` is written beside them, so ``<out>/<mode>/`` is the benchmark's submission tree,
and the zip (--zip, default ``<out>/<mode>.zip``: class folders of PNGs, match.json, method.txt at the root)
is packed with uss.submission. With any failed image nothing is evaluated or packed and the exit status is 1,
so a partial result is never zipped silently; --allow-failures evaluates and packs the images that succeeded.
"""
import argparse
import glob
import itertools
import json
import os
import sys
import time
import traceback
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from uss import distributed, options
from uss.atomic import atomic_write_json, atomic_write_text, remove_stale_temp_files
from uss.data import layout
from uss.data.image_io import ImageFileError, load_rgb, load_rgb_best_effort
from uss.data.label_png import write_label_png
from uss.data.imageops import resize_bilinear
from uss.data.split import ImageNetSSplit
from uss.errors import InputError
from uss.regions import RegionProposer, sort_by_area
from uss.stages.inference import (MAX_PIXELS, enlarge_nearest, evaluate_predictions, inference_size, network_input,
                                  output_path, pending_outputs, upsample_argmax)
from uss.stages.sam_refine import proposer_from_args

DEFAULT_DATA = "data/ImageNetS50"
DEFAULT_CHECKPOINT = "weights/finetune/checkpoint.safetensors"
DEFAULT_SAM = "weights/sam_vit_b_01ec64.pth"
FALLBACK_POINTS = 5
MIN_PROPOSAL_SIDE = 32  # smaller images are enlarged for the region proposer
TAG = "[test]"


# ------------------------------------------------------------------------------------------ refinement


def majority_vote(prediction: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    """Paint each mask (in the given order, so later masks overwrite earlier ones) with the most frequent id of
    `prediction` inside it (ties: the smaller id); pixels outside every mask keep their prediction."""
    prediction = np.asarray(prediction)
    out = prediction.copy()
    for mask in masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != prediction.shape:
            raise ValueError(f"region mask of shape {mask.shape} does not fit the prediction {prediction.shape}")
        inside = prediction[mask]
        if inside.size:
            out[mask] = int(np.argmax(np.bincount(inside)))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of C x h x w logits (float64 for stable sums)."""
    shifted = logits.astype(np.float64) - logits.max(axis=0, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=0, keepdims=True)


def dominant_class(probabilities: np.ndarray) -> int:
    """The foreground class (1..K) with the largest total softmax probability (ties: the smaller id)."""
    if probabilities.shape[0] < 2:
        raise ValueError("a dominant foreground class needs at least one class besides background")
    return int(np.argmax(probabilities[1:].reshape(probabilities.shape[0] - 1, -1).sum(axis=1))) + 1


def spread_cells(values: np.ndarray, count: int, highest: bool, exclude: Sequence[Tuple[int, int]] = (),
                 spacing: Optional[int] = None) -> List[Tuple[int, int]]:
    """`count` (row, col) cells of a 2-D map, greedily in order of decreasing (highest) or increasing value
    (stable: ties in raster order), each at Chebyshev distance >= spacing from the ones already taken; the
    spacing (default max(1, min(h, w) // 8)) is relaxed step by step down to 1 when too few cells qualify.
    Cells in `exclude` are never taken. Deterministic."""
    height, width = values.shape
    spacing = max(1, min(height, width) // 8) if spacing is None else max(1, int(spacing))
    order = np.argsort(-values.ravel() if highest else values.ravel(), kind="stable")
    excluded = set((int(r), int(c)) for r, c in exclude)
    candidates = [divmod(int(i), width) for i in order]
    candidates = [cell for cell in candidates if cell not in excluded]
    for radius in range(spacing, 0, -1):
        chosen: List[Tuple[int, int]] = []
        for row, col in candidates:
            if all(max(abs(row - r), abs(col - c)) >= radius for r, c in chosen):
                chosen.append((row, col))
                if len(chosen) == count:
                    return chosen
    return chosen


def cell_centres(cells: Sequence[Tuple[int, int]], grid: Tuple[int, int], size: Tuple[int, int]) -> np.ndarray:
    """(x, y) pixel coordinates in an image of size (H, W) of the centres of (row, col) cells of an h x w grid."""
    (h, w), (height, width) = grid, size
    return np.array([[(col + 0.5) * width / w, (row + 0.5) * height / h] for row, col in cells],
                    dtype=np.float32).reshape(-1, 2)


class RefinedSegmenter:
    """One image -> refined label map at its original size (see the module docstring for the method)."""

    def __init__(self, model: Any, proposer: Optional[RegionProposer], short_side: int = 256,
                 max_pixels: Optional[int] = MAX_PIXELS, sam_predictor: Any = None,
                 points: int = FALLBACK_POINTS) -> None:
        self.model = model
        self.proposer = proposer
        self.short_side = short_side
        self.max_pixels = max_pixels
        self.sam_predictor = sam_predictor
        self.points = points

    def predict(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
        """(logits C x h x w, argmax prediction at the working size, working size (h, w)) of an RGB image,
        exactly as uss.stages.inference predicts before its final nearest-neighbour enlargement."""
        import jittor as jt

        height, width = image.shape[:2]
        work = inference_size(height, width, self.max_pixels)
        with jt.no_grad():
            logits = self.model(jt.array(network_input(image, self.short_side)[None]))
            prediction = upsample_argmax(logits, *work)
            low = logits[0].numpy().astype(np.float32)
        return low, prediction, work

    def regions(self, image: np.ndarray) -> List[np.ndarray]:
        """The proposer's masks for an image at the working size, largest first. An image whose short side is
        below MIN_PROPOSAL_SIDE is enlarged by an integer factor (nearest) for the proposer, which cannot
        handle a few pixels (SAM's crops get empty), and the masks are sampled back at the pixel centres."""
        if self.proposer is None:
            return []
        factor = -(-MIN_PROPOSAL_SIDE // max(1, min(image.shape[:2])))
        if factor <= 1:
            return sort_by_area(self.proposer.propose(image))
        enlarged = np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
        masks = [np.asarray(m, bool)[factor // 2::factor, factor // 2::factor] for m in self.proposer.propose(enlarged)]
        return sort_by_area(masks)

    def prompt_points(self, prob: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """SAM prompts from a class's probability map (h x w): (coords N x 2 as x, y in an image of `size`,
        labels N: 1 for the `points` most probable cells, 0 for the `points` least probable ones; fewer, as many
        of each, when the map has fewer than 2 * points cells)."""
        count = max(1, min(self.points, prob.size // 2))
        positives = spread_cells(prob, count, highest=True)
        negatives = spread_cells(prob, count, highest=False, exclude=positives)
        coords = cell_centres(positives + negatives, prob.shape, size)
        return coords, np.array([1] * len(positives) + [0] * len(negatives), np.int32)

    def fallback(self, image: np.ndarray, logits: np.ndarray, masks: Sequence[np.ndarray]) -> Tuple[np.ndarray, str]:
        """(label map with one region of the dominant class, what was done) for an all-background image."""
        height, width = image.shape[:2]
        probabilities = softmax(logits)
        cls = dominant_class(probabilities)
        prob = probabilities[cls]
        label = np.zeros((height, width), np.int32)
        if self.sam_predictor is not None:
            coords, labels = self.prompt_points(prob, (height, width))
            self.sam_predictor.set_image(image)
            sam_masks, iou, _ = self.sam_predictor.predict(point_coords=coords, point_labels=labels,
                                                           multimask_output=True)
            self.sam_predictor.reset_image()
            best = np.asarray(sam_masks[int(np.argmax(iou))], bool)
            label[best] = cls
            return label, "sam-points" if best.any() else "sam-points-empty"
        if not masks:
            return label, "no-region"
        upsampled = cv2.resize(prob.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        upsampled = upsampled.reshape(height, width)
        means = [float(upsampled[m].mean()) if m.any() else -1.0 for m in masks]
        best_index = int(np.argmax(means))  # masks are largest first: ties go to the larger region
        label[masks[best_index]] = cls
        return label, "best-region"

    def __call__(self, image: np.ndarray) -> Tuple[np.ndarray, Optional[str]]:
        """(label map H x W int32 at the image's size, fallback used or None) of an RGB uint8 image."""
        height, width = image.shape[:2]
        logits, prediction, work = self.predict(image)
        work_image = resize_bilinear(image, *work)
        masks = self.regions(work_image)
        refined = majority_vote(prediction, masks)
        used = None
        if not refined.any():
            refined, used = self.fallback(work_image, logits, masks)
        return enlarge_nearest(refined, height, width), used


# ------------------------------------------------------------------------------------------- the split


def _strict(path: str) -> Tuple[np.ndarray, Optional[str]]:
    return load_rgb(path), None


def prefetched(split: ImageNetSSplit, names: Sequence[str], workers: int, decode_truncated: bool = False
               ) -> Iterator[Tuple[str, Callable[[], Tuple[np.ndarray, Optional[str]]]]]:
    """(name, get_image) in order, images decoded ahead by `workers` threads (0: on demand in this thread);
    get_image returns (image, warning or None) and raises ImageFileError for a bad file. Threads, not
    processes: nothing is forked from a process that runs jittor."""
    load = load_rgb_best_effort if decode_truncated else _strict
    if workers <= 0:
        for name in names:
            yield name, (lambda n=name: load(split.image_path(n)))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: "deque[Tuple[str, Future]]" = deque()
        queue = iter(names)
        for name in itertools.islice(queue, 2 * workers):
            pending.append((name, pool.submit(load, split.image_path(name))))
        while pending:
            name, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(load, split.image_path(following))))
            yield name, future.result


def segment_split(segmenter: RefinedSegmenter, split: ImageNetSSplit, pred_dir: str, workers: int = 2,
                  progress: bool = True, desc: str = "test", decode_truncated: bool = False) -> Dict[str, Any]:
    """Write the refined prediction of every image of `split` (this process's part) not already done.

    Returns {"images", "written", "skipped", "redone", "failed": [(name, message)], "truncated": [(name,
    warning)] (decoded best-effort), "fallbacks": {kind: n}, "seconds", "images_per_s"}."""
    names = list(split.names)
    todo, redone = pending_outputs(split, pred_dir, names)
    failed: List[Tuple[str, str]] = []
    fallbacks: Dict[str, int] = {}
    written = 0
    start = time.time()
    bar = tqdm(total=len(todo), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    truncated: List[Tuple[str, str]] = []
    for name, get_image in prefetched(split, todo, workers, decode_truncated):
        try:
            image, warning = get_image()
            if warning:
                truncated.append((name, warning))
                tqdm.write(f"warning: {desc}: {warning}", file=sys.stderr)
            label, used = segmenter(image)
            write_label_png(output_path(pred_dir, name), label)
            written += 1
            if used:
                fallbacks[used] = fallbacks.get(used, 0) + 1
        except ImageFileError as error:
            failed.append((name, str(error)))
            tqdm.write(f"warning: {desc}: skipping {error}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001 - one bad image must not stop the split; reported at the end
            message = f"{split.image_path(name)}: processing failed ({type(error).__name__}: {error})"
            failed.append((name, message))
            tqdm.write(f"warning: {desc}: skipping {message}\n{traceback.format_exc()}", file=sys.stderr)
        if failed and failed[-1][0] == name and os.path.exists(output_path(pred_dir, name)):
            os.unlink(output_path(pred_dir, name))  # a broken earlier output must not pass for a result
        bar.update(1)
    bar.close()
    seconds = time.time() - start
    return {"images": len(names), "written": written, "skipped": len(names) - len(todo), "redone": redone,
            "failed": failed, "truncated": truncated, "fallbacks": fallbacks, "seconds": seconds,
            "images_per_s": written / seconds if seconds > 0 else 0.0}


# ---------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    """test.py's arguments (data, prediction, shard and region-proposer options from uss.options)."""
    parser = argparse.ArgumentParser(
        prog="python test.py", description="Fine-tuned model + region-mask refinement -> label PNGs, match.json, "
        "evaluation and the benchmark zip (method: see src/uss/stages/test_refine.py).", parents=[
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
                             "<out>/validation/match.json for a test split)")
    parser.add_argument("--zip", default=None, help="benchmark zip to write (default: <out>/<split>.zip)")
    parser.add_argument("--method-text", default=None, help="method.txt text (default: describes this run)")
    parser.add_argument("--allow-failures", action="store_true",
                        help="evaluate and pack the images that succeeded even if some failed (exit status 0)")
    parser.add_argument("--decode-truncated", action="store_true",
                        help="decode truncated JPEGs as far as their data goes (a warning per file, listed in "
                             "<out>/<split>_truncated.txt) instead of reporting them as failed")
    return parser


def parse_shard(shard: Optional[str]) -> Optional[Tuple[int, int]]:
    """'i/n' -> (i, n); None stays None."""
    if not shard:
        return None
    try:
        index, count = (int(v) for v in shard.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not 0 <= index < count:
        raise InputError(f"--shard {shard}: i must lie in [0, n)")
    return index, count


def check_inputs(args: argparse.Namespace) -> None:
    """Cheap checks before anything heavy: one-line InputErrors saying what to pass."""
    if not os.path.isdir(args.data):
        raise InputError(f"dataset folder not found: {args.data}; pass --data <ImageNet-S folder with "
                         f"{args.mode}/ inside> (the demo dataset: python -m uss.data.toy --out data/toy)")
    if not os.path.isfile(args.checkpoint):
        raise InputError(f"fine-tuned checkpoint not found: {args.checkpoint}; pass --checkpoint "
                         f"<finetune dump>/checkpoint.safetensors (written by main_pixel_finetuning.py / train_3.sh)")
    if args.proposer == "sam" and not os.path.isfile(args.sam_checkpoint or ""):
        raise InputError(f"SAM checkpoint not found: {args.sam_checkpoint}; download the official "
                         f"sam_{args.sam_model_type}_*.pth into weights/ and pass --sam-checkpoint, "
                         f"or use --proposer superpixel")


def resolve_match(args: argparse.Namespace, split: ImageNetSSplit) -> str:
    """'auto' or the path of the match.json this run applies; checked before predicting."""
    if args.match is None:
        args.match = "auto" if args.mode == "validation" else os.path.join(args.out, "validation", "match.json")
    if args.match == "auto":
        if not split.has_segmentation:
            raise InputError(f"--match auto needs the ground truth of '{args.mode}' ({split.segmentation_dir} "
                             f"not found); pass --match <validation match.json>")
    elif not os.path.isfile(args.match):
        raise InputError(f"match file not found: {args.match}; run `python test.py --mode validation` first "
                         f"(it writes <out>/validation/match.json) or pass --match <match.json>")
    return args.match


def failures_file(out: str, mode: str, part: Tuple[int, int]) -> str:
    """Per-process failure list <out>/<mode>_failures.<i>-of-<n>.json."""
    return os.path.join(out, f"{mode}_failures.{part[0]}-of-{part[1]}.json")


def collect_failures(split: ImageNetSSplit, pred_dir: str, out: str, mode: str, world: int) -> List[Tuple[str, str]]:
    """(name, message) of every image of the split without an output, messages from the ranks' lists."""
    messages: Dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(out), f"{mode}_failures.*-of-{world}.json"))):
        with open(path) as handle:
            messages.update({entry["name"]: entry["error"] for entry in json.load(handle)})
    missing = [n for n in split.names if not os.path.isfile(output_path(pred_dir, n))]
    return [(n, messages.get(n, f"{split.image_path(n)}: no prediction written")) for n in missing]


def stray_predictions(split: ImageNetSSplit, pred_dir: str) -> List[str]:
    """PNG files under pred_dir that belong to no image of the split (they would end up in the zip)."""
    expected = {layout.label_name(n).replace(os.sep, "/") for n in split.names}
    found = []
    for directory, subdirs, files in os.walk(pred_dir):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        relative = os.path.relpath(directory, pred_dir)
        for name in files:
            rel = name if relative == "." else os.path.join(relative, name).replace(os.sep, "/")
            if rel.lower().endswith(".png") and rel not in expected:
                found.append(rel)
    return sorted(found)


def default_method_text(config: Dict[str, Any], args: argparse.Namespace) -> str:
    """method.txt describing this run."""
    regions = (f"SAM {args.sam_model_type} automatic masks, SAM point-prompt fallback" if args.proposer == "sam"
               else f"{args.superpixel_method} superpixels")
    return (f"PASS-style large-scale unsupervised semantic segmentation (Jittor, uss): {config['arch']} + "
            f"{config['head']} head fine-tuned on pseudo labels (K={config['num_classes']}); test-time refinement "
            f"by majority vote of the prediction inside region masks ({regions}); short side {args.short_side}.")


def run(args: argparse.Namespace) -> int:
    """test.py: predict, refine, report failures, then (rank 0, unsharded) match, evaluate and pack."""
    from uss.stages.inference import load_finetuned
    from uss.training import runner

    check_inputs(args)
    split = ImageNetSSplit(args.data, args.mode)
    shard = parse_shard(args.shard)
    world, rank = distributed.world_size(), distributed.rank()
    if shard and world > 1:
        raise InputError("--shard splits the work between independent processes; do not combine it with mpirun")
    match = resolve_match(args, split) if not shard else None
    part = shard or (rank, world)
    pred_dir = os.path.join(args.out, args.mode)
    os.makedirs(pred_dir, exist_ok=True)
    if not shard and rank == 0:  # sharded processes may be writing beside each other: the final run cleans up
        removed = remove_stale_temp_files(pred_dir)
        if removed:
            print(f"{TAG} removed {removed} temporary file(s) of interrupted writes", flush=True)
    distributed.barrier()

    device = runner.setup_device()
    model, config = load_finetuned(args.checkpoint)
    try:
        proposer = proposer_from_args(args)
        predictor = None
        if args.proposer == "sam":
            from uss.sam import SamPredictor

            predictor = SamPredictor(proposer.model)
    except (RuntimeError, ValueError) as error:  # uss.sam.CheckpointError, bad options
        raise InputError(" ".join(str(error).split())) from None
    segmenter = RefinedSegmenter(model, proposer, args.short_side, args.max_pixels or None, predictor)
    mine = split.shard(*part)
    if distributed.is_main_process():
        print(f"{TAG} {config['arch']} + {config['head']} head, K={config['num_classes']} ({args.checkpoint}, epoch "
              f"{config['epoch']}); regions: {proposer.describe()}; {len(split)} images of {split.image_dir} "
              f"({device}, {'shard %d/%d' % shard if shard else '%d rank(s)' % world}) -> {pred_dir}", flush=True)
    summary = segment_split(segmenter, mine, pred_dir, args.workers, progress=not args.quiet and
                            distributed.is_main_process(), desc=f"test {args.mode}",
                            decode_truncated=args.decode_truncated)
    if summary["truncated"]:
        listing = os.path.join(args.out, f"{args.mode}_truncated.txt" if part == (0, 1)
                               else f"{args.mode}_truncated.{part[0]}-of-{part[1]}.txt")
        atomic_write_text(listing, "".join(f"{name}\t{warning}\n" for name, warning in summary["truncated"]))
        print(f"{TAG} {len(summary['truncated'])} truncated image(s) decoded best-effort (listed in {listing})",
              file=sys.stderr, flush=True)
    atomic_write_json(failures_file(args.out, args.mode, part),
                      [{"name": n, "error": e} for n, e in summary["failed"]])
    fallback = ", ".join(f"{v} {k}" for k, v in sorted(summary["fallbacks"].items())) or "none"
    print(f"{TAG} part {part[0]}/{part[1]}: {summary['written']} written ({summary['redone']} of them redone), "
          f"{summary['skipped']} kept, {len(summary['failed'])} failed, {summary['images_per_s']:.2f} images/s; "
          f"all-background fallbacks: {fallback}", flush=True)
    if shard:
        for name, message in summary["failed"]:
            print(f"  failed: {message}", file=sys.stderr)
        print(f"{TAG} --shard: evaluation and zip skipped; after all shards, run once more without --shard "
              f"to check, evaluate and pack", flush=True)
        return 1 if summary["failed"] else 0
    distributed.barrier()
    if rank != 0:
        return 0
    return finish(args, split, pred_dir, match, config, world)


def finish(args: argparse.Namespace, split: ImageNetSSplit, pred_dir: str, match: str, config: Dict[str, Any],
           world: int) -> int:
    """Rank 0 after every rank is done: failure report, match and evaluation, method.txt and the zip."""
    failed = collect_failures(split, pred_dir, args.out, args.mode, world)
    for path in glob.glob(os.path.join(glob.escape(args.out), f"{args.mode}_failures.*-of-{world}.json")):
        os.unlink(path)
    report = os.path.join(args.out, f"{args.mode}_failures.txt")
    if failed:
        atomic_write_text(report, "".join(f"{name}\t{message}\n" for name, message in failed))
        print(f"{TAG} {len(failed)} image(s) failed (no prediction written; listed in {report}):", file=sys.stderr)
        for _, message in failed:
            print(f"  {message}", file=sys.stderr)
    elif os.path.exists(report):
        os.unlink(report)
    stray = stray_predictions(split, pred_dir)
    if stray:
        raise InputError(f"{pred_dir} holds {len(stray)} PNG(s) of images not in the '{args.mode}' split "
                         f"(e.g. {stray[0]}); remove them or use another --out")
    if failed and not args.allow_failures:
        print(f"{TAG} not evaluating or packing a partial result; fix or remove the failed images, or pass "
              f"--allow-failures", file=sys.stderr)
        return 1
    good = [n for n in split.names if os.path.isfile(output_path(pred_dir, n))] if failed else None
    if failed and not good:
        return 1
    result_path = os.path.join(args.out, f"{args.mode}_result.json")
    result = evaluate_predictions(pred_dir, args.data, args.mode, match, result_path,
                                  progress=not args.quiet, names=good)
    if result is not None:
        print(f"{TAG} {args.mode}: mIoU {100 * result['mIoU']:.2f} on {result['num_images']} images "
              f"(match {os.path.join(pred_dir, 'match.json')})", flush=True)
    from uss.submission import pack_submission

    method = args.method_text or default_method_text(config, args)
    atomic_write_text(os.path.join(pred_dir, "method.txt"), method.rstrip("\n") + "\n")
    zip_path = args.zip or os.path.join(args.out, f"{args.mode}.zip")
    packed = pack_submission(pred_dir, zip_path, os.path.join(pred_dir, "match.json"), method,
                             num_classes=int(config["num_classes"]))
    print(f"{TAG} submission: {pred_dir} (class folders, match.json, method.txt) -> {zip_path} "
          f"({packed['num_pngs']} PNGs in {packed['classes']} class folders)", flush=True)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of test.py; returns the exit status (1 when images failed)."""
    return run(build_parser().parse_args(argv))
