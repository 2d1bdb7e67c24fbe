"""Region proposers behind one interface: `propose(image) -> list of boolean HxW masks`.

- `sam`: Segment Anything's automatic mask generator (grid of point prompts), official weights.
- `superpixel`: scikit-image Felzenszwalb or SLIC segments; needs no weights (the demo's choice).
"""
from uss.regions.base import RegionProposer, build_proposer, sort_by_area

__all__ = ["RegionProposer", "build_proposer", "sort_by_area"]
