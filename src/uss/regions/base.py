"""The region-proposer interface and its factory."""
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from uss.errors import InputError
from uss.regions.defaults import SAM_MODEL_TYPE


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


def build_proposer(name: str, sam_checkpoint: Optional[str] = None, sam_model_type: str = SAM_MODEL_TYPE,
                   options: Optional[Dict[str, Any]] = None) -> RegionProposer:
    """'sam' (needs the official checkpoint file) or 'superpixel'; options go to the proposer."""
    options = dict(options or {})
    if name == "superpixel":
        from uss.regions.superpixel import SuperpixelProposer

        return SuperpixelProposer(**options)
    if name == "sam":
        if not sam_checkpoint:
            raise InputError("the 'sam' proposer needs --sam-checkpoint (e.g. weights/sam_vit_b_01ec64.pth); "
                             "use --proposer superpixel to run without SAM weights")
        if not os.path.isfile(sam_checkpoint):
            raise InputError(f"{sam_checkpoint}: SAM checkpoint not found; download the official "
                             f"sam_{sam_model_type}_*.pth into weights/ or pass --proposer superpixel")
        from uss.regions.sam_masks import SamProposer

        return SamProposer(sam_checkpoint, sam_model_type, **options)
    raise InputError(f"unknown region proposer {name!r}; choose 'sam' or 'superpixel'")
