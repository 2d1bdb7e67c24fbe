"""The demo's results table: one row per evaluated configuration, validation and test mIoU side by side.

Each configuration folder holds validation.json and test.json written by the evaluator (or test.py's
validation_result.json and test_result.json).
    python -m uss.demo_results --row "all-background" runs/demo/all_background --row ... [--out FILE.md]
"""
import argparse
import json
import os
from typing import List, Optional, Sequence, Tuple

from uss.atomic import atomic_write_text


def _score(folder: str, split: str, key: str = "mIoU") -> Optional[float]:
    for name in (f"{split}.json", f"{split}_result.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path) as handle:
                return json.load(handle).get(key)
    return None


def format_results(rows: Sequence[Tuple[str, str]]) -> str:
    """Markdown table of mIoU / F-measure (percent) on validation and test for (name, folder) rows."""
    lines = ["| configuration | val mIoU | test mIoU | val F | test F |", "|---|---:|---:|---:|---:|"]
    for name, folder in rows:
        cells = []
        for key in ("mIoU", "FMeasure"):
            for split in ("validation", "test"):
                value = _score(folder, split, key)
                cells.append("-" if value is None else f"{100 * value:.2f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Print the results table of evaluated configurations.")
    parser.add_argument("--row", nargs=2, action="append", metavar=("NAME", "FOLDER"), required=True)
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    table = format_results([tuple(row) for row in args.row])
    print(table, end="")
    if args.out:
        atomic_write_text(args.out, table)


if __name__ == "__main__":
    main()
