"""Segment Anything (SAM) in Jittor: loads the official checkpoints, prompt-based prediction and
automatic mask generation."""
from uss.sam.automatic_mask_generator import SamAutomaticMaskGenerator
from uss.sam.build import SAM_CONFIGS, SamConfig, build_sam, build_sam_from_config
from uss.checkpoints.sam import CheckpointError, load_sam_checkpoint
from uss.sam.predictor import SamPredictor
from uss.sam.sam import Sam
from uss.sam.transforms import ResizeLongestSide

__all__ = [
    "SAM_CONFIGS",
    "CheckpointError",
    "ResizeLongestSide",
    "Sam",
    "SamAutomaticMaskGenerator",
    "SamConfig",
    "SamPredictor",
    "build_sam",
    "build_sam_from_config",
    "load_sam_checkpoint",
]
