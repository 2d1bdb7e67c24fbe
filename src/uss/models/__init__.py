"""Models: ResNet backbone, PASS heads, PASS pretraining model, pixel attention model."""
from uss.models.heads import (
    ConvProjectionHead,
    DeepToShallowHead,
    PixelPredictorHead,
    ProjectionHead,
    Prototypes,
    default_hidden_dim,
    sample_overlap,
)
from uss.models.pass_model import PASSModel, PASSOutput, arch_depth, build_model
from uss.models.pixel_attention import PixelAttention, PixelAttentionModel
from uss.models.resnet import ResNet, build_resnet

__all__ = [
    "ConvProjectionHead",
    "DeepToShallowHead",
    "PixelPredictorHead",
    "ProjectionHead",
    "Prototypes",
    "default_hidden_dim",
    "sample_overlap",
    "PASSModel",
    "PASSOutput",
    "arch_depth",
    "build_model",
    "PixelAttention",
    "PixelAttentionModel",
    "ResNet",
    "build_resnet",
]
