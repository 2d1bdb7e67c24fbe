"""Predict label PNGs for a split with a fine-tuned segmentation model, then optionally evaluate them.

    python -m uss.stages.inference --checkpoint <finetune dump>/checkpoint.safetensors --data ROOT \
        --split validation --out runs/x/validation --match auto
    python -m uss.stages.inference --checkpoint ... --split test --out runs/x/test --match runs/x/validation/match.json

Per image (as PASS's inference.py): resize the short side to --short-side (PIL bilinear), normalise, forward,
upsample the logits bilinearly to the image size, argmax, and write ``<out>/<wnid>/<name>.png`` (ImageNet-S
label PNG, atomically). For an image of more than --max-pixels (10^6) pixels the logits are upsampled to
PASS's size (1000, int(1000 * W / H)) (its inference.py --max_res 1000 rule: the height becomes 1000 whatever
the aspect) and the label map is then enlarged to the original size by nearest neighbour (torch's
mode="nearest"); predictions always have the image's size.

Reruns skip outputs that decode and have the right size and redo missing, truncated or mis-sized ones.
Undecodable input images are reported and skipped; they are listed at the end (exit status 1).
The model (arch, head, K) is read from the checkpoint's saved arguments. With --match the predictions are
evaluated (official protocol): 'auto' computes the Hungarian match on this split and saves <out>/match.json;
a match.json path (e.g. the validation one, for test) is copied to <out>/match.json and applied.
"""
import argparse
import itertools
import math
import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Dict, List, Optional, Tuple

import jittor as jt
import numpy as np
from tqdm import tqdm

from uss import options
from uss.data import augment, layout
from uss.data.image_io import ImageFileError, image_size, load_rgb
from uss.data.imageops import resize_short_side
from uss.data.label_png import is_complete_label_png, write_label_png
from uss.data.pseudo_labels import FINETUNE_MEAN, FINETUNE_STD
from uss.data.split import ImageNetSSplit
from uss.errors import InputError, run_cli
from uss.evaluation.evaluator import evaluate_folder
from uss.evaluation.matching import MatchFileError, describe_match, load_match
from uss.evaluation.report import format_table, write_result_json
from uss.models import foreign
from uss.models.decode_heads import HEADS
from uss.models.decode_heads import head_options
from uss.models.resnet import backbone_options
from uss.models.segmentation import SegmentationModel, build_segmentation_model, model_weights
from uss.training import runner
from uss.training.checkpoint import CheckpointError, load_checkpoint, load_model_state

MAX_PIXELS = 1000 * 1000
CHUNK_ELEMENTS = 1 << 26  # logits upsampled per chunk of output rows: at most 256 MB of float32


# ----------------------------------------------------------------------------------------------- model


def load_finetuned(checkpoint_path: str, arch: Optional[str] = None, head: Optional[str] = None,
                   num_classes: Optional[int] = None) -> Tuple[SegmentationModel, Dict[str, Any]]:
    """The fine-tuned model of a checkpoint, configured from its saved args (overridable), in eval mode.

    Returns (model, config with arch, head, num_classes, epoch)."""
    state = load_checkpoint(checkpoint_path)
    saved = state.get("args") or {}
    if not saved and isinstance(state, dict) and arch is None and num_classes is None:
        # A foreign file (PASS, the challenge entry's weights/checkpoint.pth.tar) saves no arguments: its tensors tell.
        try:
            saved = foreign.finetune_config(model_weights(state), checkpoint_path)
        except CheckpointError as error:
            raise CheckpointError(f"{error}" if str(error).startswith(checkpoint_path)
                                  else f"{checkpoint_path}: {error}") from None
    config = {"arch": arch or saved.get("arch"), "head": head or saved.get("head") or "linear",
              "num_classes": num_classes if num_classes is not None else saved.get("num_classes")}
    if config["arch"] is None or config["num_classes"] is None:
        raise CheckpointError(f"{checkpoint_path}: no saved fine-tuning arguments (arch, num_classes): not a "
                              f"fine-tuning checkpoint? (pass --arch and --num-classes for a foreign one)")
    backbone = backbone_options(saved)
    config.update(backbone)
    model = build_segmentation_model(config["arch"], int(config["num_classes"]), config["head"], **backbone,
                                     **head_options({**saved, "head": config["head"]}))
    try:
        weights = model_weights(state)
    except CheckpointError as error:
        raise CheckpointError(f"{checkpoint_path}: {error}") from None
    load_model_state(model, weights, checkpoint_path)
    model.eval()
    config["epoch"] = state.get("epoch")
    return model, config


# ------------------------------------------------------------------------------------------ prediction


