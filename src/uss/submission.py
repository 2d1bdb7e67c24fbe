"""Pack a prediction folder into the ImageNet-S benchmark zip: python -m uss.submission --pred DIR --out result.zip.

Zip layout (entries at the root): ``<wnid>/<name>.png`` for every prediction (ids R + 256 * G),
``match.json`` (official {"predicted id": class} with string keys) and ``method.txt``.
Every PNG is decoded first; bad files are listed by name and nothing is written. The zip is written
to a temporary file and renamed into place; ``result_dir`` optionally materialises the same tree.
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

from uss.atomic import atomic_open, atomic_write_bytes
from uss.data.label_png import LabelFileError, read_label_png
from uss.errors import InputError
from uss.evaluation.matching import MatchFileError, load_match

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
    for directory, subdirs, files in os.walk(pred_dir):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative = os.path.relpath(directory, pred_dir)
        for name in files:
            rel = name if relative == "." else os.path.join(relative, name).replace(os.sep, "/")
            if rel in RESERVED:
                continue
            (pngs if name.lower().endswith(".png") and "/" in rel else others).append(rel)
    if others:
        raise SubmissionError(f"{len(others)} unexpected files in {pred_dir} (only <class folder>/<name>.png "
                              f"is packed): {_listing(sorted(others))}")
    if not pngs:
        raise SubmissionError(f"no prediction PNGs (<class folder>/<name>.png) under {pred_dir}")
    return sorted(pngs)


def validate_pngs(pred_dir: str, names: List[str], workers: Optional[int] = None) -> None:
    """Decode every PNG; SubmissionError lists the ones that fail."""
    def check(name: str) -> Optional[str]:
        try:
            read_label_png(os.path.join(pred_dir, name))
        except LabelFileError as error:
            return f"{name} ({error})"
        return None

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        bad = [msg for msg in pool.map(check, names) if msg]
    if bad:
        raise SubmissionError(f"{len(bad)} prediction PNGs cannot be decoded: {_listing(bad)}")


def _match_bytes(match_json: Union[str, Mapping[int, int]]) -> bytes:
    """Validated match.json content (string keys) from a path or a dict."""
    match = load_match(match_json) if isinstance(match_json, str) else {int(k): int(v) for k, v in match_json.items()}
    ordered = {str(k): int(match[k]) for k in sorted(match)}
    return (json.dumps(ordered) + "\n").encode()


def pack_submission(pred_dir: str, zip_path: str, match_json: Union[str, Mapping[int, int]], method_text: str,
                    result_dir: Optional[str] = None, workers: Optional[int] = None) -> Dict[str, object]:
    """Validate pred_dir and write the benchmark zip (and optionally result_dir); returns a summary dict."""
    names = list_predictions(pred_dir)
    validate_pngs(pred_dir, names, workers)
    match_bytes = _match_bytes(match_json)
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
        summary = pack_submission(args.pred, args.out, args.match, text, result_dir=args.result_dir)
    except (InputError, MatchFileError, LabelFileError) as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)
        return 2
    print(f"wrote {summary['zip']}: {summary['num_pngs']} PNGs in {summary['classes']} class folders, "
          "match.json, method.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
