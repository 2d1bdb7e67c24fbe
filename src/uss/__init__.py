"""Large-scale unsupervised semantic segmentation (PASS + SAM refinement) on ImageNet-S, in Jittor."""
from uss._environment import configure_environment

configure_environment()

__version__ = "0.1.0"
