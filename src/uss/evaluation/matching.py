"""Hungarian matching of predicted ids to ImageNet-S classes on image-level presence (official match.py).

For every image the set of predicted ids and the set of GT classes present in its valid pixels are
recorded (0 and 1000 excluded). With N images, cost[i][j] = 1 - (#images holding predicted id i and
GT class j) / N, solved with scipy's linear_sum_assignment (rectangular allowed: there may be more or
fewer predicted ids than the K classes). The match maps 0 -> 0; a predicted id left unassigned maps to
0 (background), both in the returned dict and wherever a match is applied.
"""
import json
from typing import Dict, Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from uss.atomic import atomic_write_json
from uss.data.label_png import IGNORE


class MatchFileError(ValueError):
    """A match.json that is missing or malformed; the message names the file."""


def hungarian_match(gt_sets: Sequence[Iterable[int]], pred_sets: Sequence[Iterable[int]],
                    num_classes: int) -> Dict[int, int]:
    """Match predicted ids to classes 1..K maximising summed image co-occurrence; unmatched ids -> 0."""
    if len(gt_sets) != len(pred_sets):
        raise ValueError(f"{len(gt_sets)} GT sets but {len(pred_sets)} prediction sets")
    gt_sets = [{int(c) for c in s if c not in (0, IGNORE)} for s in gt_sets]
    pred_sets = [{int(p) for p in s if p not in (0, IGNORE)} for s in pred_sets]
    pred_ids = sorted(set().union(*pred_sets)) if pred_sets else []
    match: Dict[int, int] = {0: 0}
    if not pred_ids or num_classes < 1:
        match.update({p: 0 for p in pred_ids})
        return match
    row = {p: i for i, p in enumerate(pred_ids)}
    co = np.zeros((len(pred_ids), num_classes), dtype=np.float64)
    for gts, preds in zip(gt_sets, pred_sets):
        cols = [c - 1 for c in gts if 1 <= c <= num_classes]
        if cols and preds:
            co[np.ix_([row[p] for p in preds], cols)] += 1
    cost = 1.0 - co / len(gt_sets)
    rows, cols = linear_sum_assignment(cost)
    match.update({p: 0 for p in pred_ids})
    for r, c in zip(rows, cols):
        match[pred_ids[r]] = int(c) + 1
    return match


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

