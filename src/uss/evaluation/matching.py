"""Hungarian matching of predicted ids to ImageNet-S classes on image-level presence (official match.py).

For every image the set of predicted ids and the set of GT classes present in its valid pixels are
recorded (0 and 1000 excluded). As in the official code the assignment is square: rows are the
predicted ids 1..K, columns the classes 1..K, and cost[i][j] = 1 - (#images holding predicted id i and
GT class j) / N, so every id 1..K gets a class (an id never predicted on this split too) and 0 -> 0.
Predicted ids above K take no part (the official matching ignores them, and its evaluator then fails
on them); `unmapped_ids` finds them so that the evaluator, the submission packer and test.py refuse them.

Ties. The assignment is solved exactly on the integer co-occurrence counts (scipy's
linear_sum_assignment maximising their sum; the official float32 costs order the same way), so its
total equals the official Munkres optimum. Among equally good assignments two rules make the result
definite: (1) the ids matched with zero co-occurrence (ids never predicted, or only alongside other
classes) are paired with the classes left to them in increasing order, smallest id to smallest class;
this is always optimal too, since none of those ids co-occurs with any of those classes (otherwise
swapping two such pairs would raise the total). (2) Ties between assignments with positive
co-occurrence are left to linear_sum_assignment, which is deterministic for a given matrix; the
official Munkres code may pick another of the tied assignments there.
"""
import json
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from uss.atomic import atomic_write_json
from uss.errors import InputError


class MatchFileError(InputError, ValueError):
    """A match.json that is missing or malformed; the message names the file."""


def cooccurrence(gt_sets: Sequence[Iterable[int]], pred_sets: Sequence[Iterable[int]], num_classes: int) -> np.ndarray:
    """K x K int64 counts [predicted id - 1, class - 1] of images holding both (ids outside 1..K dropped)."""
    if len(gt_sets) != len(pred_sets):
        raise ValueError(f"{len(gt_sets)} GT sets but {len(pred_sets)} prediction sets")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for gts, preds in zip(gt_sets, pred_sets):
        cols = sorted({int(c) - 1 for c in gts if 1 <= int(c) <= num_classes})
        rows = sorted({int(p) - 1 for p in preds if 1 <= int(p) <= num_classes})
        if cols and rows:
            counts[np.ix_(rows, cols)] += 1
    return counts


def hungarian_match(gt_sets: Sequence[Iterable[int]], pred_sets: Sequence[Iterable[int]],
                    num_classes: int) -> Dict[int, int]:
    """Square official match {0: 0, 1..K: class}, maximising summed image co-occurrence (ties: module docstring)."""
    counts = cooccurrence(gt_sets, pred_sets, num_classes)
    match: Dict[int, int] = {0: 0}
    if num_classes < 1:
        return match
    rows, cols = linear_sum_assignment(counts, maximize=True)
    empty = counts[rows, cols] == 0
    cols = cols.copy()
    cols[np.flatnonzero(empty)] = np.sort(cols[empty])  # rows come sorted: smallest free id -> smallest free class
    match.update({int(r) + 1: int(c) + 1 for r, c in zip(rows, cols)})
    return match


def unmapped_ids(ids: Iterable[int], match: Optional[Mapping[int, int]], num_classes: int) -> List[int]:
    """Sorted predicted ids the official evaluator cannot score: not keys of `match` (or, without a match,
    above K); with a match, ids above K too."""
    out = set()
    for v in ids:
        v = int(v)
        if v > num_classes or (match is not None and v not in match):
            out.add(v)
    return sorted(out)


def apply_match(pred: np.ndarray, match: Mapping[int, int], num_classes: Optional[int] = None) -> np.ndarray:
    """Map predicted ids through `match` with a lookup table; ids not in the match -> 0 (int32)."""
    pred = np.asarray(pred)
    if pred.size == 0:
        return np.zeros(pred.shape, dtype=np.int32)
    if pred.min() < 0:
        raise ValueError("predicted ids must be non-negative")
    top = int(pred.max())
    lut = np.zeros(top + 1, dtype=np.int32)
    for key, value in match.items():
        key, value = int(key), int(value)
        if 0 <= key <= top and (num_classes is None or 0 <= value <= num_classes):
            lut[key] = value
    return lut[pred]


def save_match(path: str, match: Mapping[int, int]) -> None:
    """Write a match as official match.json ({"0": 0, "1": 7, ...}, string keys), atomically."""
    atomic_write_json(path, {str(int(k)): int(v) for k, v in sorted(match.items(), key=lambda kv: int(kv[0]))})


def load_match(path: str) -> Dict[int, int]:
    """Read match.json into {int: int}; MatchFileError names the file when it is missing or malformed."""
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        raise MatchFileError(f"{path}: match file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MatchFileError(f"{path}: not a valid match JSON file ({error})") from None
    if not isinstance(raw, dict):
        raise MatchFileError(f"{path}: match file must hold a JSON object {{\"predicted id\": class id}}, "
                             f"got {type(raw).__name__}")
    match: Dict[int, int] = {}
    for key, value in raw.items():
        try:
            k = int(key)
            if isinstance(value, bool) or not isinstance(value, (int, float, str)) or int(value) != float(value):
                raise ValueError
            v = int(value)
        except (TypeError, ValueError):
            raise MatchFileError(f"{path}: bad entry {key!r}: {value!r}; keys and values must be "
                                 "non-negative integers") from None
        if k < 0 or v < 0:
            raise MatchFileError(f"{path}: bad entry {key!r}: {value!r}; ids must be non-negative")
        match[k] = v
    match.setdefault(0, 0)
    return match


def describe_match(match: Mapping[int, int]) -> str:
    """Short human summary: how many predicted ids map to classes and how many to background."""
    foreground = sum(1 for k, v in match.items() if k != 0 and v != 0)
    background = sum(1 for k, v in match.items() if k != 0 and v == 0)
    return f"{foreground} predicted ids matched to classes, {background} mapped to background"

