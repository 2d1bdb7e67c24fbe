"""The region-proposer interface and its factory."""
from typing import List, Sequence

import numpy as np



class RegionProposer:
    """Proposes regions of an image: `propose(image HxWx3 uint8 RGB) -> [bool HxW masks]`."""

    name = "base"

    def propose(self, image: np.ndarray) -> List[np.ndarray]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


def sort_by_area(masks: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Largest first, so that painting in order lets smaller regions overwrite larger ones."""
    areas = [int(m.sum()) for m in masks]
    order = sorted(range(len(masks)), key=lambda i: (-areas[i], i))
    return [masks[i] for i in order]
