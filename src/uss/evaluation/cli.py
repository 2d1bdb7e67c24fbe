"""Evaluate ImageNet-S predictions (official protocol): python -m uss.evaluation --data ROOT --pred DIR.

Examples:
    python -m uss.evaluation --data data/toy --split validation --pred runs/x/validation
    python -m uss.evaluation --gt GT_DIR --categories cats.txt --pred DIR --match auto --save-match m.json

--match: 'auto' (Hungarian on this folder), 'none' (predictions hold class ids) or a match.json path;
by default <pred>/match.json is applied when it exists, otherwise none. Scores in --out JSON are
fractions in [0, 1]; the printed table shows percent. Bad input: one line on stderr, exit status 2.
"""
import argparse
import os
import sys
from typing import List, Optional

from uss import options
from uss.data.layout import load_categories, segmentation_dir
from uss.errors import InputError, one_line
from uss.evaluation.evaluator import evaluate_folder
from uss.evaluation.matching import describe_match, save_match
from uss.evaluation.predictions import choose_match
from uss.evaluation.results import format_table, write_result_json


def read_categories(path: str) -> List[str]:
    """Class names from a file, one a line (first token), line i = class i + 1."""
    try:
        with open(path) as handle:
            names = [line.strip().split()[0] for line in handle if line.strip()]
    except OSError as error:
        raise InputError(f"{path}: cannot read the category list ({error.strerror or error})") from None
    if not names:
        raise InputError(f"{path}: category list is empty")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m uss.evaluation", description=__doc__.split("\n")[0], parents=[
        options.dataset("validation", required=False, help="ImageNet-S root (gives --gt and --categories)",
                        split_help="split with --data (default: validation)"),
        options.threads(default=None, default_text="up to 8"), options.quiet()])
    parser.add_argument("--pred", required=True, help="prediction folder: <wnid>/<name>.png, ids R + 256 * G")
    parser.add_argument("--gt", help="GT folder (default with --data: ROOT/<split>-segmentation)")
    parser.add_argument("--categories", help="class list file, one wnid a line (default with --data: the dataset's)")
    parser.add_argument("--match", default=None,
                        help="auto | none | path/to/match.json (default: <pred>/match.json if present, else none)")
    parser.add_argument("--save-match", help="write the match used (e.g. the auto one) to this match.json")
    parser.add_argument("--out", help="write the result (fractions in [0, 1]) to this JSON file")
    parser.add_argument("--no-per-class", action="store_true", help="print the summary only")
    return parser


def run(args: argparse.Namespace) -> dict:
    """Resolve the arguments, evaluate, print and save; returns the result dict."""
    gt_dir = args.gt
    categories = read_categories(args.categories) if args.categories else None
    if args.data:
        gt_dir = gt_dir or segmentation_dir(args.data, args.split)
        if categories is None:
            categories = load_categories(args.data)
    if not gt_dir:
        raise InputError("give the GT with --gt DIR or --data ROOT [--split validation]")
    own = os.path.join(args.pred, "match.json")
    match = None if (args.match or "").lower() == "none" else \
        choose_match(args.match, own if os.path.isfile(own) else None, gt_dir)
    result = evaluate_folder(args.pred, gt_dir, categories=categories, match=match,
                             workers=args.threads, progress=not args.quiet)
    if result["match"] is not None:
        print(f"match: {describe_match(result['match'])}")
    print(format_table(result, per_class=not args.no_per_class))
    if args.save_match:
        if result["match"] is None:
            raise InputError("--save-match needs a match: pass --match auto or a match.json")
        save_match(args.save_match, result["match"])
    if args.out:
        write_result_json(args.out, result)
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; returns 0, or 2 after a one-line error for bad input."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except InputError as error:  # MatchFileError, LabelFileError, DatasetNotFoundError among them
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
