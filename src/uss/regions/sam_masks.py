"""SAM's automatic mask generator as a region proposer (the challenge entry's settings by default)."""
from typing import List

import numpy as np

from uss.regions.base import RegionProposer
from uss.regions.settings import SAM_MODEL_TYPE, SAM_SETTINGS


class SamProposer(RegionProposer):
    """Grid-prompted SAM masks; memory is bounded by points_per_batch."""

    name = "sam"

    def __init__(self, checkpoint: str, model_type: str = SAM_MODEL_TYPE, **generator_options):
        """checkpoint: the official SAM weights of `model_type`; generator_options: SamAutomaticMaskGenerator's
        settings (documented in its constructor), the challenge entry's (uss.regions.settings) where not given."""
        import jittor as jt

        from uss.sam import SamAutomaticMaskGenerator, build_sam

        jt.flags.use_cuda = jt.has_cuda
        settings = {**SAM_SETTINGS, **generator_options}
        self.checkpoint, self.model_type, self.settings = checkpoint, model_type, settings
        self.model = build_sam(model_type, checkpoint)
        self.generator = SamAutomaticMaskGenerator(self.model, **settings)

    def propose(self, image: np.ndarray) -> List[np.ndarray]:
        return [record["segmentation"].astype(bool) for record in self.generator.generate(image)]

    def describe(self) -> str:
        return f"sam ({self.model_type}, {self.checkpoint}, {self.settings})"
