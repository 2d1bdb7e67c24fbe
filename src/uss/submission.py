"""Pack a prediction folder into the ImageNet-S benchmark zip: python -m uss.submission --pred DIR --out result.zip.

Zip layout (entries at the root): ``<wnid>/<name>.png`` for every prediction (ids R + 256 * G),
``match.json`` (official {"predicted id": class} with string keys) and ``method.txt``.
Every PNG is decoded first; bad files are listed by name and nothing is written. A prediction holding
an id that match.json does not map, or an id above K (--num-classes, default the largest id match.json
maps), is refused with the ids and files named: the official evaluator would fail on it. The zip is
written to a temporary file and renamed into place; ``result_dir`` optionally materialises the same tree.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Mapping, Optional, Union

import numpy as np

from uss.atomic import atomic_open, atomic_write_bytes
from uss.data.layout import relative_files
from uss.data.label_png import LabelFileError, read_label_png
from uss.errors import InputError, one_line
from uss.evaluation.matching import load_match, unmapped_ids

MAX_LISTED = 10
RESERVED = ("match.json", "method.txt")


class SubmissionError(InputError, ValueError):
    """A prediction folder that cannot be packed; the message names the offending files."""


def _listing(names: List[str]) -> str:
    """First few names and a count."""
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (and {len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def list_predictions(pred_dir: str) -> List[str]:
    """Sorted relative PNG paths under pred_dir; other files (except top-level match.json/method.txt) are an error."""
    if not os.path.isdir(pred_dir):
        raise SubmissionError(f"prediction folder not found: {pred_dir}")
    pngs, others = [], []
    for rel in relative_files(pred_dir):
        if rel not in RESERVED:
            (pngs if rel.lower().endswith(".png") and "/" in rel else others).append(rel)
    if others:
        raise SubmissionError(f"{len(others)} unexpected files in {pred_dir} (only <class folder>/<name>.png "
                              f"is packed): {_listing(sorted(others))}")
    if not pngs:
        raise SubmissionError(f"no prediction PNGs (<class folder>/<name>.png) under {pred_dir}")
    return sorted(pngs)


def validate_pngs(pred_dir: str, names: List[str], workers: Optional[int] = None) -> Dict[str, List[int]]:
    """Decode every PNG; SubmissionError lists the ones that fail. Returns the ids each one holds."""
    def check(name: str) -> Union[str, List[int]]:
        try:
            return np.unique(read_label_png(os.path.join(pred_dir, name))).tolist()
        except LabelFileError as error:
            return f"{name} ({error})"

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        found = dict(zip(names, pool.map(check, names)))
    bad = [msg for msg in found.values() if isinstance(msg, str)]
    if bad:
        raise SubmissionError(f"{len(bad)} prediction PNGs cannot be decoded: {_listing(bad)}")
    return found


def check_ids_mapped(ids_per_file: Mapping[str, List[int]], match: Mapping[int, int], num_classes: int,
                     match_name: str) -> None:
    """SubmissionError naming the ids and files when a prediction holds an id `match` does not map or one above K."""
    bad = {name: unmapped_ids(ids, match, num_classes) for name, ids in ids_per_file.items()}
    bad = {name: ids for name, ids in bad.items() if ids}
    if bad:
        ids = sorted(set().union(*map(set, bad.values())))
        raise SubmissionError(f"{len(bad)} predictions hold ids not mapped by {match_name} or above K={num_classes} "
                              f"(the official evaluator fails on them): ids {_listing([str(i) for i in ids])} in "
                              f"{_listing(sorted(bad))}")


def match_classes(match: Mapping[int, int], match_name: str, num_classes: Optional[int] = None) -> int:
    """K of a match (num_classes, or its largest key); SubmissionError when it maps an id to a class above K."""
    k = int(num_classes) if num_classes is not None else max(int(key) for key in match)
    above = sorted(int(key) for key, value in match.items() if int(value) > k)
    if above:
        raise SubmissionError(f"{match_name}: maps ids {_listing([str(i) for i in above])} to classes above K={k}")
    return k


def _load(match_json: Union[str, Mapping[int, int]]) -> Dict[int, int]:
    """A match from a path or a dict, keys and values made int."""
    return load_match(match_json) if isinstance(match_json, str) else {int(k): int(v) for k, v in match_json.items()}


def _match_bytes(match: Mapping[int, int]) -> bytes:
    """match.json content with string keys, in id order."""
    ordered = {str(k): int(match[k]) for k in sorted(match)}
    return (json.dumps(ordered) + "\n").encode()


def pack_submission(pred_dir: str, zip_path: str, match_json: Union[str, Mapping[int, int]], method_text: str,
                    result_dir: Optional[str] = None, workers: Optional[int] = None,
                    num_classes: Optional[int] = None) -> Dict[str, object]:
    """Validate pred_dir and write the benchmark zip (and optionally result_dir); returns a summary dict."""
    names = list_predictions(pred_dir)
    ids_per_file = validate_pngs(pred_dir, names, workers)
    match = _load(match_json)
    match_name = match_json if isinstance(match_json, str) else "the match"
    k = match_classes(match, match_name, num_classes)
    check_ids_mapped(ids_per_file, match, k, match_name)
    match_bytes = _match_bytes(match)
    method_bytes = (method_text.rstrip("\n") + "\n").encode()
    if result_dir and os.path.exists(result_dir) and (not os.path.isdir(result_dir) or os.listdir(result_dir)):
        raise SubmissionError(f"result folder {result_dir} already exists and is not empty; remove it or pick another")

    with atomic_open(zip_path, "wb") as handle:
        with zipfile.ZipFile(handle, "w") as archive:
            for name in names:
                archive.write(os.path.join(pred_dir, name), name, compress_type=zipfile.ZIP_STORED)
            archive.writestr("match.json", match_bytes, compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr("method.txt", method_bytes, compress_type=zipfile.ZIP_DEFLATED)

    if result_dir:
        parent = os.path.dirname(os.path.abspath(result_dir))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(os.path.abspath(result_dir)) + ".")
        try:
            for name in names:
                target = os.path.join(staging, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(os.path.join(pred_dir, name), target)
            atomic_write_bytes(os.path.join(staging, "match.json"), match_bytes)
            atomic_write_bytes(os.path.join(staging, "method.txt"), method_bytes)
            if os.path.isdir(result_dir):
                os.rmdir(result_dir)  # empty, checked above
            os.replace(staging, result_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return {"zip": zip_path, "num_pngs": len(names), "result_dir": result_dir,
            "classes": len({n.split("/")[0] for n in names})}


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; returns 0, or 2 after a one-line error for bad input."""
    parser = argparse.ArgumentParser(prog="python -m uss.submission", description=__doc__.split("\n")[0])
    parser.add_argument("--pred", required=True, help="prediction folder of <class folder>/<name>.png")
    parser.add_argument("--match", required=True, help="match.json to include")
    method = parser.add_mutually_exclusive_group(required=True)
    method.add_argument("--method", help="method description text for method.txt")
    method.add_argument("--method-file", help="file whose text becomes method.txt")
    parser.add_argument("--out", default="result.zip", help="zip to write (default: result.zip)")
    parser.add_argument("--result-dir", help="also materialise the same tree in this (new or empty) folder")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="K: predictions holding ids above it are refused "
                             "(default: the largest id match.json maps)")
    args = parser.parse_args(argv)
    try:
        text = args.method
        if args.method_file:
            try:
                with open(args.method_file) as handle:
                    text = handle.read()
            except OSError as error:
                reason = error.strerror or error
                raise SubmissionError(f"{args.method_file}: cannot read method text ({reason})") from None
        summary = pack_submission(args.pred, args.out, args.match, text, result_dir=args.result_dir,
                                  num_classes=args.num_classes)
    except InputError as error:  # match and label file errors included
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(f"wrote {summary['zip']}: {summary['num_pngs']} PNGs in {summary['classes']} class folders, "
          "match.json, method.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
