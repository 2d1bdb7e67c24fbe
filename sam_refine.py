"""Mask-based (SAM grid-mask or superpixel) pseudo labels: `sweep` the mask threshold, `generate` train labels.
See train_3.sh."""
import uss  # noqa: F401  (jittor environment defaults)
from uss.errors import run_cli
from uss.stages.mask_labels import main

if __name__ == "__main__":
    run_cli(main)
