"""Multi-crop batching: run crops of equal resolution through the backbone together (SwAV's trick)."""
from __future__ import annotations

from typing import Sequence

import jittor as jt

__all__ = ["resolution_groups"]


def resolution_groups(crops: Sequence[jt.Var]) -> list[tuple[int, int]]:
    """[start, end) index ranges of consecutive crops sharing the same (H, W)."""
    groups: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(crops) + 1):
        if i == len(crops) or tuple(crops[i].shape[-2:]) != tuple(crops[start].shape[-2:]):
            groups.append((start, i))
            start = i
    return groups
