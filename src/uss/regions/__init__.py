"""Region proposers behind one interface: `propose(image) -> list of boolean HxW masks`.

- `sam`: Segment Anything's automatic mask generator (grid of point prompts), official weights.
- `superpixel`: scikit-image Felzenszwalb or SLIC segments; needs no weights (the demo's choice).

Their settings: uss.regions.settings.
"""
import os
from typing import Any, Dict, Optional

from uss.errors import InputError
from uss.regions.base import RegionProposer, sort_by_area
from uss.regions.settings import SAM_MODEL_TYPE

__all__ = ["RegionProposer", "build_proposer", "sort_by_area"]


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