def inference_size(height: int, width: int, max_pixels: Optional[int] = MAX_PIXELS) -> Tuple[int, int]:
    """(h, w) at which logits are upsampled: the image size, or for an image of more than max_pixels pixels PASS's
    inference.py size (max_res, int(max_res * W / H)) with max_res = sqrt(max_pixels) (1000 for 10^6)."""
    if not max_pixels or height * width <= max_pixels:
        return height, width
    max_res = math.isqrt(int(max_pixels))
    return max_res, max(1, int(max_res * width / height))


def enlarge_nearest(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """A working-size label map brought to height x width as PASS does (torch interpolate mode="nearest":
    source index floor(i * in / out))."""
    in_h, in_w = label.shape[:2]
    if (in_h, in_w) == (height, width):
        return label
    ys = (np.arange(height) * in_h) // height
    xs = (np.arange(width) * in_w) // width
    return np.ascontiguousarray(label[ys[:, None], xs[None, :]])


def network_input(image: np.ndarray, short_side: int = 256) -> np.ndarray:
    """HxWx3 uint8 -> float32 3 x h x w: short side resized to `short_side` (PIL bilinear, torchvision's
    Resize sizes: the long side truncated, as PASS's transforms.Resize(256)), normalised."""
    return augment.normalize(resize_short_side(image, short_side), FINETUNE_MEAN, FINETUNE_STD)


def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """out x in interpolation weights of a 1-D bilinear resize with align_corners=False (half-pixel centres)."""
    src = np.maximum((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = (src - low).astype(np.float32)
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    rows = np.arange(out_size)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


def upsample_argmax(logits: jt.Var, height: int, width: int, chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """argmax over classes of the logits (C x h x w) bilinearly upsampled to height x width (int32 map).

    Separable bilinear upsampling as two matrix products, done for a chunk of output rows at a time so
    memory stays bounded whatever the number of classes and the image size."""
    if logits.ndim == 4:
        logits = logits[0]
    channels, h, w = logits.shape
    across = jt.array(bilinear_matrix(width, w).T)  # w x W
    down = bilinear_matrix(height, h)  # H x h
    rows_first = jt.matmul(logits.reshape(channels * h, w), across)  # (C*h) x W
    rows_first = rows_first.reshape(channels, h, width).transpose(1, 0, 2).reshape(h, channels * width)
    out = np.empty((height, width), dtype=np.int32)
    step = max(1, chunk_elements // (channels * width))
    for start in range(0, height, step):
        stop = min(height, start + step)
        part = jt.matmul(jt.array(down[start:stop]), rows_first).reshape(stop - start, channels, width)
        out[start:stop] = jt.argmax(part, dim=1)[0].numpy()
    return out


def predict_label(model: SegmentationModel, image_input: jt.Var, height: int, width: int,
                  max_pixels: Optional[int] = MAX_PIXELS) -> np.ndarray:
    """Label map (height x width int32) of one normalised network input (1 x 3 x h x w)."""
    with jt.no_grad():
        logits = model(image_input)
    work_h, work_w = inference_size(height, width, max_pixels)
    label = upsample_argmax(logits, work_h, work_w)
    return enlarge_nearest(label, height, width)


def output_path(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, layout.label_name(name))


def output_is_good(split: ImageNetSSplit, out_dir: str, name: str) -> bool:
    """True when the prediction of `name` exists, decodes completely and has the image's size."""
    try:
        return is_complete_label_png(output_path(out_dir, name), image_size(split.image_path(name)))
    except ImageFileError:
        return False


def pending_outputs(split: ImageNetSSplit, out_dir: str, names: List[str]) -> Tuple[List[str], int]:
    """(the names whose prediction is missing or broken, how many of those are broken files to be redone)."""
    existing = [n for n in names if os.path.exists(output_path(out_dir, n))]
    good = set()
    if existing:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            good = {n for n, ok in zip(existing, pool.map(partial(output_is_good, split, out_dir), existing)) if ok}
    todo = [n for n in names if n not in good]
    return todo, sum(1 for n in todo if os.path.exists(output_path(out_dir, n)))


def _decode(path: str, short_side: int) -> Tuple[Optional[np.ndarray], Tuple[int, int], str]:
    try:
        image = load_rgb(path)
    except ImageFileError as error:
        return None, (0, 0), str(error)
    return network_input(image, short_side), image.shape[:2], ""


def decoded_inputs(split: ImageNetSSplit, names: List[str], short_side: int, workers: int):
    """(name, network input or None, (h, w), error message or "") in order, decoded `2 * workers` images ahead by
    threads of this process. Not jittor's loader: its workers are processes forked from one that runs jittor
    (thread pools, a SIGCHLD handler that ends the parent when a child dies), the one part of a prediction run
    that could take it down; a decoding thread only runs PIL and numpy."""
    if workers <= 0:
        for name in names:
            yield (name, *_decode(split.image_path(name), short_side))
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        queue = iter(names)
        for name in itertools.islice(queue, 2 * workers):
            pending.append((name, pool.submit(_decode, split.image_path(name), short_side)))
        while pending:
            name, future = pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append((following, pool.submit(_decode, split.image_path(following), short_side)))
            yield (name, *future.result())


def predict_split(model: SegmentationModel, split: ImageNetSSplit, out_dir: str, short_side: int = 256,
                  max_pixels: Optional[int] = MAX_PIXELS, skip_existing: bool = True, num_workers: int = 2,
                  progress: bool = True) -> Dict[str, Any]:
    """Write `<out_dir>/<wnid>/<name>.png` for every image of the split, one image at a time.

    Returns {"images", "written", "skipped" (good outputs kept), "redone" (broken outputs rewritten),
    "failed" (error messages of undecodable images), "seconds", "images_per_s"}."""
    os.makedirs(out_dir, exist_ok=True)
    names = list(split.names)
    if skip_existing:
        todo, redone = pending_outputs(split, out_dir, names)
    else:
        todo, redone = names, sum(1 for n in names if os.path.exists(output_path(out_dir, n)))
    failed: List[str] = []
    written = 0
    start = time.time()
    if todo:
        model.eval()
        bar = tqdm(total=len(todo), desc=f"inference {split.split}", unit="img", disable=not progress)
        for name, sample, (height, width), error in decoded_inputs(split, todo, short_side, num_workers):
            if error:
                failed.append(error)
                print(f"warning: inference: skipping {error}", file=sys.stderr)
            else:
                label = predict_label(model, jt.array(sample[None]), height, width, max_pixels)
                write_label_png(output_path(out_dir, name), label)
                written += 1
            bar.update(1)
        bar.close()
    seconds = time.time() - start
    return {"images": len(names), "written": written, "skipped": len(names) - len(todo), "redone": redone,
            "failed": failed, "seconds": seconds, "images_per_s": written / seconds if seconds > 0 else 0.0}


# ------------------------------------------------------------------------------------------ evaluation


def evaluate_predictions(out_dir: str, data: str, split: str, match: str, result_path: Optional[str] = None,
                         progress: bool = True, names: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Evaluate `out_dir` against the split's GT with match 'auto' (saved as <out>/match.json) or a match.json
    (copied to <out>/match.json). Without GT only the match is copied and None is returned.
    `names` restricts the evaluation to those images (default: every GT file)."""
    own_match = os.path.join(out_dir, "match.json")
    if match != "auto":
        try:
            load_match(match)
        except MatchFileError as error:
            raise InputError(str(error)) from None
        if os.path.abspath(match) != os.path.abspath(own_match):
            shutil.copyfile(match, own_match)
        match = own_match
    gt_dir = layout.segmentation_dir(data, split)
    if not os.path.isdir(gt_dir):
        if match == "auto":
            raise InputError(f"--match auto needs the GT of split '{split}' ({gt_dir} not found)")
        print(f"no GT for split '{split}' ({gt_dir}): {own_match} written, nothing evaluated")
        return None
    result = evaluate_folder(out_dir, gt_dir, categories=layout.load_categories(data), match=match,
                             progress=progress, save_match_to=own_match if match == "auto" else None, names=names)
    if result["match"] is not None:
        print(f"match: {describe_match(result['match'])}")
    print(format_table(result))
    if result_path:
        write_result_json(result_path, result)
        print(f"result: {result_path}")
    return result


# ---------------------------------------------------------------------------------------------- CLI


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
    device = runner.setup_device()
    model, config = load_finetuned(args.checkpoint, args.arch, args.head, args.num_classes)
    split = ImageNetSSplit(args.data, args.split)
    print(f"[inference] {config['arch']} + {config['head']} head, K={config['num_classes']} "
          f"({args.checkpoint}, epoch {config['epoch']}) on {len(split)} images of {split.image_dir} ({device})",
          flush=True)
    summary = predict_split(model, split, args.out, args.short_side, args.max_pixels or None,
                            skip_existing=not args.redo, num_workers=args.workers, progress=not args.quiet)
    print(f"[inference] {summary['written']} written ({summary['redone']} of them redone), {summary['skipped']} "
          f"kept, {len(summary['failed'])} failed, {summary['images_per_s']:.1f} images/s -> {args.out}")
    if summary["failed"]:
        print(f"[inference] {len(summary['failed'])} image(s) could not be read:", file=sys.stderr)
        for message in summary["failed"]:
            print(f"  {message}", file=sys.stderr)
        if args.match:
            print("[inference] not evaluating: predictions are missing", file=sys.stderr)
        return 1
    if args.match:
        result_path = args.result or args.out.rstrip("/\\") + "_result.json"
        evaluate_predictions(args.out, args.data, args.split, args.match, result_path, progress=not args.quiet)
    return 0


if __name__ == "__main__":
    run_cli(main)
